"""The launch form's values, as plain data: what `%dcs_launch` shows, to and from a ClusterSpec.

`FormValues` holds what the form's controls show (`from_spec` pre-fills it, masked;
`to_spec` builds the ClusterSpec, taking fields the form does not show and the real values
behind `KEY=****` from the base spec); `parse_key_values` reads the key=value text areas;
`literal_secrets` / `file_body` decide what Save JSON may write; `default_runtime` /
`runtime_notes` pick and check the runtime against the image's Python; `event_text` and
`secret_references` say what a followed cluster shows. Pure: no I/O, no widgets (the form's
state and actions are `ops/launch_form.py`, its widgets `jupyter/launch.py`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import SpecError
from . import runtime
from .secrets import MASK, is_secret_reference, mask_secret_values, mask_secrets
from .spec import BasicAuth, ClusterSpec, DockerImage, NamedInitScript, init_script_info

__all__ = ["ACCESS_MODES", "AUTH_MODES", "DEFAULT_LOG_DESTINATION", "KEY_VALUE_FIELDS", "LOG_DELIVERY_NOTE",
           "FormValues", "log_conf", "default_runtime", "event_text",
           "file_body", "literal_secrets", "parse_key_values", "runtime_notes", "secret_literal_keys",
           "secret_references"]

DEFAULT_LOG_DESTINATION = "/Volumes/main/default/logs/cluster-logs"
"""Where the form has Databricks deliver a cluster's driver and init-script logs (`dcs why`
reads them); the user changes it to a volume they can write, or clears it."""
LOG_DELIVERY_NOTE = ("Databricks delivers the driver and init-script logs here every few minutes and at "
                     "termination (the volume must exist and the cluster's owner must be able to write to "
                     "it); %dcs_why CLUSTER_ID reads them. Clear the field to turn delivery off.")
_VOLUME_PATH = re.compile(r"^/Volumes/[^/\s]+/[^/\s]+/[^/\s]+(/\S*)?$")

AUTH_MODES = {
    "none": "None (public image, or ECR through an instance profile)",
    "secret": "Username + password from a {{secrets/scope/key}} reference",
    "env": "Username + password from an environment variable (read when sending)",
    "keep": "As in the --spec file (password hidden)",
}
ACCESS_MODES = {
    "DATA_SECURITY_MODE_DEDICATED": "Dedicated (single user)",
    "SINGLE_USER": "Single user (older name of dedicated)",
    "NONE": "No isolation",
}
_S3_OPTION = re.compile(r"\s+(region|endpoint)=(\S+)$")
KEY_VALUE_FIELDS = ("spark_conf", "spark_env_vars", "custom_tags")
# Tags are shown to everyone in the workspace and cannot hold {{secrets/...}} references, so a
# tag named like a secret (`token_budget`) is masked in the preview but is not a literal secret
# that would stop Save JSON.
_NOT_SECRET_STORES = ("custom_tags",)


# -- pure form logic -----------------------------------------------------------------------


def parse_key_values(text: str, field: str) -> dict[str, str] | None:
    """`key=value` lines (blank lines and `#` comments skipped) -> dict, or None when empty.
    SpecError(field=...) names the line of a malformed or repeated key."""
    result: dict[str, str] = {}
    for number, raw in enumerate((text or "").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SpecError(f"{field}, line {number}: {line!r} is not key=value", field=field,
                            hint="write one key=value per line")
        if key in result:
            raise SpecError(f"{field}, line {number}: {key} is given twice", field=field)
        result[key] = value.strip()
    return result or None


def secret_literal_keys(values: Mapping[str, Any] | None) -> list[str]:
    """Keys whose value the preview would mask (`secrets.mask_secrets`: the key names a password,
    token, secret, ...) and that hold a literal, not a `{{secrets/...}}` reference or `****`."""
    masked = mask_secrets(dict(values or {}))
    return [k for k, v in (values or {}).items() if masked.get(k) != v and v != MASK]


def _restore_masked(field: str, values: dict[str, str] | None, base: ClusterSpec) -> dict[str, str] | None:
    """`KEY=****` (how the form shows a secret-looking value of the --spec file) or the value with
    its credential-looking parts masked (`postgres://u:****@db`) -> the file's real value, so
    the request carries it; `****` the spec file never had is a SpecError."""
    if not values:
        return values
    original = getattr(base, field) or {}
    restored = dict(values)
    for key, value in values.items():
        if MASK not in value:
            continue
        if key in original and (value == MASK or value == mask_secret_values(str(original[key]))):
            restored[key] = original[key]  # as the form showed it (`****`, or `postgres://u:****@db`)
        elif value == MASK:
            raise SpecError(f"{field}: {key}={MASK} has no value to stand for (it is not in the --spec file)",
                            field=field, hint="write a {{secrets/scope/key}} reference for it")
    return restored


def literal_secrets(body: Mapping[str, Any]) -> list[str]:
    """Dotted paths of the body's literal secrets: values `mask_secrets` masks (references and
    tags aside). A file meant to be sent must not hold them, masked or not."""
    found: list[str] = []

    def walk(value: Any, masked: Any, path: str) -> None:
        if isinstance(value, Mapping) and isinstance(masked, Mapping):
            for key in value:
                walk(value[key], masked.get(key), f"{path}.{key}" if path else str(key))
        elif isinstance(value, list) and isinstance(masked, list):
            for index, (item, shown) in enumerate(zip(value, masked)):
                walk(item, shown, f"{path}[{index}]")
        elif value != masked:
            found.append(path)

    walk(dict(body), mask_secrets(body), "")
    return [p for p in found if p.split(".")[0] not in _NOT_SECRET_STORES]


def file_body(spec: ClusterSpec) -> tuple[dict[str, Any], list[str]]:
    """What Save JSON writes: the real body (no `****`), `{{secrets/...}}` references and names
    as they are, plus notes. A password read from an environment variable is left out (the
    file cannot name the variable in the API's shape); the note says how `dcs launch` adds it.
    SpecError when the body holds a literal secret."""
    notes: list[str] = []
    image = spec.docker_image
    if isinstance(image, DockerImage) and isinstance(image.basic_auth, BasicAuth) \
            and image.basic_auth.password is None and image.basic_auth.password_env:
        variable = image.basic_auth.password_env
        spec = spec.replace(docker_image=DockerImage(image.url, BasicAuth(image.basic_auth.username)))
        notes.append(f"the registry password (from ${variable}) is not written: run "
                     f"`dcs launch --spec FILE --username {image.basic_auth.username} --password-env {variable}`, "
                     "or store it in a secret scope and use a {{secrets/scope/key}} reference")
    body = spec.to_dict(validate=False)
    literals = literal_secrets(body)
    if literals:
        raise SpecError(f"not saved: {', '.join(literals)} hold{'s' if len(literals) == 1 else ''} a literal "
                        "secret, and a file meant to be sent keeps only references",
                        field=literals[0], hint="store the value in a secret scope and write "
                                                "{{secrets/<scope>/<key>}} instead")
    return body, notes


def _whole(value: Any, field: str) -> int:
    """A spec file's number for an integer control, or SpecError naming the field."""
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{field} must be a whole number, not {value!r}", field=field) from exc


def _key_value_text(values: Mapping[str, Any] | None) -> str:
    return "\n".join(f"{k}={v}" for k, v in (values or {}).items())


def _destination_line(item: Any) -> str:
    """An init_scripts item as a line of the destinations text area."""
    if isinstance(item, str):
        return item
    if isinstance(item, Mapping) and len(item) == 1:
        info = next(iter(item.values()))
        if isinstance(info, Mapping) and "destination" in info:
            options = "".join(f" {k}={info[k]}" for k in ("region", "endpoint") if info.get(k))
            return f"{info['destination']}{options}"
    raise SpecError(f"init script {item!r} cannot be shown in the form", field="init_scripts")


def _parse_destination(line: str) -> dict[str, Any]:
    options: dict[str, str] = {}
    while (match := _S3_OPTION.search(line)):
        options[match[1]] = match[2]
        line = line[:match.start()]
    return init_script_info(line.strip(), **options)


@dataclass
class FormValues:
    """What the launch form shows, as plain values (no widgets)."""

    cluster_name: str = ""
    spark_version: str = ""
    node_type_id: str = ""
    workers_mode: str = "fixed"
    num_workers: int = 0
    min_workers: int = 1
    max_workers: int = 2
    autotermination_minutes: int = 60
    data_security_mode: str = "DATA_SECURITY_MODE_DEDICATED"
    single_user_name: str = ""
    image: str = ""
    registry_kind: str = "auto"
    auth_mode: str = "none"
    username: str = ""
    password_secret: str = ""
    password_env: str = ""
    init_script_names: tuple[str, ...] = ()
    init_script_destinations: str = ""
    spark_conf: str = ""
    spark_env_vars: str = ""
    custom_tags: str = ""
    log_destination: str = DEFAULT_LOG_DESTINATION

    @classmethod
    def from_spec(cls, spec: ClusterSpec | None, *, image: str | None = None) -> FormValues:
        """Pre-fill from a spec (e.g. `--spec FILE`); `image` overrides its docker_image.url."""
        values = cls()
        if spec is None:
            values.image = image or ""
            return values
        # Masked: no literal secret reaches a control. Secret-looking spark_conf / env / tag
        # values show as KEY=****, and to_spec(base=spec) sends the real ones back.
        body = spec.masked()
        for name in ("cluster_name", "spark_version", "node_type_id", "data_security_mode", "single_user_name"):
            if body.get(name) is not None:
                setattr(values, name, str(body[name]))
        if isinstance(body.get("autoscale"), Mapping):
            values.workers_mode = "autoscale"
            values.min_workers = _whole(body["autoscale"].get("min_workers", 0), "autoscale.min_workers")
            values.max_workers = _whole(body["autoscale"].get("max_workers", 1), "autoscale.max_workers")
        elif body.get("num_workers") is not None:
            values.num_workers = _whole(body["num_workers"], "num_workers")
        if body.get("autotermination_minutes") is not None:
            values.autotermination_minutes = _whole(body["autotermination_minutes"], "autotermination_minutes")
        docker = body.get("docker_image") or {}
        values.image = image or docker.get("url", "")
        auth = docker.get("basic_auth")
        if auth:
            values.username = auth.get("username", "")
            password = auth.get("password")
            if is_secret_reference(password):
                values.auth_mode, values.password_secret = "secret", password
            elif isinstance(spec.docker_image, DockerImage) and isinstance(spec.docker_image.basic_auth, BasicAuth) \
                    and spec.docker_image.basic_auth.password_env:
                values.auth_mode, values.password_env = "env", spec.docker_image.basic_auth.password_env
            else:
                values.auth_mode = "keep"
        values.init_script_destinations = "\n".join(_destination_line(i) for i in body.get("init_scripts") or [])
        values.spark_conf = _key_value_text(body.get("spark_conf"))
        values.spark_env_vars = _key_value_text(body.get("spark_env_vars"))
        values.custom_tags = _key_value_text(body.get("custom_tags"))
        # A spec file's own choice stands: without cluster_log_conf it delivers no logs (the
        # field shows the placeholder, one edit away); only a new form delivers by default.
        conf = body.get("cluster_log_conf")
        values.log_destination = (str((next(iter(conf.values())) or {}).get("destination") or "")
                                  if isinstance(conf, Mapping) and conf else "")
        return values

    def to_spec(self, base: ClusterSpec | None = None,
                scripts: Mapping[str, NamedInitScript] | None = None) -> ClusterSpec:
        """The ClusterSpec these values describe; fields the form does not show come from
        `base` unchanged, and so do the real values behind `KEY=****` lines. SpecError for
        text areas that cannot be read."""
        base = base or ClusterSpec()
        autoscale = {"min_workers": self.min_workers, "max_workers": self.max_workers}
        return base.replace(
            cluster_name=self.cluster_name.strip() or None,
            spark_version=self.spark_version.strip() or None,
            node_type_id=self.node_type_id.strip() or None,
            num_workers=self.num_workers if self.workers_mode == "fixed" else None,
            autoscale=autoscale if self.workers_mode == "autoscale" else None,
            autotermination_minutes=self.autotermination_minutes,
            data_security_mode=self.data_security_mode or None,
            single_user_name=self.single_user_name.strip() or None,
            docker_image=self._docker_image(base),
            init_scripts=self._init_scripts(scripts or {}),
            cluster_log_conf=log_conf(self.log_destination, base.cluster_log_conf),
            **{name: _restore_masked(name, parse_key_values(getattr(self, name), name), base)
               for name in KEY_VALUE_FIELDS},
        )

    def _docker_image(self, base: ClusterSpec) -> DockerImage | None:
        url = "".join(self.image.split())  # no reference has whitespace; the field wraps
        if not url:
            return None
        username = self.username.strip()
        if self.registry_kind == "none":
            return DockerImage(url)  # a public image, or ECR through an instance profile
        if self.auth_mode == "secret":
            return DockerImage(url, BasicAuth(username, password=self.password_secret.strip() or None))
        if self.auth_mode == "env":
            return DockerImage(url, BasicAuth(username, password_env=self.password_env.strip() or None))
        if self.auth_mode == "keep":
            kept = base.docker_image  # a malformed --spec value is kept as written: no auth to keep
            return DockerImage(url, kept.basic_auth if isinstance(kept, DockerImage) else None)
        return DockerImage(url)

    def _init_scripts(self, scripts: Mapping[str, NamedInitScript]) -> list[Any] | None:
        """The destinations text (the spec's own scripts, in their order), then the selected
        %%init_script cells: scripts run in list order, so added ones never jump the queue."""
        items: list[Any] = []
        for number, line in enumerate(self.init_script_destinations.splitlines(), start=1):
            if line.strip():
                try:
                    items.append(_parse_destination(line))
                except SpecError as exc:
                    raise SpecError(f"init script destinations, line {number}: {exc.message}",
                                    field="init_scripts", hint=exc.hint) from exc
        for name in self.init_script_names:
            if name not in scripts:
                raise SpecError(f"init script {name!r} is not known in this notebook", field="init_scripts",
                                hint=f"run its %%init_script {name} cell first")
            items.append(scripts[name])
        return items or None


# -- log delivery -------------------------------------------------------------------------------



def log_conf(destination: str, kept: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """`cluster_log_conf` for a destination typed in the form: `/Volumes/<catalog>/<schema>/<volume>/...`
    or `dbfs:/...`; `kept` (the spec file's, e.g. an s3 one) when the text is its destination;
    None for an empty field. SpecError naming the expected shapes otherwise."""
    text = destination.strip()
    if not text:
        return None
    if kept and str((next(iter(kept.values()), None) or {}).get("destination") or "") == text:
        return dict(kept)
    if _VOLUME_PATH.match(text):
        return {"volumes": {"destination": text.rstrip("/")}}
    if text.startswith("dbfs:/") and len(text) > len("dbfs:/") and not any(c.isspace() for c in text):
        return {"dbfs": {"destination": text.rstrip("/")}}
    raise SpecError(f"cluster logs: {text!r} is not a volume or DBFS path", field="cluster_log_conf",
                    hint="write /Volumes/<catalog>/<schema>/<volume>/cluster-logs (or dbfs:/cluster-logs), "
                         "or clear the field to turn log delivery off")


# -- runtime default, events, references -----------------------------------------------------


def default_runtime(offered: list[str], image_python: str | None) -> str:
    """The runtime key the form starts with: the newest supported LTS line that runs the
    image's checked Python (among the workspace's `offered` keys when it lists them), else
    the newest offered key, else the newest LTS line dcs-magic knows."""
    line = runtime.default_runtime_for(image_python)
    if line is not None:
        matching = [key for key in offered if runtime.line_of(key) == line]
        if matching or not offered:
            return matching[0] if matching else line.key
    if offered:  # listed newest first: the newest LTS, else the newest
        return next((key for key in offered if getattr(runtime.line_of(key), "lts", False)), offered[0])
    return next(item["key"] for item in runtime.spark_versions()
                if getattr(runtime.line_of(item["key"]), "lts", False))


def runtime_notes(spark_version: str | None, image_python: str | None) -> list[str]:
    """A note when the chosen runtime does not run the image's (checked) Python."""
    if not spark_version or not image_python:
        return []
    try:
        fits, reason = runtime.fits(image_python, spark_version)
    except ValueError:
        return []  # an unknown key: spec validation already says so
    return [] if fits else [f"Runtime does not fit the image: {reason}."]


def event_text(event: Mapping[str, Any]) -> str:
    """One clusters/events entry as a short line: time, type, what it says."""
    stamp = event.get("timestamp")
    when = time.strftime("%H:%M:%S", time.localtime(stamp / 1000)) if isinstance(stamp, (int, float)) else "--:--:--"
    details = event.get("details") or {}
    reason = details.get("reason") or {}
    parts = [str(reason.get("code"))] if isinstance(reason, Mapping) and reason.get("code") else []
    for key in ("message", "current_num_workers", "target_num_workers", "user"):
        if details.get(key) not in (None, ""):
            parts.append(f"{key}={details[key]}" if key != "message" else str(details[key]))
    detail = "; ".join(parts)
    return f"{when} {event.get('type', '?')}" + (f" - {detail[:160]}" if detail else "")


def secret_references(spec: ClusterSpec) -> list[str]:
    """The `{{secrets/scope/key}}` references in `spec`, each once, in body order."""
    references: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif is_secret_reference(value) and value not in references:
            references.append(value)

    walk(spec.masked())
    return references
