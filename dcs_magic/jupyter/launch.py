"""The `%dcs_launch` form: assemble a clusters/create body, preview it, create, follow it.

Logic lives outside the widgets: `FormValues` holds what the form shows (plain values,
`from_spec` / `to_spec`), `parse_key_values` reads the key=value text areas, `file_body`
gives what Save JSON writes, and the runtime and node type lists come from
`spec.dcs_runtimes` / `spec.dcs_node_types`. `LaunchWidget` only wires ipywidgets controls
to those functions.

Secrets: no control ever holds a secret.
- The registry password is either a `{{secrets/scope/key}}` reference (a name) or the NAME of
  an environment variable read when the request is sent (`spec.BasicAuth.password_env`).
  Both fields are submit-on-enter and are cleared when their value is not a reference / not
  the name of a set variable, so a password typed in the wrong place does not stay in widget
  state or in the saved notebook.
- Spark conf, environment variables and tags whose key looks secret (`spec.mask_secrets`
  masks them) are shown as `KEY=****` when they come from the `--spec` file; the request
  carries the file's real value (`FormValues.to_spec` takes it from the base spec). A literal
  typed there for such a key is taken out of the box at once (the line becomes a comment
  asking for a `{{secrets/scope/key}}` reference), so it never stays in synced state.
- Only the preview and the copy box are masked. Save JSON and the download link write the
  real body, keeping references and variable names as they are, and refuse (saying which
  field) when the body holds a literal secret: a file meant to be sent never holds `****`.
  Save JSON never overwrites a file (the `--spec` file included) unless Overwrite is ticked.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..errors import ClusterError, ConfigError, DcsError, SpecError
from ..model import runtime
from ..model.spec import (
    MASK,
    BasicAuth,
    ClusterSpec,
    DockerImage,
    NamedInitScript,
    dcs_node_types,
    dcs_runtimes,
    init_script_info,
    is_secret_reference,
    mask_secrets,
)

if TYPE_CHECKING:  # imported lazily at run time
    from ..adapters.workspace import Workspace

__all__ = ["AUTH_MODES", "FormValues", "LaunchWidget", "default_save_path", "file_body",
           "literal_secrets", "parse_key_values", "secret_literal_keys"]

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
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
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
    """Keys whose value the preview would mask (`spec.mask_secrets`: the key names a password,
    token, secret, ...) and that hold a literal, not a `{{secrets/...}}` reference or `****`."""
    masked = mask_secrets(dict(values or {}))
    return [k for k, v in (values or {}).items() if masked.get(k) != v and v != MASK]


def _restore_masked(field: str, values: dict[str, str] | None, base: ClusterSpec) -> dict[str, str] | None:
    """`KEY=****` (how the form shows a secret-looking value of the --spec file) -> the file's
    real value, so the request carries it; `****` the spec file never had is a SpecError."""
    if not values:
        return values
    original = getattr(base, field) or {}
    restored = dict(values)
    for key, value in values.items():
        if value != MASK:
            continue
        if key not in original:
            raise SpecError(f"{field}: {key}={MASK} has no value to stand for (it is not in the --spec file)",
                            field=field, hint="write a {{secrets/scope/key}} reference for it")
        restored[key] = original[key]
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


def default_save_path(spec_path: str | os.PathLike[str] | None = None,
                      directory: str | os.PathLike[str] = ".") -> Path:
    """A new file for Save JSON: `<spec>.saved.json` beside the --spec file, else `cluster.json`
    in `directory`; `-2`, `-3`, ... added while the name exists. Never the --spec file itself."""
    if spec_path is not None:
        spec = Path(spec_path).expanduser()
        folder, stem = spec.parent, f"{spec.stem}.saved"
    else:
        folder, stem = Path(directory).expanduser(), "cluster"
    candidate = folder / f"{stem}.json"
    number = 2
    while candidate.exists():
        candidate = folder / f"{stem}-{number}.json"
        number += 1
    return candidate


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
    auth_mode: str = "none"
    username: str = ""
    password_secret: str = ""
    password_env: str = ""
    init_script_names: tuple[str, ...] = ()
    init_script_destinations: str = ""
    spark_conf: str = ""
    spark_env_vars: str = ""
    custom_tags: str = ""

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
            **{name: _restore_masked(name, parse_key_values(getattr(self, name), name), base)
               for name in KEY_VALUE_FIELDS},
        )

    def _docker_image(self, base: ClusterSpec) -> DockerImage | None:
        url = "".join(self.image.split())  # no reference has whitespace; the field wraps
        if not url:
            return None
        username = self.username.strip()
        if self.auth_mode == "secret":
            return DockerImage(url, BasicAuth(username, password=self.password_secret.strip() or None))
        if self.auth_mode == "env":
            return DockerImage(url, BasicAuth(username, password_env=self.password_env.strip() or None))
        if self.auth_mode == "keep":
            kept = base.docker_image
            auth = kept.basic_auth if isinstance(kept, DockerImage) else None
            return DockerImage(url, auth)
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


# -- the widget ------------------------------------------------------------------------------

# Every control gets the same label width and field width: labels line up, values fit.
_LABEL = {"description_width": "13em"}
_FIELD = "46em"
_ACTIVE_STATES = ("PENDING", "RUNNING", "RESTARTING", "RESIZING", "TERMINATING")
_FINAL_STATES = ("TERMINATED", "ERROR")
_STARTING_STATES = ("PENDING", "RESTARTING")
RUNNING_POLL_S = 10.0
"""Seconds between state polls once the cluster runs (it may still stop on its own)."""
MAX_TIMELINE = 40
# Theme colours only (JupyterLab's --jp-* variables): readable in light and dark themes.
_ERROR_STYLE = "color:var(--jp-error-color1);font-weight:bold"
_OK_STYLE = "color:var(--jp-content-font-color0);font-weight:bold"
_NOTE_STYLE = ("color:var(--jp-content-font-color1);border-left:4px solid var(--jp-warn-color1);"
               "padding-left:6px")
_PROBLEM_STYLE = ("color:var(--jp-content-font-color1);border-left:4px solid var(--jp-error-color1);"
                  "padding-left:6px")


def _choice(options: list[tuple[str, str]], value: str, description: str) -> widgets.ValueWidget:
    """A Dropdown over known options (the current value added when missing), or a Text
    when the workspace could not list them."""
    layout = widgets.Layout(width=_FIELD)
    if not options:
        return widgets.Text(value=value, description=description, style=_LABEL, layout=layout)
    if value and value not in {v for _, v in options}:
        options = [(f"{value} (from the spec)", value)] + options
    return widgets.Dropdown(options=options, value=value or options[0][1], description=description,
                            style=_LABEL, layout=layout)


def _node_label(node: Mapping[str, Any]) -> str:
    text = f"{node['node_type_id']} ({float(node.get('num_cores') or 0):g} cores, " \
           f"{float(node.get('memory_mb') or 0) / 1024:.1f} GB"
    return text + (f", {node['num_gpus']} GPU)" if node.get("num_gpus") else ")")


def _event_text(event: Mapping[str, Any]) -> str:
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


def _secret_variables(spec: ClusterSpec) -> list[str]:
    """The local workspace's DCS_SECRET_<SCOPE>_<KEY> variable for each reference in `spec`."""
    from ..preflight import secret_variable
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
    return [secret_variable(r) for r in references]


EXPORT_KINDS = [("Asset bundle (YAML)", "bundle"), ("Terraform (HCL)", "terraform"),
                ("Cluster policy (JSON)", "policy"), ("Instance pool (JSON)", "pool")]


def default_runtime(offered: list[str], image_python: str | None) -> str:
    """The runtime key the form starts with: the newest supported LTS line that runs the
    image's checked Python (among the workspace's `offered` keys when it lists them), else
    the newest offered key, else the newest LTS line dcs-magic knows."""
    line = runtime.default_runtime_for(image_python)
    if line is not None:
        matching = [key for key in offered if runtime.line_of(key) == line]
        if matching or not offered:
            return matching[0] if matching else line.key
    if offered:
        return offered[0]
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


class LaunchWidget(widgets.VBox):
    """The launch form. `spec` is the current ClusterSpec, `cluster_id` the created cluster.

    `workspace` None gives a preview-only form; `unavailable` says why (shown in the form).
    `local` marks the local preflight workspace (no link to a cluster page, its own hints).
    `spec_path` is the `--spec` file: Save JSON proposes a new file beside it, never the file.
    `controls` maps FormValues field names to their widgets, so code can drive the form.
    Buttons: `create_button` ("Create", disabled while the created cluster is pending or
    running), `terminate_button` ("Terminate"), `save_button` ("Save JSON").
    """

    def __init__(self, workspace: Workspace | None = None, *, image: str | None = None, spec: ClusterSpec | None = None,
                 init_scripts: Mapping[str, NamedInitScript] | None = None, unavailable: str | None = None,
                 wait_timeout_s: float = 1200, sleep: Callable[[float], Any] = time.sleep,
                 local: bool = False, spec_path: str | os.PathLike[str] | None = None,
                 running_poll_s: float = RUNNING_POLL_S, image_python: str | None = None) -> None:
        self.workspace = workspace
        # The Python of the image's /databricks/python3 as `%dcs_check` found it (None when the
        # image was not checked): picks the default runtime and flags one that does not fit.
        self.image_python = image_python
        self.local = local
        self.cluster_id: str | None = None
        self.cluster_info: dict[str, Any] | None = None
        self.error: DcsError | None = None
        self.events: list[dict[str, Any]] = []
        self._base = spec or ClusterSpec()
        self._spec_path = Path(spec_path).expanduser() if spec_path else None
        self._scripts = dict(init_scripts or {})
        self._wait_timeout_s = wait_timeout_s
        self._sleep = sleep
        self._running_poll_s = running_poll_s
        self._thread: threading.Thread | None = None
        self._settled = threading.Event()  # RUNNING, ended, or failed: wait() returns
        self._wake = threading.Event()  # poll now (after Terminate)
        self._stop = threading.Event()  # the widget was closed: stop following
        self._terminating = False
        self._sent: ClusterSpec | None = None
        self._guards: dict[str, str] = {}  # field -> why its value was cleared
        self._rewriting = False  # a guard is replacing a box's text (its change re-enters)
        values = FormValues.from_spec(spec, image=image)
        values.init_script_names = self._preselected(values)
        notes, runtimes, nodes = self._lists(unavailable)
        if not values.spark_version:
            values.spark_version = default_runtime([key for _, key in runtimes], image_python)
        self.controls = self._build_controls(values, runtimes, nodes)
        self.target = widgets.HTML(self._target_html())
        self.notice = widgets.HTML(self._notice_html(notes))
        self.problems = widgets.HTML()
        self.preview = widgets.HTML()
        self.download = widgets.HTML()
        self.copy_box = widgets.Textarea(layout=widgets.Layout(width="100%", height="12em", display="none"))
        self.state = widgets.HTML(layout=widgets.Layout(width="50%"))
        self.timeline = widgets.HTML(layout=widgets.Layout(width="50%"))
        self.link = widgets.HTML()
        # Jobs and infrastructure: the same spec as a bundle / Terraform / policy / pool
        # (dcs_magic.exports; secrets stay references), and the workspace's readiness (doctor).
        self.export_kind = widgets.Dropdown(options=EXPORT_KINDS, value="bundle", description="Export as",
                                            style=_LABEL, layout=widgets.Layout(width="24em"))
        self.export_button = widgets.Button(description="Export", icon="file-code-o",
                                            tooltip="Show this spec as the chosen export")
        self.export_out = widgets.HTML()
        self.readiness_button = widgets.Button(description="Check workspace", icon="stethoscope",
                                               disabled=workspace is None,
                                               tooltip="Workspace readiness, as `dcs doctor` checks it")
        self.readiness = widgets.HTML()
        self.create_button = widgets.Button(description="Create", button_style="primary",
                                            disabled=workspace is None, icon="play",
                                            tooltip="Create the cluster with this JSON")
        self.terminate_button = widgets.Button(description="Terminate", button_style="danger", disabled=True,
                                               icon="stop", tooltip="Terminate the cluster created here")
        self.copy_button = widgets.Button(description="Copy JSON", icon="copy")
        self.save_path = widgets.Text(value=str(default_save_path(self._spec_path)), description="Save to",
                                      style={"description_width": "initial"},
                                      layout=widgets.Layout(width="24em"))
        self.overwrite = widgets.Checkbox(value=False, description="Overwrite an existing file", indent=False,
                                          layout=widgets.Layout(width="auto"))
        self.save_button = widgets.Button(description="Save JSON", icon="save")
        self.create_button.on_click(lambda _: self.create())
        self.terminate_button.on_click(lambda _: self.terminate())
        self.copy_button.on_click(lambda _: self._toggle_copy())
        self.save_button.on_click(lambda _: self.save(self.save_path.value, overwrite=self.overwrite.value))
        self.export_button.on_click(lambda _: self.export(self.export_kind.value))
        self.readiness_button.on_click(lambda _: self.check_workspace())
        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        super().__init__(children=self._layout())
        self._update_visibility()
        self._refresh()

    @property
    def _client(self) -> Workspace:
        """The workspace Create talks to (the buttons that need it are disabled without one)."""
        if self.workspace is None:
            raise ConfigError("no workspace: this form is a preview only",
                              hint="configure DATABRICKS_HOST/DATABRICKS_TOKEN or a profile, or use --local")
        return self.workspace

    # -- construction ------------------------------------------------------------------------

    def _preselected(self, values: FormValues) -> tuple[str, ...]:
        """Uploaded %%init_script cells, unless the spec already lists their destination."""
        listed = {line.split()[0] for line in values.init_script_destinations.splitlines() if line.strip()}
        return tuple(n for n, s in self._scripts.items() if s.destination and s.destination not in listed)

    def _target_html(self) -> str:
        """Which workspace Create talks to: its host, never its token."""
        if self.workspace is None:
            return "<b>Workspace:</b> none (preview only)"
        host = html.escape(str(getattr(self.workspace, "host", "")))
        if self.local:
            return f"<b>Workspace:</b> local preflight workspace ({host}, runs clusters in the local Docker engine)"
        profile = getattr(self.workspace, "profile", None)
        return f"<b>Workspace:</b> {host}" + (f" (profile {html.escape(profile)})" if profile else "")

    def _lists(self, unavailable: str | None) -> tuple[list[str], list[tuple[str, str]], list[tuple[str, str]]]:
        notes = [f"Preview only: {unavailable}"] if self.workspace is None and unavailable else []
        if self.workspace is None:
            if not notes:
                notes.append("Preview only: no workspace given.")
            return notes, [], []
        try:
            runtimes = [(v.get("name") or v["key"], v["key"]) for v in dcs_runtimes(self.workspace.spark_versions())]
            nodes = [(_node_label(n), n["node_type_id"]) for n in dcs_node_types(self.workspace.node_types())]
        except DcsError as exc:
            notes.append(f"Could not list runtimes and node types ({exc.message}); type them instead.")
            return notes, [], []
        return notes, runtimes, nodes

    def _build_controls(self, v: FormValues, runtimes: list[tuple[str, str]],
                        nodes: list[tuple[str, str]]) -> dict[str, widgets.ValueWidget]:
        def wide() -> widgets.Layout:
            return widgets.Layout(width=_FIELD)

        def area(value: str, description: str, placeholder: str) -> widgets.Textarea:
            # Sent on blur, not per keystroke: a secret typed here is taken out in one step.
            return widgets.Textarea(value=value, description=description, placeholder=placeholder, style=_LABEL,
                                    continuous_update=False, layout=widgets.Layout(width=_FIELD, height="5em"))

        auth_modes = [(label, key) for key, label in AUTH_MODES.items() if key != "keep" or v.auth_mode == "keep"]
        known = [(f"{n} ({s.destination})", n) for n, s in self._scripts.items() if s.destination]
        return {
            "cluster_name": widgets.Text(value=v.cluster_name, description="Cluster name", style=_LABEL,
                                         placeholder="dcs-my-image", layout=wide()),
            "spark_version": _choice(runtimes, v.spark_version, "Runtime"),
            "node_type_id": _choice(nodes, v.node_type_id, "Node type"),
            "workers_mode": widgets.ToggleButtons(options=[("Fixed size", "fixed"), ("Autoscale", "autoscale")],
                                                  value=v.workers_mode),
            "num_workers": widgets.BoundedIntText(value=v.num_workers, min=0, max=100000,
                                                  description="Number of workers", style=_LABEL, layout=wide()),
            "min_workers": widgets.BoundedIntText(value=v.min_workers, min=0, max=100000, description="Min workers",
                                                  style=_LABEL, layout=wide()),
            "max_workers": widgets.BoundedIntText(value=v.max_workers, min=0, max=100000, description="Max workers",
                                                  style=_LABEL, layout=wide()),
            "autotermination_minutes": widgets.BoundedIntText(value=v.autotermination_minutes, min=0, max=10000,
                                                              description="Auto-terminate (min)", style=_LABEL,
                                                              tooltip="0 = never", layout=wide()),
            "data_security_mode": _choice([(label, key) for key, label in ACCESS_MODES.items()],
                                          v.data_security_mode, "Access mode"),
            "single_user_name": widgets.Text(value=v.single_user_name, description="Single user", style=_LABEL,
                                             placeholder="me@example.com (default: you)", layout=wide()),
            # A pinned reference is ~110 characters: the whole row, up to three wrapped lines,
            # so it is never cut off.
            "image": widgets.Textarea(value=v.image, description="Image", style=_LABEL, rows=3,
                                      placeholder="registry.example.com/team/image@sha256:...",
                                      layout=widgets.Layout(width="98%", height="5em")),
            "auth_mode": widgets.Dropdown(options=auth_modes, value=v.auth_mode, description="Registry auth",
                                          style=_LABEL, layout=wide()),
            "username": widgets.Text(value=v.username, description="Username", style=_LABEL, layout=wide()),
            "password_secret": widgets.Text(value=v.password_secret, description="Password reference",
                                            placeholder="{{secrets/scope/key}}", continuous_update=False,
                                            style=_LABEL, layout=wide()),
            "password_env": widgets.Text(value=v.password_env, description="Password variable",
                                         placeholder="REGISTRY_PASSWORD", continuous_update=False, style=_LABEL,
                                         layout=wide()),
            "init_script_names": widgets.SelectMultiple(options=known, value=tuple(
                n for n in v.init_script_names if n in dict(known).values()), description="%%init_script",
                style=_LABEL, rows=min(max(len(known), 2), 6), layout=wide()),
            "init_script_destinations": area(v.init_script_destinations, "Init script paths",
                                             "/Workspace/Shared/init.sh (one per line)"),
            "spark_conf": area(v.spark_conf, "Spark conf", "spark.databricks.unityCatalog.volumes.enabled=true"),
            "spark_env_vars": area(v.spark_env_vars, "Env vars", "KEY=value, secrets as KEY={{secrets/scope/key}}"),
            "custom_tags": area(v.custom_tags, "Tags", "team=data"),
        }

    def _layout(self) -> list[widgets.Widget]:
        c = self.controls
        unsent = [n for n, s in self._scripts.items() if not s.destination]
        scripts_note = widgets.HTML(
            f"<small>Not uploaded yet (add <code>--upload DEST</code>): {html.escape(', '.join(unsent))}</small>"
            if unsent else "")
        advanced = widgets.Accordion(children=[widgets.VBox([
            c["init_script_names"], scripts_note, c["init_script_destinations"], c["spark_conf"],
            c["spark_env_vars"], c["custom_tags"]])])
        advanced.set_title(0, "Init scripts, Spark conf, env vars, tags")
        return [
            self.target,
            self.notice,
            c["cluster_name"], c["spark_version"], c["node_type_id"],
            # ToggleButtons puts its description above the buttons: a label as wide as the others.
            widgets.HBox([widgets.HTML('<div style="text-align:right;padding-right:8px">Workers</div>',
                                       layout=widgets.Layout(width=_LABEL["description_width"])),
                          c["workers_mode"]]),
            c["num_workers"], c["min_workers"], c["max_workers"],
            c["autotermination_minutes"],
            c["data_security_mode"], c["single_user_name"],
            c["image"], c["auth_mode"],
            c["username"], c["password_secret"], c["password_env"],
            advanced,
            self.problems,
            self.preview,
            widgets.HBox([self.create_button, self.terminate_button, self.copy_button, self.download]),
            widgets.HBox([self.save_path, self.overwrite, self.save_button]),
            self.copy_box,
            widgets.HBox([self.state, self.timeline]),
            self.link,
            widgets.HBox([self.export_kind, self.export_button, self.readiness_button]),
            self.readiness,
            self.export_out,
        ]

    @staticmethod
    def _notice_html(notes: list[str]) -> str:
        if not notes:
            return ""
        items = "<br>".join(html.escape(n) for n in notes)
        return f'<div style="{_NOTE_STYLE}">{items}</div>'

    # -- reading the form ------------------------------------------------------------------------

    @property
    def values(self) -> FormValues:
        """The form's current values."""
        current: dict[str, Any] = {f.name: self.controls[f.name].value for f in fields(FormValues)}
        current["init_script_names"] = tuple(current["init_script_names"])
        return FormValues(**current)

    @property
    def spec(self) -> ClusterSpec:
        """The ClusterSpec the form describes (SpecError when a text area cannot be read)."""
        return self.values.to_spec(self._base, self._scripts)

    @property
    def busy(self) -> bool:
        """True while the created cluster is being created, pending, running or terminating."""
        if self._thread is not None and self._thread.is_alive():
            return True
        return bool(self.cluster_info and self.cluster_info.get("state") in _ACTIVE_STATES
                    and not self._stop.is_set() and self.error is None)

    # -- reacting --------------------------------------------------------------------------------

    def _on_change(self, change: dict[str, Any]) -> None:
        owner = change["owner"]
        if owner is self.controls["password_secret"]:
            self._guard_secret_reference()
        elif owner is self.controls["password_env"]:
            self._guard_env_name()
        for name in KEY_VALUE_FIELDS:
            if owner is self.controls[name]:
                self._guard_key_values(name)
        if not self.busy and self.cluster_id is not None:
            # The form now describes another cluster: the old one's outcome would mislead.
            self.state.value, self.timeline.value, self.link.value = "", "", ""
        self._update_visibility()
        self._refresh()

    def _guard_secret_reference(self) -> None:
        control = self.controls["password_secret"]
        if not control.value:
            return
        if is_secret_reference(control.value.strip()):
            self._guards.pop("password_secret", None)
            return
        self._guards["password_secret"] = (
            "Only a {{secrets/scope/key}} reference goes in the password reference field; it was cleared. "
            "For a password, use the environment variable option.")
        control.value = ""  # never keep what may be a literal password in widget state

    def _guard_env_name(self) -> None:
        control = self.controls["password_env"]
        name = control.value.strip()
        if not name:
            return
        if _ENV_NAME.match(name) and name in os.environ:
            self._guards.pop("password_env", None)
            return
        self._guards["password_env"] = (
            "There is no environment variable with that name in the kernel's environment; the field was "
            "cleared in case a password was typed in it. Set the variable (e.g. os.environ['REGISTRY_PASSWORD']"
            " = getpass.getpass()) and enter its NAME.")
        control.value = ""  # it may have been the password itself

    def _guard_key_values(self, name: str) -> None:
        """Take literal values of secret-looking keys out of a key=value box at once."""
        control = self.controls[name]
        if self._rewriting:
            return
        try:
            values = parse_key_values(control.value, name)
        except SpecError:
            return  # shown as a problem; a malformed line has no value to keep out
        removed = secret_literal_keys(values)
        if not removed:
            self._guards.pop(name, None)
            return
        lines = []
        for raw in control.value.splitlines():
            key = raw.partition("=")[0].strip()
            if "=" in raw and not raw.strip().startswith("#") and key in removed:
                raw = f"# {key}=  <- removed: write {key}={{{{secrets/<scope>/<key>}}}}"
            lines.append(raw)
        where = "tags cannot hold secrets; rename the tag or set it in the --spec file" if name == "custom_tags" \
            else "store the value in a secret scope and write KEY={{secrets/<scope>/<key>}}"
        self._guards[name] = (f"{name}: the value of {', '.join(removed)} looks like a secret, so it was taken "
                              f"out of the form (it would be saved with the notebook): {where}.")
        self._rewriting = True
        try:
            control.value = "\n".join(lines)  # re-enters _on_change
        finally:
            self._rewriting = False

    def _update_visibility(self) -> None:
        c = self.controls
        mode, auth = c["workers_mode"].value, c["auth_mode"].value
        show = {"num_workers": mode == "fixed", "min_workers": mode == "autoscale",
                "max_workers": mode == "autoscale", "username": auth != "none" and auth != "keep",
                "password_secret": auth == "secret", "password_env": auth == "env"}
        for name, visible in show.items():
            c[name].layout.display = None if visible else "none"

    def _refresh(self) -> None:
        """Recompute the spec, the preview, the problems line, the copy box and download link."""
        active = {"secret": "password_secret", "env": "password_env"}.get(self.controls["auth_mode"].value)
        problems = [message for name, message in self._guards.items()
                    if name == active or name in KEY_VALUE_FIELDS]
        try:
            spec = self.spec
        except SpecError as exc:
            problems.append(str(exc))
            spec = None
        if spec is not None:
            problems += [str(e) for e in spec.errors()]
            problems += self._image_notes()
            problems += runtime_notes(spec.spark_version, self.image_python)
            text = spec.to_json()
            self.preview.value = f"<pre style='max-height:24em;overflow:auto'>{html.escape(text)}</pre>"
            self.copy_box.value = text
            try:
                body, _ = file_body(spec)
            except SpecError:
                self.download.value = ""  # Save JSON says why when clicked
            else:
                encoded = base64.b64encode(json.dumps(body, indent=2).encode()).decode()
                self.download.value = (f'<a download="cluster.json" href="data:application/json;base64,{encoded}">'
                                       "Download JSON</a>")
        self.problems.value = "".join(f'<div style="{_PROBLEM_STYLE}" role="alert">{html.escape(p)}</div>'
                                      for p in problems)

    def _image_notes(self) -> list[str]:
        """A tag (not a digest) can change under the cluster: say so (not an error)."""
        from ..model.credentials import PIN_HINT_NOTEBOOK, unpinned_warning

        note = unpinned_warning("".join(self.controls["image"].value.split()), how=PIN_HINT_NOTEBOOK)
        return [f"Note: {note}."] if note else []

    def _toggle_copy(self) -> None:
        hidden = self.copy_box.layout.display == "none"
        self.copy_box.layout.display = None if hidden else "none"

    # -- actions -----------------------------------------------------------------------------------

    def export(self, kind: str = "bundle") -> str | None:
        """Show the form's spec as `kind` (bundle, terraform, policy, pool) and return the text,
        or show why it cannot be exported (a literal password, an invalid spec) and return None."""
        from ..model.exports import export

        try:
            text = export(kind, self.spec)
        except DcsError as exc:
            self.export_out.value = f'<div style="{_PROBLEM_STYLE}" role="alert">{html.escape(str(exc))}</div>'
            return None
        self.export_out.value = f"<pre style='max-height:24em;overflow:auto'>{html.escape(text)}</pre>"
        return text

    def check_workspace(self) -> Any:
        """Workspace readiness (`dcs doctor`): one line with the count, then each failing check."""
        from ..ops.doctor import doctor

        try:
            spec: ClusterSpec | None = self.spec
        except SpecError:
            spec = None
        report = doctor(self._client, spec)
        failed = [item for item in report.checks if not item.ok]
        head = f"Workspace readiness: {len(report.checks) - len(failed)}/{len(report.checks)} checks hold"
        rows = "".join(f'<div style="{_PROBLEM_STYLE}" role="alert"><b>{html.escape(i.name)}</b>: '
                       f"{html.escape(i.detail)}" + (f" &mdash; {html.escape(i.fix)}" if i.fix else "") + "</div>"
                       for i in failed)
        self.readiness.value = f"<div>{html.escape(head)}</div>{rows}"
        return report

    def save(self, path: str | os.PathLike[str] | None = None, *, overwrite: bool = False) -> Path | None:
        """Write the JSON body for CI (`dcs launch --spec`) to `path` (default: a new file, see
        `default_save_path`); return the path written, or None (the form says why).

        The file holds real values: `{{secrets/...}}` references and variable names as they
        are, never `****`; a body with a literal secret is refused. An existing file (the
        `--spec` file too) is replaced only with `overwrite=True`.
        """
        target = Path(path).expanduser() if path else default_save_path(self._spec_path)
        try:
            body, notes = file_body(self.spec)
        except SpecError as exc:
            self._say_not_saved(str(exc))
            return None
        if target.exists() and not overwrite:
            what = "the --spec file" if self._spec_path and target.resolve() == self._spec_path.resolve() \
                else "a file"
            self._say_not_saved(f"{target} is {what} that exists; tick 'Overwrite an existing file' to replace "
                                f"it, or save to another path (e.g. {default_save_path(self._spec_path)})")
            return None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_name(f".{target.name}.tmp")
            temporary.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
            os.replace(temporary, target)
        except OSError as exc:
            self._say_not_saved(f"cannot write {target}: {exc.strerror or exc}")
            return None
        self.overwrite.value = False  # the next save asks again
        self.save_path.value = str(default_save_path(self._spec_path))
        extra = "".join(f"<br>{html.escape(n)}" for n in notes)
        self.state.value = f"Saved {html.escape(str(target))}{extra}"
        return target

    def _say_not_saved(self, why: str) -> None:
        self.state.value = f'<span style="{_ERROR_STYLE}" role="alert">Not saved:</span> {html.escape(why)}'

    def create(self) -> None:
        """Validate, then create the cluster and follow it in a background thread.

        Does nothing while the cluster created here is pending or running (no duplicate)."""
        if self.workspace is None:
            self.state.value = "No workspace: preview only."
            return
        if self.busy:
            return
        try:
            spec = self.spec.validate()
        except SpecError as exc:
            self._show_error(exc)
            return
        self.create_button.disabled = True
        self.error, self.cluster_id, self.cluster_info, self.events = None, None, None, []
        self._terminating = False
        self._settled.clear()
        self._sent = spec
        self.state.value, self.timeline.value, self.link.value = "Creating...", "", ""
        self._thread = threading.Thread(target=self._create_and_follow, args=(spec,), name="dcs-launch",
                                        daemon=True)
        self._thread.start()

    def terminate(self) -> None:
        """Terminate the cluster created here (clusters/delete); the form follows it to TERMINATED."""
        if self.workspace is None or self.cluster_id is None:
            return
        self._terminating = True
        self.terminate_button.disabled = True
        self.state.value = f"<b>TERMINATING</b> {html.escape(self.cluster_id)}"
        threading.Thread(target=self._terminate, args=(self.cluster_id,), name="dcs-terminate",
                         daemon=True).start()

    def wait(self, timeout: float | None = None) -> str | None:
        """Block until the cluster runs, ended, or could not be created; return the cluster_id."""
        if self._thread is not None:
            self._settled.wait(timeout)
        return self.cluster_id

    def wait_ended(self, timeout: float | None = None) -> bool:
        """Block until the form stopped following (the cluster ended); True when it did."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def close(self) -> None:
        """Stop following the cluster (it keeps running), then close the widgets."""
        self._stop.set()
        self._wake.set()
        super().close()

    # -- the background thread -----------------------------------------------------------------------

    def _terminate(self, cluster_id: str) -> None:
        try:
            self._client.terminate_cluster(cluster_id)
        except DcsError as exc:
            self._terminating = False
            self.terminate_button.disabled = False
            self._show_error(exc, final=False)
            return
        self._wake.set()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._follow, args=(cluster_id, time.monotonic()),
                                            name="dcs-launch", daemon=True)
            self._thread.start()

    def _create_and_follow(self, spec: ClusterSpec) -> None:
        try:
            self.cluster_id = self._client.create_cluster(spec)
        except DcsError as exc:
            self._show_error(exc)
            self._settled.set()
            return
        except Exception as exc:  # noqa: BLE001 - shown in the form, not lost in a thread
            self._show_error(self._unexpected(exc))
            self._settled.set()
            return
        if not self.local:  # the local workspace has no cluster page a browser can open
            url = self._client.cluster_url(self.cluster_id)
            self.link.value = f'<a href="{html.escape(url)}" target="_blank">Open cluster {self.cluster_id}</a>'
        self.terminate_button.disabled = False
        self._follow(self.cluster_id, time.monotonic())

    def _follow(self, cluster_id: str, started: float) -> None:
        """Poll the state and the events until the cluster ends (or the widget is closed)."""
        seen: tuple[Any, Any] | None = None
        attempt = 0
        try:
            while not self._stop.is_set():
                info = self._client.get_cluster(cluster_id)
                self.cluster_info = info
                state = info.get("state")
                self._poll_events(cluster_id)
                if (state, info.get("state_message")) != seen:
                    self._on_state(info)
                seen = (state, info.get("state_message"))
                if state in _FINAL_STATES:
                    self._ended(info)
                    return
                if state == "RUNNING":
                    self._settled.set()
                elif state in _STARTING_STATES and time.monotonic() - started > self._wait_timeout_s \
                        and not self._settled.is_set():
                    self.error = ClusterError(f"cluster {cluster_id} is still {state} after "
                                              f"{self._wait_timeout_s:g} s", cluster_id=cluster_id, state=state,
                                              hint="it keeps starting; Terminate it, or wait")
                    self._settled.set()
                self._pause(state, attempt)
                attempt += 1
        except DcsError as exc:
            self._show_error(exc, lost=True)
        except Exception as exc:  # noqa: BLE001 - shown in the form, not lost in a thread
            self._show_error(self._unexpected(exc), lost=True)
        finally:
            self._settled.set()
            if self.error is not None or (self.cluster_info or {}).get("state") in _FINAL_STATES:
                self.create_button.disabled = self.workspace is None
                self.terminate_button.disabled = True

    def _pause(self, state: Any, attempt: int) -> None:
        if self._wake.is_set():
            self._wake.clear()
            return
        if state in _STARTING_STATES and not self._terminating:
            self._sleep(min(float(attempt + 1), 10.0))  # as Workspace.wait_for_cluster
        else:  # running (or stopping): a slower beat, cut short by Terminate or close()
            self._wake.wait(self._running_poll_s if state == "RUNNING" else 1.0)
            self._wake.clear()

    def _poll_events(self, cluster_id: str) -> None:
        """Add the cluster's new events to the timeline (oldest first)."""
        try:
            latest = list(self._client.events(cluster_id, order="DESC", limit=MAX_TIMELINE))
        except DcsError:
            return  # the timeline is a help, not the outcome
        known = {(e.get("timestamp"), e.get("type")) for e in self.events}
        fresh = [e for e in reversed(latest) if (e.get("timestamp"), e.get("type")) not in known]
        if not fresh:
            return
        self.events = (self.events + fresh)[-MAX_TIMELINE:]
        items = "".join(f"<li>{html.escape(_event_text(e))}</li>" for e in self.events)
        self.timeline.value = ('<div class="dcs-timeline"><b>Events</b><ol style="margin:2px 0;padding-left:1.4em;'
                               f'max-height:12em;overflow:auto">{items}</ol></div>')

    def _on_state(self, info: Mapping[str, Any]) -> None:
        message = info.get("state_message") or ""
        self.state.value = (f'<span aria-live="polite"><b>{html.escape(str(info.get("state")))}</b> '
                            f"{html.escape(str(self.cluster_id or ''))} {html.escape(message)}</span>")

    def _ended(self, info: Mapping[str, Any]) -> None:
        code = (info.get("termination_reason") or {}).get("code")
        if self._terminating and code in (None, "USER_REQUEST"):
            self.state.value = (f'<span aria-live="polite"><b>TERMINATED</b> {html.escape(str(self.cluster_id))}'
                                " (terminated from this form)</span>")
            self.create_button.disabled = False
            self.terminate_button.disabled = True
            return
        url = None if self.local else self._client.cluster_url(str(info.get("cluster_id") or self.cluster_id))
        error = _cluster_error(info, url)
        if self.local and code == "SECRET_RESOLUTION_ERROR" and self._sent is not None:
            variables = _secret_variables(self._sent) or ["DCS_SECRET_<SCOPE>_<KEY>"]
            error.hint = ("the local preflight workspace reads a {{secrets/scope/key}} reference from the "
                          f"environment variable DCS_SECRET_<SCOPE>_<KEY>: set {', '.join(variables)} in the "
                          f"kernel (os.environ['{variables[0]}'] = getpass.getpass()), then Create again")
        self._show_error(error)

    @staticmethod
    def _unexpected(exc: Exception) -> DcsError:
        return DcsError(f"unexpected {type(exc).__name__}: {exc}",
                        hint="set %config DcsMagics.short_errors = False and report it")

    def _show_error(self, exc: DcsError, *, final: bool = True, lost: bool = False) -> None:
        self.error = exc
        label = exc.state if isinstance(exc, ClusterError) and exc.state else type(exc).__name__
        hint = f"<br><i>Hint: {html.escape(exc.hint)}</i>" if exc.hint else ""
        lost_note = ("<br>The form stopped following the cluster; it may still exist (check the workspace "
                     "before creating another).") if lost and self.cluster_id else ""
        self.state.value = (f'<div role="alert"><span style="{_ERROR_STYLE}">{html.escape(str(label))}</span> '
                            f"{html.escape(exc.message)}{hint}{lost_note}</div>")
        if final:
            self.create_button.disabled = self.workspace is None
            self.terminate_button.disabled = True


def _cluster_error(info: Mapping[str, Any], url: str | None) -> ClusterError:
    from ..adapters.workspace import cluster_error

    return cluster_error(info, url=url)
