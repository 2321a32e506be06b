"""The `%dcs_launch` form without its widgets: what it shows, what it guards, what it sends.

The values the form shows are `model.form_values.FormValues` (pure: to and from a
ClusterSpec, the key=value boxes, what Save JSON may write). `LaunchForm` holds the rest of
the form's state (the `--spec` file's spec, the notebook's `%%init_script` cells, the guards' messages)
and decides everything the view (`jupyter/launch.py`) only displays: the initial values and
the workspace's runtime / node type lists, the guards that take a possible secret out of a
box, the problems that block or warn before Create, the masked JSON preview, Save JSON
(`file_body`), the exports, workspace readiness (doctor), and how an ended cluster is told.
Nothing here imports ipywidgets, anywidget or IPython; `tests/unit/test_launch_form.py`
tests it without them.

Secrets: no control ever holds a secret.
- The registry password is either a `{{secrets/scope/key}}` reference (a name) or the NAME of
  an environment variable read when the request is sent (`spec.BasicAuth.password_env`).
  `LaunchForm.guard` clears both fields when their value is not a reference / not the name
  of a set variable, so a password typed in the wrong place does not stay in widget state or
  in the saved notebook.
- Spark conf, environment variables and tags whose key looks secret (`secrets.mask_secrets`
  masks them) are shown as `KEY=****` when they come from the `--spec` file; the request
  carries the file's real value (`FormValues.to_spec` takes it from the base spec). A literal
  typed there for such a key is taken out of the box at once (`LaunchForm.guard`: the line
  becomes a comment asking for a `{{secrets/scope/key}}` reference), so it never stays in
  synced state.
- Only the preview (and the view's copy box) is masked. Save JSON and the download body are
  the real body, keeping references and variable names as they are, and are refused (saying
  which field) when the body holds a literal secret: a file meant to be sent never holds
  `****`. Save JSON never overwrites a file (the `--spec` file included) unless asked to.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ClusterError, DcsError, SpecError
from ..model.form_values import (
    KEY_VALUE_FIELDS,
    FormValues,
    default_runtime,
    file_body,
    parse_key_values,
    runtime_notes,
    secret_literal_keys,
    secret_references,
)
from ..model.secrets import is_secret_reference
from ..model.spec import ClusterSpec, NamedInitScript, dcs_node_types, dcs_runtimes
from ..settings import env, secret_variable

if TYPE_CHECKING:  # imported lazily at run time
    from ..adapters.workspace import Workspace
    from ..model.results import CheckItem, CheckReport

__all__ = ["EXPORT_KINDS", "LaunchForm", "Preview", "Readiness", "Saved", "default_save_path", "ended_error",
           "image_notes", "node_label", "slow_start_error", "unexpected_error", "workspace_lists"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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


# -- what the form starts with -------------------------------------------------------------

EXPORT_KINDS = [("Asset bundle (YAML)", "bundle"), ("Terraform (HCL)", "terraform"),
                ("Cluster policy (JSON)", "policy"), ("Instance pool (JSON)", "pool")]


def image_notes(image: str) -> list[str]:
    """A tag (not a digest) can change under the cluster: say so (not an error)."""
    from ..model.credentials import PIN_HINT_NOTEBOOK, unpinned_warning

    note = unpinned_warning("".join(image.split()), how=PIN_HINT_NOTEBOOK)
    return [f"Note: {note}."] if note else []


def node_label(node: Mapping[str, Any]) -> str:
    """A node type as the form lists it: id, cores, memory, GPUs."""
    text = f"{node['node_type_id']} ({float(node.get('num_cores') or 0):g} cores, " \
           f"{float(node.get('memory_mb') or 0) / 1024:.1f} GB"
    return text + (f", {node['num_gpus']} GPU)" if node.get("num_gpus") else ")")


def workspace_lists(workspace: Workspace | None, unavailable: str | None = None
                    ) -> tuple[list[str], list[tuple[str, str]], list[tuple[str, str]]]:
    """(notes, runtimes, node types) for the form's choices: (label, key) pairs of what dcs
    can run, as the workspace lists them; empty lists (and a note saying why) when there is
    no workspace or it cannot list them, so the form asks to type them instead."""
    if workspace is None:
        return [f"Preview only: {unavailable}" if unavailable else "Preview only: no workspace given."], [], []
    try:
        runtimes = [(v.get("name") or v["key"], v["key"]) for v in dcs_runtimes(workspace.spark_versions())]
        nodes = [(node_label(n), n["node_type_id"]) for n in dcs_node_types(workspace.node_types())]
    except DcsError as exc:
        return [f"Could not list runtimes and node types ({exc.message}); type them instead."], [], []
    return [], runtimes, nodes


# -- what a followed cluster shows ---------------------------------------------------------------


def ended_error(info: Mapping[str, Any], *, terminating: bool, url: str | None, sent: ClusterSpec | None = None,
                local: bool = False) -> ClusterError | None:
    """What a TERMINATED/ERROR cluster means for the form: None when the form's own
    Terminate ended it, else the ClusterError to show (a hint per termination code, the
    cluster page `url`). On the `local` workspace, a SECRET_RESOLUTION_ERROR's hint names the
    DCS_SECRET_<SCOPE>_<KEY> variables to set for `sent`."""
    from ..adapters.workspace import cluster_error

    code = (info.get("termination_reason") or {}).get("code")
    if terminating and code in (None, "USER_REQUEST"):
        return None
    error = cluster_error(info, url=url)
    if local and code == "SECRET_RESOLUTION_ERROR" and sent is not None:
        variables = [secret_variable(r) for r in secret_references(sent)] or ["DCS_SECRET_<SCOPE>_<KEY>"]
        error.hint = ("the local preflight workspace reads a {{secrets/scope/key}} reference from the "
                      f"environment variable DCS_SECRET_<SCOPE>_<KEY>: set {', '.join(variables)} in the "
                      f"kernel (os.environ['{variables[0]}'] = getpass.getpass()), then Create again")
    return error


def slow_start_error(cluster_id: str, state: Any, timeout_s: float) -> ClusterError:
    """The form's word when a cluster still starts after `timeout_s` (it goes on following)."""
    return ClusterError(f"cluster {cluster_id} is still {state} after {timeout_s:g} s", cluster_id=cluster_id,
                        state=state, hint="it keeps starting; Terminate it, or wait")


def unexpected_error(exc: Exception) -> DcsError:
    """A bug met in the form's thread, told in the form rather than lost in the thread."""
    return DcsError(f"unexpected {type(exc).__name__}: {exc}",
                    hint="set %config DcsMagics.short_errors = False and report it")


# -- the form's state and decisions -----------------------------------------------------------------


@dataclass
class Preview:
    """What the form shows for its current values."""

    problems: list[str]
    """Guards' messages, unreadable boxes, spec errors (Create refuses), then notes."""
    spec: ClusterSpec | None = None
    """None when a box cannot be read (the first problem says why)."""
    text: str = ""
    """The masked JSON body (the preview and the copy box)."""
    body: dict[str, Any] | None = None
    """What Save JSON would write (the download link), None when it would be refused."""


@dataclass
class Saved:
    """What Save JSON did: the path written (None: not saved, `problem` says why) and notes."""

    path: Path | None
    notes: list[str] = field(default_factory=list)
    problem: str | None = None


@dataclass
class Readiness:
    """Workspace readiness (`dcs doctor`) for the form: a head line and the failing checks."""

    report: CheckReport

    @property
    def failed(self) -> list[CheckItem]:
        return [item for item in self.report.checks if not item.ok]

    @property
    def head(self) -> str:
        total = len(self.report.checks)
        return f"Workspace readiness: {total - len(self.failed)}/{total} checks hold"


_GUARDED = ("password_secret", "password_env", *KEY_VALUE_FIELDS)


class LaunchForm:
    """The launch form's state beside its `FormValues`, and its decisions.

    `spec` is the `--spec` file's spec (fields the form does not show, and the real values
    behind `KEY=****`, come from it); `init_scripts` the notebook's `%%init_script` cells;
    `spec_path` the `--spec` file (Save JSON proposes a new file beside it, never the file);
    `image_python` the image's checked Python (None when unchecked). `guards` maps a field
    to why its box was cleared or rewritten.
    """

    def __init__(self, spec: ClusterSpec | None = None, *, init_scripts: Mapping[str, NamedInitScript] | None = None,
                 spec_path: str | os.PathLike[str] | None = None, image_python: str | None = None) -> None:
        self.given = spec
        self.base = spec or ClusterSpec()
        self.scripts = dict(init_scripts or {})
        self.spec_path = Path(spec_path).expanduser() if spec_path else None
        self.image_python = image_python
        self.guards: dict[str, str] = {}
        self._rewritten: dict[str, str] = {}  # field -> the text a guard just put in its box

    # -- values --------------------------------------------------------------------------------

    def initial_values(self, image: str | None = None, offered_runtimes: Iterable[str] = ()) -> FormValues:
        """The values the form opens with: the `--spec` file's (`image` overrides its URL), the
        uploaded `%%init_script` cells it does not list yet, and a default runtime."""
        values = FormValues.from_spec(self.given, image=image)
        values.init_script_names = self.preselected(values)
        if not values.spark_version:
            values.spark_version = default_runtime(list(offered_runtimes), self.image_python)
        return values

    def preselected(self, values: FormValues) -> tuple[str, ...]:
        """Uploaded %%init_script cells, unless the spec already lists their destination."""
        listed = {line.split()[0] for line in values.init_script_destinations.splitlines() if line.strip()}
        return tuple(n for n, s in self.scripts.items() if s.destination and s.destination not in listed)

    def script_choices(self) -> list[tuple[str, str]]:
        """(label, name) of the uploaded `%%init_script` cells the form offers."""
        return [(f"{n} ({s.destination})", n) for n, s in self.scripts.items() if s.destination]

    def unsent_scripts(self) -> list[str]:
        """`%%init_script` cells not uploaded yet (the form cannot offer them)."""
        return [n for n, s in self.scripts.items() if not s.destination]

    def spec(self, values: FormValues) -> ClusterSpec:
        """The ClusterSpec `values` describe (SpecError when a text area cannot be read)."""
        return values.to_spec(self.base, self.scripts)

    # -- guards ----------------------------------------------------------------------------------

    def guard(self, name: str, text: str) -> str:
        """The text the box `name` may keep: "" for a password field that holds neither a
        `{{secrets/...}}` reference nor the name of a set environment variable (it may be
        the password itself), and a key=value box with the literal values of secret-looking
        keys taken out. Why is in `guards[name]` until the box is right again."""
        if name == "password_secret":
            return self._guard_secret_reference(text)
        if name == "password_env":
            return self._guard_env_name(text)
        if name in KEY_VALUE_FIELDS:
            return self._guard_key_values(name, text)
        return text

    def _guard_secret_reference(self, text: str) -> str:
        if not text:
            return text
        if is_secret_reference(text.strip()):
            self.guards.pop("password_secret", None)
            return text
        self.guards["password_secret"] = (
            "Only a {{secrets/scope/key}} reference goes in the password reference field; it was cleared. "
            "For a password, use the environment variable option.")
        return ""  # never keep what may be a literal password in widget state

    def _guard_env_name(self, text: str) -> str:
        name = text.strip()
        if not name:
            return text
        if _ENV_NAME.match(name) and env(name) is not None:
            self.guards.pop("password_env", None)
            return text
        self.guards["password_env"] = (
            "There is no environment variable with that name in the kernel's environment; the field was "
            "cleared in case a password was typed in it. Set the variable (e.g. os.environ['REGISTRY_PASSWORD']"
            " = getpass.getpass()) and enter its NAME.")
        return ""  # it may have been the password itself

    def _guard_key_values(self, name: str, text: str) -> str:
        """Take literal values of secret-looking keys out of a key=value box at once."""
        if self._rewritten.pop(name, None) == text:
            return text  # the box now holds what this guard wrote: its message stays
        try:
            values = parse_key_values(text, name)
        except SpecError:
            return text  # shown as a problem; a malformed line has no value to keep out
        removed = secret_literal_keys(values)
        if not removed:
            self.guards.pop(name, None)
            return text
        lines = []
        for raw in text.splitlines():
            key = raw.partition("=")[0].strip()
            if "=" in raw and not raw.strip().startswith("#") and key in removed:
                raw = f"# {key}=  <- removed: write {key}={{{{secrets/<scope>/<key>}}}}"
            lines.append(raw)
        where = "tags cannot hold secrets; rename the tag or set it in the --spec file" if name == "custom_tags" \
            else "store the value in a secret scope and write KEY={{secrets/<scope>/<key>}}"
        self.guards[name] = (f"{name}: the value of {', '.join(removed)} looks like a secret, so it was taken "
                             f"out of the form (it would be saved with the notebook): {where}.")
        self._rewritten[name] = "\n".join(lines)
        return self._rewritten[name]

    # -- what the form shows -------------------------------------------------------------------------

    def preview(self, values: FormValues) -> Preview:
        """The problems, the masked JSON and the body Save JSON would write, for `values`."""
        active = {"secret": "password_secret", "env": "password_env"}.get(values.auth_mode)
        problems = [message for name, message in self.guards.items()
                    if name == active or name in KEY_VALUE_FIELDS]
        try:
            spec = self.spec(values)
        except SpecError as exc:
            return Preview(problems + [str(exc)])
        problems += [str(e) for e in spec.errors()]
        problems += image_notes(values.image)
        problems += runtime_notes(spec.spark_version, self.image_python)
        try:
            body: dict[str, Any] | None = file_body(spec)[0]
        except SpecError:
            body = None  # Save JSON says why when clicked
        return Preview(problems, spec, spec.to_json(), body)

    # -- actions -------------------------------------------------------------------------------------

    def default_save_path(self) -> Path:
        """Where Save JSON proposes to write: a new file (see `default_save_path`)."""
        return default_save_path(self.spec_path)

    def save(self, values: FormValues, path: str | os.PathLike[str] | None = None, *,
             overwrite: bool = False) -> Saved:
        """Write the JSON body for CI (`dcs launch --spec`) to `path` (default: a new file, see
        `default_save_path`).

        The file holds real values: `{{secrets/...}}` references and variable names as they
        are, never `****`; a body with a literal secret is refused. An existing file (the
        `--spec` file too) is replaced only with `overwrite=True`; the file appears whole or
        not at all (written beside it, then renamed).
        """
        target = Path(path).expanduser() if path else self.default_save_path()
        try:
            body, notes = file_body(self.spec(values))
        except SpecError as exc:
            return Saved(None, problem=str(exc))
        if target.exists() and not overwrite:
            what = "the --spec file" if self.spec_path and target.resolve() == self.spec_path.resolve() \
                else "a file"
            return Saved(None, problem=f"{target} is {what} that exists; tick 'Overwrite an existing file' to "
                                       f"replace it, or save to another path (e.g. {self.default_save_path()})")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_name(f".{target.name}.tmp")
            temporary.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
            os.replace(temporary, target)
        except OSError as exc:
            return Saved(None, problem=f"cannot write {target}: {exc.strerror or exc}")
        return Saved(target, notes)

    def export(self, values: FormValues, kind: str = "bundle") -> str:
        """The form's spec as `kind` (bundle, terraform, policy, pool); DcsError when it cannot
        be exported (a literal password, an invalid spec)."""
        from ..model.exports import export

        return export(kind, self.spec(values))

    def readiness(self, workspace: Workspace, values: FormValues) -> Readiness:
        """Workspace readiness (`dcs doctor`) for the form's spec (none when a box cannot be read)."""
        from .doctor import doctor

        try:
            spec: ClusterSpec | None = self.spec(values)
        except SpecError:
            spec = None
        return Readiness(doctor(workspace, spec))
