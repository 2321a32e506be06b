"""This machine's `docker login` for one registry, found the way the Docker CLI finds it.

    docker_login("127.0.0.1:5000") -> DockerLogin(username, password=Secret, source) | None

Docker's config.json (`DOCKER_CONFIG`, else ~/.docker) names where a login lives:

    credHelpers[HOST]   a credential helper for that registry (docker-credential-ecr-login, ...)
    credsStore          else the default helper for every registry (Docker Desktop's desktop,
                        osxkeychain, pass, ...); `auths` is then not read for the password
    auths[HOST].auth    else base64 of `user:password` (`docker login` without a helper)

A helper is run as Docker runs it: `docker-credential-<name> get`, the server URL on stdin
(HOST, or `https://index.docker.io/v1/` for Docker Hub), a JSON answer
`{"ServerURL", "Username", "Secret"}` on stdout. No shell, a timeout, nothing secret on its
command line. A helper answering "credentials not found" means no login (None), as for Docker.
A missing helper, a failure, a timeout or an answer that is not that JSON is a RegistryError
naming the helper, the registry and the fix; its words are kept to one line, with anything
that looks like a credential masked. The password is a `Secret` from the moment it is read.

A Username of `<token>` means the Secret is an identity (refresh) token rather than a password:
`DockerLogin.identity_token` is True, and the registry adapter takes it only through a Bearer
challenge's token endpoint (the OAuth refresh-token grant, as Docker does).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RegistryError
from ..model.credentials import Secret
from ..model.imageref import DOCKER_HUB
from ..model.secrets import mask_secret_values
from ..settings import docker_config_dir

__all__ = ["DOCKER_HUB_SERVER", "HELPER_TIMEOUT_S", "TOKEN_USERNAME", "DockerLogin", "docker_config", "docker_login",
           "server_address"]

DOCKER_HUB_SERVER = "https://index.docker.io/v1/"
"""The server address Docker files Docker Hub's login under (helpers and `auths`)."""
HELPER_TIMEOUT_S = 30.0  # ecr-login and gcloud ask their cloud first; a helper that hangs longer is broken
_HELPER_PREFIX = "docker-credential-"
TOKEN_USERNAME = "<token>"
"""The Username a helper gives with an identity token (not a password) as its Secret."""
_NOT_FOUND = "credentials not found in native keychain"


@dataclass(frozen=True)
class DockerLogin:
    """A registry login from Docker's config: `source` says where it was found
    (`docker-credential-NAME` or `config.json auths`), never the password."""

    username: str
    password: Secret
    source: str
    identity_token: bool = False


def server_address(registry: str) -> str:
    """The key Docker files REGISTRY's login under: `https://index.docker.io/v1/` for Docker
    Hub, the host[:port] for any other."""
    return DOCKER_HUB_SERVER if registry in (DOCKER_HUB, "index.docker.io", "registry-1.docker.io") else registry


def docker_login(registry: str, *, timeout: float = HELPER_TIMEOUT_S) -> DockerLogin | None:
    """REGISTRY's login as Docker would use it (credHelpers, else credsStore, else auths);
    None when there is none. RegistryError when the helper that should answer cannot."""
    config = docker_config()
    server = server_address(registry)
    helpers = config.get("credHelpers")
    helper = (helpers.get(server) if isinstance(helpers, dict) else None) or config.get("credsStore")
    if helper and isinstance(helper, str):
        return _ask_helper(helper, server, timeout)
    return _auths_entry(config.get("auths"), server)


def docker_config() -> dict[str, Any]:
    """Docker's config.json as a dict; {} when it is missing or unreadable (Docker then has no
    login, no extra plugin folders)."""
    try:
        found = json.loads((Path(docker_config_dir()) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _hostname(address: str) -> str:
    """Docker's ConvertToHostname: `https://host:5000/v1/` -> `host:5000`."""
    return address.split("://", 1)[-1].split("/", 1)[0]


def _auths_entry(auths: Any, server: str) -> DockerLogin | None:
    """The `auths` entry for SERVER (the exact key, else one with the same host name, as the
    Docker CLI reads older files): `auth` is base64 of `user:password`, `identitytoken` a
    refresh token."""
    if not isinstance(auths, dict):
        return None
    entry = auths.get(server)
    if entry is None:
        entry = next((v for k, v in auths.items() if _hostname(str(k)) == _hostname(server)), None)
    if not isinstance(entry, dict):
        return None
    try:
        user, _, password = base64.b64decode(str(entry.get("auth") or "")).decode().partition(":")
    except ValueError:
        return None
    if entry.get("identitytoken"):
        return DockerLogin(user or TOKEN_USERNAME, Secret(str(entry["identitytoken"])), "config.json auths", True)
    return DockerLogin(user, Secret(password), "config.json auths") if user else None


def _ask_helper(name: str, server: str, timeout: float) -> DockerLogin | None:
    """`docker-credential-NAME get` with SERVER on stdin. The RegistryError is raised here,
    outside `_run`'s `except` blocks and after the helper's output is dropped, so neither its
    context nor a frame's locals (`%xmode Verbose`) hold what the helper printed."""
    program = _HELPER_PREFIX + name
    fix = f"install {program} on PATH, or remove it from {Path(docker_config_dir()) / 'config.json'}"
    path = shutil.which(program)
    answer = _run(path, program, server, timeout, fix) if path else ("is not on PATH", fix)
    if answer is None or isinstance(answer, DockerLogin):
        return answer
    what, hint = answer
    raise RegistryError(f"{program} (the credential helper Docker's config.json names for {server}) {what}",
                        hint=hint)


def _run(path: str, program: str, server: str, timeout: float, fix: str
         ) -> DockerLogin | tuple[str, str] | None:
    """The helper's login, None for "credentials not found", or (what went wrong, the fix).
    Its own session, so a timeout ends whatever it started too."""
    try:
        with subprocess.Popen([path, "get"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True) as helper:
            try:
                out, err = helper.communicate(server, timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(helper.pid, signal.SIGKILL)
                helper.communicate()
                return f"did not answer within {timeout:g} s", f"check that `echo {server} | {program} get` answers"
    except OSError as exc:
        return f"could not be run ({exc.strerror or type(exc).__name__})", fix
    if helper.returncode != 0:
        said = _first_line(out) or _first_line(err)
        if _NOT_FOUND in said.lower():
            return None  # no login for this registry: as for Docker, not an error
        return (f"failed (exit {helper.returncode}" + (f": {said})" if said else ")"),
                f"run `docker login {server}` (or the helper's own login), then try again")
    try:
        found = json.loads(out)
    except ValueError:
        found = None
    if not isinstance(found, dict) or not isinstance(found.get("Secret"), str) \
            or not isinstance(found.get("Username") or "", str):
        return 'answered something other than its JSON {"ServerURL", "Username", "Secret"}', \
            f"update or reinstall {program}"
    username, secret = str(found.get("Username") or ""), Secret(found["Secret"])
    if username == TOKEN_USERNAME:
        return DockerLogin(username, secret, program, identity_token=True)
    return DockerLogin(username, secret, program) if username and secret else None


def _first_line(text: str) -> str:
    """A helper's own words: the first non-empty line, cut short, credential-looking parts
    masked; a line that looks like JSON (it may hold a secret) is left out."""
    line = next((part.strip() for part in (text or "").splitlines() if part.strip()), "")
    return "" if line.startswith("{") else mask_secret_values(line)[:200]
