"""The `%dcs_launch` form: assemble a clusters/create body, preview it, create, follow it.

Logic lives outside the widgets: `FormValues` holds what the form shows (plain values,
`from_spec` / `to_spec`), `parse_key_values` reads the key=value text areas, and the runtime
and node type lists come from `spec.dcs_runtimes` / `spec.dcs_node_types`. `LaunchWidget`
only wires ipywidgets controls to those functions.

Secrets: no control ever holds a registry password. The password is either a
`{{secrets/scope/key}}` reference (a name) or the NAME of an environment variable read when
the request is sent (`spec.BasicAuth.password_env`). Both fields are submit-on-enter and are
cleared when their value is not a reference / not the name of a set variable, so a password
typed in the wrong place does not stay in widget state or in the saved notebook. The preview,
the download link, the copy box and saved files show literal passwords as `****`.
"""

from __future__ import annotations

import base64
import html
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from .errors import ClusterError, DcsError, SpecError
from .spec import (
    BasicAuth,
    ClusterSpec,
    DockerImage,
    NamedInitScript,
    dcs_node_types,
    dcs_runtimes,
    init_script_info,
    is_secret_reference,
)

__all__ = ["AUTH_MODES", "FormValues", "LaunchWidget", "parse_key_values"]

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
_DEFAULT_RUNTIME = "15.4.x-scala2.12"


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
        body = spec.masked()  # masked: a literal password must not reach the form
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
        `base` unchanged. SpecError for text areas that cannot be read."""
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
            spark_conf=parse_key_values(self.spark_conf, "spark_conf"),
            spark_env_vars=parse_key_values(self.spark_env_vars, "spark_env_vars"),
            custom_tags=parse_key_values(self.custom_tags, "custom_tags"),
        )

    def _docker_image(self, base: ClusterSpec) -> DockerImage | None:
        url = self.image.strip()
        if not url:
            return None
        username = self.username.strip()
        if self.auth_mode == "secret":
            return DockerImage(url, BasicAuth(username, password=self.password_secret.strip() or None))
        if self.auth_mode == "env":
            return DockerImage(url, BasicAuth(username, password_env=self.password_env.strip() or None))
        if self.auth_mode == "keep":
            kept = base.docker_image
            auth = kept.basic_auth if isinstance(kept, DockerImage) else (kept or {}).get("basic_auth")
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


def _choice(options: list[tuple[str, str]], value: str, description: str) -> widgets.ValueWidget:
    """A Dropdown over known options (the current value added when missing), or a Text
    when the workspace could not list them."""
    if not options:
        return widgets.Text(value=value, description=description, style={"description_width": "initial"})
    if value and value not in {v for _, v in options}:
        options = [(f"{value} (from the spec)", value)] + options
    return widgets.Dropdown(options=options, value=value or options[0][1], description=description,
                            style={"description_width": "initial"})


def _node_label(node: Mapping[str, Any]) -> str:
    text = f"{node['node_type_id']} ({float(node.get('num_cores') or 0):g} cores, " \
           f"{float(node.get('memory_mb') or 0) / 1024:.1f} GB"
    return text + (f", {node['num_gpus']} GPU)" if node.get("num_gpus") else ")")


class LaunchWidget(widgets.VBox):
    """The launch form. `spec` is the current ClusterSpec, `cluster_id` the created cluster.

    `workspace` None gives a preview-only form; `unavailable` says why (shown in the form).
    `controls` maps FormValues field names to their widgets, so code can drive the form.
    """

    def __init__(self, workspace: Any = None, *, image: str | None = None, spec: ClusterSpec | None = None,
                 init_scripts: Mapping[str, NamedInitScript] | None = None, unavailable: str | None = None,
                 wait_timeout_s: float = 1200, sleep: Callable[[float], Any] = time.sleep) -> None:
        self.workspace = workspace
        self.cluster_id: str | None = None
        self.cluster_info: dict[str, Any] | None = None
        self.error: DcsError | None = None
        self._base = spec or ClusterSpec()
        self._scripts = dict(init_scripts or {})
        self._wait_timeout_s = wait_timeout_s
        self._sleep = sleep
        self._thread: threading.Thread | None = None
        self._guards: dict[str, str] = {}  # field -> why its value was cleared
        values = FormValues.from_spec(spec, image=image)
        notes, runtimes, nodes = self._lists(unavailable)
        if not values.spark_version:
            values.spark_version = runtimes[0][1] if runtimes else _DEFAULT_RUNTIME
        self.controls = self._build_controls(values, runtimes, nodes)
        self.notice = widgets.HTML(self._notice_html(notes))
        self.problems = widgets.HTML()
        self.preview = widgets.HTML()
        self.download = widgets.HTML()
        self.copy_box = widgets.Textarea(layout=widgets.Layout(width="100%", height="12em", display="none"))
        self.state = widgets.HTML()
        self.link = widgets.HTML()
        self.create_button = widgets.Button(description="Create cluster", button_style="primary",
                                            disabled=workspace is None, icon="play")
        self.copy_button = widgets.Button(description="Copy JSON", icon="copy")
        self.save_path = widgets.Text(value="cluster.json", description="Save to",
                                      style={"description_width": "initial"})
        self.save_button = widgets.Button(description="Save JSON", icon="save")
        self.create_button.on_click(lambda _: self.create())
        self.copy_button.on_click(lambda _: self._toggle_copy())
        self.save_button.on_click(lambda _: self.save(self.save_path.value))
        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        super().__init__(children=self._layout())
        self._update_visibility()
        self._refresh()

    # -- construction ------------------------------------------------------------------------

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
        wide = {"description_width": "initial"}
        auth_modes = [(label, key) for key, label in AUTH_MODES.items() if key != "keep" or v.auth_mode == "keep"]
        known = [(f"{n} ({s.destination})", n) for n, s in self._scripts.items() if s.destination]
        return {
            "cluster_name": widgets.Text(value=v.cluster_name, description="Cluster name", style=wide,
                                         placeholder="dcs-my-image"),
            "spark_version": _choice(runtimes, v.spark_version, "Runtime"),
            "node_type_id": _choice(nodes, v.node_type_id, "Node type"),
            "workers_mode": widgets.ToggleButtons(options=[("Fixed size", "fixed"), ("Autoscale", "autoscale")],
                                                  value=v.workers_mode),
            "num_workers": widgets.BoundedIntText(value=v.num_workers, min=0, max=100000, description="Workers",
                                                  style=wide),
            "min_workers": widgets.BoundedIntText(value=v.min_workers, min=0, max=100000, description="Min",
                                                  style=wide),
            "max_workers": widgets.BoundedIntText(value=v.max_workers, min=0, max=100000, description="Max",
                                                  style=wide),
            "autotermination_minutes": widgets.BoundedIntText(value=v.autotermination_minutes, min=0, max=10000,
                                                              description="Auto-terminate (min, 0 = never)",
                                                              style=wide),
            "data_security_mode": _choice([(label, key) for key, label in ACCESS_MODES.items()],
                                          v.data_security_mode, "Access mode"),
            "single_user_name": widgets.Text(value=v.single_user_name, description="Single user", style=wide,
                                             placeholder="me@example.com (default: you)"),
            "image": widgets.Text(value=v.image, description="Image", style=wide,
                                  placeholder="registry.example.com/team/image@sha256:...",
                                  layout=widgets.Layout(width="90%")),
            "auth_mode": widgets.Dropdown(options=auth_modes, value=v.auth_mode, description="Registry auth",
                                          style=wide, layout=widgets.Layout(width="90%")),
            "username": widgets.Text(value=v.username, description="Username", style=wide),
            "password_secret": widgets.Text(value=v.password_secret, description="Password reference",
                                            placeholder="{{secrets/scope/key}}", continuous_update=False,
                                            style=wide),
            "password_env": widgets.Text(value=v.password_env, description="Password variable",
                                         placeholder="REGISTRY_PASSWORD", continuous_update=False, style=wide),
            "init_script_names": widgets.SelectMultiple(options=known, value=tuple(
                n for n in v.init_script_names if n in dict(known).values()), description="%%init_script",
                style=wide, rows=min(max(len(known), 2), 6)),
            "init_script_destinations": widgets.Textarea(value=v.init_script_destinations,
                                                         description="Init script paths",
                                                         placeholder="/Workspace/Shared/init.sh (one per line)",
                                                         style=wide, layout=widgets.Layout(width="90%")),
            "spark_conf": widgets.Textarea(value=v.spark_conf, description="Spark conf", style=wide,
                                           placeholder="spark.databricks.unityCatalog.volumes.enabled=true",
                                           layout=widgets.Layout(width="90%")),
            "spark_env_vars": widgets.Textarea(value=v.spark_env_vars, description="Env vars", style=wide,
                                               placeholder="KEY=value", layout=widgets.Layout(width="90%")),
            "custom_tags": widgets.Textarea(value=v.custom_tags, description="Tags", style=wide,
                                            placeholder="team=data", layout=widgets.Layout(width="90%")),
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
            self.notice,
            c["cluster_name"], c["spark_version"], c["node_type_id"],
            widgets.HBox([c["workers_mode"], c["num_workers"], c["min_workers"], c["max_workers"]]),
            c["autotermination_minutes"],
            widgets.HBox([c["data_security_mode"], c["single_user_name"]]),
            c["image"], c["auth_mode"],
            widgets.HBox([c["username"], c["password_secret"], c["password_env"]]),
            advanced,
            self.problems,
            self.preview,
            widgets.HBox([self.create_button, self.copy_button, self.save_path, self.save_button, self.download]),
            self.copy_box,
            self.state,
            self.link,
        ]

    @staticmethod
    def _notice_html(notes: list[str]) -> str:
        if not notes:
            return ""
        items = "<br>".join(html.escape(n) for n in notes)
        return f'<div style="color:#8a6d3b">{items}</div>'

    # -- reading the form ------------------------------------------------------------------------

    @property
    def values(self) -> FormValues:
        """The form's current values."""
        return FormValues(**{f.name: (tuple(self.controls[f.name].value) if f.name == "init_script_names"
                                      else self.controls[f.name].value) for f in fields(FormValues)})

    @property
    def spec(self) -> ClusterSpec:
        """The ClusterSpec the form describes (SpecError when a text area cannot be read)."""
        return self.values.to_spec(self._base, self._scripts)

    # -- reacting --------------------------------------------------------------------------------

    def _on_change(self, change: dict[str, Any]) -> None:
        owner = change["owner"]
        if owner is self.controls["password_secret"]:
            self._guard_secret_reference()
        elif owner is self.controls["password_env"]:
            self._guard_env_name()
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

    def _update_visibility(self) -> None:
        c = self.controls
        mode, auth = c["workers_mode"].value, c["auth_mode"].value
        show = {"num_workers": mode == "fixed", "min_workers": mode == "autoscale",
                "max_workers": mode == "autoscale", "username": auth != "none" and auth != "keep",
                "password_secret": auth == "secret", "password_env": auth == "env"}
        for name, visible in show.items():
            c[name].layout.display = None if visible else "none"

    def _refresh(self) -> None:
        """Recompute the spec, the preview, the problems line and the download link."""
        active = {"secret": "password_secret", "env": "password_env"}.get(self.controls["auth_mode"].value)
        problems = [message for name, message in self._guards.items() if name == active]
        try:
            spec = self.spec
        except SpecError as exc:
            problems.append(str(exc))
            spec = None
        if spec is not None:
            problems += [str(e) for e in spec.errors()]
            problems += self._image_notes()
            text = spec.to_json()
            self.preview.value = f"<pre style='max-height:24em;overflow:auto'>{html.escape(text)}</pre>"
            self.copy_box.value = text
            encoded = base64.b64encode(text.encode()).decode()
            self.download.value = (f'<a download="cluster.json" href="data:application/json;base64,{encoded}">'
                                   "Download JSON</a>")
        self.problems.value = "".join(f'<div style="color:#a94442">{html.escape(p)}</div>' for p in problems)

    def _image_notes(self) -> list[str]:
        """A tag (not a digest) can change under the cluster: say so (not an error)."""
        from .credentials import PIN_HINT_NOTEBOOK, unpinned_warning

        note = unpinned_warning(self.controls["image"].value.strip(), how=PIN_HINT_NOTEBOOK)
        return [f"Note: {note}."] if note else []

    def _toggle_copy(self) -> None:
        hidden = self.copy_box.layout.display == "none"
        self.copy_box.layout.display = None if hidden else "none"

    # -- actions -----------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the JSON body (literal passwords as ****) to `path` for CI (`dcs launch --spec`)."""
        target = Path(path).expanduser()
        try:
            text = self.spec.to_json()
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text + "\n", encoding="utf-8")
        except (SpecError, OSError) as exc:
            self.state.value = f'<span style="color:#a94442">Not saved: {html.escape(str(exc))}</span>'
            return target
        self.state.value = f"Saved {html.escape(str(target))}" + (
            " (the registry password is written as ****: use a {{secrets/scope/key}} reference for CI)"
            if '"****"' in text else "")
        return target

    def create(self) -> None:
        """Validate, then create the cluster and follow it in a background thread."""
        if self.workspace is None:
            self.state.value = "No workspace: preview only."
            return
        if self._thread is not None and self._thread.is_alive():
            return
        try:
            spec = self.spec.validate()
        except SpecError as exc:
            self._show_error(exc)
            return
        self.create_button.disabled = True
        self.error = None
        self.state.value = "Creating..."
        self._thread = threading.Thread(target=self._create_and_wait, args=(spec,), name="dcs-launch", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> str | None:
        """Block until the create/wait thread ends; return the cluster_id."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.cluster_id

    def _create_and_wait(self, spec: ClusterSpec) -> None:
        try:
            self.cluster_id = self.workspace.create_cluster(spec)
            url = self.workspace.cluster_url(self.cluster_id)
            self.link.value = f'<a href="{html.escape(url)}" target="_blank">Open cluster {self.cluster_id}</a>'
            self.cluster_info = self.workspace.wait_for_cluster(
                self.cluster_id, self._wait_timeout_s, on_state=self._on_state, sleep=self._sleep)
            self.state.value = f'<b style="color:#3c763d">RUNNING</b> {html.escape(self.cluster_id)}'
        except DcsError as exc:
            self._show_error(exc)
        except Exception as exc:
            self._show_error(DcsError(f"unexpected {type(exc).__name__}: {exc}",
                                      hint="set %config DcsMagics.short_errors = False and report it"))
        finally:
            self.create_button.disabled = False

    def _on_state(self, info: Mapping[str, Any]) -> None:
        message = info.get("state_message") or ""
        self.state.value = f"<b>{html.escape(str(info.get('state')))}</b> {html.escape(message)}"

    def _show_error(self, exc: DcsError) -> None:
        self.error = exc
        label = exc.state if isinstance(exc, ClusterError) and exc.state else type(exc).__name__
        hint = f"<br><i>Hint: {html.escape(exc.hint)}</i>" if exc.hint else ""
        self.state.value = (f'<b style="color:#a94442">{html.escape(str(label))}</b> '
                            f"{html.escape(exc.message)}{hint}")
