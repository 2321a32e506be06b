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
- "Store this password as a secret" (`store_password`) takes the password as a `Secret` the view
  got once from its password box (`jupyter.secret_input.SecretInput`: sent as a message, never a
  widget trait; the page empties the box): it goes into SCOPE/KEY on the form's
  workspace (`ops.secrets.store_registry_password`), and only its reference comes back into the
  values. `FormValues` has no field that could hold it.
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

import dataclasses
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..adapters.follow import ENDED_STATES
from ..errors import ClusterError, DcsError, SpecError
from ..model import registry_auth
from ..model.credentials import Secret
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
from ..model.imageref import ImageRef, parse_or_none
from ..model.net import is_loopback
from ..model.secrets import is_secret_reference, secret_spans
from ..model.spec import ClusterSpec, NamedInitScript, dcs_node_types, dcs_runtimes, node_type_problem
from ..settings import env, secret_variable

if TYPE_CHECKING:  # imported lazily at run time
    from ..adapters.workspace import Workspace
    from ..model.results import CheckItem, CheckReport, PushResult
    from .secrets import SecretPut

__all__ = ["CREATE_REFUSED", "DEFAULT_SECRET_SCOPE", "EXPORT_KINDS", "START_FAILS", "LaunchForm", "Preview",
           "Readiness", "Risk", "Saved",
           "WorkspaceLists", "cluster_line", "default_save_path", "ended_error", "image_notes", "node_label",
           "private_registries", "running_clusters", "slow_start_error", "unexpected_error", "workspace_lists"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NOT_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
DEFAULT_SECRET_SCOPE = "dcs-registry"
"""The scope the form proposes for "store this password as a secret" (when the push named none)."""


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


class WorkspaceLists(NamedTuple):
    """What the workspace offers, for the form's choices and its node type warning."""

    notes: list[str]
    """Why the lists are empty (no workspace, or it could not list them)."""
    runtimes: list[tuple[str, str]]
    """(label, key) of the runtimes dcs can run."""
    nodes: list[tuple[str, str]]
    """(label, id) of the node types dcs can use."""
    node_types: list[dict[str, Any]]
    """Every `list-node-types` item, as `spec.node_type_problem` judges a node type by them."""


def workspace_lists(workspace: Workspace | None, unavailable: str | None = None) -> WorkspaceLists:
    """(notes, runtimes, node types, every node type) for the form's choices: (label, key)
    pairs of what dcs can run, as the workspace lists them; empty lists (and a note saying
    why) when there is no workspace or it cannot list them, so the form asks to type them
    instead."""
    if workspace is None:
        return WorkspaceLists([f"Preview only: {unavailable}" if unavailable else "Preview only: no workspace given."],
                              [], [], [])
    try:
        runtimes = [(v.get("name") or v["key"], v["key"]) for v in dcs_runtimes(workspace.spark_versions())]
        offered = workspace.node_types()
    except DcsError as exc:
        return WorkspaceLists([f"Could not list runtimes and node types ({exc.message}); type them instead."], [], [], [])
    nodes = [(node_label(n), n["node_type_id"]) for n in dcs_node_types(offered)]
    return WorkspaceLists([], runtimes, nodes, offered)


def private_registries(image: str | None, push: PushResult | None = None) -> dict[str, str]:
    """{registry: why} when `image`'s registry is known to refuse a pull without credentials
    (a cluster with Registry auth "None" then fails its start); {} when it serves the image to
    anyone or nobody can tell.

    The registry itself is asked (`registry.requires_auth`, an anonymous manifest request)
    only where that is cheap: a loopback registry, or the one this kernel's `push` reached
    moments ago; a registry elsewhere could keep the form from opening for seconds. Its
    answer wins; without one, a push that needed `--username` says the registry is private.
    """
    ref = _image_ref(image)
    if ref is None:
        return {}
    pushed = push.image if push is not None else None
    same_registry = pushed is not None and pushed.registry == ref.registry
    answer = None
    if is_loopback(ref.registry) or same_registry:
        from ..adapters.registry import requires_auth

        answer = requires_auth(ref)
    if answer:
        return {ref.registry: "it refuses an anonymous pull of the image (HTTP 401)"}
    if answer is None and same_registry and push is not None and push.username:
        return {ref.registry: f"the push used --username {push.username}"}
    return {}


def _image_ref(text: str | None) -> ImageRef | None:
    """The form's image box as a reference (it wraps a long one: no reference has whitespace)."""
    return parse_or_none("".join(text.split())) if text else None


def running_clusters(workspace: Workspace) -> list[dict[str, Any]]:
    """The workspace's clusters that are starting or running (clusters/list).

    A form opened on the local workspace lists them, each with its own Terminate: a cluster
    created by an earlier form, whose widget is gone with its cell output, can still be
    stopped from here. DcsError when the workspace cannot list them."""
    return [c for c in workspace.list_clusters() if c.get("state") not in (*ENDED_STATES, "TERMINATING")]


def cluster_line(info: Mapping[str, Any]) -> str:
    """A listed cluster as one line: name, id, state and image."""
    image = (info.get("docker_image") or {}).get("url")
    return (f"{info.get('cluster_name') or '(no name)'} ({info.get('cluster_id')}): {info.get('state')}"
            + (f", {image}" if image else ""))


# -- what a followed cluster shows ---------------------------------------------------------------


def ended_error(info: Mapping[str, Any], *, terminating: bool, url: str | None, sent: ClusterSpec | None = None,
                local: bool = False) -> ClusterError | None:
    """What a TERMINATED/ERROR cluster means for the form: None when the form's own
    Terminate ended it, else the ClusterError to show (a hint per termination code, the
    cluster page `url`). On the `local` workspace, a SECRET_RESOLUTION_ERROR's hint names the
    `dcs secrets put --local` that stores the secret and the DCS_SECRET_<SCOPE>_<KEY> variables
    that are its fallback for `sent`."""
    from ..adapters.workspace import cluster_error

    code = (info.get("termination_reason") or {}).get("code")
    if terminating and code in (None, "USER_REQUEST"):
        return None
    error = cluster_error(info, url=url)
    if local and code == "SECRET_RESOLUTION_ERROR" and sent is not None:
        references = secret_references(sent)
        variables = [secret_variable(r) for r in references] or ["DCS_SECRET_<SCOPE>_<KEY>"]
        scope, key = references[0].strip("{} ").split("/", 2)[1:] if references else ("SCOPE", "KEY")
        error.hint = ("the local preflight workspace reads a {{secrets/scope/key}} reference from its secret "
                      f"store, then from the environment variable DCS_SECRET_<SCOPE>_<KEY>: store it once with "
                      f"`dcs secrets put --local --create-scope {scope} {key}` in a terminal (every kernel and "
                      f"dcs command sees it), or set {', '.join(variables)} in the kernel "
                      f"(os.environ['{variables[0]}'] = getpass.getpass()), then Create again")
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

START_FAILS = "On Databricks this start would fail after ~5-10 minutes of billed cluster time"
"""What sending a body costs that the workspace accepts but whose cluster cannot start."""
CREATE_REFUSED = "Databricks would refuse this create request"
"""What sending a body costs that clusters/create itself refuses."""


@dataclass(frozen=True)
class Risk:
    """A problem the form can see that Databricks reports only once Create is sent: `message`
    is shown among the problems before Create, `cost` says what sending it anyway costs.
    While the form has any, Create asks for a second, deliberate click ("Create anyway")."""

    message: str
    cost: str

    def __str__(self) -> str:
        return f"{self.cost}: {self.message}"


@dataclass
class Preview:
    """What the form shows for its current values."""

    problems: list[str]
    """Guards' messages, unreadable boxes, spec errors (Create refuses), then notes and risks."""
    spec: ClusterSpec | None = None
    """None when a box cannot be read (the first problem says why)."""
    text: str = ""
    """The masked JSON body (the preview and the copy box)."""
    body: dict[str, Any] | None = None
    """What Save JSON would write (the download link), None when it would be refused."""
    risks: list[Risk] = field(default_factory=list)
    """The problems (their messages are among `problems` too) that Create asks to confirm."""


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
    `image_python` the Python of the image's /databricks/python3 (`%dcs_check`'s, or
    `ops.check.image_python`'s quick look; None when unknown). `guards` maps a field to why
    its box was cleared or rewritten.

    What the form knows beyond its values, so it never walks into a failure it can see:
    `push` is this kernel's last push (its registry auth pre-fills the form for the same
    image), `private` the registries known to need credentials (`private_registries`),
    `node_types` every node type the workspace lists (`spec.node_type_problem` judges the
    chosen one by them), and `local` marks the local preflight workspace (secret references
    resolve from its secret store there, else from the kernel's environment).
    """

    def __init__(self, spec: ClusterSpec | None = None, *, init_scripts: Mapping[str, NamedInitScript] | None = None,
                 spec_path: str | os.PathLike[str] | None = None, image_python: str | None = None,
                 push: PushResult | None = None, private: Mapping[str, str] | None = None,
                 node_types: Iterable[Mapping[str, Any]] = (), local: bool = False) -> None:
        self.given = spec
        self.base = spec or ClusterSpec()
        self.scripts = dict(init_scripts or {})
        self.spec_path = Path(spec_path).expanduser() if spec_path else None
        self.image_python = image_python
        self.push = push
        self.private = dict(private or {})
        self.node_types = [dict(n) for n in node_types]
        self.local = local
        self.guards: dict[str, str] = {}
        self._rewritten: dict[str, str] = {}  # field -> the text a guard just put in its box

    # -- values --------------------------------------------------------------------------------

    def initial_values(self, image: str | None = None, offered_runtimes: Iterable[str] = (),
                       registry_kind: str | None = None) -> FormValues:
        """The values the form opens with: the `--spec` file's (`image` overrides its URL), the
        uploaded `%%init_script` cells it does not list yet, a default runtime that runs the
        image's Python, for the image this kernel pushed, the push's registry auth (its
        username, and the `--secret-ref` reference as the password) unless the spec has one,
        and `registry_kind` (`--registry-auth`) with its username convention (`with_kind`)."""
        values = FormValues.from_spec(self.given, image=image)
        values.init_script_names = self.preselected(values)
        if not values.spark_version:
            values.spark_version = default_runtime(list(offered_runtimes), self.image_python)
        push = self.push
        if values.auth_mode == "none" and push is not None and (push.username or push.secret_ref) \
                and self._pushed(values.image):
            values.auth_mode, values.username = "secret", push.username or ""
            values.password_secret = push.secret_ref or ""
        if registry_kind not in (None, registry_auth.AUTO):
            values = self.with_kind(values, str(registry_kind))
        return values

    # -- registry kinds ----------------------------------------------------------------------------

    @staticmethod
    def with_kind(values: FormValues, kind: str) -> FormValues:
        """`values` with the Registry choice `kind` (`model.registry_auth`): `none` turns Registry
        auth off; another kind turns it on (a password reference) and fills in the username the
        kind fixes (GAR `_json_key`, ECR `AWS`) unless the user typed their own; a username another
        kind fixed is cleared for a kind whose username is the user's. ValueError for an unknown kind."""
        registry_auth.resolve(kind, None)  # refuses an unknown kind
        fixed = {p.username for p in registry_auth.PRESETS.values() if p.username}
        changed = dataclasses.replace(values, registry_kind=kind)
        if kind == "none":
            changed.auth_mode = "none"
            return changed
        if kind == registry_auth.AUTO:
            return changed
        if changed.auth_mode == "none":
            changed.auth_mode = "secret"
        convention = registry_auth.username_for(kind)
        if convention and (not changed.username.strip() or changed.username.strip() in fixed):
            changed.username = convention
        elif not convention and changed.username.strip() in fixed:
            changed.username = ""
        return changed

    @staticmethod
    def kind_text(values: FormValues) -> str:
        """Where the password comes from, for the form's Registry choice and image."""
        return registry_auth.explain(values.registry_kind, values.image, has_auth=values.auth_mode != "none")

    @staticmethod
    def username_placeholder(values: FormValues) -> str:
        """What the Username box asks for, for the Registry choice and image."""
        kind = registry_auth.resolve(values.registry_kind, values.image, has_auth=values.auth_mode != "none")
        return registry_auth.PRESETS[kind].placeholder

    # -- "store this password as a secret" --------------------------------------------------------

    def secret_name(self, values: FormValues) -> tuple[str, str]:
        """The (scope, key) the form proposes for the registry password: the reference the form
        or the push already names, else `dcs-registry` / `<repository name>-password`."""
        for reference in (values.password_secret.strip(), self.push.secret_ref if self.push else None):
            if reference and is_secret_reference(reference):
                scope, key = reference.strip("{} ").split("/", 2)[1:]
                return scope, key
        ref = _image_ref(values.image)
        name = ref.path.rsplit("/", 1)[-1] if ref is not None else "registry"
        return DEFAULT_SECRET_SCOPE, (_NOT_NAME.sub("-", name).strip("-.") or "registry")[:119] + "-password"

    def store_password(self, workspace: Workspace | None, scope: str, key: str,
                       password: Secret) -> SecretPut:
        """Put the registry `password` into SCOPE/KEY on `workspace` (the scope created when
        missing: `ops.secrets.store_registry_password`) and return where it went; its
        `reference` is what the form then sends as the password. DcsError (ConfigError without a
        workspace, UsageError for an empty password or a malformed name, ApiError when the
        workspace refuses), never naming the password."""
        from ..adapters.secret_store import valid_name
        from ..errors import ConfigError, UsageError
        from .secrets import store_registry_password

        if workspace is None:
            raise ConfigError("no workspace to store the password in: this form is a preview only",
                              hint="open the form with --local or --profile P (or DATABRICKS_HOST/TOKEN), or "
                                   "run `dcs secrets put --create-scope SCOPE KEY` in a terminal")
        scope, key = scope.strip(), key.strip()
        bad = [what for what, name in (("scope", scope), ("key", key)) if not valid_name(name)]
        if bad:
            raise UsageError(f"secret {' and '.join(bad)}: use letters, digits, '-', '_' and '.' only, at most 128 characters "
                             f"(got scope {scope!r}, key {key!r})", hint="e.g. scope dcs-registry, key team-app")
        return store_registry_password(workspace, scope, key, password)

    def _pushed(self, image: str) -> bool:
        """Whether `image` is the repository this kernel pushed last."""
        ref, pushed = _image_ref(image), self.push.image if self.push is not None else None
        return ref is not None and pushed is not None and (ref.registry, ref.path) == (pushed.registry, pushed.path)

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
        if not isinstance(text, str) or self._rewritten.pop(name, None) == text:
            return text  # not text, or what this guard wrote: its message stays
        if secret_spans(text):
            return self._guard_free_text(name, text)
        self.guards.pop(name, None)
        return text

    def _guard_free_text(self, name: str, text: str) -> str:
        """Any other text box: a credential-looking part (`secrets.secret_spans`: a URL's
        password, a `ghp_...` token, a long random string) is cut out at once."""
        kinds = sorted({kind for _start, _end, kind in secret_spans(text)})
        for start, end, _kind in reversed(secret_spans(text)):
            text = text[:start] + text[end:]
        self._rewritten[name] = text
        self.guards[name] = (f"{name}: what looked like {' and '.join(kinds)} was taken out of the form "
                             "(it would be saved with the notebook): store it in a secret scope and write "
                             "a {{secrets/<scope>/<key>}} reference, or leave it to the --spec file.")
        return text

    def _guard_secret_reference(self, text: str) -> str:
        if not text:
            return text
        if is_secret_reference(text.strip()):
            self.guards.pop("password_secret", None)
            return text
        self.guards["password_secret"] = (
            "Only a {{secrets/scope/key}} reference goes in the password reference field; it was cleared. "
            "For a password, type it in Password to store and click Store as secret (it goes into the secret "
            "scope and the reference comes here), or use the environment variable option.")
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
                    if name == active or name not in ("password_secret", "password_env")]
        try:
            spec = self.spec(values)
        except SpecError as exc:
            return Preview(problems + [str(exc)])
        problems += self.auth_notes(values, spec)  # before the spec's bare "needs a password"
        problems += registry_auth.notes(values.registry_kind, spec)
        errors = list(spec.errors())
        problems += [str(e) for e in errors]
        problems += image_notes(values.image)
        risks = self.risks(values, spec, blocked={e.field for e in errors})
        problems += [risk.message for risk in risks]
        try:
            body: dict[str, Any] | None = file_body(spec)[0]
        except SpecError:
            body = None  # Save JSON says why when clicked
        return Preview(problems, spec, spec.to_json(), body, risks)

    def risks(self, values: FormValues, spec: ClusterSpec, *, blocked: Iterable[str | None] = ()) -> list[Risk]:
        """What Databricks would only report after Create, each with its cost: a runtime
        whose Python is not the image's, a private registry with Registry auth "None", a
        node type the workspace does not offer (fields in `blocked` already fail validation:
        not said twice)."""
        found = [Risk(note, START_FAILS) for note in runtime_notes(spec.spark_version, self.image_python)]
        ref = _image_ref(values.image) if values.auth_mode == "none" else None
        if ref is not None and (why := self.private.get(ref.registry)):
            found.append(Risk(f"Registry auth is None, but the registry {ref.registry} needs credentials ({why}), so "
                              "the image cannot be pulled: choose a username and password under Registry auth.",
                              START_FAILS))
        skip = set(blocked)
        for name in ("node_type_id", "driver_node_type_id"):
            node = getattr(spec, name)
            if not self.node_types or name in skip or not isinstance(node, str) or not node:
                continue  # nothing to judge it by, or validation already refuses it
            problem = node_type_problem(node, self.node_types)
            if problem:
                found.append(Risk(f"{problem}.", CREATE_REFUSED))
        return found

    def auth_notes(self, values: FormValues, spec: ClusterSpec) -> list[str]:
        """Registry auth the form can see will not work: the pushed image's registry needed
        `--username` but no `{{secrets/...}}` reference holds its password (how to name one),
        and, on the local workspace, a reference that neither its secret store (`dcs secrets put
        --local`) nor the kernel's DCS_SECRET_<SCOPE>_<KEY> variable holds (the start would end
        in SECRET_RESOLUTION_ERROR)."""
        notes = []
        push = self.push
        if push is not None and push.username and values.auth_mode == "secret" \
                and not values.password_secret.strip() and self._pushed(values.image):
            notes.append(f"Registry auth: the push used --username {push.username}, but no secret reference is set "
                         "for the password. Store the password in a secret scope and name it: %dcs_push "
                         f"{push.reference} --username {push.username} --password-env VAR --secret-ref SCOPE/KEY, "
                         "or type a {{secrets/scope/key}} reference in Password reference.")
        if self.local:
            from ..adapters.secret_store import SecretStore

            store = SecretStore()
            for reference in secret_references(spec):
                variable = secret_variable(reference)
                scope, key = reference.strip("{} ").split("/", 2)[1:]
                if env(variable) is None and not store.has(scope, key):
                    notes.append(f"The local workspace reads {reference} from its secret store, which has no {key} "
                                 f"in scope {scope}, then from the environment variable {variable}, which is not "
                                 f"set in this kernel: `dcs secrets put --local --create-scope {scope} {key}` in a "
                                 f"terminal, or os.environ['{variable}'] = getpass.getpass(), or the start ends "
                                 "in SECRET_RESOLUTION_ERROR.")
        return notes

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
