"""Every default and every environment variable the package reads, in one place.

The base layer beside `errors`: it imports nothing from the package and nothing but `os`
(loaded by the interpreter before any user code; no `typing`, no `__future__`), so `dcs
--help` and `%load_ext dcs_magic` can read their defaults here at no cost.

Defaults the magics, the `dcs` command and the library share:

    BUILD_ROOT          "dcs-build"    NAME's build context is BUILD_ROOT/NAME
    PLATFORM            "linux/amd64"  the one platform Container Services runs
    CLUSTER_TIMEOUT_S   1200           how long a launch waits for RUNNING (the Databricks CLI's)
    RUN_TIMEOUT_S       3600           how long a one-time run is followed

Environment variables (read only through `env()` and `environment()`, at call time, so a
variable set after import counts and tests can `monkeypatch.setenv`):

    DOCKER_HOST, DOCKER_CONTEXT        where the Docker engine is (as the Docker CLI reads them)
    DOCKER_TLS_VERIFY, DOCKER_TLS, DOCKER_CERT_PATH
                                       TLS to a DOCKER_HOST=tcp://... engine (as the Docker CLI)
    DOCKER_CLIENT_TIMEOUT              seconds for an engine API call (as docker-compose reads it)
    DOCKER_CONFIG                      the folder of Docker's config.json (registry credentials)
    DCS_DOCKER_CLI                     the docker CLI BuildKit builds run (default: `docker` on PATH,
                                       then /usr/bin/docker, the first that can build with BuildKit)
    DATABRICKS_HOST, DATABRICKS_CONFIG_FILE, DATABRICKS_CONFIG_PROFILE
                                       read before the Databricks SDK's Config (it reads the rest)
    DCS_VAR_<NAME>                     template variable NAME (`dcs render` / `dcs build`)
    DCS_SECRET_<SCOPE>_<KEY>           the value of `{{secrets/scope/key}}` on the local workspace
                                       when its secret store (`dcs secrets put --local`) has none
    any name `--password-env VAR` / `BasicAuth(password_env=...)` gives (a registry password)
"""

import os

# mypy treats any name TYPE_CHECKING as true; at run time this avoids importing `typing`.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Mapping
    from pathlib import Path

__all__ = [
    "BUILD_ROOT",
    "CLUSTER_TIMEOUT_S",
    "DATABRICKS_CONFIG_FILE",
    "DATABRICKS_CONFIG_FILE_DEFAULT",
    "DATABRICKS_CONFIG_PROFILE",
    "DATABRICKS_HOST",
    "DOCKER_CLIENT_TIMEOUT",
    "DOCKER_CLIENT_TIMEOUT_S",
    "DOCKER_CLI",
    "DOCKER_CLI_CANDIDATES",
    "DOCKER_CONFIG",
    "DOCKER_CONFIG_DEFAULT",
    "DOCKER_CERT_PATH",
    "DOCKER_CONTEXT",
    "DOCKER_HOST",
    "DOCKER_TLS",
    "DOCKER_TLS_VERIFY",
    "PLATFORM",
    "RUN_TIMEOUT_S",
    "SECRET_PREFIX",
    "VAR_PREFIX",
    "docker_config_dir",
    "env",
    "environment",
    "local_state_dir",
    "secret_variable",
]

# -- defaults --------------------------------------------------------------------------------

BUILD_ROOT = "dcs-build"
"""NAME's build context is BUILD_ROOT/NAME (relative to the notebook's folder) unless a cell
says `--context`: the magics, `dcs render`/`dcs build` and the recipe share it."""

PLATFORM = "linux/amd64"
"""The platform images are built for: the only one Databricks Container Services runs."""

CLUSTER_TIMEOUT_S = 1200.0
"""Seconds a launch waits for its cluster to be RUNNING (the Databricks CLI's default)."""

RUN_TIMEOUT_S = 3600.0
"""Seconds a one-time run (`dcs run`, `%dcs_run`) is followed before giving up waiting."""

DOCKER_CLIENT_TIMEOUT_S = 60.0
"""Seconds an ordinary Docker engine API call may take when DOCKER_CLIENT_TIMEOUT is unset."""

DOCKER_CLI_CANDIDATES = ("docker", "/usr/bin/docker")
"""Where BuildKit builds look for a docker CLI when DCS_DOCKER_CLI is unset, in order: `docker`
on PATH, then Debian's `docker.io` client (20.10 builds with BuildKit without buildx)."""

DOCKER_CONFIG_DEFAULT = "~/.docker"
"""Docker's config folder (config.json: registry credentials) when DOCKER_CONFIG is unset."""

DATABRICKS_CONFIG_FILE_DEFAULT = "~/.databrickscfg"
"""The Databricks profiles file when DATABRICKS_CONFIG_FILE is unset."""

# -- environment variable names ----------------------------------------------------------------

DOCKER_HOST = "DOCKER_HOST"
DOCKER_CONTEXT = "DOCKER_CONTEXT"
DOCKER_TLS_VERIFY = "DOCKER_TLS_VERIFY"
"""Set (any non-empty value, as the Docker CLI reads it): TLS to DOCKER_HOST, the engine's
certificate verified against DOCKER_CERT_PATH/ca.pem."""
DOCKER_TLS = "DOCKER_TLS"
"""Set: TLS to DOCKER_HOST without verifying the engine's certificate (the Docker CLI's `--tls`)."""
DOCKER_CERT_PATH = "DOCKER_CERT_PATH"
"""The folder of ca.pem, cert.pem and key.pem for TLS (default: Docker's config folder)."""
DOCKER_CLIENT_TIMEOUT = "DOCKER_CLIENT_TIMEOUT"
DOCKER_CONFIG = "DOCKER_CONFIG"
DOCKER_CLI = "DCS_DOCKER_CLI"
"""The docker CLI (path or command name) that runs BuildKit builds, instead of the search."""
DOCKER_BUILDKIT = "DOCKER_BUILDKIT"
PATH = "PATH"
DATABRICKS_HOST = "DATABRICKS_HOST"
DATABRICKS_CONFIG_FILE = "DATABRICKS_CONFIG_FILE"
DATABRICKS_CONFIG_PROFILE = "DATABRICKS_CONFIG_PROFILE"
RUNTIME_PINS = "DCS_RUNTIME_PINS"
"""Where `dcs runtimes --update` writes, and the runtime facts read, the refreshed pins."""
XDG_DATA_HOME = "XDG_DATA_HOME"
XDG_STATE_HOME = "XDG_STATE_HOME"

VAR_PREFIX = "DCS_VAR_"
"""`DCS_VAR_<NAME>` provides template variable NAME (NAME exactly as the template writes it)."""

SECRET_PREFIX = "DCS_SECRET_"
"""`DCS_SECRET_<SCOPE>_<KEY>` holds `{{secrets/scope/key}}` for the local workspace; see
`secret_variable`."""


# -- reading them ------------------------------------------------------------------------------


def env(name: str, default: str | None = None) -> str | None:
    """Environment variable NAME as it is now (set or changed after import counts), else
    `default`. An empty value is returned as it is: callers decide whether it counts."""
    return os.environ.get(name, default)


def environment() -> "Mapping[str, str]":
    """The whole environment, for the readers that scan it by prefix (`DCS_VAR_*`)."""
    return os.environ


def docker_config_dir() -> str:
    """Docker's config folder: DOCKER_CONFIG (as the Docker CLI reads it), else ~/.docker."""
    return env(DOCKER_CONFIG) or os.path.expanduser(DOCKER_CONFIG_DEFAULT)


def runtime_pins_file() -> "tuple[Path, bool]":
    """The pins `dcs runtimes --update` writes and the runtime facts read, and whether the user
    named it: DCS_RUNTIME_PINS (named: used whatever its age), else
    `$XDG_DATA_HOME/dcs-magic/runtime-pins.json` (~/.local/share/...; used while it is at least
    as new as the pins shipped in the package)."""
    from pathlib import Path

    given = env(RUNTIME_PINS)
    if given:
        return Path(given).expanduser(), True
    return Path(env(XDG_DATA_HOME) or os.path.expanduser("~/.local/share")) / "dcs-magic" / "runtime-pins.json", False


def local_state_dir() -> "Path":
    """Where the local preflight workspace keeps what outlives a process (the records of ended
    clusters, so `dcs why CLUSTER_ID --local` in one command explains a launch another made):
    `$XDG_STATE_HOME/dcs-magic/local-workspace` (~/.local/state/...)."""
    from pathlib import Path

    return Path(env(XDG_STATE_HOME) or os.path.expanduser("~/.local/state")) / "dcs-magic" / "local-workspace"


def secret_variable(reference: str) -> str:
    """The environment variable that holds `{{secrets/scope/key}}` outside a cluster (the
    local preflight workspace resolves the reference from it when its secret store has no such
    secret, `dcs doctor` probes with it):
    `DCS_SECRET_<SCOPE>_<KEY>`, upper case, every other character as `_`.

    The one naming rule: `{{secrets/dcs-test/registry.password}}` ->
    `DCS_SECRET_DCS_TEST_REGISTRY_PASSWORD`."""
    scope, key = reference.strip("{} ").split("/", 2)[1:]
    name = f"{scope}_{key}".upper()
    return SECRET_PREFIX + "".join(c if c.isascii() and c.isalnum() else "_" for c in name)
