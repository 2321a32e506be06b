"""`ClusterSpec`: the Clusters API create body, validated before any request. No I/O.

The fields are named exactly like the body of `POST /api/2.1/clusters/create`, so
`ClusterSpec(**body)` and `ClusterSpec.from_dict(body)` both work and `to_dict()` gives the
body back. `docker_image` and `init_scripts` take the API's own dict shapes, or the small
dataclasses below (`DockerImage`, `BasicAuth`, `InitScript`), or for an init script a
destination string (`"/Workspace/Shared/setup.sh"`, `"dbfs:/init/x.sh"`, ...); either way
the spec holds the dataclasses (the constructor normalises), so its readers never branch
on the shape. A value of no such shape (a string where a dict belongs, a malformed
destination) is kept as written for `validate()` to refuse with the rule in words.

Validation (`validate()`, `errors()`) raises `SpecError(field=...)` with the rule in words,
and refuses what Databricks Container Services cannot run: ML runtimes, aarch64/Graviton,
and standard (shared) access mode. The same rules filter the launch form's runtime and
node type lists (`dcs_runtimes`, `dcs_node_types`), so the two can never disagree.

Field names: `from_dict` warns about (or, `strict=True`, refuses) a name the Clusters API does
not know, at the top level and inside the databricks-sdk's nested types
(`aws_attributes.availabilty`); `validate()` refuses any name that is neither a known field nor
an identifier, whatever its depth (exports write names unquoted, so a key must never become
code), and lone surrogates anywhere. Only the keys of map fields (`spark_conf`, `custom_tags`,
`spark_env_vars`) are free text.

Secrets: a registry password is either a `{{secrets/scope/key}}` reference (a name, shown
as is), a literal (shown as `****` in reprs, previews and `to_json()`), or the name of an
environment variable (`BasicAuth(password_env="VAR")`) read only by `to_dict()`, i.e. when
the request body is built.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import json
import os
import re
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeGuard

from ..errors import SpecError
from . import runtime
from .credentials import env_password
from .imageref import ImageRef, parse_reference
from .secrets import MASK, mask_password, mask_secrets

__all__ = [
    "ALLOWED_ACCESS_MODES",
    "BasicAuth",
    "ClusterSpec",
    "DockerImage",
    "InitScript",
    "NamedInitScript",
    "dcs_node_types",
    "dcs_runtimes",
    "field_path",
    "init_script_info",
    "known_field_names",
    "node_type_problem",
    "node_type_refusal",
    "runtime_refusal",
    "unknown_field_message",
    "unknown_fields",
    "upload_destination",
]

MAX_CUSTOM_TAGS = 45
MAX_INIT_SCRIPTS = 10
MAX_SSH_KEYS = 10
UPLOADABLE_KINDS = ("workspace", "volumes", "dbfs")
"""Init script destinations `Workspace.upload` can write to."""

# Access modes DCS supports, and why the others are refused.
ALLOWED_ACCESS_MODES = ("DATA_SECURITY_MODE_DEDICATED", "SINGLE_USER", "NONE")
_REFUSED_ACCESS_MODES = {
    "USER_ISOLATION": "standard (shared) access mode",
    "DATA_SECURITY_MODE_STANDARD": "standard (shared) access mode",
    "DATA_SECURITY_MODE_AUTO": "automatic access mode (Databricks may pick standard access mode)",
    "LEGACY_TABLE_ACL": "legacy table access control (a shared access mode)",
    "LEGACY_PASSTHROUGH": "legacy credential passthrough",
    "LEGACY_SINGLE_USER": "legacy single-user credential passthrough",
    "LEGACY_SINGLE_USER_STANDARD": "legacy single-user standard mode",
}
_ACCESS_MODE_HINT = ("use data_security_mode SINGLE_USER (DATA_SECURITY_MODE_DEDICATED) with "
                     "single_user_name, or NONE (no isolation); for Unity Catalog volumes inside the "
                     "container also set spark_conf {\"spark.databricks.unityCatalog.volumes.enabled\": \"true\"}")

# AWS Graviton families: letters, a generation digit, then `g` (m6g, m6gd, r7g, c6gn, x2gd,
# t4g, im4gn, is4gen, g5g, hpc7g, ...). x86 GPU families such as g4dn/g5/p3 do not match.
_GRAVITON = re.compile(r"^[a-z]{1,3}\d+g[a-z]*\.", re.IGNORECASE)
_RUNTIME_VERSION = re.compile(r"^(\d+)\.(\d+|x)")  # "15.4.x-..." and, from 18 on, "18.x-..."

# Init script destination types: (pattern the destination must match, example).
_DESTINATIONS: dict[str, tuple[re.Pattern[str], str]] = {
    "workspace": (re.compile(r"^/(?:Workspace|Users|Shared|Repos)/[^/].*[^/]$"),
                  "/Workspace/Users/me@example.com/init.sh"),
    "volumes": (re.compile(r"^/Volumes/[^/]+/[^/]+/[^/]+/.*[^/]$"),
                "/Volumes/catalog/schema/volume/init.sh"),
    "dbfs": (re.compile(r"^dbfs:/[^/].*[^/]$"), "dbfs:/databricks/init/init.sh"),
    "file": (re.compile(r"^file:/[^/].*[^/]$"), "file:/databricks/scripts/init.sh"),
    "s3": (re.compile(r"^s3a?://[^/\s]+/.*[^/]$"), "s3://bucket/init/init.sh"),
    "abfss": (re.compile(r"^abfss://[^@/\s]+@[^/\s]+/.*[^/]$"),
              "abfss://container@account.dfs.core.windows.net/init.sh"),
    "gcs": (re.compile(r"^gs://[^/\s]+/.*[^/]$"), "gs://bucket/init/init.sh"),
}
# Destination string prefix -> type, for `init_script_info("...")`.
_PREFIXES = (
    ("/Workspace/", "workspace"), ("/Users/", "workspace"), ("/Shared/", "workspace"),
    ("/Repos/", "workspace"), ("/Volumes/", "volumes"), ("dbfs:/", "dbfs"), ("file:/", "file"),
    ("s3://", "s3"), ("s3a://", "s3"), ("abfss://", "abfss"), ("gs://", "gcs"),
)


# -- docker_image ------------------------------------------------------------------------


@dataclass
class BasicAuth:
    """Registry credentials. Give `password` (a literal or a `{{secrets/...}}` reference) or
    `password_env`, the name of an environment variable read only when the body is built.
    `extra` holds keys of a `basic_auth` dict this class does not name, sent back as they are."""

    username: str
    password: str | None = None
    password_env: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> BasicAuth:
        """The API's `basic_auth` dict; what is missing or mistyped is kept for `validate()`."""
        return cls(body.get("username"), body.get("password"),  # type: ignore[arg-type]
                   extra={k: copy.deepcopy(v) for k, v in body.items() if k not in ("username", "password")})

    def to_dict(self, *, mask: bool = False) -> dict[str, Any]:
        """The API's `basic_auth` dict; `mask=True` never reads the environment."""
        if mask:
            password = mask_password(self.password) if self.password is not None else (
                MASK if self.password_env else None)
        else:
            password = self._resolve_password()
        body: dict[str, Any] = {"username": self.username}
        if password is not None:
            body["password"] = password
        for key, value in self.extra.items():
            body.setdefault(key, copy.deepcopy(value))
        return body

    def _resolve_password(self) -> str | None:
        if self.password is not None or not self.password_env:
            return self.password
        # Unwrapped here: this is the body that is sent.
        return env_password(self.password_env, field=_PASSWORD_FIELD).reveal()

    def __repr__(self) -> str:
        source = f"password_env={self.password_env!r}" if self.password_env and self.password is None \
            else f"password={mask_password(self.password)!r}"
        return f"BasicAuth(username={self.username!r}, {source})"


_PASSWORD_FIELD = "docker_image.basic_auth.password"


@dataclass
class DockerImage:
    """The API's `docker_image`: `url` and optional `basic_auth` (a `basic_auth` dict becomes
    a BasicAuth). `extra` holds keys this class does not name: `validate()` refuses them."""

    url: str
    basic_auth: BasicAuth | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.basic_auth, Mapping):
            self.basic_auth = BasicAuth.from_dict(self.basic_auth)

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> DockerImage:
        """The API's `docker_image` dict; what is missing or mistyped is kept for `validate()`."""
        return cls(body.get("url", ""), copy.deepcopy(body.get("basic_auth")),
                   extra={k: copy.deepcopy(v) for k, v in body.items() if k not in ("url", "basic_auth")})

    @property
    def ref(self) -> ImageRef:
        """`url` as an ImageRef; ValueError saying what is wrong when it is not an image
        reference (`validate()` reports that as a SpecError on docker_image.url)."""
        return parse_reference(self.url)

    def to_dict(self, *, mask: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"url": self.url}
        if isinstance(self.basic_auth, BasicAuth):
            body["basic_auth"] = self.basic_auth.to_dict(mask=mask)
        elif self.basic_auth is not None:  # not a dict at all: kept as written, validate() refuses it
            body["basic_auth"] = copy.deepcopy(self.basic_auth)
        for key, value in self.extra.items():
            body.setdefault(key, copy.deepcopy(value))
        return mask_secrets({"docker_image": body})["docker_image"] if mask else body

    def __repr__(self) -> str:
        return f"DockerImage({self.to_dict(mask=True)!r})"


# -- init_scripts ------------------------------------------------------------------------


@dataclass
class InitScript:
    """One `init_scripts` item: a destination type (`workspace`, `volumes`, `dbfs`, `file`,
    `s3`, `abfss`, `gcs`) and its destination; `options` carries extra keys (s3 `region`, ...)."""

    kind: str
    destination: str
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {self.kind: {"destination": self.destination, **copy.deepcopy(self.options)}}

    @classmethod
    def from_dict(cls, item: Mapping[str, Any]) -> InitScript | None:
        """The API's one-key `{kind: {"destination": ..., ...}}` item, None for another shape."""
        if len(item) != 1:
            return None
        kind, info = next(iter(item.items()))
        if not isinstance(info, Mapping) or "destination" not in info:
            return None
        return cls(str(kind), info["destination"],
                   {k: copy.deepcopy(v) for k, v in info.items() if k != "destination"})


def init_script_info(destination: str, *, region: str | None = None,
                     endpoint: str | None = None) -> dict[str, Any]:
    """The API's init-script dict for a destination string, e.g.
    `"/Volumes/c/s/v/init.sh"` -> `{"volumes": {"destination": "/Volumes/c/s/v/init.sh"}}`.

    Raises SpecError for a destination of no known type or a malformed one.
    """
    dest = (destination or "").strip() if isinstance(destination, str) else destination
    kind = _kind_of(dest)
    info: dict[str, Any] = {"destination": dest}
    if kind == "s3":
        info.update({k: v for k, v in (("region", region), ("endpoint", endpoint)) if v})
    item = {kind: info}
    for error in _init_script_errors(item, "init_scripts"):
        raise error
    return item


def upload_destination(destination: str) -> dict[str, Any]:
    """`init_script_info` for a destination the workspace API can upload to (`/Workspace/...`,
    `/Volumes/...`, `dbfs:/...`); SpecError for cloud storage and `file:/` paths."""
    kind = _kind_of((destination or "").strip() if isinstance(destination, str) else destination)
    if kind not in UPLOADABLE_KINDS:
        raise SpecError(f"{destination} is a {kind} destination; the workspace API uploads only to "
                        "/Workspace/..., /Volumes/... and dbfs:/...", field="init_scripts",
                        hint="copy the file there yourself and reference it in init_scripts "
                             "(file:/ paths are inside the image)")
    return init_script_info(destination)


def _kind_of(dest: Any) -> str:
    kind = next((k for prefix, k in _PREFIXES if isinstance(dest, str) and dest.startswith(prefix)), None)
    if kind is None:
        raise SpecError(f"init script destination {dest!r} is not a known type",
                        field="init_scripts", hint=_destination_forms())
    return kind


def _destination_forms() -> str:
    return "write one of: " + ", ".join(example for _, example in _DESTINATIONS.values())


def _init_script_errors(item: Any, where: str) -> Iterator[SpecError]:
    if not isinstance(item, dict):
        yield SpecError(f"{where} must be a dict like {{\"workspace\": {{\"destination\": ...}}}}",
                        field=where, hint=_destination_forms())
        return
    kinds = [k for k in item if k in _DESTINATIONS]
    unknown = [k for k in item if k not in _DESTINATIONS]
    if unknown:
        yield SpecError(f"{where} has unknown destination type(s) {', '.join(map(repr, unknown))}; "
                        f"known types: {', '.join(_DESTINATIONS)}", field=where)
        return
    if len(kinds) != 1:
        yield SpecError(f"{where} must have exactly one destination type, not "
                        f"{len(kinds)} ({', '.join(kinds) or 'none'})", field=where, hint=_destination_forms())
        return
    kind = kinds[0]
    info = item[kind]
    dest = info.get("destination") if isinstance(info, dict) else None
    pattern, example = _DESTINATIONS[kind]
    if isinstance(dest, str) and (any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in dest)
                                  or ".." in dest.split("://")[-1].split("/")):
        yield SpecError(f"{where}.{kind}.destination {dest!r} holds a control character (a newline?) or a `..` "
                        "segment; a destination is one plain path", field=f"{where}.{kind}.destination",
                        hint=f"write it like {example}, without `..` and on one line")
    elif not isinstance(dest, str) or not pattern.match(dest) or "//" in dest.split("://")[-1]:
        yield SpecError(f"{where}.{kind}.destination {dest!r} is not a well-formed {kind} path",
                        field=f"{where}.{kind}.destination", hint=f"write it like {example}")
    elif kind == "s3" and not (info.get("region") or info.get("endpoint")):
        yield SpecError(f"{where}.s3 needs a region or an endpoint", field=f"{where}.s3.region",
                        hint='add "region": "us-west-2" (the bucket\'s region) next to the destination')


@dataclass
class NamedInitScript:
    """An init script kept from a `%%init_script NAME` cell; `destination` once uploaded
    (or a `file:/...` path for a script baked into the image)."""

    name: str
    text: str
    destination: str | None = None

    def info(self) -> dict[str, Any] | None:
        """The `init_scripts` item referencing it, or None while it has no destination."""
        return init_script_info(self.destination) if self.destination else None

    def __repr__(self) -> str:
        lines = len(self.text.splitlines())
        where = self.destination or "not uploaded"
        return f"NamedInitScript({self.name!r}, {lines} lines, {where})"


# -- DCS refusals (shared by validation and the launch form's lists) ----------------------


def runtime_refusal(key: str | None) -> str | None:
    """Why DCS cannot run a runtime key (`15.4.x-scala2.12`), or None when it can (runtime.py)."""
    return runtime.key_refusal(key)


def node_type_refusal(node_type: str | Mapping[str, Any] | None) -> str | None:
    """Why DCS cannot use a node type (an id, or a `list-node-types` item), or None."""
    if not node_type:
        return None
    info = node_type if isinstance(node_type, Mapping) else {"node_type_id": node_type}
    node_id = str(info.get("node_type_id") or "")
    if info.get("is_graviton") or _GRAVITON.match(node_id):
        return f"{node_id} is an AWS Graviton (arm64) node type; custom containers run on x86_64 only"
    return None


def node_type_problem(node_id: str, offered: Iterable[Mapping[str, Any]]) -> str | None:
    """Why a workspace whose `list-node-types` answer is `offered` refuses NODE_ID for a
    container cluster, or None. The one rule of clusters/create on the local preflight
    workspace, `dcs doctor` and the launch form, so the three never disagree."""
    known = {str(n.get("node_type_id")): n for n in offered if n.get("node_type_id")}
    if node_id not in known:
        usable = [n["node_type_id"] for n in dcs_node_types(known.values())][:4]
        return (f"Node type {node_id} is not supported by this workspace"
                + (f" (it offers e.g. {', '.join(usable)})" if usable else ""))
    return node_type_refusal(known[node_id])


def _version_key(key: str) -> tuple[int, int]:
    match = _RUNTIME_VERSION.match(key)
    if not match:
        return (-1, -1)
    return int(match[1]), 0 if match[2] == "x" else int(match[2])


def dcs_runtimes(versions: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`spark-versions` items DCS can run: ML and aarch64 left out, newest first (an LTS before
    another build of the same version)."""
    usable = [dict(v) for v in versions if v.get("key") and runtime_refusal(v["key"]) is None]
    return sorted(usable, key=lambda v: (tuple(-n for n in _version_key(v["key"])),
                                         "LTS" not in str(v.get("name", "")), v["key"]))


def dcs_node_types(node_types: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`list-node-types` items DCS can use: Graviton, deprecated and hidden ones left out,
    smallest first."""
    usable = [dict(n) for n in node_types if n.get("node_type_id") and node_type_refusal(n) is None
              and not n.get("is_deprecated") and not n.get("is_hidden")]
    return sorted(usable, key=lambda n: (float(n.get("num_cores") or 0), float(n.get("memory_mb") or 0),
                                         n["node_type_id"]))


# -- ClusterSpec ---------------------------------------------------------------------------


@dataclass(repr=False)
class ClusterSpec:
    """The clusters/create body. Fields are named like the API's; None means "not sent".

    Unknown fields read by `from_dict` are kept in `extra` and sent back unchanged.
    """

    cluster_name: str | None = None
    spark_version: str | None = None
    node_type_id: str | None = None
    driver_node_type_id: str | None = None
    num_workers: int | None = None
    autoscale: dict[str, int] | None = None
    docker_image: DockerImage | None = None
    init_scripts: list[InitScript | NamedInitScript] | None = None
    spark_conf: dict[str, str] | None = None
    spark_env_vars: dict[str, str] | None = None
    custom_tags: dict[str, str] | None = None
    autotermination_minutes: int | None = None
    data_security_mode: str | None = None
    single_user_name: str | None = None
    policy_id: str | None = None
    apply_policy_default_values: bool | None = None
    runtime_engine: str | None = None
    aws_attributes: dict[str, Any] | None = None
    azure_attributes: dict[str, Any] | None = None
    gcp_attributes: dict[str, Any] | None = None
    instance_pool_id: str | None = None
    driver_instance_pool_id: str | None = None
    cluster_log_conf: dict[str, Any] | None = None
    ssh_public_keys: list[str] | None = None
    enable_elastic_disk: bool | None = None
    enable_local_disk_encryption: bool | None = None
    is_single_node: bool | None = None
    kind: str | None = None
    use_ml_runtime: bool | None = None
    workload_type: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The API's dict shapes (and destination strings) become the dataclasses, once, here.
        self.docker_image = _docker_image(self.docker_image)
        if isinstance(self.init_scripts, list):
            self.init_scripts = [_init_script(item) for item in self.init_scripts]

    @property
    def image_url(self) -> str | None:
        """`docker_image.url`, None without a docker_image."""
        return self.docker_image.url if isinstance(self.docker_image, DockerImage) else None

    def with_image(self, url: str) -> ClusterSpec:
        """A copy whose `docker_image.url` is URL (its basic_auth kept)."""
        image = self.docker_image
        if isinstance(image, DockerImage):
            return self.replace(docker_image=dataclasses.replace(image, url=url))
        return self.replace(docker_image=DockerImage(url))

    # -- reading ---------------------------------------------------------------------------

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The API fields this class names (everything but `extra`)."""
        return tuple(f.name for f in fields(cls) if f.name != "extra")

    @classmethod
    def from_dict(cls, body: Mapping[str, Any], *, strict: bool = False,
                  warn: Callable[[str], Any] | None = None) -> ClusterSpec:
        """Read a create body (e.g. a saved JSON file); unknown fields go to `extra`.

        A field the Clusters API does not know (`autotermination_minute`) is passed to `warn`
        with the closest known name, as the Databricks CLI warns for bundles; `strict=True`
        makes it a SpecError instead.
        """
        if not isinstance(body, Mapping):
            raise SpecError(f"a cluster spec must be a JSON object, not {type(body).__name__}", field=None)
        for name, closest in unknown_fields(body):
            text = unknown_field_message(name, closest, strict=strict)
            if strict:
                raise SpecError(text, field=name, hint="fix the field name, or drop --strict to send it as it is")
            if warn is not None:
                warn(text)
        known = set(cls.field_names())
        try:
            data = copy.deepcopy(dict(body))
        except RecursionError:  # deepcopy recurses once per nesting level
            raise SpecError("the cluster spec nests too deeply to read", field=None,
                            hint="a create body is a few levels deep; check the file") from None
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**{k: v for k, v in data.items() if k in known}, extra=extra)

    @classmethod
    def from_json(cls, text: str, *, source: str = "JSON", strict: bool = False,
                  warn: Callable[[str], Any] | None = None) -> ClusterSpec:
        """Read a create body from JSON text; errors name the line and column."""
        try:
            body = json.loads(text, parse_constant=functools.partial(_not_json, source))
        except json.JSONDecodeError as exc:
            raise SpecError(f"{source} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
                            field=None) from exc
        except RecursionError:  # json's decoder recurses once per nesting level
            raise SpecError(f"{source} nests too deeply to read as a cluster spec", field=None,
                            hint="a create body is a few levels deep; check the file") from None
        return cls.from_dict(body, strict=strict, warn=warn)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, strict: bool = False,
             warn: Callable[[str], Any] | None = None) -> ClusterSpec:
        """Read a create body from a JSON file (`%dcs_launch --spec FILE`); see `from_dict`."""
        path = Path(path).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SpecError(f"cannot read the cluster spec file {path}: {exc.strerror or exc}",
                            field=None) from exc
        except UnicodeDecodeError as exc:
            raise SpecError(f"the cluster spec file {path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} "
                            f"at offset {exc.start})", field=None,
                            hint="save it as UTF-8 (JSON files are UTF-8), e.g. iconv -f LATIN1 -t UTF-8") from None
        return cls.from_json(text, source=str(path), strict=strict, warn=warn)

    # -- writing ---------------------------------------------------------------------------

    def _body(self, *, mask: bool) -> dict[str, Any]:
        body: dict[str, Any] = {}
        for name in self.field_names():
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, DockerImage):
                value = value.to_dict(mask=mask)
            elif name == "init_scripts" and isinstance(value, list):
                value = [_plain_init_script(item, strict=not mask) for item in value]
            else:
                value = copy.deepcopy(value)
            body[name] = value
        for key, value in self.extra.items():
            body.setdefault(key, copy.deepcopy(value))
        return mask_secrets(body) if mask else body

    def to_dict(self, *, validate: bool = True) -> dict[str, Any]:
        """The request body (None fields left out). Validates first unless `validate=False`.

        Reads a `BasicAuth.password_env` variable: this is the body that is sent.
        """
        if validate:
            self.validate()
        return self._body(mask=False)

    def masked(self) -> dict[str, Any]:
        """The body with literal passwords as `****` (references kept); never validates and
        never reads the environment, so a preview works for any spec."""
        return self._body(mask=True)

    def to_json(self, *, mask: bool = True, validate: bool = False, indent: int | None = 2) -> str:
        """JSON text of the body, masked by default (for previews and files)."""
        if validate:
            self.validate()
        body = self.masked() if mask else self.to_dict(validate=False)
        return json.dumps(body, indent=indent, sort_keys=False)

    def replace(self, **changes: Any) -> ClusterSpec:
        """A copy with some fields changed."""
        values = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self)}
        values.update(changes)
        return type(self)(**values)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.masked().items())
        return f"ClusterSpec({inner})"

    # -- validation ------------------------------------------------------------------------

    def validate(self) -> ClusterSpec:
        """Raise the first problem as SpecError(field=...); return self when valid."""
        for error in self.errors():
            raise error
        return self

    def errors(self) -> list[SpecError]:
        """Every problem found, in field order (empty when valid)."""
        checks = (_check_names, _check_extra, _check_version, _check_size, _check_autotermination, _check_strings,
                  _check_node_types, _check_access_mode, _check_docker_image, _check_init_scripts,
                  _check_cluster_log_conf, _check_ssh_keys)
        return [error for check in checks for error in check(self)]

    @property
    def ok(self) -> bool:
        return not self.errors()


def _not_json(source: str, constant: str) -> Any:
    """json's `parse_constant`: NaN and Infinity are Python's extension, not JSON."""
    raise SpecError(f"{source} holds {constant}, which is not JSON (the Clusters API refuses it)", field=None,
                    hint="write a number, or leave the field out")


def _docker_image(value: Any) -> Any:
    """A `docker_image` dict as a DockerImage; any other value as it is (validate refuses it)."""
    return DockerImage.from_dict(value) if isinstance(value, Mapping) else value


def _init_script(item: Any) -> Any:
    """An init_scripts item as an InitScript (a NamedInitScript stays one: its destination
    comes with the upload); an item of no known shape as it is (validate refuses it)."""
    if isinstance(item, str):
        try:
            item = init_script_info(item)
        except SpecError:
            return item
    if isinstance(item, Mapping):
        return InitScript.from_dict(item) or item
    return item


def _plain_init_script(item: Any, *, strict: bool = True) -> Any:
    """An init_scripts item in the API's dict shape; `strict=False` (previews) keeps a
    malformed destination string as written instead of raising."""
    if isinstance(item, InitScript):
        return item.to_dict()
    if isinstance(item, NamedInitScript):
        if not item.destination:
            if strict:
                raise SpecError(f"init script {item.name!r} has no destination yet", field="init_scripts",
                                hint=f"upload it: %%init_script {item.name} --upload /Workspace/...")
            return f"<{item.name}: not uploaded>"
        item = item.destination
    if isinstance(item, str):
        try:
            return init_script_info(item)
        except SpecError:
            if strict:
                raise
            return item
    return copy.deepcopy(item)


@functools.lru_cache(maxsize=1)
def known_field_names() -> frozenset[str]:
    """The clusters/create fields: the databricks-sdk's `compute.ClusterSpec` and
    `compute.CreateCluster` dataclass fields, and this ClusterSpec's."""
    names = set(ClusterSpec.field_names())
    try:
        from databricks.sdk.service import compute
    except ImportError:  # the SDK is optional at run time; our own fields still count
        return frozenset(names)
    for kind in ("ClusterSpec", "CreateCluster"):
        cls = getattr(compute, kind, None)
        if cls is not None and dataclasses.is_dataclass(cls):
            names.update(f.name for f in fields(cls))
    return frozenset(names)


def unknown_fields(body: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """(field path, closest known path or None) for each field the API does not know, at the
    top level (`autotermination_minute`) and inside the SDK's nested objects
    (`aws_attributes.availabilty` -> `aws_attributes.availability`)."""
    found: list[tuple[str, str | None]] = []
    _walk(body, _schema(), "", unknown=found, problems=None)
    return found


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAP = "map"
"""Schema mark of a map attribute (`spark_conf`, `custom_tags`, ...): its keys are free strings."""
_FREE_MAPS = ("spark_conf", "spark_env_vars", "custom_tags")


def field_path(path: str, key: Any) -> str:
    """`path.key`, the key quoted as a JSON string when it is not an identifier
    (`aws_attributes."zone_id = ..."`), so a path never prints a newline or a quote raw."""
    text = str(key)
    part = text if _IDENTIFIER.fullmatch(text) else json.dumps(text)
    return f"{path}.{part}" if path else part


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


@functools.lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    """The create body's shape: field name -> None (a scalar), `_MAP` (free keys) or a dict
    (an object, list items included), read from the databricks-sdk's `compute.ClusterSpec`
    and `compute.CreateCluster` and their nested dataclasses; this ClusterSpec's own fields
    count too. Without the SDK only the top level (ours) is known."""
    top: dict[str, Any] = {name: (_MAP if name in _FREE_MAPS else None) for name in ClusterSpec.field_names()}
    try:
        from databricks.sdk.service import compute
    except ImportError:  # the SDK is optional at run time
        return top
    objects: dict[type, dict[str, Any]] = {}
    for kind in ("ClusterSpec", "CreateCluster"):
        cls = getattr(compute, kind, None)
        if cls is not None and dataclasses.is_dataclass(cls):
            for name, shape in _object_schema(cls, objects).items():
                if shape is not None or name not in top:
                    top[name] = shape
    return top


def _object_schema(cls: Any, objects: dict[type, dict[str, Any]]) -> dict[str, Any]:
    if cls in objects:  # the same dict: recursive types stay finite
        return objects[cls]
    schema: dict[str, Any] = {}
    objects[cls] = schema
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 (an SDK whose annotations do not resolve: names only)
        hints = {}
    for item in fields(cls):
        schema[item.name] = _type_schema(hints.get(item.name), objects)
    return schema


def _type_schema(tp: Any, objects: dict[type, dict[str, Any]]) -> Any:
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if origin in (typing.Union, types.UnionType) and args:
        return _type_schema(args[0], objects)
    if origin is list and args:
        return _type_schema(args[0], objects)
    if origin is dict:
        return _MAP
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _object_schema(tp, objects)
    return None


def _walk(value: Any, schema: Any, path: str, *, unknown: list[tuple[str, str | None]] | None,
          problems: list[SpecError] | None, depth: int = 0) -> None:
    """Check `value` against `schema`: unknown names (of an object the schema knows) go to
    `unknown`; names that are neither known nor identifiers, and lone surrogates, to `problems`.
    Map keys (`spark_conf`) may be any text."""
    if depth > 64:
        if problems is not None:
            problems.append(SpecError(f"{path or 'the cluster spec'} nests too deeply", field=path or None,
                                      hint="a create body is a few levels deep; check the file"))
        return
    if isinstance(value, str):
        if problems is not None and _has_surrogate(value):
            problems.append(_surrogate_error(path))
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _walk(item, schema, f"{path}[{index}]", unknown=unknown, problems=problems, depth=depth + 1)
        return
    if not isinstance(value, Mapping):
        return
    for key, item in value.items():
        where = field_path(path, key)
        text = str(key)
        if schema == _MAP:
            if problems is not None and _has_surrogate(text):
                problems.append(_surrogate_error(where))
            _walk(item, None, where, unknown=unknown, problems=problems, depth=depth + 1)
            continue
        known = isinstance(schema, dict) and text in schema
        if not known:
            if unknown is not None and isinstance(schema, dict):
                closest = next(iter(difflib.get_close_matches(text, schema, n=1, cutoff=0.6)), None)
                unknown.append((where, field_path(path, closest) if closest else None))
            if problems is not None and not _IDENTIFIER.fullmatch(text):
                problems.append(SpecError(
                    f"{where} is not a field name: a cluster spec's field names are the Clusters API's "
                    "(letters, digits and _); this one would be written into exported code as it is",
                    field=where, hint="remove the key or fix its name; free-form keys belong in spark_conf, "
                                      "spark_env_vars or custom_tags, whose keys are written quoted"))
        child = schema.get(text) if known else None
        _walk(item, child, where, unknown=unknown, problems=problems, depth=depth + 1)


def _surrogate_error(where: str) -> SpecError:
    return SpecError(f"{where} holds a lone surrogate (a \\uD800-\\uDFFF escape without its pair), which is "
                     "not text and cannot be written as UTF-8", field=where,
                     hint="fix the \\u escape in the JSON: an emoji is a pair such as \\ud83d\\ude80, "
                          "or write the character itself")


def _check_names(spec: ClusterSpec) -> Iterator[SpecError]:
    """Every name in the body is a known field or an identifier; no lone surrogates."""
    problems: list[SpecError] = []
    _walk(spec.masked(), _schema(), "", unknown=None, problems=problems)
    yield from problems


def unknown_field_message(name: str, closest: str | None, *, strict: bool = False) -> str:
    """The warning (or, `strict`, the error) for an unknown field NAME."""
    # Paths quote a key that is no identifier already (field_path): no repr on top of that.
    guess = f"; did you mean '{closest}'?" if closest else "."
    if strict:
        return f"unknown cluster field '{name}'{guess}"
    return f"unknown cluster field '{name}'{guess} It is sent as it is; the Clusters API ignores or rejects it"


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_extra(spec: ClusterSpec) -> Iterator[SpecError]:
    clash = sorted(set(spec.extra) & set(spec.field_names()))
    if clash:
        yield SpecError(f"extra repeats the named field(s) {', '.join(clash)}", field="extra",
                        hint="set them as ClusterSpec fields instead")


def _check_version(spec: ClusterSpec) -> Iterator[SpecError]:
    if not isinstance(spec.spark_version, str) or not spec.spark_version.strip():
        yield SpecError("spark_version is required (the runtime key, e.g. 15.4.x-scala2.12)",
                        field="spark_version", hint="pick one from Workspace.spark_versions()")
        return
    reason = runtime_refusal(spec.spark_version)
    if reason:
        yield SpecError(reason, field="spark_version",
                        hint="pick a standard (non-ML, x86_64) runtime such as 15.4.x-scala2.12")
    else:
        try:
            runtime.resolve(spec.spark_version, supported=True)
        except ValueError as exc:
            yield SpecError(str(exc), field="spark_version",
                            hint="`dcs runtimes` lists the known lines; Workspace.spark_versions() the "
                                 "workspace's keys")
    if spec.use_ml_runtime:
        yield SpecError("use_ml_runtime asks for Databricks Runtime for ML, which does not support custom "
                        "containers", field="use_ml_runtime", hint="leave use_ml_runtime out or set it to false")


def _check_size(spec: ClusterSpec) -> Iterator[SpecError]:
    fixed, auto = spec.num_workers is not None, spec.autoscale is not None
    if fixed and auto:
        yield SpecError("set num_workers or autoscale, not both", field="num_workers",
                        hint="num_workers for a fixed size (0 = single node), autoscale for a range")
    elif not fixed and not auto and not spec.policy_id and not spec.is_single_node:
        yield SpecError("the cluster size is missing: set num_workers or autoscale", field="num_workers",
                        hint="num_workers=0 for a single-node cluster, or autoscale={'min_workers': 1, "
                             "'max_workers': 4}")
    if fixed and (not _is_int(spec.num_workers) or spec.num_workers < 0):
        yield SpecError(f"num_workers must be a whole number >= 0, not {spec.num_workers!r}", field="num_workers")
    if auto:
        yield from _check_autoscale(spec.autoscale)


def _check_autoscale(autoscale: Any) -> Iterator[SpecError]:
    example = "autoscale={'min_workers': 1, 'max_workers': 4}"
    if not isinstance(autoscale, Mapping):
        yield SpecError(f"autoscale must be a dict like {example}", field="autoscale")
        return
    lo, hi = autoscale.get("min_workers"), autoscale.get("max_workers")
    unknown = sorted(set(autoscale) - {"min_workers", "max_workers"})
    if unknown:
        yield SpecError(f"autoscale has unknown key(s) {', '.join(unknown)}", field="autoscale", hint=example)
    elif not (_is_int(lo) and _is_int(hi)):
        yield SpecError("autoscale needs whole numbers min_workers and max_workers", field="autoscale",
                        hint=example)
    elif lo < 0 or hi <= lo:
        yield SpecError(f"autoscale needs max_workers > min_workers >= 0 (got min {lo}, max {hi})",
                        field="autoscale", hint="for a fixed size use num_workers instead")


def _check_autotermination(spec: ClusterSpec) -> Iterator[SpecError]:
    value = spec.autotermination_minutes
    if value is None:
        return
    if not _is_int(value) or not (value == 0 or 10 <= value <= 10000):
        yield SpecError(f"autotermination_minutes must be 0 (never) or between 10 and 10000, not {value!r}",
                        field="autotermination_minutes")


def _check_strings(spec: ClusterSpec) -> Iterator[SpecError]:
    for name in ("spark_conf", "spark_env_vars", "custom_tags"):
        value = getattr(spec, name)
        if value is None:
            continue
        if not isinstance(value, Mapping):
            yield SpecError(f"{name} must be a dict of strings", field=name)
            continue
        bad = [k for k, v in value.items() if not isinstance(k, str) or not k or not isinstance(v, str)]
        if bad:
            yield SpecError(f"{name} keys must be non-empty strings and values strings; fix {bad[0]!r}",
                            field=name, hint='quote numbers and booleans: {"key": "true"}')
    if isinstance(spec.custom_tags, Mapping) and len(spec.custom_tags) > MAX_CUSTOM_TAGS:
        yield SpecError(f"custom_tags has {len(spec.custom_tags)} tags; at most {MAX_CUSTOM_TAGS} are allowed",
                        field="custom_tags")
    for name in ("cluster_name", "node_type_id", "driver_node_type_id", "single_user_name", "policy_id"):
        value = getattr(spec, name)
        if value is not None and not isinstance(value, str):
            yield SpecError(f"{name} must be a string, not {type(value).__name__}", field=name)


def _check_node_types(spec: ClusterSpec) -> Iterator[SpecError]:
    for name in ("node_type_id", "driver_node_type_id"):
        value = getattr(spec, name)
        reason = node_type_refusal(value) if isinstance(value, str) else None
        if reason:
            yield SpecError(reason, field=name, hint="pick an x86_64 node type (e.g. m5d.large, i3.xlarge)")


def _check_access_mode(spec: ClusterSpec) -> Iterator[SpecError]:
    mode = spec.data_security_mode
    if mode is None or mode in ALLOWED_ACCESS_MODES:
        return
    if mode in _REFUSED_ACCESS_MODES:
        yield SpecError(f"data_security_mode {mode} is {_REFUSED_ACCESS_MODES[mode]}, which Databricks "
                        "Container Services does not support", field="data_security_mode", hint=_ACCESS_MODE_HINT)
    else:
        yield SpecError(f"data_security_mode {mode!r} is not a known access mode", field="data_security_mode",
                        hint=_ACCESS_MODE_HINT)


def _check_docker_image(spec: ClusterSpec) -> Iterator[SpecError]:
    image: Any = spec.docker_image
    if image is None:
        return
    if not isinstance(image, DockerImage):
        yield SpecError("docker_image must be a dict with url (and basic_auth)", field="docker_image")
        return
    if image.extra:
        yield SpecError(f"docker_image has unknown key(s) {', '.join(sorted(image.extra))}", field="docker_image",
                        hint='docker_image is {"url": ..., "basic_auth": {"username": ..., "password": ...}}')
    try:
        image.ref  # noqa: B018 (parsing it is the check)
    except ValueError as exc:
        yield SpecError(f"docker_image.url: {exc}", field="docker_image.url",
                        hint="write the image like registry.example.com/team/image@sha256:... (pinned)")
    if image.basic_auth is not None:
        yield from _check_basic_auth(image.basic_auth)


def _check_basic_auth(auth: Any) -> Iterator[SpecError]:
    where = "docker_image.basic_auth"
    if not isinstance(auth, BasicAuth):
        yield SpecError(f"{where} must be a dict with username and password", field=where)
        return
    username: Any = auth.username
    has_password = bool(auth.password) or bool(auth.password_env)
    if auth.password is None and auth.password_env:
        try:
            env_password(auth.password_env, field=_PASSWORD_FIELD)
        except SpecError as exc:
            yield exc
            return
    if not isinstance(username, str) or not username:
        yield SpecError(f"{where} needs a username", field=f"{where}.username",
                        hint="for ACR the service principal's application id; leave basic_auth out for "
                             "public images and ECR pulled through an instance profile")
    if not has_password:
        yield SpecError(f"{where} needs a password", field=f"{where}.password",
                        hint="use a {{secrets/scope/key}} reference so the notebook holds no secret")


def _check_init_scripts(spec: ClusterSpec) -> Iterator[SpecError]:
    scripts = spec.init_scripts
    if scripts is None:
        return
    if not isinstance(scripts, list):
        yield SpecError("init_scripts must be a list", field="init_scripts")
        return
    if len(scripts) > MAX_INIT_SCRIPTS:
        yield SpecError(f"init_scripts has {len(scripts)} scripts; at most {MAX_INIT_SCRIPTS} are allowed",
                        field="init_scripts")
    for index, item in enumerate(scripts):
        try:
            plain = _plain_init_script(item)
        except SpecError as exc:
            yield exc
            continue
        yield from _init_script_errors(plain, f"init_scripts[{index}]")


CLUSTER_LOG_KINDS = ("dbfs", "s3", "volumes")
"""The destinations `cluster_log_conf` takes (the Clusters API's ClusterLogConf)."""
_LOG_CONF_SHAPE = ('cluster_log_conf is {"volumes": {"destination": "/Volumes/<catalog>/<schema>/<volume>/<dir>"}}, '
                   '{"dbfs": {"destination": "dbfs:/cluster-logs"}} or {"s3": {"destination": "s3://bucket/dir", '
                   '"region": ...}}')
_VOLUME_DIR = re.compile(r"/Volumes/[^/\s]+/[^/\s]+/[^/\s]+(/.*)?")


def _check_cluster_log_conf(spec: ClusterSpec) -> Iterator[SpecError]:
    """Exactly one destination kind, its destination a string; a volumes destination inside a
    volume (/Volumes/<catalog>/<schema>/<volume>/...)."""
    conf = spec.cluster_log_conf
    if conf is None:
        return
    field_name = "cluster_log_conf"
    if not isinstance(conf, Mapping):
        yield SpecError(f"cluster_log_conf must be an object, not {type(conf).__name__}", field=field_name,
                        hint=_LOG_CONF_SHAPE)
        return
    kinds = [k for k in conf if k in CLUSTER_LOG_KINDS]
    unknown = sorted(str(k) for k in conf if k not in CLUSTER_LOG_KINDS)
    if unknown or len(kinds) != 1:
        got = ", ".join(map(str, conf)) or "none"
        yield SpecError(f"cluster_log_conf must have exactly one destination, dbfs, s3 or volumes (it has: {got})",
                        field=field_name, hint=_LOG_CONF_SHAPE)
        return
    (kind,) = kinds
    where = conf[kind]
    destination = where.get("destination") if isinstance(where, Mapping) else None
    if not isinstance(destination, str) or not destination.strip():
        yield SpecError(f"cluster_log_conf.{kind}.destination must be a non-empty string", field=field_name,
                        hint=_LOG_CONF_SHAPE)
        return
    if kind == "volumes" and not _VOLUME_DIR.fullmatch(destination.strip()):
        yield SpecError(f"cluster_log_conf.volumes.destination {destination!r} is not inside a volume: it must "
                        "start with /Volumes/<catalog>/<schema>/<volume>/", field=field_name, hint=_LOG_CONF_SHAPE)
    elif kind == "dbfs" and destination.strip().startswith(("/Volumes/", "s3:", "s3a:")):
        yield SpecError(f"cluster_log_conf.dbfs.destination {destination!r} is not a DBFS path (dbfs:/...)",
                        field=field_name, hint=_LOG_CONF_SHAPE)
    elif kind == "s3" and not destination.strip().startswith(("s3://", "s3a://")):
        yield SpecError(f"cluster_log_conf.s3.destination {destination!r} is not an S3 URI (s3://bucket/path)",
                        field=field_name, hint=_LOG_CONF_SHAPE)


def _check_ssh_keys(spec: ClusterSpec) -> Iterator[SpecError]:
    keys = spec.ssh_public_keys
    if keys is None:
        return
    if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
        yield SpecError("ssh_public_keys must be a list of public key strings", field="ssh_public_keys")
    elif len(keys) > MAX_SSH_KEYS:
        yield SpecError(f"ssh_public_keys has {len(keys)} keys; at most {MAX_SSH_KEYS} are allowed",
                        field="ssh_public_keys")
