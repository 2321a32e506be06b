"""The `%dcs_launch` form's view: ipywidgets controls wired to the form model and the follower.

What the form decides lives outside the widgets: the values it shows are
`model.form_values.FormValues`; `ops.launch_form.LaunchForm` guards the boxes (no control
ever holds a secret: see its docstring), computes the problems, the masked preview, Save
JSON, the exports and workspace readiness; `adapters.follow.ClusterFollower` follows the
created cluster in a thread, pausing as the workspace's own `PollPolicy` says (so a local
preflight cluster is seen every 0.1 s), with the state and the event timeline as callbacks.
`LaunchWidget` builds the controls, reads them into `FormValues`, and shows what those say.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..adapters.follow import ENDED_STATES, STARTING_STATES, ClusterFollower
from ..errors import ClusterError, ConfigError, DcsError, SpecError
from ..model import registry_auth as registry_kinds
from ..model.credentials import Secret
from ..model.form_values import ACCESS_MODES, AUTH_MODES, LOG_DELIVERY_NOTE, FormValues, event_text
from ..model.results import LaunchRecord, url_link
from ..model.secrets import mask_secrets
from ..model.spec import ClusterSpec, NamedInitScript
from ..ops.launch_form import (
    EXPORT_KINDS,
    LaunchForm,
    Risk,
    cluster_line,
    ended_error,
    running_clusters,
    slow_start_error,
    unexpected_error,
    workspace_lists,
)
from ..settings import CLUSTER_TIMEOUT_S
from .secret_input import SecretInput
from .widgets import FocusKeeper

if TYPE_CHECKING:  # imported lazily at run time
    from ..adapters.workspace import Workspace
    from ..model.results import CheckReport, PushResult
    from ..ops.why import DockerfileSource, Why

__all__ = ["LaunchWidget"]

# Every control gets the same label width and field width: labels line up, values fit.
_LABEL = {"description_width": "13em"}

_FIELD = "46em"
_ACTIVE_STATES = ("PENDING", "RUNNING", "RESTARTING", "RESIZING", "TERMINATING")
# Theme colours only (JupyterLab's --jp-* variables): readable in light and dark themes.
_ERROR_STYLE = "color:var(--jp-error-color1);font-weight:bold"
_NOTE_STYLE = ("color:var(--jp-content-font-color1);border-left:4px solid var(--jp-warn-color1);"
               "padding-left:6px")
_PROBLEM_STYLE = ("color:var(--jp-content-font-color1);border-left:4px solid var(--jp-error-color1);"
                  "padding-left:6px")
# The form's own CSS, scoped by its class. ipywidgets marks a focused text field only by a
# border in --jp-widgets-input-focus-border-color (a light blue: about 2:1 on the light
# theme's white) and sets `outline: none !important` on it: a 2px outline in the brand colour,
# as important and more specific, reaches the 3:1 a focus indicator needs in the light and
# the dark theme (issue 24.6).
_FORM_CLASS = "dcs-launch"
# ipywidgets gives HTML widgets the line height of one input row (28px), so a note that wraps
# had 28px between its lines: the form's notes, problems and messages get text spacing.
_FORM_CSS = "<style>" + ", ".join(f".jupyter-widgets.{_FORM_CLASS} {tag}:focus" for tag in ("input", "textarea", "select")) + (
    " { outline: 2px solid var(--jp-brand-color1) !important; outline-offset: 1px; } "
    f".jupyter-widgets.{_FORM_CLASS} .widget-html-content > small, "
    f".jupyter-widgets.{_FORM_CLASS} .widget-html-content > div {{ display: block; line-height: 1.45; "
    "padding: 2px 0; }</style>")
_ADVANCED = "init scripts, Spark conf, env vars, tags"



def _problem_html(text: str) -> str:
    """One problem in the form's error style, its lines kept (an error's "Hint: ..." goes on a
    line of its own, not run into the message)."""
    lines = "<br>".join(html.escape(line) for line in text.splitlines())
    return f'<div style="{_PROBLEM_STYLE}" role="alert">{lines}</div>'


def _button_layout() -> widgets.Layout:
    """A button as wide as its label (ipywidgets' default 148px cuts "Check workspace")."""
    return widgets.Layout(width="auto", min_width="8em")

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


class LaunchWidget(widgets.VBox):
    """The launch form. `spec` is the current ClusterSpec, `cluster_id` the created cluster.

    `workspace` None gives a preview-only form; `unavailable` says why (shown in the form).
    `local` marks the local preflight workspace (no link to a cluster page, its own hints).
    `spec_path` is the `--spec` file: Save JSON proposes a new file beside it, never the file.
    `push` (this kernel's last push) and `private` (registries known to need credentials,
    `ops.launch_form.private_registries`) let the form start from the push's registry auth
    and warn before Create (see `LaunchForm`).
    `controls` maps FormValues field names to their widgets, so code can drive the form;
    `form` is the LaunchForm behind it. Buttons: `create_button` ("Create", disabled while
    the created cluster is pending or running), `terminate_button` ("Terminate"),
    `save_button` ("Save JSON"), `done_button` ("Done (leave the record)": `done()`).
    `advanced_button` shows and hides `advanced` (init scripts, Spark conf, env vars, tags;
    `show_advanced()` from code).

    The record (issue 24.1): a displayed form shows its `LaunchRecord` under it, kept current.
    `finished` says what the form leaves once the cluster it created ended (TERMINATED or ERROR,
    by a failure, after its diagnosis, or by Terminate): "record" (`DcsMagics.finished_widget`'s
    default) replaces the form by its record, one block in the cell that a notebook reopened
    without a kernel or widget state shows as it is; "keep" keeps the form open (Create again).
    Done closes the form and leaves its record whatever `finished` says; a cluster still
    starting or running keeps running. When the form goes while it has the keyboard focus, the
    notebook cell takes it (`FocusKeeper`), not the page.

    Registry: `registry_auth` (`%dcs_launch --registry-auth KIND`) starts the Registry choice
    (`model.registry_auth`); choosing a kind fills in its username convention and turns auth on or
    off (`LaunchForm.with_kind`), `kind_help` says where the password comes from, and the kind's
    warnings join the problems. "Store this password as a secret": `store_scope` / `store_key`,
    `store_password` (a `SecretInput` outside `controls`: the password box and its "Store as
    secret" button, drawn by the page; what is typed is in no trait, it comes once as a message
    and the page empties the box) calling `store_secret(Secret)`, and `store_status`.

    Keyboard: every control is a native one (button, radio, input); a button that disables
    itself when clicked (Create, Terminate) hands the focus to the one enabled next.

    Create and what the form can see will fail: while the form has risks (a runtime whose
    Python is not the image's, a private registry without auth, a node type the workspace
    does not offer), the first click only says, in `confirm` beside the button, what sending
    it anyway costs, and the button becomes "Create anyway"; the second click creates. Any
    change to the form asks again.

    On the local workspace the form says that clusters created from this kernel end with
    it, and lists the clusters already starting or running there (`listed`, cluster id ->
    its Terminate button), so one made by an earlier form can be stopped.

    Following: pauses come from the workspace (`Workspace.polling`); `sleep(seconds)` takes
    them while the cluster starts (default: a wait that Terminate and `close()` cut short),
    `running_poll_s` overrides the beat once it runs. After `wait_timeout_s` still starting,
    `wait()` returns with `error` saying so; the form goes on following.
    """

    def __init__(self, workspace: Workspace | None = None, *, image: str | None = None, spec: ClusterSpec | None = None,
                 init_scripts: Mapping[str, NamedInitScript] | None = None, unavailable: str | None = None,
                 wait_timeout_s: float = CLUSTER_TIMEOUT_S, sleep: Callable[[float], Any] | None = None,
                 local: bool = False, spec_path: str | os.PathLike[str] | None = None,
                 running_poll_s: float | None = None, image_python: str | None = None,
                 push: PushResult | None = None, private: Mapping[str, str] | None = None,
                 dockerfiles: Sequence[DockerfileSource] = (), finished: str = "record",
                 registry_auth: str | None = None) -> None:
        if finished not in ("record", "keep"):
            raise ValueError(f"finished must be 'record' or 'keep', not {finished!r}")
        self.finished = finished
        self._closed_as: str | None = None  # how the form ended: LaunchRecord.closed
        self.workspace = workspace
        self.dockerfiles = list(dockerfiles)  # the notebook's %%dockerfile cells: a diagnosis names its line
        self.diagnosis: Why | None = None  # `dcs why`'s, once a start failed
        # The Python of the image's /databricks/python3 (`%dcs_check`'s, or a quick look at
        # the image; None when unknown): picks the default runtime and flags one that does not fit.
        self.image_python = image_python
        self.local = local
        lists = workspace_lists(workspace, unavailable)
        self.form = LaunchForm(spec, init_scripts=init_scripts, spec_path=spec_path, image_python=image_python,
                               push=push, private=private, node_types=lists.node_types, local=local)
        self.cluster_id: str | None = None
        self.error: DcsError | None = None
        self.events: list[dict[str, Any]] = []
        self._wait_timeout_s = wait_timeout_s
        self._sleep = sleep
        self._running_poll_s = running_poll_s
        self._thread: threading.Thread | None = None
        self._follower: ClusterFollower | None = None
        self._settled = threading.Event()  # RUNNING, ended, or failed: wait() returns
        self._stop = threading.Event()  # the widget was closed: stop following
        self._terminating = False
        self._sent: ClusterSpec | None = None
        self._armed = False  # Create was clicked once while the form had risks
        self._refocus = False  # a click disabled its own button: the next button enabled takes the focus
        self._presetting = False  # the Registry choice is filling in other controls
        values = self.form.initial_values(image, [key for _, key in lists.runtimes], registry_auth)
        self.controls = self._build_controls(values, lists.runtimes, lists.nodes)
        # "Store this password as a secret": the password box is not a FormValues field, so the
        # spec, the preview and the record never see it; nor is it widget state (SecretInput).
        self.kind_help = widgets.HTML()
        scope, key = self.form.secret_name(values)
        self.store_password = SecretInput(
            on_submit=self.store_secret, label="Password to store", button="Store as secret",
            placeholder="typed here, stored in the scope, then cleared", disabled=workspace is None,
            button_tooltip="Put the password into the secret scope and send {{secrets/scope/key}} instead")
        self.store_scope = widgets.Text(value=scope, description="Secret scope", style=_LABEL,
                                        layout=widgets.Layout(width="24em"))
        self.store_key = widgets.Text(value=key, description="key", style={"description_width": "initial"},
                                      layout=widgets.Layout(width="22em"))
        self.store_status = widgets.HTML()
        self.target = widgets.HTML(self._target_html())
        self.notice = widgets.HTML(self._notice_html(lists.notes))
        self.confirm = widgets.HTML()
        self.listed: dict[str, widgets.Button] = {}
        self._listed_labels: dict[str, widgets.HTML] = {}
        self._listed_threads: list[threading.Thread] = []
        self.running = widgets.VBox(self._running_rows() if local and workspace is not None else [])
        self.problems = widgets.HTML()
        self.preview = widgets.HTML()
        self.download = widgets.HTML()
        self.copy_box = widgets.Textarea(layout=widgets.Layout(width="100%", height="12em", display="none"))
        self.state = widgets.HTML(layout=widgets.Layout(width="50%"))
        self.timeline = widgets.HTML(layout=widgets.Layout(width="50%"))
        self.link = widgets.HTML()
        self.why = widgets.HTML()  # the diagnosis of a failed start (ops.why)
        # Jobs and infrastructure: the same spec as a bundle / Terraform / policy / pool
        # (model.exports; secrets stay references), and the workspace's readiness (doctor).
        # Wide enough for "Asset bundle (YAML)" beside a 13em label (issue 24.8: labels fit).
        # No icons on the buttons: a Font Awesome glyph would start each one's accessible name.
        self.export_kind = widgets.Dropdown(options=EXPORT_KINDS, value="bundle", description="Export as",
                                            style=_LABEL, layout=widgets.Layout(width="30em"))
        self.export_button = widgets.Button(description="Export",
                                            tooltip="Show this spec as the chosen export", layout=_button_layout())
        self.export_out = widgets.HTML()
        self.readiness_button = widgets.Button(description="Check workspace",
                                               disabled=workspace is None,
                                               tooltip="Workspace readiness, as `dcs doctor` checks it", layout=_button_layout())
        self.readiness = widgets.HTML()
        self.create_button = widgets.Button(description="Create", button_style="primary",
                                            disabled=workspace is None,
                                            tooltip="Create the cluster with this JSON", layout=_button_layout())
        self.terminate_button = widgets.Button(description="Terminate", button_style="danger", disabled=True,
                                               tooltip="Terminate the cluster created here", layout=_button_layout())
        self.copy_button = widgets.Button(description="Copy JSON", layout=_button_layout())
        self.save_path = widgets.Text(value=str(self.form.default_save_path()), description="Save to",
                                      style={"description_width": "initial"},
                                      layout=widgets.Layout(width="24em"))
        self.overwrite = widgets.Checkbox(value=False, description="Overwrite an existing file", indent=False,
                                          layout=widgets.Layout(width="auto"))
        self.save_button = widgets.Button(description="Save JSON", layout=_button_layout())
        # Its name says what it leaves: the form goes, the record stays (and the cluster runs on).
        self.done_button = widgets.Button(description="Done (leave the record)", layout=_button_layout(),
                                          tooltip="Close this form and leave its record in the cell; "
                                                  "a cluster created here keeps running")
        self._focus_keeper = FocusKeeper()
        self.create_button.on_click(lambda _: self._clicked(self.create_button, self.create))
        self.terminate_button.on_click(lambda _: self._clicked(self.terminate_button, self.terminate))
        self.copy_button.on_click(lambda _: self._toggle_copy())
        self.save_button.on_click(lambda _: self.save(self.save_path.value, overwrite=self.overwrite.value))
        self.done_button.on_click(lambda _: self.done())
        self.export_button.on_click(lambda _: self.export(self.export_kind.value))
        self.readiness_button.on_click(lambda _: self.check_workspace())
        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        super().__init__(children=self._layout())
        # The record under the form (issue 24.1): updated as the state line changes, so a saved
        # notebook keeps what the form did without widget state; `close()` leaves it alone.
        self._form_display: str | None = None
        self._record_display: str | None = None
        self._record_lock = threading.Lock()
        self._last_record: dict[str, str] | None = None
        self.add_class(_FORM_CLASS)
        self._update_visibility()
        self._refresh()
        self.state.observe(lambda _change: self._show_record(), names="value")
        self.link.observe(lambda _change: self._show_record(), names="value")

    @property
    def _client(self) -> Workspace:
        """The workspace Create talks to (the buttons that need it are disabled without one)."""
        if self.workspace is None:
            raise ConfigError("no workspace: this form is a preview only",
                              hint="configure DATABRICKS_HOST/DATABRICKS_TOKEN or a profile, or use --local")
        return self.workspace

    # -- construction ------------------------------------------------------------------------

    def _target_html(self) -> str:
        """Which workspace Create talks to: its host, never its token."""
        if self.workspace is None:
            return "<b>Workspace:</b> none (preview only)"
        host = html.escape(str(getattr(self.workspace, "host", "")))
        if self.local:
            return (f"<b>Workspace:</b> local preflight workspace ({host}, runs clusters in the local Docker engine)."
                    " Clusters created from this kernel are terminated when the kernel shuts down.")
        profile = getattr(self.workspace, "profile", None)
        return f"<b>Workspace:</b> {host}" + (f" (profile {html.escape(profile)})" if profile else "")

    def _build_controls(self, v: FormValues, runtimes: list[tuple[str, str]],
                        nodes: list[tuple[str, str]]) -> dict[str, widgets.ValueWidget]:
        def wide() -> widgets.Layout:
            return widgets.Layout(width=_FIELD)

        def area(value: str, description: str, placeholder: str) -> widgets.Textarea:
            # Sent on blur, not per keystroke: a secret typed here is taken out in one step.
            return widgets.Textarea(value=value, description=description, placeholder=placeholder, style=_LABEL,
                                    continuous_update=False, layout=widgets.Layout(width=_FIELD, height="5em"))

        auth_modes = [(label, key) for key, label in AUTH_MODES.items() if key != "keep" or v.auth_mode == "keep"]
        known = self.form.script_choices()
        # Radio buttons, not ToggleButtons: ipywidgets' toggle buttons expose no pressed state,
        # native radios say which one is checked. ipywidgets gives them no `name`, so each is a
        # Tab stop that Space checks: JupyterLab's command mode takes the arrow keys. Laid out
        # as a row like the other fields (ipywidgets leaves RadioButtons out of the flex row
        # class, so the label would not get its width).
        workers_mode = widgets.RadioButtons(options=[("Fixed size", "fixed"), ("Autoscale", "autoscale")],
                                            value=v.workers_mode, description="Workers", style=_LABEL,
                                            orientation="horizontal", layout=wide())
        workers_mode.add_class("widget-inline-hbox")
        return {
            "cluster_name": widgets.Text(value=v.cluster_name, description="Cluster name", style=_LABEL,
                                         placeholder="dcs-my-image", layout=wide()),
            "spark_version": _choice(runtimes, v.spark_version, "Runtime"),
            "node_type_id": _choice(nodes, v.node_type_id, "Node type"),
            "workers_mode": workers_mode,
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
            "registry_kind": widgets.Dropdown(options=registry_kinds.choices(), value=v.registry_kind,
                                              description="Registry", style=_LABEL, layout=wide()),
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
            "log_destination": widgets.Text(value=v.log_destination, description="Cluster logs", style=_LABEL,
                                            placeholder="/Volumes/<catalog>/<schema>/<volume>/cluster-logs",
                                            continuous_update=False, layout=wide()),
        }

    def _layout(self) -> list[widgets.Widget]:
        c = self.controls
        unsent = self.form.unsent_scripts()
        scripts_note = widgets.HTML(
            f"<small>Not uploaded yet (add <code>--upload DEST</code>): {html.escape(', '.join(unsent))}</small>"
            if unsent else "")
        # A button, not an Accordion: ipywidgets 8's accordion header is a div that the keyboard
        # cannot reach. A <button> takes Tab, Enter and Space; its name says Show or Hide.
        self.advanced = widgets.VBox([
            c["init_script_names"], scripts_note, c["init_script_destinations"], c["spark_conf"],
            c["spark_env_vars"], c["custom_tags"]], layout=widgets.Layout(display="none"))
        self.advanced_button = widgets.Button(description=f"Show {_ADVANCED}",
                                              layout=widgets.Layout(width="auto", align_self="flex-start"))
        self.advanced_button.on_click(lambda _: self.show_advanced(self.advanced.layout.display == "none"))
        self.store_row = widgets.VBox([
            widgets.HBox([self.store_scope, self.store_key]), self.store_password, self.store_status])
        return [
            widgets.HTML(_FORM_CSS, layout=widgets.Layout(display="none")),
            self._focus_keeper,
            self.target,
            self.running,
            self.notice,
            c["cluster_name"], c["spark_version"], c["node_type_id"],
            c["workers_mode"],
            c["num_workers"], c["min_workers"], c["max_workers"],
            c["autotermination_minutes"],
            c["log_destination"], widgets.HTML(f'<small class="dcs-log-note">{html.escape(LOG_DELIVERY_NOTE)}</small>'),
            c["data_security_mode"], c["single_user_name"],
            c["image"], c["registry_kind"], self.kind_help, c["auth_mode"],
            c["username"], c["password_secret"], c["password_env"],
            self.store_row,
            self.advanced_button,
            self.advanced,
            self.problems,
            self.preview,
            widgets.HBox([self.create_button, self.terminate_button, self.copy_button, self.download,
                          self.done_button]),
            self.confirm,
            widgets.HBox([self.save_path, self.overwrite, self.save_button]),
            self.copy_box,
            widgets.HBox([self.state, self.timeline]),
            self.why,
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
        return self.form.spec(self.values)

    @property
    def cluster_info(self) -> dict[str, Any] | None:
        """The created cluster's last clusters/get answer (None before the first)."""
        return self._follower.info if self._follower is not None else None

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
        if owner is self.controls["registry_kind"] and not self._presetting:
            self._apply_kind(str(owner.value))
        for name, control in self.controls.items():
            if owner is control:
                kept = self.form.guard(name, control.value)
                if kept != control.value:
                    control.value = kept  # re-enters _on_change; never keep a possible secret
        if not self.busy and self.cluster_id is not None:
            # The form now describes another cluster: the old one's outcome would mislead.
            self.state.value, self.timeline.value, self.link.value = "", "", ""
        self._disarm()  # the risks a first click confirmed may be others now
        self._update_visibility()
        self._refresh()

    def _update_visibility(self) -> None:
        c = self.controls
        mode, auth = c["workers_mode"].value, c["auth_mode"].value
        show = {"num_workers": mode == "fixed", "min_workers": mode == "autoscale",
                "max_workers": mode == "autoscale", "username": auth != "none" and auth != "keep",
                "password_secret": auth == "secret", "password_env": auth == "env"}
        for name, visible in show.items():
            c[name].layout.display = None if visible else "none"
        self.store_row.layout.display = None if auth in ("secret", "env") else "none"
        values = self.values
        c["username"].placeholder = self.form.username_placeholder(values)
        self.kind_help.value = f"<small>{html.escape(self.form.kind_text(values))}</small>"

    def _refresh(self) -> None:
        """Show the preview, the problems line, the copy box and the download link (and the
        record, before Create, with the JSON shown)."""
        if self._sent is None:
            self._show_record()
        preview = self.form.preview(self.values)
        if preview.spec is not None:
            self.preview.value = f"<pre style='max-height:24em;overflow:auto'>{html.escape(preview.text)}</pre>"
            self.copy_box.value = preview.text
            if preview.body is None:
                self.download.value = ""  # Save JSON says why when clicked
            else:
                encoded = base64.b64encode(json.dumps(preview.body, indent=2).encode()).decode()
                self.download.value = (f'<a download="cluster.json" href="data:application/json;base64,{encoded}">'
                                       "Download JSON</a>")
        self.problems.value = "".join(_problem_html(p) for p in preview.problems)
        self.create_button.tooltip = ("Create the cluster with this JSON" if not preview.risks else
                                      "Asks again first: " + " ".join(str(r) for r in preview.risks))

    def show_advanced(self, show: bool = True) -> None:
        """Show (or hide) the init scripts, Spark conf, env vars and tags."""
        self.advanced.layout.display = None if show else "none"
        self.advanced_button.description = f"{'Hide' if show else 'Show'} {_ADVANCED}"

    def _clicked(self, button: widgets.Button, action: Callable[[], Any]) -> None:
        """Run a button's action. One that disables its own button loses the keyboard focus
        (the browser drops it to the page): the button enabled next takes it (`_hand_focus`)."""
        self._refocus = True
        action()
        if not button.disabled:  # still enabled (asked to confirm, an invalid form): focus stayed
            self._refocus = False

    def _hand_focus(self, button: widgets.Button) -> None:
        """Focus `button` when a click took the focus away and it is enabled again: after
        Create the focus lands on Terminate, after Terminate back on Create (issue 24.6)."""
        if self._refocus and not button.disabled:
            self._refocus = False
            button.focus()

    def _toggle_copy(self) -> None:
        hidden = self.copy_box.layout.display == "none"
        self.copy_box.layout.display = None if hidden else "none"

    # -- actions -----------------------------------------------------------------------------------

    def _apply_kind(self, kind: str) -> None:
        """The Registry choice changed: fill in what the kind says (`LaunchForm.with_kind`)."""
        current = self.values
        wanted = self.form.with_kind(current, kind)
        self._presetting = True
        try:
            for name in ("auth_mode", "username"):
                if getattr(wanted, name) != getattr(current, name):
                    self.controls[name].value = getattr(wanted, name)
        finally:
            self._presetting = False

    def store_secret(self, password: Secret) -> str | None:
        """Store `password` (what `store_password` sent) as the secret `store_scope`/`store_key` on
        the form's workspace, then send its `{{secrets/scope/key}}` reference as the password
        (Registry auth becomes the password reference). The password stays in no widget,
        preview, record or message. Returns the reference, or None (`store_status` says why)."""
        if not password:
            self._store_said("Type the registry password in Password to store first; nothing was stored.")
            return None
        try:
            put = self.form.store_password(self.workspace, self.store_scope.value, self.store_key.value, password)
        except DcsError as exc:
            hint = f" Hint: {exc.hint}" if exc.hint else ""
            self._store_said(f"Not stored: {exc.message}.{hint} Type the password again to retry.")
            return None
        finally:
            del password
        self.controls["auth_mode"].value = "secret"
        self.controls["password_secret"].value = put.reference
        self._refresh()  # the same reference as before still changes what the form can tell (it resolves now)
        self.store_status.value = (f'<div aria-live="polite">{html.escape(put.line())}; the cluster JSON now '
                                   "sends that reference as the password.</div>")
        return put.reference

    def _store_said(self, text: str) -> None:
        self.store_status.value = _problem_html(text)

    def export(self, kind: str = "bundle") -> str | None:
        """Show the form's spec as `kind` (bundle, terraform, policy, pool) and return the text,
        or show why it cannot be exported (a literal password, an invalid spec) and return None."""
        try:
            text = self.form.export(self.values, kind)
        except DcsError as exc:
            self.export_out.value = _problem_html(str(exc))
            return None
        self.export_out.value = f"<pre style='max-height:24em;overflow:auto'>{html.escape(text)}</pre>"
        return text

    def check_workspace(self) -> CheckReport:
        """Workspace readiness (`dcs doctor`): one line with the count, then each failing check."""
        readiness = self.form.readiness(self._client, self.values)
        rows = "".join(f'<div style="{_PROBLEM_STYLE}" role="alert"><b>{html.escape(i.name)}</b>: '
                       f"{html.escape(i.detail)}" + (f" &mdash; {html.escape(i.fix)}" if i.fix else "") + "</div>"
                       for i in readiness.failed)
        self.readiness.value = f"<div>{html.escape(readiness.head)}</div>{rows}"
        return readiness.report

    def save(self, path: str | os.PathLike[str] | None = None, *, overwrite: bool = False) -> Path | None:
        """Write the JSON body for CI (`dcs launch --spec`) to `path` (default: a new file, see
        `ops.launch_form.default_save_path`); return the path written, or None (the form says why).

        The file holds real values: `{{secrets/...}}` references and variable names as they
        are, never `****`; a body with a literal secret is refused. An existing file (the
        `--spec` file too) is replaced only with `overwrite=True`.
        """
        saved = self.form.save(self.values, path, overwrite=overwrite)
        if saved.path is None:
            self.state.value = (f'<span style="{_ERROR_STYLE}" role="alert">Not saved:</span> '
                                f"{html.escape(saved.problem or '')}")
            return None
        self.overwrite.value = False  # the next save asks again
        self.save_path.value = str(self.form.default_save_path())
        extra = "".join(f"<br>{html.escape(n)}" for n in saved.notes)
        self.state.value = f"Saved {html.escape(str(saved.path))}{extra}"
        return saved.path

    def create(self, *, anyway: bool = False) -> None:
        """Validate, then create the cluster and follow it in a background thread.

        Does nothing while the cluster created here is pending or running (no duplicate).
        While the form has risks, the first call only says what sending it anyway costs and
        arms the button ("Create anyway"); the next call (or `anyway=True`) creates."""
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
        risks = self.form.preview(self.values).risks
        if risks and not (anyway or self._armed):
            self._arm(risks)
            return
        self._disarm()
        self.create_button.disabled = True
        self.error, self.cluster_id, self._follower, self.events = None, None, None, []
        self._terminating = False
        self._settled.clear()
        self._sent = spec
        self.state.value, self.timeline.value, self.link.value = "Creating...", "", ""
        self._thread = threading.Thread(target=self._create_and_follow, args=(spec,), name="dcs-launch",
                                        daemon=True)
        self._thread.start()

    def _arm(self, risks: list[Risk]) -> None:
        """Say beside Create what each risk costs; the next click creates anyway."""
        self._armed = True
        # The default (grey) style: white on JupyterLab's warning orange reads at 2.7:1 only.
        self.create_button.description, self.create_button.button_style = "Create anyway", ""
        items = "".join(f"<li>{html.escape(str(r))}</li>" for r in risks)
        self.confirm.value = (f'<div style="{_PROBLEM_STYLE}" role="alert" aria-live="assertive">'
                              f'<b>Not created yet.</b><ul style="margin:2px 0">{items}</ul>'
                              "Fix the form, or click <b>Create anyway</b> to send it as it is.</div>")

    def _disarm(self) -> None:
        if self._armed:
            self._armed = False
            self.create_button.description, self.create_button.button_style = "Create", "primary"
        self.confirm.value = ""

    def terminate(self) -> None:
        """Terminate the cluster created here (clusters/delete); the form follows it to TERMINATED."""
        if self.workspace is None or self.cluster_id is None:
            return
        self._terminating = True
        self.terminate_button.disabled = True
        self.state.value = f"<b>TERMINATING</b> {html.escape(self.cluster_id)}"
        threading.Thread(target=self._terminate, args=(self.cluster_id,), name="dcs-terminate",
                         daemon=True).start()

    # -- clusters already on the local workspace ----------------------------------------------------

    def _running_rows(self) -> list[widgets.Widget]:
        """One row per cluster starting or running on the local workspace, with its Terminate."""
        try:
            clusters = running_clusters(self._client)
        except DcsError as exc:
            return [widgets.HTML(f"<small>Could not list the local workspace's clusters: {html.escape(exc.message)}"
                                 "</small>")]
        if not clusters:
            return []
        rows: list[widgets.Widget] = [widgets.HTML(f"<b>Running on the local workspace ({len(clusters)}):</b>")]
        for info in clusters:
            cluster_id = str(info.get("cluster_id"))
            label = widgets.HTML(html.escape(cluster_line(info)))
            # Its own name: several Terminate buttons must be told apart by keyboard and screen readers.
            button = widgets.Button(description=f"Terminate {cluster_id}", button_style="danger",
                                    tooltip=f"Terminate cluster {cluster_id}",
                                    layout=widgets.Layout(width="auto"))
            button.on_click(lambda b, c=cluster_id: self._clicked(b, lambda: self.terminate_listed(c)))
            self.listed[cluster_id], self._listed_labels[cluster_id] = button, label
            rows.append(widgets.HBox([button, label]))
        return rows

    def terminate_listed(self, cluster_id: str) -> None:
        """Terminate a listed cluster (in a thread); its row then shows the state it ended in."""
        button, label = self.listed[cluster_id], self._listed_labels[cluster_id]
        button.disabled = True

        def run() -> None:
            try:
                self._client.terminate_cluster(cluster_id)
                info = self._client.get_cluster(cluster_id)
            except DcsError as exc:
                label.value = f'<span role="alert">{html.escape(cluster_id)}: {html.escape(exc.message)}</span>'
                button.disabled = False
                self._hand_focus(button)
                return
            label.value = f'<span aria-live="polite">{html.escape(cluster_line(info))}</span>'
            self._hand_focus(self.create_button)  # the row's button stays disabled
            self._refocus = False  # Create busy: no focus jump when it comes back later

        thread = threading.Thread(target=run, name="dcs-terminate-listed", daemon=True)
        self._listed_threads.append(thread)
        thread.start()

    def wait_listed(self, timeout: float | None = None) -> bool:
        """Block until the listed clusters' Terminate requests returned; True when they all did."""
        for thread in self._listed_threads:
            thread.join(timeout)
        return not any(t.is_alive() for t in self._listed_threads)

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

    def done(self) -> None:
        """The Done button: close the form and leave its record (a cluster created here and
        still starting or running keeps running; the record says so)."""
        self._closed_as = self._closed_as or "done"
        self.close()

    def _leave_record(self) -> None:
        """The created cluster ended: with `finished` "record", a displayed form is replaced by
        its record (`close()`); with "keep" it stays open."""
        if self.finished == "record" and self._form_display is not None and not self._stop.is_set():
            if self._terminating and self.error is None:
                self._closed_as = "terminated"
            self.close()

    def close(self) -> None:
        """Stop following the cluster (it keeps running), then close the widgets. A displayed
        form leaves only its record (the cell then shows one block, also when reopened)."""
        if "_stop" not in self.__dict__:  # __init__ refused its arguments (ipywidgets' __del__ closes)
            super().close()
            return
        self._stop.set()
        if self._follower is not None:
            self._follower.stop()
        if self._form_display is not None:
            from IPython.display import update_display

            self._show_record()
            update_display({"text/plain": ""}, raw=True, display_id=self._form_display)  # type: ignore[no-untyped-call]
            self._form_display = None
        # The controls too: nothing shows them any more (nor keeps them in saved widget state).
        stack: list[widgets.Widget] = list(self.children)
        while stack:
            child = stack.pop()
            stack.extend(getattr(child, "children", ()) or ())
            child.close()
        super().close()

    # -- the record (static output beside the live form) -------------------------------------------

    def record(self) -> LaunchRecord:
        """What the form did, as static output: workspace, created cluster (id, state, link),
        its failure, and the masked JSON it sent (before Create: the one it shows)."""
        info = self.cluster_info or {}
        url = None
        if self.cluster_id and not self.local and self.workspace is not None:
            try:
                url = self.workspace.cluster_url(self.cluster_id)
            except Exception:  # noqa: BLE001 - the record does without the link
                url = None
        spec = self._sent
        spec_json = spec.to_json() if spec is not None else self.form.preview(self.values).text
        error = self.error
        # Evidence lines come from cluster logs: a token an init script printed is masked (the
        # record is saved with the notebook).
        diagnosis = (mask_secrets({"why": self.diagnosis.lines()})["why"]
                     if self.diagnosis is not None and self.diagnosis.failed else [])
        return LaunchRecord(workspace=getattr(self.workspace, "host", None), cluster_id=self.cluster_id,
                            state=str(info.get("state")) if info.get("state") else None, url=url,
                            error=error.message if error is not None else None,
                            hint=(error.hint or None) if error is not None else None,
                            spec_json=spec_json, sent=spec is not None, closed=self._closed_as,
                            diagnosis=tuple(diagnosis))

    def _ipython_display_(self) -> None:
        """The live form, and under it its record (kept current while the kernel runs)."""
        import uuid

        from IPython.display import display

        self._form_display = self._form_display or uuid.uuid4().hex
        self._record_display = self._record_display or uuid.uuid4().hex
        display(self._repr_mimebundle_(), raw=True, display_id=self._form_display)
        bundle = self.record()._repr_mimebundle_()
        with self._record_lock:
            self._last_record = bundle
        display(bundle, raw=True, display_id=self._record_display)

    def _show_record(self) -> None:
        """Update the record under every display of the form (from any thread), when it changed."""
        if self._record_display is None:
            return
        try:
            bundle = self.record()._repr_mimebundle_()
        except Exception:  # noqa: BLE001 - a record that cannot be made must not break the form
            return
        with self._record_lock:
            if bundle == self._last_record:
                return
            self._last_record = bundle
        from IPython.display import update_display

        update_display(bundle, raw=True, display_id=self._record_display)  # type: ignore[no-untyped-call]

    # -- the background thread -----------------------------------------------------------------------

    def _terminate(self, cluster_id: str) -> None:
        try:
            self._client.terminate_cluster(cluster_id)
        except DcsError as exc:
            self._terminating = False
            self.terminate_button.disabled = False
            self._hand_focus(self.terminate_button)
            self._show_error(exc, final=False)
            return
        if self._follower is not None:
            self._follower.wake()  # see TERMINATED now, not after the running beat
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._follow, args=(cluster_id,), kwargs={"starting": False},
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
            self._show_error(unexpected_error(exc))
            self._settled.set()
            return
        self._show_record()  # (also when Done closed the form meanwhile: the record names the cluster)
        if not self.local:  # the local workspace has no cluster page a browser can open
            url = self._client.cluster_url(self.cluster_id)
            self.link.value = url_link(url, f"Open cluster {self.cluster_id}")
        self.terminate_button.disabled = False
        self._hand_focus(self.terminate_button)
        self._follow(self.cluster_id, starting=True)

    def _follow(self, cluster_id: str, *, starting: bool) -> None:
        """Follow the cluster until it ends (or the widget is closed): to RUNNING first when
        `starting` (then `wait()` returns), then at the running beat."""
        client = self._client
        policy = client.polling
        if self._running_poll_s is not None:
            policy = dataclasses.replace(policy, steady=self._running_poll_s)
        follower = ClusterFollower(client, cluster_id, on_state=self._on_state, on_events=self._on_events,
                                   stop=self._stop, policy=policy, sleep=self._sleep)
        self._follower = follower
        try:
            info = None
            if starting:
                info = follower.follow(("RUNNING",), self._wait_timeout_s)
                if info is not None and info.get("state") in STARTING_STATES and not follower.stopped:
                    self.error = slow_start_error(cluster_id, info.get("state"), self._wait_timeout_s)
                self._settled.set()
            if info is None or info.get("state") not in ENDED_STATES:
                info = follower.follow(())
            if info is not None and info.get("state") in ENDED_STATES:
                self._ended(info)
        except DcsError as exc:
            self._show_error(exc, lost=True)
        except Exception as exc:  # noqa: BLE001 - shown in the form, not lost in a thread
            self._show_error(unexpected_error(exc), lost=True)
        finally:
            self._settled.set()
            ended = (self.cluster_info or {}).get("state") in ENDED_STATES
            if self.error is not None or ended:
                self.create_button.disabled = self.workspace is None
                self.terminate_button.disabled = True
                self._hand_focus(self.create_button)
            if ended:
                self._leave_record()

    def _on_events(self, events: list[dict[str, Any]]) -> None:
        """Show the cluster's events (oldest first) in the timeline."""
        self.events = events
        items = "".join(f"<li>{html.escape(event_text(e))}</li>" for e in events)
        self.timeline.value = ('<div class="dcs-timeline"><b>Events</b><ol style="margin:2px 0;padding-left:1.4em;'
                               f'max-height:12em;overflow:auto">{items}</ol></div>')

    def _on_state(self, info: Mapping[str, Any]) -> None:
        message = info.get("state_message") or ""
        self.state.value = (f'<span aria-live="polite"><b>{html.escape(str(info.get("state")))}</b> '
                            f"{html.escape(str(self.cluster_id or ''))} {html.escape(message)}</span>")

    def _ended(self, info: Mapping[str, Any]) -> None:
        url = None if self.local else self._client.cluster_url(str(info.get("cluster_id") or self.cluster_id))
        error = ended_error(info, terminating=self._terminating, url=url, sent=self._sent,
                            local=self.local)
        if error is None:
            self.state.value = (f'<span aria-live="polite"><b>TERMINATED</b> {html.escape(str(self.cluster_id))}'
                                " (terminated from this form)</span>")
            self.create_button.disabled = False
            self.terminate_button.disabled = True
            self._hand_focus(self.create_button)
            return
        self._show_error(error)
        self._diagnose(str(info.get("cluster_id") or self.cluster_id))

    def _diagnose(self, cluster_id: str) -> None:
        """Why the start failed (`dcs why`: reason, events, delivered logs), below the state."""
        from ..ops.why import why_cluster

        self.why.value = "<small>Looking for the cause (termination reason, events, cluster logs)...</small>"
        try:
            self.diagnosis = why_cluster(self._client, cluster_id, dockerfiles=self.dockerfiles)
        except DcsError as exc:
            self.why.value = (f"<small>The cause could not be looked up ({html.escape(exc.message)}); try "
                              f"<code>%dcs_why {html.escape(cluster_id)}</code> later.</small>")
            return
        self.why.value = self.diagnosis._repr_html_()
        self._show_record()  # the record keeps the diagnosis too

    def _show_error(self, exc: DcsError, *, final: bool = True, lost: bool = False) -> None:
        self.error = exc
        label = exc.state if isinstance(exc, ClusterError) and exc.state else type(exc).__name__
        text = exc.message
        said = f"cluster {getattr(exc, 'cluster_id', None)} is {label}"
        if text.startswith(said):  # the label says the state: "TERMINATED cluster X (CODE): ..."
            text = said[:-len(f" is {label}")] + text[len(said):]
        hint = f"<br><i>Hint: {html.escape(exc.hint)}</i>" if exc.hint else ""
        lost_note = ("<br>The form stopped following the cluster; it may still exist (check the workspace "
                     "before creating another).") if lost and self.cluster_id else ""
        self.state.value = (f'<div role="alert"><span style="{_ERROR_STYLE}">{html.escape(str(label))}</span> '
                            f"{html.escape(text)}{hint}{lost_note}</div>")
        if final:
            self.create_button.disabled = self.workspace is None
            self.terminate_button.disabled = True
            self._hand_focus(self.create_button)
