"""`Workspace`: a small Clusters API client on a `requests.Session`.

Credentials are resolved by the Databricks SDK's own `Config` (arguments, `DATABRICKS_*`
variables, `~/.databrickscfg` / `DATABRICKS_CONFIG_FILE` profiles, OAuth, Azure, ...), and
`Config.authenticate()` gives the headers of every request. Only the SDK's public API is
used (`databricks.sdk.core.Config` with documented arguments, `databricks.sdk.errors`);
supported: databricks-sdk >= 0.120 (see pyproject), the oldest and newest tested in CI.

- The host is checked (https, or plain http for a loopback host only) before the Config is
  made, so a mistyped host fails at once and no request ever leaves over plain http to a
  remote host (the SDK probes `<host>/.well-known/databricks-config` while making it).
  That probe is best-effort and bounded by the Config's `http_timeout_seconds` and
  `retry_timeout_seconds` (`SDK_PROBE_TIMEOUT_S`); when it fails the SDK logs one warning.
- Retries are a urllib3 `Retry` on the session, not a loop: connection errors, 429 and 503
  (honouring `Retry-After`, capped at `MAX_RETRY_AFTER_S`), and 502/504, with exponential
  backoff. `clusters/create` is the one call that is not idempotent, so it has its own,
  stricter policy (see `_create_retry`).

Errors: `api_error` picks the ApiError subclass by HTTP status (NotFound, PermissionDenied,
TooManyRequests, ...; the SDK's typed errors map to the same classes) and adds the
product's hint for it; 401/403 name the host and profile (never the token); `ConfigError`
when nothing is configured.
"""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .._version import __version__
from ..errors import (
    ApiError,
    BadRequest,
    ClusterError,
    ConfigError,
    DcsError,
    DeadlineExceeded,
    InternalError,
    NotFound,
    PermissionDenied,
    ResourceConflict,
    SpecError,
    TemporarilyUnavailable,
    TooManyRequests,
    Unauthenticated,
    api_error_class,
)
from ..model.credentials import Secret
from ..model.jobs import FINAL_STATES, RunError, submit_body
from ..model.net import is_loopback
from ..model.spec import ClusterSpec, upload_destination
from ..settings import (
    CLUSTER_TIMEOUT_S,
    DATABRICKS_CONFIG_FILE,
    DATABRICKS_CONFIG_FILE_DEFAULT,
    DATABRICKS_CONFIG_PROFILE,
    DATABRICKS_HOST,
    RUN_TIMEOUT_S,
    env,
)
from .follow import ENDED_STATES, MAX_POLL_INTERVAL_S, ClusterFollower, PollPolicy

if TYPE_CHECKING:
    from databricks.sdk.core import Config
    from typing_extensions import Self  # Python 3.10 has no typing.Self

__all__ = [
    "HOW_TO_CONFIGURE",
    "MAX_RETRY_AFTER_S",
    "TERMINATION_HINTS",
    "Workspace",
    "api_error",
    "check_host",
    "cluster_error",
    "open_workspace",
]

MAX_RETRY_AFTER_S = 60.0
"""A server's `Retry-After` is honoured up to this many seconds per retry."""

# The real service answers clusters/get for an unknown id with 400 INVALID_PARAMETER_VALUE.
_MISSING = re.compile(r"[Cc]luster \S+ does not exist")
HOW_TO_CONFIGURE = (
    "set DATABRICKS_HOST and DATABRICKS_TOKEN, or add a profile to ~/.databrickscfg (or the file "
    "DATABRICKS_CONFIG_FILE names) and select it with --profile NAME; in Python: "
    "Workspace(host='https://...', token=...) or Workspace(profile='NAME')"
)
"""The hint of every "no usable workspace" error. The same words serve the `dcs` command, a
script and a notebook; the notebook adds its own way (`%config DcsMagics.profile`) where it
shows the error (jupyter/magics.py), so the command line never suggests a notebook setting."""

TERMINATION_HINTS: dict[str, str] = {
    "DOCKER_IMAGE_PULL_FAILURE": (
        "the cluster could not pull docker_image.url: check the reference (does that tag or digest exist "
        "in the registry?), that the registry is reachable from the workspace's network, and basic_auth; "
        "Docker Hub also rate-limits anonymous pulls"),
    "IMAGE_PULL_PERMISSION_DENIED": (
        "the registry refused the credentials: set docker_image.basic_auth (ACR: the service principal's "
        "id and secret; ECR: an instance profile allowed to pull) with the password as a "
        "{{secrets/scope/key}} reference"),
    "INIT_SCRIPT_FAILURE": (
        "an init script failed or could not be read: check that its destination exists and the cluster "
        "may read it (an %%init_script cell uploads it); if it ran, set "
        "cluster_log_conf to read its output and run it in the image locally"),
    "DOCKER_INVALID_OS_EXCEPTION": (
        "the image's OS is not usable by Databricks: build FROM a databricksruntime/* base (Ubuntu) for "
        "--platform linux/amd64 and run %dcs_check on it"),
    "DOCKER_CONTAINER_CREATION_EXCEPTION": (
        "the container could not be created: run %dcs_check on the image (java, bash, iproute2, procps, "
        "sudo, /databricks/python3)"),
    "DOCKER_IMAGE_TOO_LARGE_FOR_INSTANCE_EXCEPTION": (
        "the image does not fit the node's disk: slim the image or pick a node type with a larger disk"),
    "CONTAINER_LAUNCH_FAILURE": (
        "the container started but Databricks could not launch in it: run %dcs_check on the image; "
        "CMD/ENTRYPOINT are ignored, so work at start belongs in init scripts"),
    "SLOW_IMAGE_DOWNLOAD": (
        "pulling the image took too long: make it smaller or use a registry in the workspace's region"),
    "SPARK_STARTUP_FAILURE": (
        "Spark did not start in the container: check that /databricks/python3 matches the runtime "
        "(%dcs_check IMAGE --runtime X.Y) and that the JDK fits the runtime"),
    "SECRET_RESOLUTION_ERROR": (
        "a {{secrets/scope/key}} reference could not be resolved: check the scope and key exist and that "
        "the cluster's owner may READ the scope"),
    "USER_REQUEST": "a user terminated the cluster",
    "INACTIVITY": "the cluster was idle for autotermination_minutes and stopped itself",
}


# -- host checks and the SDK's Config ----------------------------------------------------


def check_host(host: str) -> str:
    """Normalise a workspace host to `scheme://netloc` or raise ConfigError.

    https is required; plain http only for loopback hosts (local test and preflight servers),
    because the token travels in every request.
    """
    text = str(host).strip().rstrip("/")
    parsed = urllib.parse.urlparse(text if "://" in text else f"https://{text}")
    if parsed.scheme not in ("https", "http") or not parsed.hostname:
        raise ConfigError(f"{host!r} is not a workspace URL",
                          hint="write it like https://<name>.cloud.databricks.com")
    if parsed.scheme == "http" and not is_loopback(parsed.hostname):
        raise ConfigError(f"{host!r} uses plain http; the token would travel unencrypted",
                          hint=f"use https://{parsed.netloc} (plain http is accepted for loopback hosts only)")
    return f"{parsed.scheme}://{parsed.netloc}"


def _configured_host(host: str | None, profile: str | None) -> str | None:
    """The host the SDK's Config is about to use, read before it probes the host: the
    argument, else DATABRICKS_HOST, else the selected profile of DATABRICKS_CONFIG_FILE or
    ~/.databrickscfg. Best-effort (it only lets `check_host` refuse a plain-http or malformed
    host before any request); the host the Config resolves is checked again afterwards."""
    import configparser
    import os

    if host:
        return host
    if not profile and env(DATABRICKS_HOST):
        return env(DATABRICKS_HOST)
    path = os.path.expanduser(env(DATABRICKS_CONFIG_FILE) or DATABRICKS_CONFIG_FILE_DEFAULT)
    parser = configparser.ConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None  # the SDK reports an unreadable file
    name = profile or env(DATABRICKS_CONFIG_PROFILE) or \
        parser.get("__settings__", "default_profile", fallback=None) or "DEFAULT"
    if name == "DEFAULT":
        return parser.defaults().get("host")
    return parser.get(name, "host", fallback=None) if parser.has_section(name) else None


def _sdk_reason(exc: Exception) -> str:
    """The SDK's message without its documentation link and debug dump."""
    text = str(exc)
    for cut in (", please check", ". Config:", ". Env:"):
        text = text.split(cut)[0]
    return text.strip()


SDK_PROBE_TIMEOUT_S = 5
"""Bound on the SDK's best-effort `/.well-known/databricks-config` probe when a Config is
made (databricks-sdk >= 0.120 builds the probe's client from the Config's documented
`http_timeout_seconds`/`retry_timeout_seconds`; without them it retries for 300 s)."""


@dataclass(frozen=True)
class _BearerToken:
    """The parts of the SDK's Config a Workspace uses, for a host and token given as they are
    (the local preflight workspace's: importing the SDK would cost ~2 s per command)."""

    host: str
    token: str
    profile: str | None = None

    def authenticate(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _resolve_config(host: str | None, token: str | None, profile: str | None, timeout: float) -> Config:
    """The SDK's Config (public constructor arguments only), its host checked."""
    early = _configured_host(host, profile)
    if early:
        check_host(early)  # before the SDK's metadata probe: a bad host fails at once
    kwargs: dict[str, Any] = {"host": host, "token": token, "profile": profile,
                              "http_timeout_seconds": max(1, min(int(timeout), SDK_PROBE_TIMEOUT_S)),
                              "retry_timeout_seconds": SDK_PROBE_TIMEOUT_S}
    if token:
        kwargs["auth_type"] = "pat"  # an explicit token wins over OAuth variables in the environment
    from databricks.sdk.core import Config  # deferred: importing the SDK takes ~2 s

    try:
        config = Config(**{k: v for k, v in kwargs.items() if v is not None})
    except ValueError as exc:
        where = f" (profile {profile})" if profile else ""
        raise ConfigError(f"No usable Databricks workspace credentials{where}: {_sdk_reason(exc)}",
                          hint=HOW_TO_CONFIGURE) from exc
    if not config.host:
        raise ConfigError("No Databricks workspace host configured", hint=HOW_TO_CONFIGURE)
    check_host(config.host)
    return config


# -- errors ---------------------------------------------------------------------------------

_CREDENTIALS_HINT = "create a new personal access token and update DATABRICKS_TOKEN or the profile"
# The product's hints, by error class (the class is picked by HTTP status, as the SDK does).
_HINTS: dict[type[ApiError], str] = {
    Unauthenticated: "the workspace refused the credentials: the token may be missing, expired or revoked; "
                     + _CREDENTIALS_HINT,
    PermissionDenied: "the credentials lack permission for this call; " + _CREDENTIALS_HINT,
    NotFound: "check the id or path (terminated clusters disappear after 30 days)",
    BadRequest: "the workspace's message names the field to fix",
    ResourceConflict: "the workspace's message names the field to fix",
}
# By error_code, before the class's hint.
_CODE_HINTS: dict[str, str] = {
    "RESOURCE_DOES_NOT_EXIST": _HINTS[NotFound],
    "FEATURE_DISABLED": "a workspace admin must enable Container Services (Settings > Compute)",
}


def api_error(status: int, body: Any, *, what: str, host: str, profile: str | None,
              retried: int = 0) -> ApiError:
    """The ApiError subclass for an HTTP error answer, with the product's hint.

    401/403 name the host and profile (never the token). The real service answers
    clusters/get for an unknown id with 400 "Cluster ... does not exist": that is NotFound.
    """
    klass = api_error_class(status)
    code = body.get("error_code") if isinstance(body, Mapping) else None
    if klass is BadRequest and (code == "RESOURCE_DOES_NOT_EXIST" or _MISSING.search(str(body))):
        klass = NotFound
    if klass in (Unauthenticated, PermissionDenied):
        what = f"{what} on {host} (profile {profile or 'none'})"
    if status == 429 or status >= 500:
        hint = (f"the workspace still answered {status} after {retried} retries"
                f"{' honouring Retry-After' if status in (429, 503) else ''}; try again in a few minutes")
    else:
        hint = _CODE_HINTS.get(str(code), "") or _HINTS.get(klass, _HINTS[BadRequest])
    return klass.from_response(status, body, what=what, hint=hint)


def _credentials_error(exc: Exception, host: str, profile: str | None) -> DcsError:
    """An error from Config.authenticate(): the SDK's typed API errors map to ours; anything
    else (OAuth/Azure CLI refresh failures come as many types) is a ConfigError."""
    from databricks.sdk import errors as sdk_errors

    where = f"could not get credentials for {host} (profile {profile})"
    sdk_classes: tuple[tuple[type[Exception], type[ApiError]], ...] = (
        (sdk_errors.Unauthenticated, Unauthenticated), (sdk_errors.PermissionDenied, PermissionDenied),
        (sdk_errors.NotFound, NotFound), (sdk_errors.BadRequest, BadRequest),
        (sdk_errors.ResourceConflict, ResourceConflict), (sdk_errors.TooManyRequests, TooManyRequests),
        (sdk_errors.TemporarilyUnavailable, TemporarilyUnavailable), (sdk_errors.InternalError, InternalError),
        (sdk_errors.DeadlineExceeded, DeadlineExceeded),
    )
    for sdk_class, ours in sdk_classes:
        if isinstance(exc, sdk_class):
            return ours(f"{where}: {_sdk_reason(exc)}", error_code=getattr(exc, "error_code", None),
                        hint=_HINTS.get(ours, HOW_TO_CONFIGURE))
    return ConfigError(f"{where}: {_sdk_reason(exc)}", hint=HOW_TO_CONFIGURE)


# -- retries -------------------------------------------------------------------------------


class _Retry(Retry):
    """urllib3 Retry that caps a server's Retry-After (urllib3 1.26 has no retry_after_max)."""

    def get_retry_after(self, response: Any) -> float | None:
        value = super().get_retry_after(response)
        return None if value is None else min(value, MAX_RETRY_AFTER_S)


_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "POST"})


def _idempotent_retry(retries: int, backoff_factor: float) -> Retry:
    """Every call but clusters/create is idempotent (GETs, overwrite uploads, delete, events):
    retry connection and read errors, 429, 502, 503 and 504."""
    return _Retry(total=retries, connect=retries, read=retries, status=retries, other=0,
                  backoff_factor=backoff_factor, status_forcelist=frozenset({429, 502, 503, 504}),
                  allowed_methods=_METHODS, respect_retry_after_header=True, raise_on_status=False)


def _create_retry(retries: int, backoff_factor: float) -> Retry:
    """clusters/create makes a cluster each time it is processed, so only answers that say it
    was not processed are retried: connection errors (nothing was sent), 429 (rate limited
    before processing) and 503 (the API answers TEMPORARILY_UNAVAILABLE before acting; the
    Databricks SDK retries it for every method too). A read error or 502/504 may come after
    the cluster was made, so they are not retried: one error is better than two clusters.
    Residual risk: a proxy's 503 after the workspace acted could still give a duplicate."""
    return _Retry(total=retries, connect=retries, read=0, status=retries, other=0,
                  backoff_factor=backoff_factor, status_forcelist=frozenset({429, 503}),
                  allowed_methods=frozenset({"POST"}), respect_retry_after_header=True, raise_on_status=False)


def _retries_used(response: requests.Response) -> int:
    retries = getattr(response.raw, "retries", None)
    return len(getattr(retries, "history", ()) or ())


def open_workspace(profile: str | None = None, *, local: bool = False, session: bool = False,
                   **kwargs: Any) -> Workspace:
    """The workspace the magics use: the local preflight one, or the profile's (None: the SDK's
    default resolution). Raises ConfigError saying how to configure one. `session` (the
    magics): local clusters created from now on end with this process, as a kernel's do."""
    if local:
        return Workspace.local(**({"clusters_end_with_process": True} if session else {}), **kwargs)
    return Workspace(profile=profile, **kwargs)


# -- cluster outcomes ------------------------------------------------------------------------


def cluster_error(info: Mapping[str, Any], *, url: str | None = None) -> ClusterError:
    """A ClusterError for a TERMINATED/ERROR `clusters/get` answer, with a hint per code."""
    reason = info.get("termination_reason") or {}
    code = reason.get("code")
    params = reason.get("parameters") or {}
    detail = info.get("state_message") or params.get("databricks_error_message") or ""
    state = info.get("state")
    cluster_id = info.get("cluster_id")
    text = f"cluster {cluster_id} is {state}"
    if code:
        text += f" ({code})"
    if detail:
        text += f": {detail}"
    hint = TERMINATION_HINTS.get(code or "", "read the cluster's event log (Workspace.events(cluster_id))")
    if cluster_id and state in ("TERMINATED", "ERROR"):
        hint += f"; the cause from its events and logs: dcs why {cluster_id}"
    if url:
        hint += f"; cluster page: {url}"
    return ClusterError(text, cluster_id=cluster_id, state=state, termination_code=code,
                        termination_type=reason.get("type"), parameters=params, hint=hint)


# -- the client --------------------------------------------------------------------------


class Workspace:
    """A Databricks workspace's Clusters API (and the uploads init scripts need).

    `host`, `token`, `profile` resolve like the Databricks CLI and SDK: arguments, then
    `DATABRICKS_*` variables, then `~/.databrickscfg` (or `DATABRICKS_CONFIG_FILE`).
    `api_version` is the Clusters API version in every clusters path. `timeout` bounds each
    HTTP request (seconds); `retries` bounds retries per request. `sdk_auth=False` with a host
    and a token sends the token as a bearer token without the SDK's Config (the local
    preflight workspace's provider does: no SDK import).
    """

    def __init__(self, host: str | None = None, token: str | None = None, profile: str | None = None, *,
                 api_version: str = "2.1", timeout: float = 30.0, retries: int = 5,
                 backoff_factor: float = 0.5, poll_s: tuple[float, float] = (1.0, MAX_POLL_INTERVAL_S),
                 sdk_auth: bool = True) -> None:
        if host:
            host = check_host(host)  # before the SDK sees it: no request for a bad host
        if not sdk_auth and host and token:  # a bearer token as given (the local workspace's provider)
            self._config: Config | _BearerToken = _BearerToken(host, token)
        else:
            self._config = _resolve_config(host, token, profile, timeout)
        self.host: str = check_host(self._config.host)
        self.profile: str | None = self._config.profile or profile
        self.api_version = api_version
        self.timeout = timeout
        # (first pause, cap) between state polls; the pause grows by `first` while nothing
        # changes and starts over after a change (progress tends to come in bursts).
        # Every follower of this workspace's clusters and runs pauses so (`polling`).
        self.poll_s = poll_s
        self._session = requests.Session()
        general = HTTPAdapter(max_retries=_idempotent_retry(retries, backoff_factor))
        self._session.mount("https://", general)
        self._session.mount("http://", general)
        # requests picks the adapter with the longest matching prefix.
        self._session.mount(self._clusters_url("create"),
                            HTTPAdapter(max_retries=_create_retry(retries, backoff_factor)))
        # What the workspace's provider may say about it (the local preflight workspace does,
        # dcs_magic.preflight.local_workspace): the hint of an answer that an id or path does not
        # exist, and whether hints may link to its pages (`cluster_url`): not when they end with
        # this process while its clusters go on (a `dcs` command's local workspace).
        self.not_found_hint: str = _HINTS[NotFound]
        self.page_links: bool = True
        self.is_local: bool = False  # the local preflight workspace (its provider sets it)

    @classmethod
    def local(cls, **kwargs: Any) -> Workspace:
        """The local preflight workspace (started on first use, once per process).

        Provided by the `local` entry point of the `dcs_magic.workspaces` group
        (`dcs_magic.preflight:local_workspace`, taking this class's keyword arguments):
        this client does not know its emulator.
        """
        from importlib.metadata import entry_points

        found = list(entry_points(group="dcs_magic.workspaces", name="local"))
        if not found:
            raise ConfigError("the local preflight workspace is not registered in this installation "
                              "(no `local` entry point in the dcs_magic.workspaces group)",
                              hint="reinstall dcs-magic (`pip install -e .` in a checkout) so its entry "
                                   "points are registered; meanwhile target a real workspace")
        try:
            provider = found[0].load()
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"the local preflight workspace ({found[0].value}) cannot be loaded: {exc}",
                              hint="reinstall dcs-magic; meanwhile target a real workspace") from exc
        workspace: Workspace = provider(**kwargs)
        return workspace

    def __repr__(self) -> str:
        return f"Workspace(host={self.host!r}, profile={self.profile!r})"

    def close(self) -> None:
        """Close the HTTP connections."""
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- HTTP -----------------------------------------------------------------------------

    def _clusters_url(self, name: str) -> str:
        return f"{self.host}/api/{self.api_version}/clusters/{name}"

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        try:
            headers = dict(self._config.authenticate())
        except Exception as exc:  # OAuth/Azure refresh failures come as many types
            raise _credentials_error(exc, self.host, self.profile) from exc
        headers["User-Agent"] = f"dcs-magic/{__version__}"
        headers.update(extra or {})
        return headers

    def _request(self, method: str, url: str, *, what: str, params: Mapping[str, Any] | None = None,
                 json: Any = None, data: bytes | None = None,
                 headers: Mapping[str, str] | None = None, any_json: bool = False) -> Any:
        """The JSON object answered (`{}` for an empty answer); ApiError for another JSON value
        unless `any_json` (creates, whose callers say the cluster or run may exist)."""
        response = self._send(method, url, what=what, params=params, json=json, data=data, headers=headers)
        if not response.content:
            return {}
        try:
            answer: Any = response.json()
        except ValueError as exc:
            raise ApiError(f"{what}: the answer is not JSON", status=response.status_code,
                           hint=f"is {self.host} a Databricks workspace URL?") from exc
        if not isinstance(answer, dict) and not any_json:  # every endpoint used answers a JSON object
            raise self._shape_error(what, "the answer", answer, "a JSON object", response.status_code)
        return answer

    def _shape_error(self, what: str, name: str, value: Any, expected: str, status: int | None = 200) -> ApiError:
        preview = self._redact(_json_text(value)[:120])
        said = f"its answer is {_json_kind(value)}" if name == "the answer" else \
            f"it answered {name} as {_json_kind(value)}"
        return ApiError(f"{what}: {said} ({preview}) where the API gives {expected}", status=status,
                        hint=f"is {self.host} a Databricks workspace (or a proxy in front of one)? "
                             "Try again; if it persists, check the URL and the workspace's status page")

    def _checked(self, answer: dict[str, Any], what: str, shape: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
        """ANSWER, after checking each present field of SHAPE (name -> type, or `_OBJECTS` for a
        list of JSON objects): ApiError naming the field otherwise."""
        for name, kind in shape.items():
            value = answer.get(name)
            if value is None:
                continue
            if kind is _OBJECTS:
                ok = isinstance(value, list) and all(isinstance(item, dict) for item in value)
                expected = "a list of objects"
            else:
                ok = isinstance(value, kind) and not (isinstance(value, bool) and kind is int)
                expected = {str: "a string", int: "a number", dict: "an object", list: "a list",
                            bool: "true or false"}.get(kind, str(kind))
            if not ok:
                raise self._shape_error(what, f"{prefix}{name}", value, expected)
        return answer

    def _send(self, method: str, url: str, *, what: str, params: Mapping[str, Any] | None = None,
              json: Any = None, data: bytes | None = None, headers: Mapping[str, str] | None = None,
              stream: bool = False) -> requests.Response:
        """One request; an error answer raised as the ApiError for its status."""
        try:
            response = self._session.request(method, url, params=params, json=json, data=data,
                                             headers=self._headers(headers), timeout=self.timeout,
                                             stream=stream)
        except (requests.ReadTimeout, requests.ConnectionError) as exc:
            if not _is_read_timeout(exc):
                raise ApiError(f"{what}: cannot reach {self.host}: {self._redact(_short(exc))}", status=None,
                               hint="check the host URL, the network (VPN, proxy) and that the workspace is up"
                               ) from exc
            # The request was sent: the workspace may have acted on it (a create made a cluster).
            name = json.get("cluster_name") if isinstance(json, Mapping) else None
            hint = ("the cluster may have been created anyway: before creating it again, list the "
                    f"clusters (Workspace.list_clusters(), or the workspace's Compute page) and look for "
                    f"cluster_name {name!r}" if what == "clusters/create" else
                    "the request may still have taken effect; check before repeating it")
            raise DeadlineExceeded(f"{what}: no answer from {self.host} within {self.timeout:g} s",
                                   status=None, hint=hint) from exc
        except requests.RequestException as exc:
            raise ApiError(f"{what}: cannot reach {self.host}: {self._redact(_short(exc))}", status=None,
                           hint="check the host URL, the network (VPN, proxy) and that the workspace is up"
                           ) from exc
        if response.status_code >= 400:
            raise self._api_error(response, what)
        return response

    def _api_error(self, response: requests.Response, what: str) -> ApiError:
        try:
            body: Any = response.json()
        except ValueError:
            body = response.content.decode("utf-8", "replace")
        # A server (or proxy) may echo the request's Authorization header in its error body.
        error = api_error(response.status_code, _redacted(body, self._config.token), what=what,
                          host=self.host, profile=self.profile, retried=_retries_used(response))
        if isinstance(error, NotFound) and error.hint == _HINTS[NotFound]:
            error.hint = self.not_found_hint
        return error

    def _redact(self, text: str) -> str:
        return redact(text, self._config.token)

    # -- clusters -------------------------------------------------------------------------

    def create_cluster(self, spec: ClusterSpec | Mapping[str, Any]) -> str:
        """Validate and send clusters/create; return the new cluster_id. SpecError before
        any request when the spec is invalid."""
        spec = spec if isinstance(spec, ClusterSpec) else ClusterSpec.from_dict(spec)
        body = spec.to_dict(validate=True)
        answer = self._request("POST", self._clusters_url("create"), json=body, what="clusters/create",
                               any_json=True)
        cluster_id = answer.get("cluster_id") if isinstance(answer, Mapping) else None
        if not cluster_id:
            raise ApiError(f"clusters/create answered without a cluster_id: {str(answer)[:200]}", status=200,
                           hint=f"is {self.host} a Databricks workspace URL? The cluster may exist: list "
                                f"the clusters and look for cluster_name {body.get('cluster_name')!r}")
        return str(cluster_id)

    def get_cluster(self, cluster_id: str) -> dict[str, Any]:
        """clusters/get: the cluster's info (state, state_message, termination_reason, ...)."""
        what = f"clusters/get {cluster_id}"
        answer = self._request("GET", self._clusters_url("get"), params={"cluster_id": cluster_id}, what=what)
        return self._checked(answer, what, _CLUSTER_SHAPE)

    @property
    def polling(self) -> PollPolicy:
        """This workspace's pauses between state polls (from `poll_s`): `wait_for_cluster`,
        `wait_for_run` and the launch form's follower all take them."""
        first, cap = self.poll_s
        return PollPolicy(first, cap)

    def wait_for_cluster(self, cluster_id: str, timeout_s: float = CLUSTER_TIMEOUT_S,
                         on_state: Callable[[dict[str, Any]], Any] | None = None,
                         *, sleep: Callable[[float], Any] = time.sleep,
                         clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
        """Poll until RUNNING (return its info) or TERMINATED/ERROR (raise ClusterError).

        `on_state(info)` is called whenever state or state_message changes. Pauses grow
        1, 2, 3, ... seconds up to MAX_POLL_INTERVAL_S while nothing changes and start over
        after a change (`polling`, from `poll_s`; the local preflight workspace polls every
        0.1 s, so a state change is seen within that). After `timeout_s` a ClusterError
        carries the last state (the cluster keeps starting; wait again or terminate it).
        The polling is `follow.ClusterFollower`'s, as in the launch form.
        """
        follower = ClusterFollower(self, cluster_id, on_state=on_state, sleep=sleep, clock=clock)
        info = follower.follow(("RUNNING",), timeout_s)
        assert info is not None  # nothing stops this follower but an answer
        page = self.cluster_url(cluster_id) if self.page_links else None
        if info.get("state") in ENDED_STATES:
            raise cluster_error(info, url=page)
        if info.get("state") != "RUNNING":
            raise ClusterError(f"cluster {cluster_id} is still {info.get('state')} after {timeout_s:g} s",
                               cluster_id=cluster_id, state=info.get("state"),
                               hint="wait again with wait_for_cluster, or terminate it"
                                    + (f": {page}" if page else f" (terminate_cluster({cluster_id!r}))"))
        return info

    def _follow(self, fetch: Callable[[], dict[str, Any]], key: Callable[[dict[str, Any]], Any],
                done: Callable[[dict[str, Any]], bool], timeout_s: float,
                on_state: Callable[[dict[str, Any]], Any] | None, timed_out: Callable[[dict[str, Any]], Exception],
                sleep: Callable[[float], Any], clock: Callable[[], float]) -> dict[str, Any]:
        """Poll `fetch` until `done`; call `on_state` when `key` changes; raise `timed_out(last)`.

        Pauses follow `polling` (as a cluster's follower does), never past the deadline.
        """
        policy = self.polling
        deadline = clock() + timeout_s
        seen: Any = object()
        pause = 0.0
        while True:
            answer = fetch()
            now = key(answer)
            changed = now != seen
            if changed and on_state is not None:
                on_state(answer)
            seen = now
            if done(answer):
                return answer
            remaining = deadline - clock()
            if remaining <= 0:
                raise timed_out(answer)
            pause = policy.next_pause(pause, changed=changed)
            sleep(min(pause, remaining))

    def terminate_cluster(self, cluster_id: str) -> None:
        """clusters/delete: terminate (not permanently delete) the cluster."""
        self._request("POST", self._clusters_url("delete"), json={"cluster_id": cluster_id},
                      what=f"clusters/delete {cluster_id}")

    def list_clusters(self) -> list[dict[str, Any]]:
        """clusters/list, every page."""
        clusters: list[dict[str, Any]] = []
        params: dict[str, Any] = {}
        while True:
            answer = self._request("GET", self._clusters_url("list"), params=params, what="clusters/list")
            clusters += answer.get("clusters") or []
            token = answer.get("next_page_token")
            if not token:
                return clusters
            params = {"page_token": token}

    def spark_versions(self) -> list[dict[str, Any]]:
        """clusters/spark-versions: `[{"key": ..., "name": ...}, ...]` (every runtime)."""
        what = "clusters/spark-versions"
        answer = self._checked(self._request("GET", self._clusters_url("spark-versions"), what=what), what,
                               {"versions": _OBJECTS})
        versions: list[dict[str, Any]] = answer.get("versions") or []
        for index, item in enumerate(versions):
            self._checked(item, what, {"key": str, "name": str}, f"versions[{index}].")
        return versions

    def node_types(self) -> list[dict[str, Any]]:
        """clusters/list-node-types: the node type dicts (every one; see spec.dcs_node_types)."""
        what = "clusters/list-node-types"
        answer = self._checked(self._request("GET", self._clusters_url("list-node-types"), what=what), what,
                               {"node_types": _OBJECTS})
        node_types: list[dict[str, Any]] = answer.get("node_types") or []
        for index, item in enumerate(node_types):
            self._checked(item, what, {"node_type_id": str, "num_cores": (int, float), "memory_mb": (int, float)},
                          f"node_types[{index}].")
        return node_types

    def events(self, cluster_id: str, *, event_types: list[str] | None = None, order: str = "DESC",
               page_size: int = 50, limit: int | None = None, start_time: int | None = None,
               end_time: int | None = None) -> Iterator[dict[str, Any]]:
        """clusters/events, following `next_page` until `limit` events (None: all)."""
        body: dict[str, Any] = {"cluster_id": cluster_id, "order": order, "page_size": page_size}
        body.update({k: v for k, v in (("event_types", event_types), ("start_time", start_time),
                                       ("end_time", end_time)) if v is not None})
        count = 0
        while body:
            answer = self._request("POST", self._clusters_url("events"), json=body,
                                   what=f"clusters/events {cluster_id}")
            for event in answer.get("events") or []:
                if limit is not None and count >= limit:
                    return
                count += 1
                yield event
            body = answer.get("next_page") or {}

    def cluster_url(self, cluster_id: str) -> str:
        """The cluster's page in the workspace UI."""
        return f"{self.host}/compute/clusters/{cluster_id}"

    # -- uploads (init scripts) -------------------------------------------------------------

    def upload(self, dest: str, content: str | bytes, *, overwrite: bool = True) -> dict[str, Any]:
        """Upload a file to `/Workspace/...` (workspace import), `/Volumes/...` (Files API) or
        `dbfs:/...` (DBFS put); return the `init_scripts` item that references it."""
        item = upload_destination(dest)
        kind, path = next(iter(item)), item[next(iter(item))]["destination"]
        data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
        if kind == "workspace":
            self._upload_workspace(path, data, overwrite)
        elif kind == "volumes":
            self._request("PUT", f"{self.host}/api/2.0/fs/files{urllib.parse.quote(path)}",
                          params={"overwrite": str(overwrite).lower()}, data=data,
                          headers={"Content-Type": "application/octet-stream"}, what=f"upload {path}")
        else:  # dbfs
            if len(data) > 1_000_000:
                raise SpecError(f"{path} is {len(data)} bytes; DBFS put takes at most 1 MB inline",
                                field="init_scripts", hint="upload to /Volumes/... instead")
            self._request("POST", f"{self.host}/api/2.0/dbfs/put",
                          json={"path": path[len("dbfs:"):], "contents": _b64(data), "overwrite": overwrite},
                          what=f"upload {path}")
        return item

    def _upload_workspace(self, path: str, data: bytes, overwrite: bool) -> None:
        parent = path.rsplit("/", 1)[0]
        self._request("POST", f"{self.host}/api/2.0/workspace/mkdirs", json={"path": parent},
                      what=f"mkdirs {parent}")
        self._request("POST", f"{self.host}/api/2.0/workspace/import",
                      json={"path": path, "format": "AUTO", "content": _b64(data), "overwrite": overwrite},
                      what=f"upload {path}")

    # -- reading files (delivered cluster logs: dcs why) ------------------------------------

    def list_files(self, path: str) -> list[RemoteFile]:
        """The entries directly under `/Volumes/...` (Files API) or `dbfs:/...` (DBFS API);
        NotFound when there is no such directory, PermissionDenied when the token may not read it."""
        kind, where = _file_location(path)
        found: list[RemoteFile] = []
        if kind == "dbfs":
            answer = self._request("GET", f"{self.host}/api/2.0/dbfs/list", params={"path": where},
                                   what=f"list {path}")
            for item in answer.get("files") or []:
                found.append(RemoteFile("dbfs:" + str(item.get("path")), bool(item.get("is_dir")),
                                        int(item.get("file_size") or 0), int(item.get("modification_time") or 0)))
            return found
        params: dict[str, Any] = {}
        url = f"{self.host}/api/2.0/fs/directories{urllib.parse.quote(where.rstrip('/'))}"
        while True:
            answer = self._request("GET", url, params=params, what=f"list {path}")
            for item in answer.get("contents") or []:
                modified = item.get("last_modified")
                found.append(RemoteFile(str(item.get("path")), bool(item.get("is_directory")),
                                        int(item.get("file_size") or 0),
                                        int(modified) if isinstance(modified, (int, float)) else 0))
            token = answer.get("next_page_token")
            if not token:
                return found
            params = {"page_token": token}

    def read_tail(self, path: str, max_bytes: int = 2**20) -> tuple[bytes, int]:
        """The last `max_bytes` of a file under `/Volumes/...` or `dbfs:/...`, and its whole
        size (a log can be large: only its tail is fetched and held)."""
        kind, where = _file_location(path)
        if kind == "dbfs":
            status = self._request("GET", f"{self.host}/api/2.0/dbfs/get-status", params={"path": where},
                                   what=f"read {path}")
            size = int(status.get("file_size") or 0)
            offset, chunks = max(0, size - max_bytes), []
            while offset < size:
                answer = self._request("GET", f"{self.host}/api/2.0/dbfs/read", what=f"read {path}",
                                       params={"path": where, "offset": offset, "length": min(2**20, size - offset)})
                data = base64.b64decode(answer.get("data") or "")
                if not data:
                    break
                chunks.append(data)
                offset += len(data)
            return b"".join(chunks), size
        url = f"{self.host}/api/2.0/fs/files{urllib.parse.quote(where)}"
        try:
            response = self._send("GET", url, what=f"read {path}", headers={"Range": f"bytes=-{max_bytes}"},
                                  stream=True)
        except ApiError as exc:
            if exc.status == 416:  # an empty file has no last bytes
                return b"", 0
            raise
        with response:
            tail = bytearray()
            for chunk in response.iter_content(64 * 1024):  # a server that ignores Range: keep the tail
                tail += chunk
                del tail[:-max_bytes]
            size = _content_size(response, len(tail))
        return bytes(tail), size

    # -- jobs runs, workspace settings, identity (dcs run / dcs doctor) -----------------------
    # Bodies are built and answers read by dcs_magic.model.jobs (pure); this block only sends them.

    jobs_api_version = "2.2"

    def _jobs_url(self, name: str) -> str:
        return f"{self.host}/api/{self.jobs_api_version}/jobs/{name}"

    def submit_run(self, spec: ClusterSpec | Mapping[str, Any] | None = None, *, python_file: str | None = None,
                   notebook: str | None = None, parameters: Any = (), run_name: str | None = None,
                   body: Mapping[str, Any] | None = None) -> int:
        """jobs/runs/submit a one-time run of a Python file or a notebook on a job cluster made
        from `spec` (validated like create_cluster: SpecError before any request); return the
        run_id. `body` sends a ready runs/submit body (from jobs.submit_body) instead."""
        if body is None and spec is None:
            raise SpecError("submit_run needs a cluster spec (or a ready runs/submit body)", field=None,
                            hint="Workspace.submit_run(ClusterSpec(...), python_file=...)")
        payload = dict(body) if body is not None else submit_body(
            spec or {}, python_file=python_file, notebook=notebook, parameters=parameters, run_name=run_name)
        # Not idempotent either: the general adapter retries POST, so pass an idempotency token.
        payload.setdefault("idempotency_token", _idempotency_token())
        answer = self._request("POST", self._jobs_url("runs/submit"), json=payload, what="jobs/runs/submit",
                               any_json=True)
        hint = ("the run may have been submitted anyway: look for it on the workspace's Job Runs page "
                "before submitting again")
        if not isinstance(answer, dict) or answer.get("run_id") is None:
            raise ApiError(f"jobs/runs/submit answered without a run_id: {self._redact(_json_text(answer)[:200])}",
                           status=200, hint=hint)
        try:
            self._checked(answer, "jobs/runs/submit", {"run_id": int})
        except ApiError as exc:
            raise ApiError(exc.message, status=exc.status, hint=hint) from None
        return int(answer["run_id"])

    def get_run(self, run_id: int) -> dict[str, Any]:
        """jobs/runs/get: state {life_cycle_state, result_state, state_message}, run_page_url, tasks."""
        what = f"jobs/runs/get {run_id}"
        answer = self._checked(self._request("GET", self._jobs_url("runs/get"), params={"run_id": run_id},
                                             what=what), what, _RUN_SHAPE)
        self._checked(answer.get("state") or {}, what, _RUN_STATE_SHAPE, "state.")
        for index, task in enumerate(answer.get("tasks") or []):
            self._checked(task, what, {"run_id": int, "task_key": str, "state": dict}, f"tasks[{index}].")
        return answer

    def get_run_output(self, task_run_id: int) -> dict[str, Any]:
        """jobs/runs/get-output of a task run: logs, logs_truncated, error, error_trace,
        notebook_output. The workspace bounds it: `logs` is the last 5 MB of the task's output
        (`logs_truncated` when cut), a notebook's result its first 5 MB."""
        what = f"jobs/runs/get-output {task_run_id}"
        answer = self._checked(self._request("GET", self._jobs_url("runs/get-output"),
                                             params={"run_id": task_run_id}, what=what), what, _RUN_OUTPUT_SHAPE)
        self._checked(answer.get("notebook_output") or {}, what, {"result": str}, "notebook_output.")
        return answer

    def cancel_run(self, run_id: int) -> None:
        """jobs/runs/cancel."""
        self._request("POST", self._jobs_url("runs/cancel"), json={"run_id": run_id},
                      what=f"jobs/runs/cancel {run_id}")

    def wait_for_run(self, run_id: int, timeout_s: float = RUN_TIMEOUT_S,
                     on_state: Callable[[dict[str, Any]], Any] | None = None,
                     *, sleep: Callable[[float], Any] = time.sleep,
                     clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
        """Poll runs/get until the run ends (TERMINATED, SKIPPED, INTERNAL_ERROR) and return that
        answer, whatever its result_state (read it with jobs.run_result). `on_state(run)` is
        called when the state changes. After `timeout_s` a RunError carries the last state
        (the run goes on; wait again or cancel_run)."""
        def timed_out(run: dict[str, Any]) -> RunError:
            state = run.get("state") or {}
            return RunError(f"run {run_id} is still {state.get('life_cycle_state')} after {timeout_s:g} s",
                            run_id=run_id, life_cycle_state=state.get("life_cycle_state"),
                            run_page_url=run.get("run_page_url"),
                            hint="wait again with wait_for_run, or cancel it with cancel_run")

        def key(run: dict[str, Any]) -> tuple[Any, Any, Any]:
            state = run.get("state") or {}
            return state.get("life_cycle_state"), state.get("result_state"), state.get("state_message")

        return self._follow(lambda: self.get_run(run_id), key, lambda r: key(r)[0] in FINAL_STATES,
                            timeout_s, on_state, timed_out, sleep, clock)

    def run_url(self, run: Mapping[str, Any]) -> str:
        """The run's page: the workspace's run_page_url, else the jobs UI path."""
        return str(run.get("run_page_url") or f"{self.host}/jobs/runs/{run.get('run_id')}")

    def workspace_conf(self, keys: str | list[str]) -> dict[str, Any]:
        """GET /api/2.0/workspace-conf?keys=...: workspace settings such as enableDcs
        (values are the strings "true"/"false", or None when never set)."""
        names = keys if isinstance(keys, str) else ",".join(keys)
        what = f"workspace-conf {names}"
        answer = self._request("GET", f"{self.host}/api/2.0/workspace-conf", params={"keys": names}, what=what)
        return self._checked(answer, what, dict.fromkeys(answer, str))

    def current_user(self) -> dict[str, Any]:
        """GET /api/2.0/preview/scim/v2/Me: whose credentials these are (userName, ...)."""
        answer = self._request("GET", f"{self.host}/api/2.0/preview/scim/v2/Me", what="scim/v2/Me")
        return self._checked(answer, "scim/v2/Me", {"userName": str, "displayName": str, "id": str})


    # -- secrets (the public Secrets API: names and times; a value is only ever sent) ------------

    def _secrets_url(self, name: str) -> str:
        return f"{self.host}/api/2.0/secrets/{name}"

    def create_secret_scope(self, scope: str) -> None:
        """POST secrets/scopes/create (a Databricks-backed scope; the caller gets MANAGE).
        ResourceConflict-like ApiError (RESOURCE_ALREADY_EXISTS) when it exists."""
        self._request("POST", self._secrets_url("scopes/create"), json={"scope": scope},
                      what=f"secrets/scopes/create {scope}")

    def list_secret_scopes(self) -> list[dict[str, Any]]:
        """GET secrets/scopes/list: `[{"name", "backend_type"}, ...]`."""
        answer = self._checked(self._request("GET", self._secrets_url("scopes/list"), what="secrets/scopes/list"),
                               "secrets/scopes/list", {"scopes": _OBJECTS})
        return list(answer.get("scopes") or [])

    def delete_secret_scope(self, scope: str) -> None:
        """POST secrets/scopes/delete (its secrets go with it)."""
        self._request("POST", self._secrets_url("scopes/delete"), json={"scope": scope},
                      what=f"secrets/scopes/delete {scope}")

    def put_secret(self, scope: str, key: str, value: Secret | str | bytes) -> None:
        """POST secrets/put: VALUE (text as `string_value`, bytes as `bytes_value`) under
        SCOPE/KEY, overwriting. RESOURCE_DOES_NOT_EXIST (NotFound) when the scope does not exist:
        the Databricks CLI does not create it either. The value is in the request body only:
        never in an error, a log line or a repr (an error answer that quotes it is redacted)."""
        raw = value.reveal() if isinstance(value, Secret) else value
        body = ({"scope": scope, "key": key, "bytes_value": _b64(raw)} if isinstance(raw, bytes) else
                {"scope": scope, "key": key, "string_value": raw})
        try:
            self._request("POST", self._secrets_url("put"), json=body, what=f"secrets/put {scope}/{key}")
        except ApiError as exc:
            for shown in {str(raw) if isinstance(raw, str) else "", body.get("bytes_value", "")} - {""}:
                if len(shown) >= 4:
                    exc.message = exc.message.replace(shown, "****")
                    exc.args = (exc.message,)
            raise
        finally:
            body.clear()
            del raw

    def list_secrets(self, scope: str) -> list[dict[str, Any]]:
        """GET secrets/list?scope=: `[{"key", "last_updated_timestamp"}, ...]`, never values."""
        what = f"secrets/list {scope}"
        answer = self._checked(self._request("GET", self._secrets_url("list"), params={"scope": scope}, what=what),
                               what, {"secrets": _OBJECTS})
        return list(answer.get("secrets") or [])

    def delete_secret(self, scope: str, key: str) -> None:
        """POST secrets/delete."""
        self._request("POST", self._secrets_url("delete"), json={"scope": scope, "key": key},
                      what=f"secrets/delete {scope}/{key}")


_OBJECTS = object()
"""`Workspace._checked` shape mark: a list of JSON objects."""
_CLUSTER_SHAPE: dict[str, Any] = {
    "cluster_id": str, "cluster_name": str, "state": str, "state_message": str, "termination_reason": dict,
    "spark_version": str, "docker_image": dict, "spark_conf": dict, "custom_tags": dict, "init_scripts": _OBJECTS,
    "cluster_log_conf": dict, "driver": dict, "executors": _OBJECTS, "num_workers": int}
_RUN_SHAPE: dict[str, Any] = {"run_id": int, "state": dict, "tasks": _OBJECTS, "run_page_url": str,
                              "run_name": str, "cluster_instance": dict}
_RUN_STATE_SHAPE: dict[str, Any] = {"life_cycle_state": str, "result_state": str, "state_message": str}
_RUN_OUTPUT_SHAPE: dict[str, Any] = {"error": str, "error_trace": str, "logs": str, "logs_truncated": bool,
                                     "notebook_output": dict, "exit_code": int, "metadata": dict}


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    return {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number",
            type(None): "null"}.get(type(value), type(value).__name__)


def _json_text(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


_BEARER = re.compile(r"(?i)\b(Bearer|Basic|token|authorization)(\s+|[\"']?\s*[:=]\s*[\"']?)"
                     r"(?!Bearer\b|Basic\b)[A-Za-z0-9._~+/=-]{8,}")
_DATABRICKS_TOKEN = re.compile(r"\bdapi[0-9a-f]{16,}(?:-\d+)?\b")


@dataclass(frozen=True)
class RemoteFile:
    """An entry of a workspace directory: `path` as the caller names it (`/Volumes/...`,
    `dbfs:/...`), whether it is a directory, its size and modification time (ms, 0: unknown)."""

    path: str
    is_dir: bool
    size: int = 0
    modified_ms: int = 0

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]


def _file_location(path: str) -> tuple[str, str]:
    """("volumes", "/Volumes/...") or ("dbfs", "/...") for a path the Files or DBFS API reads."""
    if path.startswith("dbfs:"):
        return "dbfs", "/" + path[len("dbfs:"):].lstrip("/")
    if path.startswith("/Volumes/"):
        return "volumes", path
    raise SpecError(f"{path} is neither a /Volumes/... nor a dbfs:/... path", field="cluster_log_conf",
                    hint="logs are read through the Files API (/Volumes/...) or the DBFS API (dbfs:/...); "
                         "download others (s3://...) and run `dcs why --from DIR`")


def _content_size(response: requests.Response, read: int) -> int:
    """The whole file's size: from Content-Range (`bytes a-b/N`) of a 206, else what was read."""
    found = re.search(r"/(\d+)$", response.headers.get("Content-Range", ""))
    return int(found[1]) if found else read


def redact(text: str, token: str | None = None) -> str:
    """TEXT without bearer/basic credentials, Databricks PATs (`dapi...`) and TOKEN itself."""
    if token and len(token) >= 4:
        text = text.replace(token, "****")
    text = _DATABRICKS_TOKEN.sub("dapi****", text)
    return _BEARER.sub(lambda m: f"{m[1]}{m[2]}****", text)


def _redacted(body: Any, token: str | None) -> Any:
    """BODY (a decoded JSON answer or text) with every string redacted."""
    if isinstance(body, str):
        return redact(body, token)
    if isinstance(body, Mapping):
        return {k: _redacted(v, token) for k, v in body.items()}
    if isinstance(body, list):
        return [_redacted(v, token) for v in body]
    return body


def _is_read_timeout(exc: requests.RequestException) -> bool:
    """A read timeout, also when urllib3's retry wrapped it (MaxRetryError -> ConnectionError)."""
    from urllib3.exceptions import ReadTimeoutError

    if isinstance(exc, requests.ReadTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, ReadTimeoutError)


def _idempotency_token() -> str:
    import uuid

    return uuid.uuid4().hex


def _short(exc: Exception) -> str:
    """A connection error's cause without urllib3's pool dump."""
    text = str(exc)
    if "Caused by" in text:
        text = text.split("Caused by", 1)[1].strip(" ()")
    return f"{type(exc).__name__}: {text[:300]}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
