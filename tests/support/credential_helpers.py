"""Docker credential helpers for tests: `docker-credential-<name>` scripts in a folder put first
on PATH, and a DOCKER_CONFIG folder whose config.json names them.

`on_path(tmp_path, monkeypatch, registry)` -> Helpers. The ANSWERING helper reads the server URL
on stdin and answers for `registry.host` with the login it finds in its environment
(DCS_TEST_HELPER_USER / _SECRET, as a keychain would: the password is in no file), "credentials
not found in native keychain" (exit 1) for any other; it writes what it was asked, its own
command line and its parent's (`/proc/<pid>/cmdline`, what `ps` shows) to `Helpers.log`.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = ["ANSWERING", "ANSWER_THEN_FAIL", "FAILING", "GARBAGE", "SLOW", "Helpers", "on_path"]

ANSWERING = r"""#!/bin/sh
read -r server
{ echo "$(basename "$0") asked for $server"
  tr '\0' ' ' < /proc/$$/cmdline; echo; tr '\0' ' ' < /proc/$PPID/cmdline; echo; } >> "$DCS_TEST_HELPER_LOG"
if [ "$server" = "$DCS_TEST_HELPER_SERVER" ]; then
  printf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}\n' "$server" "$DCS_TEST_HELPER_USER" "$DCS_TEST_HELPER_SECRET"
else
  echo "credentials not found in native keychain"
  exit 1
fi
"""
FAILING = r"""#!/bin/sh
echo "error getting credentials - err: exit status 1, out: token ghp_0123456789abcdefABCDEF0123456789abcd expired" >&2
exit 1
"""
# Half a JSON answer, the password in it: an error must not quote it.
GARBAGE = r"""#!/bin/sh
printf '{"ServerURL": "x", "Username": "u", "Secret": "%s"' "$DCS_TEST_HELPER_SECRET"
"""
# The whole answer, then a failure: its first line (JSON, the password in it) is not quoted.
ANSWER_THEN_FAIL = r"""#!/bin/sh
printf '{"Username": "u", "Secret": "%s"}\n' "$DCS_TEST_HELPER_SECRET"
exit 2
"""
# Hangs, with a child of its own whose process id it writes to the log.
SLOW = '#!/bin/sh\nsleep 30 &\necho "$!" >> "$DCS_TEST_HELPER_LOG"\nwait\n'


@dataclass
class Helpers:
    """Where the helpers and config.json live; `registry` is the one ANSWERING answers for."""

    bin: Path
    config: Path
    log: Path
    registry: Any

    def add(self, name: str, script: str = ANSWERING) -> None:
        """`docker-credential-NAME` running SCRIPT (replacing one of that name)."""
        path = self.bin / f"docker-credential-{name}"
        path.write_text(script, encoding="utf-8")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)

    def configure(self, **config: Any) -> None:
        """config.json's content (`credsStore`, `credHelpers`, `auths`)."""
        (self.config / "config.json").write_text(json.dumps(config), encoding="utf-8")

    def asked(self) -> str:
        """What the helpers wrote to their log (requests and command lines)."""
        return self.log.read_text(encoding="utf-8") if self.log.exists() else ""


def on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: Any) -> Helpers:
    """An empty helper folder first on PATH, DOCKER_CONFIG in a temp folder, the helpers'
    environment naming REGISTRY (an htpasswd `support.registry.Registry`) and its login."""
    found = Helpers(tmp_path / "helpers-bin", tmp_path / "docker-config", tmp_path / "helper.log", registry)
    found.bin.mkdir()
    found.config.mkdir()
    monkeypatch.setenv("PATH", f"{found.bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DOCKER_CONFIG", str(found.config))
    monkeypatch.setenv("DCS_TEST_HELPER_LOG", str(found.log))
    monkeypatch.setenv("DCS_TEST_HELPER_SERVER", registry.host)
    monkeypatch.setenv("DCS_TEST_HELPER_USER", registry.username)
    monkeypatch.setenv("DCS_TEST_HELPER_SECRET", registry.password)
    return found
