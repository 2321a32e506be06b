"""`dcs doctor`: is this workspace (and this spec's registry) ready for Container Services?

One `CheckItem` per question, in the order a failure makes the later ones moot:

    workspace           the workspace answers at all
    credentials         the credentials work, and whose they are (scim/v2/Me)
    container services  the `enableDcs` workspace setting is on (how an admin turns it on if not)
    runtime             the spec's runtime is offered by the workspace and supports containers
    node types          the spec's node types exist and are x86_64
    registry            the spec's registry answers `GET /v2/` from here with its credentials
                        (a spec without basic_auth whose registry wants some: whether this
                        machine's `docker login`, credential helpers included, is let in, a
                        warning that the cluster will not have it)
    engine              (`dcs doctor`) which Docker engine builds, pushes and checks use, and
                        whether it answers: a warning when not, since the workspace needs none

The report is a `CheckReport` (like `%dcs_check`): `ok` when no error-severity item failed;
questions that could not be asked (no spec, a password that is a secret reference only the
cluster can resolve) are warnings that say what to give to ask them.

The rules are pure functions of the answers; `doctor()` asks the Workspace, and the
registry adapter's `probe()` (adapters/registry.py) is the one HTTP call to a registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..adapters import registry
from ..adapters.docker_login import TOKEN_USERNAME, docker_login
from ..adapters.registry import RegistryProbe
from ..errors import ApiError, DcsError, RegistryError
from ..model.imageref import parse_reference
from ..model.results import CheckItem, CheckReport
from ..model.secrets import is_secret_reference
from ..model.spec import ClusterSpec, dcs_node_types, dcs_runtimes, node_type_problem
from ..settings import env, secret_variable

if TYPE_CHECKING:  # imported lazily at run time
    from ..adapters.workspace import Workspace

__all__ = ["ENABLE_DCS_HOWTO", "doctor", "engine_item", "registry_credentials", "unconfigured"]

ENABLE_DCS_HOWTO = (
    "a workspace admin turns it on in the admin settings page > Compute > Container Services, or with "
    "`PATCH /api/2.0/workspace-conf` and the body {\"enableDcs\": \"true\"} "
    "(databricks workspace-conf set-status --json '{\"enableDcs\": \"true\"}')")


# -- the registry ---------------------------------------------------------------------------


def registry_credentials(docker_image: Mapping[str, Any] | None, *, local: bool = False
                         ) -> tuple[str | None, str | None, str]:
    """(username, password, note) for probing from here. A `{{secrets/scope/key}}` password is
    read, for the `local` preflight workspace, from its secret store (`dcs secrets put --local`),
    then from the environment variable DCS_SECRET_<SCOPE>_<KEY> when set (the local workspace's
    fallback); otherwise the note says it was not checked."""
    auth = (docker_image or {}).get("basic_auth") or {}
    username, password = auth.get("username"), auth.get("password")
    if not username:
        return None, None, ""
    if is_secret_reference(password):
        if local:
            from ..adapters.secret_store import SecretStore

            scope, key = str(password).strip("{} ").split("/", 2)[1:]
            stored = SecretStore().resolve(scope, key)
            if stored:
                return username, stored.decode("utf-8", "replace"), ""
        variable = secret_variable(str(password))
        value = env(variable)
        if not value:
            where = "the local secret store holds no such secret and " if local else ""
            return username, None, (f"the password is the reference {password}, which only the cluster resolves; "
                                    f"{where}set {variable} here to check it too")
        return username, value, ""
    return username, password, ""


def _registry_item(spec: ClusterSpec | None, probe: Callable[..., RegistryProbe], local: bool = False) -> CheckItem:
    body = spec.masked() if spec is not None else {}
    image = body.get("docker_image") or {}
    if not image.get("url"):
        return CheckItem("registry", False, "not checked: no spec with docker_image.url given",
                         "pass --spec FILE (a clusters/create JSON with docker_image)", severity="warning")
    try:  # the real credentials (a password_env variable is read here)
        real = (spec.to_dict(validate=False) if spec is not None else {}).get("docker_image") or {}
    except DcsError as exc:
        return CheckItem("registry", False, f"not checked: {exc.message}", exc.hint)
    username, password, note = registry_credentials(real, local=local)
    result = probe(image["url"], username, password)
    where = result.url
    if result.status is None:
        return CheckItem("registry", False, f"{where} does not answer from here: {result.reason}",
                         "check the registry host and port, VPN/proxy; the workspace's network must reach it too")
    if result.status == 200:
        who = f" as {username}" if result.authenticated else (" anonymously" if not username else "")
        if note:
            return CheckItem("registry", False, f"{where} answers{who}; {note}", note, severity="warning")
        return CheckItem("registry", True, f"{where} answers{who}")
    if result.status == 401:
        if username and password:
            return CheckItem("registry", False, f"{where} refused the credentials of {username} (401)",
                             "fix docker_image.basic_auth (ACR: the service principal's id and secret)")
        if note:
            return CheckItem("registry", False, f"{where} answers and wants credentials; {note}", note,
                             severity="warning")
        return _docker_login_item(image["url"], where, probe)
    return CheckItem("registry", False, f"{where} answered {result.status} {result.reason}",
                     "is this a Docker registry (distribution API v2)?")


def _docker_login_item(url: str, where: str, probe: Callable[..., RegistryProbe]) -> CheckItem:
    """The spec has no basic_auth and the registry wants credentials: ask it again with this
    machine's `docker login` (adapters/docker_login.py: credHelpers, credsStore, auths). Let in:
    a warning, since a cluster has only basic_auth (or, on ECR, an instance profile)."""
    fix = "add docker_image.basic_auth with the password as a {{secrets/scope/key}} reference"
    none = f"{where} wants credentials (401) and the spec has none"
    try:
        login = docker_login(parse_reference(url).registry)
    except RegistryError as exc:
        return CheckItem("registry", False, f"{none}; this machine's Docker login could not be read: {exc.message}",
                         f"{fix} (and for this machine: {exc.hint})")
    if login is None:
        return CheckItem("registry", False, none, fix)
    result = probe(url, login.username, login.password)
    who = f"{login.source}" + ("" if login.username == TOKEN_USERNAME else f", as {login.username}")
    if result.status == 200:
        return CheckItem("registry", False, f"{where} answers with this machine's Docker login ({who}), but the spec "
                         "has no basic_auth, so a cluster gets no credentials",
                         f"{fix} (ECR: or give the cluster an instance profile with ECR read)", severity="warning")
    return CheckItem("registry", False, f"{none}; this machine's Docker login ({who}) was refused too "
                     f"({result.status or result.reason})", fix)


# -- the Docker engine ---------------------------------------------------------------------------


def engine_item(timeout_s: float = 10.0) -> CheckItem:
    """Which Docker engine `build`, `push` and `check` use (`local`, `tcp://h:2376 (TLS)`,
    `ssh://user@h`, with the setting that chose it) and whether it answers. A warning when
    it does not: launching on a workspace needs no engine here."""
    from ..adapters.engine import connect, engine_address
    from ..errors import EngineError

    try:
        address = engine_address()
        with connect(timeout_s) as engine:
            version, platform = engine.server_version(), engine.platform()
    except EngineError as exc:
        return CheckItem("engine", False, exc.message, exc.hint, severity="warning")
    return CheckItem("engine", True, f"{address.label} answers: Docker {version}, {platform} "
                                     f"({address.source})")


# -- the workspace -----------------------------------------------------------------------------


def _runtime_support(key: str) -> str | None:
    """Why containers cannot run on runtime `key`, or None. The one place doctor asks the
    project's runtime knowledge."""
    from ..model.spec import runtime_refusal

    return runtime_refusal(key)


def _ask(call: Callable[[], Any]) -> tuple[Any, DcsError | None]:
    try:
        return call(), None
    except DcsError as exc:
        return None, exc


def doctor(workspace: Workspace, spec: ClusterSpec | None = None, *,
           probe: Callable[..., RegistryProbe] = registry.probe) -> CheckReport:
    """Ask the workspace (a `Workspace`) and the spec's registry; one CheckItem per question."""
    items: list[CheckItem] = []
    local = bool(getattr(workspace, "is_local", False))  # references resolve from its secret store
    me, error = _ask(workspace.current_user)
    if isinstance(error, ApiError) and error.status is None:
        items.append(CheckItem("workspace", False, f"{workspace.host} does not answer: {error.message}",
                               error.hint or "check the host URL and the network"))
        return CheckReport(workspace.host, items + _registry_items(spec, probe, local))
    if error is not None and not isinstance(error, ApiError):  # e.g. an OAuth refresh that failed
        items.append(CheckItem("credentials", False, str(error.message), error.hint))
        return CheckReport(workspace.host, items + _registry_items(spec, probe, local))
    items.append(CheckItem("workspace", True, f"{workspace.host} answers"))
    if error is not None and error.status in (401, 403):
        items.append(CheckItem("credentials", False, f"the workspace refused them: {error}",
                               error.hint or "create a new personal access token"))
        return CheckReport(workspace.host, items + _registry_items(spec, probe, local))
    if error is not None:  # a 5xx, a 429 after retries, an answer of the wrong shape: not a refusal
        items.append(CheckItem("credentials", False, f"cannot tell whose they are: {error}",
                               error.hint or "try again; if it persists, check the workspace's status page"))
        return CheckReport(workspace.host, items + _registry_items(spec, probe, local))
    who = (me or {}).get("userName") or (me or {}).get("displayName") or "an unnamed identity"
    profile = f" (profile {workspace.profile})" if getattr(workspace, "profile", None) else ""
    items.append(CheckItem("credentials", True, f"they work{profile}: {who}"))
    items.append(_dcs_item(*_ask(lambda: workspace.workspace_conf(["enableDcs"]))))
    items.append(_runtime_item(spec, *_ask(workspace.spark_versions)))
    items.append(_node_item(spec, *_ask(workspace.node_types)))
    return CheckReport(workspace.host, items + _registry_items(spec, probe, local))


def unconfigured(error: DcsError) -> CheckReport:
    """The report when no workspace could even be configured (no host or credentials)."""
    return CheckReport("(no workspace)", [CheckItem("credentials", False, error.message, error.hint)])


def _registry_items(spec: ClusterSpec | None, probe: Callable[..., RegistryProbe],
                    local: bool = False) -> list[CheckItem]:
    return [_registry_item(spec, probe, local)]


def _dcs_item(conf: Any, error: DcsError | None) -> CheckItem:
    if error is not None:
        return CheckItem("container services", False, f"could not read the enableDcs setting: {error.message}",
                         "ask a workspace admin whether Container Services is on; " + ENABLE_DCS_HOWTO,
                         severity="warning" if isinstance(error, ApiError) and error.status == 403 else "error")
    value = str((conf or {}).get("enableDcs")).lower()
    if value == "true":
        return CheckItem("container services", True, "enabled (enableDcs = true)")
    state = "never set" if (conf or {}).get("enableDcs") is None else f"enableDcs = {value}"
    return CheckItem("container services", False, f"not enabled ({state}): clusters with docker_image are refused",
                     ENABLE_DCS_HOWTO)


def _runtime_item(spec: ClusterSpec | None, versions: Any, error: DcsError | None) -> CheckItem:
    if error is not None:
        return CheckItem("runtime", False, f"could not list runtimes: {error.message}", error.hint)
    keys = {v.get("key"): v for v in versions or []}
    key = spec.spark_version if spec is not None else None
    if not key:
        usable = dcs_runtimes(versions or [])
        if not usable:
            return CheckItem("runtime", False, "the workspace offers no runtime that supports containers",
                             "ask a workspace admin which runtimes are available")
        return CheckItem("runtime", True, f"{len(usable)} runtimes support containers (e.g. {usable[0]['key']})")
    if key not in keys:
        offered = ", ".join(v["key"] for v in dcs_runtimes(versions or [])[:4])
        return CheckItem("runtime", False, f"{key} is not offered by this workspace",
                         f"pick one it offers: {offered}")
    reason = _runtime_support(key)
    if reason:
        return CheckItem("runtime", False, reason, "pick a standard (non-ML, x86_64) runtime")
    return CheckItem("runtime", True, f"{key} is offered and supports containers")


def _node_item(spec: ClusterSpec | None, node_types: Any, error: DcsError | None) -> CheckItem:
    if error is not None:
        return CheckItem("node types", False, f"could not list node types: {error.message}", error.hint)
    wanted = [n for n in ((spec.node_type_id, spec.driver_node_type_id) if spec is not None else ()) if n]
    if not wanted:
        usable = dcs_node_types(node_types or [])
        if not usable:
            return CheckItem("node types", False, "the workspace lists no x86_64 node type",
                             "ask a workspace admin")
        return CheckItem("node types", True, f"{len(usable)} x86_64 node types (e.g. {usable[0]['node_type_id']})")
    for node in dict.fromkeys(wanted):
        reason = node_type_problem(node, node_types or [])
        if reason:
            return CheckItem("node types", False, reason,
                             "pick an x86_64 node type the workspace lists (Workspace.node_types(); the "
                             "clouds differ: AWS i3.xlarge, Azure Standard_DS3_v2, GCP n2-standard-4)")
    return CheckItem("node types", True, f"{', '.join(dict.fromkeys(wanted))} exist and are x86_64")

