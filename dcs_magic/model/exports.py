"""Exports of a cluster spec for jobs and infrastructure code. Pure: no I/O.

From a validated `ClusterSpec` (optionally with a lock file entry's digest-pinned image):

- `to_bundle(spec)`: a Databricks Asset Bundle `resources` YAML with the cluster
  (`resources.clusters.<key>`) and a job that uses the same body as a job cluster
  (`resources.jobs.<key>_job.job_clusters[].new_cluster`);
- `to_terraform(spec)`: HCL for a `databricks_cluster` resource, `docker_image { url
  basic_auth { username password } }` included; an access mode the provider reads back under
  another name is written as that name (`DATA_SECURITY_MODE_DEDICATED` -> `SINGLE_USER`), so
  `terraform plan` stays empty after the apply;
- `to_policy(spec)`: a cluster policy definition (JSON) that fixes `docker_image.url` to the
  pinned digest, lets the registry password only be a `{{secrets/...}}` reference, keeps
  ML and aarch64 runtimes out, fixes the Unity Catalog volumes conf, and allows only the
  access modes Container Services supports, each under both its names;
- `to_pool(spec)`: an instance pool create body with `preloaded_docker_images`.

Secrets: every export keeps `{{secrets/scope/key}}` references as they are and REFUSES a
literal password (or any other literal secret, or a password read from an environment
variable): an export is meant to be committed, and a literal would land in the repository.

A policy that would forbid the very spec it is exported from is an error (`evaluate_policy`
checks the definition against the body before it is returned).

YAML is written by a small emitter (`dump_yaml`) for dicts, lists, strings, numbers,
booleans and None, quoting every string that a YAML 1.1 or 1.2 reader could read as
something else; no YAML library is needed at run time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import SpecError
from . import runtime
from .jobs import job_cluster, task_payload
from .secrets import MASK
from .spec import ALLOWED_ACCESS_MODES, ClusterSpec

__all__ = [
    "ACCESS_MODE_ALIASES",
    "EXPORT_KINDS",
    "UC_VOLUMES_CONF",
    "bundle_resources",
    "dump_yaml",
    "evaluate_policy",
    "export",
    "export_spec",
    "policy_definition",
    "pool_body",
    "to_bundle",
    "to_policy",
    "to_pool",
    "to_terraform",
]

EXPORT_KINDS = ("bundle", "terraform", "policy", "pool")
UC_VOLUMES_CONF = "spark.databricks.unityCatalog.volumes.enabled"
"""Unity Catalog volumes inside a container need this spark conf set to "true"."""

SECRET_REFERENCE_PATTERN = r"^\{\{\s*secrets/[^/{}\s]+/[^/{}\s]+\s*\}\}$"
"""What a policy lets `docker_image.basic_auth.password` be: a secret reference only."""

_SECRET_HINT = ('store the password in a secret scope (`databricks secrets put-secret SCOPE KEY`) '
                'and write "{{secrets/SCOPE/KEY}}" in its place; the cluster resolves it at start')
# Terraform's databricks_cluster takes these as maps (`x = { ... }`), other dicts as blocks.
_HCL_MAPS = ("spark_conf", "spark_env_vars", "custom_tags")

ACCESS_MODE_ALIASES = {"DATA_SECURITY_MODE_DEDICATED": "SINGLE_USER"}
"""Access mode alias -> the name the Clusters API answers with (`clusters/get` returns
`SINGLE_USER` for a cluster created `DATA_SECURITY_MODE_DEDICATED`). Terraform exports write
the answered name: `databricks_cluster` compares the configuration with what it reads back,
and before provider 1.87.0 that was a permanent plan diff (terraform-provider-databricks#4909).
Policies allow both names."""
_TERRAFORM_ALIAS_ISSUE = "terraform-provider-databricks#4909"


# -- the spec an export is made from ------------------------------------------------------


def export_spec(spec: ClusterSpec | Mapping[str, Any] | None = None, *, image: str | None = None,
                lock_cluster: Mapping[str, Any] | None = None) -> ClusterSpec:
    """The spec to export: `spec`, else a lock entry's recorded cluster body; with `image`
    (a lock entry's pinned `repo@sha256:...`) as its `docker_image.url`.

    SpecError when there is neither (the exports validate the result).
    """
    if spec is None and lock_cluster is None:
        raise SpecError("nothing to export: give a cluster spec, or a lock entry that recorded one",
                        field=None, hint="pass --spec FILE (a clusters/create JSON), or launch once with "
                                         "`dcs launch --lock NOTEBOOK` so the lock records the cluster")
    base = spec if spec is not None else lock_cluster
    result = base if isinstance(base, ClusterSpec) else ClusterSpec.from_dict(base or {})
    return result.with_image(image) if image else result


def _literal_secrets(value: Any, path: str = "") -> list[str]:
    """Paths of the values `masked()` hid: literal passwords, tokens and secrets."""
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in _literal_secrets(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _literal_secrets(v, f"{path}[{i}]")]
    return [path] if value == MASK else []


def _export_body(spec: ClusterSpec, what: str) -> dict[str, Any]:
    """The validated create body to export; SpecError for any literal secret in it."""
    literals = _literal_secrets(spec.masked())
    if literals:
        raise SpecError(f"{what} refused: {', '.join(literals)} holds a literal secret (or one read from an "
                        "environment variable); an export is meant to be committed and shared",
                        field=literals[0], hint=_SECRET_HINT)
    spec.validate()
    # masked() never reads the environment; with no literal left it equals the request body.
    return spec.masked()


def _key(spec: ClusterSpec, key: str | None) -> str:
    """A resource key (`[a-z0-9_]`) from `key` or the cluster name."""
    text = key or spec.cluster_name or "dcs_cluster"
    slug = re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_") or "dcs_cluster"
    return slug if slug[0].isalpha() or slug[0] == "_" else f"c_{slug}"


# -- bundle --------------------------------------------------------------------------------


def bundle_resources(spec: ClusterSpec, *, key: str | None = None, python_file: str | None = None,
                     notebook: str | None = None, parameters: Sequence[str] = ()) -> dict[str, Any]:
    """The bundle's `resources` mapping: the cluster, and a job running one task on a job
    cluster made from the same body (a Python file, by default `main.py` beside the YAML,
    or a notebook)."""
    body = _export_body(spec, "bundle export")
    name = _key(spec, key)
    new_cluster = job_cluster(body)
    if python_file is None and notebook is None:
        python_file = "main.py"
    task = {"task_key": "main", "job_cluster_key": name,
            **task_payload(python_file=python_file, notebook=notebook, parameters=parameters)}
    job = {"name": f"{spec.cluster_name or name} job",
           "job_clusters": [{"job_cluster_key": name, "new_cluster": new_cluster}],
           "tasks": [task]}
    return {"resources": {"clusters": {name: body}, "jobs": {f"{name}_job": job}}}


def to_bundle(spec: ClusterSpec, **kwargs: Any) -> str:
    """`bundle_resources(spec, ...)` as YAML for `resources/*.yml` of a Databricks Asset Bundle."""
    header = ("# Databricks Asset Bundle resources written by dcs-magic (`dcs export bundle`).\n"
              "# Include it from databricks.yml (include: [resources/*.yml]); secrets stay\n"
              "# {{secrets/scope/key}} references.\n")
    return header + dump_yaml(bundle_resources(spec, **kwargs))


_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./@+=-]*(?::[A-Za-z0-9_./@+=-]+)*$")
_YAML_WORDS = {"y", "yes", "n", "no", "true", "false", "on", "off", "null", "~"}


def _json_literal(value: Any) -> str | None:
    """null, booleans and numbers are written as JSON writes them, in YAML and HCL alike."""
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value)
    return None


def _yaml_scalar(value: Any) -> str:
    literal = _json_literal(value)
    if literal is not None:
        return literal
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _YAML_WORDS:
        return text
    return _yaml_quoted(text)


def _yaml_quoted(text: str) -> str:
    """A YAML double-quoted scalar in UTF-8: JSON's escapes (`\\n`, `\\"`, `\\\\`) are YAML's;
    characters YAML may not hold raw (C1 controls, U+FEFF, U+FFFE/U+FFFF) and the line breaks a
    reader would fold (U+0085, U+2028, U+2029) as `\\uXXXX`. Never a surrogate pair: libyaml
    refuses `\\ud83d\\ude80`, so an emoji is written as itself."""
    body = json.dumps(text, ensure_ascii=False)
    return "".join(f"\\u{ord(ch):04x}" if _yaml_escape(ch) else ch for ch in body)


def _yaml_escape(ch: str) -> bool:
    code = ord(ch)
    return (0x7F <= code <= 0x9F or code in (0x2028, 0x2029, 0xFEFF, 0xFFFE, 0xFFFF)
            or 0xD800 <= code <= 0xDFFF)


def dump_yaml(data: Any, indent: int = 0) -> str:
    """Block-style YAML for dicts, lists and scalars (strings quoted whenever a reader could
    take them for a number, boolean, null or syntax)."""
    return "".join(line + "\n" for line in _yaml_lines(data, indent))


def _yaml_lines(data: Any, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(data, Mapping):
        if not data:
            return [pad + "{}"]
        for key, value in data.items():
            head = f"{pad}{_yaml_scalar(str(key))}:"
            if isinstance(value, (Mapping, list)) and value:
                lines.append(head)
                lines += _yaml_lines(value, indent + 2 if isinstance(value, Mapping) else indent)
            else:
                lines.append(f"{head} {_yaml_inline(value)}")
        return lines
    if isinstance(data, list):
        if not data:
            return [pad + "[]"]
        for item in data:
            if isinstance(item, (Mapping, list)) and item:
                inner = _yaml_lines(item, indent + 2)
                lines.append(f"{pad}- {inner[0].lstrip()}")
                lines += inner[1:]
            else:
                lines.append(f"{pad}- {_yaml_inline(item)}")
        return lines
    return [pad + _yaml_scalar(data)]


def _yaml_inline(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _yaml_scalar(value)


# -- Terraform -------------------------------------------------------------------------------


def to_terraform(spec: ClusterSpec, *, key: str | None = None) -> str:
    """HCL for a `databricks_cluster` resource with the spec's fields (nested objects as
    blocks, `spark_conf`/`spark_env_vars`/`custom_tags` as maps, `init_scripts` as repeated
    blocks); the registry password stays its `{{secrets/...}}` reference."""
    body = _export_body(spec, "terraform export")
    body, comments = _terraform_read_back(body)
    lines = ["# Written by dcs-magic (`dcs export terraform`); secrets stay {{secrets/scope/key}} references.",
             f'resource "databricks_cluster" "{_key(spec, key)}" {{']
    lines += _hcl_body(body, 1, comments)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _terraform_read_back(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The body with each access mode alias replaced by the name the provider reads back, and
    the HCL comment that says so, by attribute."""
    mode = body.get("data_security_mode")
    if mode not in ACCESS_MODE_ALIASES:
        return body, {}
    answered = ACCESS_MODE_ALIASES[mode]
    return ({**body, "data_security_mode": answered},
            {"data_security_mode": f"{mode} in the spec; the provider reads it back as {answered} "
                                   f"({_TERRAFORM_ALIAS_ISSUE})"})


def _hcl_string(text: str) -> str:
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\r", "\\r").replace("\t", "\\t"))
    # `${` and `%{` start template sequences in HCL strings; `{{` does not.
    return '"' + escaped.replace("${", "$${").replace("%{", "%%{") + '"'


def _hcl_value(value: Any) -> str:
    literal = _json_literal(value)
    if literal is not None:
        return literal
    if isinstance(value, list):
        return "[" + ", ".join(_hcl_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_hcl_string(str(k))} = {_hcl_value(v)}" for k, v in value.items()) + " }"
    return _hcl_string(str(value))


_HCL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _hcl_name(name: str, path: str) -> str:
    """An attribute or block name, written unquoted: an identifier only (spec validation
    refuses any other name first; this keeps a name from ever becoming HCL code)."""
    if not _HCL_NAME.fullmatch(name):
        where = f"{path}.{json.dumps(name)}" if path else json.dumps(name)
        raise SpecError(f"terraform export refused: {where} is not a field name and would be written into "
                        "the HCL as code", field=where,
                        hint="remove the key or fix its name; free-form keys belong in spark_conf, "
                             "spark_env_vars or custom_tags")
    return name


def _hcl_body(body: Mapping[str, Any], depth: int, comments: Mapping[str, str] | None = None,
              path: str = "") -> list[str]:
    """HCL lines of `body`; `comments` (attribute -> text) end their attribute's line as `# text`."""
    for name in body:
        _hcl_name(str(name), path)
    pad = "  " * depth
    comments = comments or {}
    attributes = [(k, v) for k, v in body.items() if not _is_block(k, v)]
    blocks = [(k, v) for k, v in body.items() if _is_block(k, v)]
    width = max((len(k) for k, _ in attributes), default=0)
    lines = []
    for name, value in attributes:
        if name in _HCL_MAPS and isinstance(value, Mapping):
            lines.append(f"{pad}{name.ljust(width)} = {{")
            inner = max((len(_hcl_string(str(k))) for k in value), default=0)
            lines += [f"{pad}  {_hcl_string(str(k)).ljust(inner)} = {_hcl_value(v)}" for k, v in value.items()]
            lines.append(f"{pad}}}")
        else:
            comment = f" # {comments[name]}" if name in comments else ""
            lines.append(f"{pad}{name.ljust(width)} = {_hcl_value(value)}{comment}")
    for name, value in blocks:
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"{pad}{name} {{")
            lines += _hcl_body(item, depth + 1, path=f"{path}.{name}" if path else name)
            lines.append(f"{pad}}}")
    return lines


def _is_block(name: str, value: Any) -> bool:
    if name in _HCL_MAPS:
        return False
    if isinstance(value, Mapping):
        return True
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


# -- cluster policy ------------------------------------------------------------------------


def policy_definition(spec: ClusterSpec, *, rules: Mapping[str, Mapping[str, Any]] | None = None
                      ) -> dict[str, Any]:
    """A cluster policy definition (attribute path -> rule) governing clusters of this image.

    `docker_image.url` fixed to the spec's digest-pinned image; the registry password a
    `{{secrets/...}}` reference only; `spark_version` on the spec's runtime line and never an
    ML or aarch64 runtime; the Unity Catalog volumes conf fixed to "true"; `data_security_mode`
    limited to the modes Container Services supports. `rules` adds or replaces rules.

    SpecError when the image is not pinned by digest, or when the policy would forbid the
    spec itself (say, a `rules` entry or a spec conf that contradicts it).
    """
    body = _export_body(spec, "policy export")
    url = (body.get("docker_image") or {}).get("url")
    if not url:
        raise SpecError("policy export needs docker_image.url: the policy fixes it to the image",
                        field="docker_image.url", hint="set docker_image, or export from a lock (--lock NOTEBOOK)")
    if not (spec.docker_image and spec.docker_image.ref.is_pinned):
        raise SpecError(f"policy export: docker_image.url {url} is a tag, which can move; a policy fixes "
                        "the image by digest", field="docker_image.url",
                        hint="use the pinned reference (repo@sha256:...) from %dcs_push, or --lock NOTEBOOK")
    auth = (body.get("docker_image") or {}).get("basic_auth")
    definition: dict[str, Any] = {
        "docker_image.url": {"type": "fixed", "value": url},
        "docker_image.basic_auth.password": {"type": "regex", "pattern": SECRET_REFERENCE_PATTERN,
                                             **({} if auth else {"isOptional": True})},
        "spark_version": {"type": "regex", "pattern": _runtime_pattern(str(body["spark_version"]))},
        f"spark_conf.{UC_VOLUMES_CONF}": {"type": "fixed", "value": "true"},
        "data_security_mode": {"type": "allowlist", "values": _access_modes_with_aliases(),
                               **({"defaultValue": body["data_security_mode"]} if body.get("data_security_mode")
                                  else {"isOptional": True})},
    }
    if auth and auth.get("username"):
        definition["docker_image.basic_auth.username"] = {"type": "fixed", "value": auth["username"]}
    for path, rule in (rules or {}).items():
        definition[path] = dict(rule)
    violations = evaluate_policy(definition, body)
    if violations:
        raise SpecError("the exported policy would forbid the spec it is exported from: " + "; ".join(violations),
                        field=None, hint="change the spec (or the extra rules) so the two agree, then export again")
    return definition


def _access_modes_with_aliases() -> list[str]:
    """The access modes Container Services supports, each under both its names (a cluster made
    from the Terraform export says SINGLE_USER, one made from the spec may say
    DATA_SECURITY_MODE_DEDICATED): the policy lets either through."""
    modes = list(ALLOWED_ACCESS_MODES)
    for alias, answered in ACCESS_MODE_ALIASES.items():
        if alias in modes or answered in modes:
            modes += [name for name in (alias, answered) if name not in modes]
    return modes


def _runtime_pattern(key: str) -> str:
    """Keys of the spec's runtime line (`15.4.x-...`), with ML and aarch64 variants excluded.
    Java regex, as policies use; the lookahead works the same in Python."""
    # runtime.py reads the key: `15.4.x-...` names major.minor, `18.x-...` the whole major.
    version = runtime.parse_version(key)
    if version is None:
        line = r"\d+\.(?:\d+\.)?"
    elif version.minor is None:
        line = rf"{version.major}\."
    else:
        line = rf"{version.major}\.{version.minor}\."
    return rf"^(?!.*-ml-)(?!.*aarch64){line}[A-Za-z0-9._-]+$"


def to_policy(spec: ClusterSpec, **kwargs: Any) -> str:
    """`policy_definition(spec, ...)` as JSON (the definition the cluster-policies API, the UI's
    JSON editor and Terraform's `databricks_cluster_policy.definition` take)."""
    return json.dumps(policy_definition(spec, **kwargs), indent=2) + "\n"


def _lookup(body: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    """(present, value) of a policy attribute path in a create body; map fields take the rest
    of the path as one key (`spark_conf.spark.databricks....`)."""
    head, _, rest = path.partition(".")
    if head in _HCL_MAPS:
        container = body.get(head)
        return (isinstance(container, Mapping) and rest in container,
                container.get(rest) if isinstance(container, Mapping) else None)
    value: Any = body
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return False, None
        value = value[part]
    return True, value


def evaluate_policy(definition: Mapping[str, Mapping[str, Any]], body: Mapping[str, Any]) -> list[str]:
    """What in a create body a policy definition would refuse, one sentence each (empty: allowed).

    An absent attribute is allowed under `fixed` (the policy sets it), `forbidden`,
    `unlimited`, and any rule with `isOptional` or a `defaultValue` to fill in.
    """
    problems = []
    for path, rule in definition.items():
        kind = rule.get("type")
        present, value = _lookup(body, path)
        if not present:
            if kind not in ("fixed", "forbidden", "unlimited") and not rule.get("isOptional") \
                    and "defaultValue" not in rule:
                problems.append(f"{path} is missing but the policy requires it ({kind})")
            elif "defaultValue" in rule and not _allowed(rule, rule["defaultValue"]):
                problems.append(f"{path}: the policy's default {rule['defaultValue']!r} breaks its own {kind} rule")
            continue
        if kind == "forbidden":
            problems.append(f"{path} is set but the policy forbids it")
        elif not _allowed(rule, value):
            problems.append(f"{path} = {value!r} breaks the policy's {kind} rule {_describe(rule)}")
    return problems


def _allowed(rule: Mapping[str, Any], value: Any) -> bool:
    kind = rule.get("type")
    text = str(value).lower() if isinstance(value, bool) else str(value)
    if kind == "fixed":
        return text == (str(rule.get("value")).lower() if isinstance(rule.get("value"), bool)
                        else str(rule.get("value")))
    if kind == "allowlist":
        return text in [str(v) for v in rule.get("values", [])]
    if kind == "blocklist":
        return text not in [str(v) for v in rule.get("values", [])]
    if kind == "regex":
        return re.search(str(rule.get("pattern", "")), text) is not None
    if kind == "range":
        try:
            number = float(value)
        except (TypeError, ValueError):
            return False
        return float(rule.get("minValue", float("-inf"))) <= number <= float(rule.get("maxValue", float("inf")))
    return kind in ("unlimited", None)


def _describe(rule: Mapping[str, Any]) -> str:
    return json.dumps({k: v for k, v in rule.items() if k != "type"})


# -- instance pool ---------------------------------------------------------------------------


def pool_body(spec: ClusterSpec, *, name: str | None = None, min_idle_instances: int = 0,
              max_capacity: int | None = None, idle_instance_autotermination_minutes: int = 30
              ) -> dict[str, Any]:
    """An instance pools/create body whose idle instances pull the image ahead of time
    (`preloaded_docker_images`), for clusters that then skip the pull. Clusters use it by
    `instance_pool_id` in place of `node_type_id`."""
    body = _export_body(spec, "pool export")
    if not body.get("node_type_id"):
        raise SpecError("pool export needs node_type_id: a pool holds instances of one node type",
                        field="node_type_id", hint="set node_type_id in the spec (e.g. i3.xlarge)")
    if not body.get("docker_image"):
        raise SpecError("pool export needs docker_image: the pool preloads the image", field="docker_image")
    pool: dict[str, Any] = {
        "instance_pool_name": name or f"{spec.cluster_name or _key(spec, None)}-pool",
        "node_type_id": body["node_type_id"],
        "min_idle_instances": min_idle_instances,
        "idle_instance_autotermination_minutes": idle_instance_autotermination_minutes,
        "preloaded_docker_images": [body["docker_image"]],
        "preloaded_spark_versions": [body["spark_version"]],
    }
    if max_capacity is not None:
        pool["max_capacity"] = max_capacity
    if body.get("custom_tags"):
        pool["custom_tags"] = body["custom_tags"]
    return pool


def to_pool(spec: ClusterSpec, **kwargs: Any) -> str:
    """`pool_body(spec, ...)` as JSON (`databricks instance-pools create --json @file`)."""
    return json.dumps(pool_body(spec, **kwargs), indent=2) + "\n"


# -- one entry point ----------------------------------------------------------------------


def export(kind: str, spec: ClusterSpec, **kwargs: Any) -> str:
    """The export of one kind (`bundle`, `terraform`, `policy`, `pool`) as text."""
    writers: dict[str, Callable[..., str]] = {"bundle": to_bundle, "terraform": to_terraform,
                                               "policy": to_policy, "pool": to_pool}
    if kind not in writers:
        raise SpecError(f"unknown export kind {kind!r}", field=None, hint=f"use one of: {', '.join(EXPORT_KINDS)}")
    return writers[kind](spec, **kwargs)
