"""The local preflight workspace's secret scopes: one 0600 file every process of the user shares.

Databricks keeps a workspace's secret scopes on its side; the local preflight workspace runs
inside each `dcs` command and kernel, so its scopes live in a file instead, where `dcs secrets
put --local` in one command and `dcs launch --local` (or a kernel) in the next both find them:

    <settings.local_state_dir()>/secrets/scopes.json     0600, in a 0700 folder

Every operation reads the file, and a change writes a new file beside it and renames it over
the old one (atomic), all under an exclusive `flock` of `.lock` in the same folder (several
processes may put at once). The file is created 0600 before anything is written to it; a
file or folder found with wider permissions is narrowed again.

The local workspace (preflight/server.py) serves it through the Secrets API. Values are never
served back: `SecretStore.resolve` is for its launcher only (a cluster resolving
`{{secrets/scope/key}}` for its image pull), the REST API lists names and times; `has` lets
the launch form say whether a local launch will resolve a reference. No
message, repr or error of this module holds a value. Names follow Databricks' rule (letters,
digits, `-`, `_`, `.`, at most 128 characters); a value is at most 128 KiB, a scope holds at
most 1000 secrets, as on Databricks.
"""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["MAX_SECRETS", "MAX_VALUE_BYTES", "SecretStore", "StoreFailure", "default_path", "valid_name"]

MAX_VALUE_BYTES = 128 * 1024
MAX_SECRETS = 1000
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def default_path() -> Path:
    """`<settings.local_state_dir()>/secrets/scopes.json` (read at call time: XDG_STATE_HOME)."""
    from ..settings import local_state_dir

    return local_state_dir() / "secrets" / "scopes.json"


def valid_name(name: Any) -> bool:
    """A scope or key name as Databricks accepts it."""
    return isinstance(name, str) and bool(_NAME.match(name))


class StoreFailure(Exception):
    """A refused operation: `status`, Databricks' `error_code` and a message naming scope and
    key only (the server answers it as is)."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_code, self.message = status, error_code, message


@dataclass(frozen=True)
class SecretInfo:
    """What secrets/list shows of a secret: its key and when it was last put (ms)."""

    key: str
    last_updated_timestamp: int


class SecretStore:
    """The scopes file at `path` (default: `default_path()` when first used)."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self._path if self._path is not None else default_path()

    def __repr__(self) -> str:
        return f"SecretStore({str(self.path)!r})"

    # -- scopes ----------------------------------------------------------------------------

    def create_scope(self, scope: str) -> None:
        _check_name(scope, "scope")

        def change(data: dict[str, Any]) -> None:
            if scope in data["scopes"]:
                raise StoreFailure(400, "RESOURCE_ALREADY_EXISTS", f"Scope {scope} already exists!")
            data["scopes"][scope] = {"secrets": {}}

        self._change(change)

    def delete_scope(self, scope: str) -> None:
        def change(data: dict[str, Any]) -> None:
            _scope(data, scope)
            del data["scopes"][scope]

        self._change(change)

    def scopes(self) -> list[str]:
        return sorted(self._read()["scopes"])

    # -- secrets ---------------------------------------------------------------------------

    def put(self, scope: str, key: str, value: bytes) -> None:
        """Store VALUE under SCOPE/KEY (overwriting, as secrets/put does)."""
        _check_name(key, "key")
        if len(value) > MAX_VALUE_BYTES:
            raise StoreFailure(400, "INVALID_PARAMETER_VALUE",
                               f"The secret value of {key} is larger than {MAX_VALUE_BYTES // 1024} KB")
        encoded = base64.b64encode(value).decode("ascii")

        def change(data: dict[str, Any]) -> None:
            secrets = _scope(data, scope)["secrets"]
            if key not in secrets and len(secrets) >= MAX_SECRETS:
                raise StoreFailure(400, "RESOURCE_LIMIT_EXCEEDED",
                                   f"Scope {scope} already holds {MAX_SECRETS} secrets")
            secrets[key] = {"value": encoded, "last_updated_timestamp": int(time.time() * 1000)}

        self._change(change)

    def delete(self, scope: str, key: str) -> None:
        def change(data: dict[str, Any]) -> None:
            secrets = _scope(data, scope)["secrets"]
            if key not in secrets:
                raise StoreFailure(404, "RESOURCE_DOES_NOT_EXIST", f"Secret {key} does not exist in scope {scope}!")
            del secrets[key]

        self._change(change)

    def list(self, scope: str) -> list[SecretInfo]:
        secrets = _scope(self._read(), scope)["secrets"]
        return [SecretInfo(key, int(item.get("last_updated_timestamp") or 0)) for key, item in sorted(secrets.items())]

    def has(self, scope: str, key: str) -> bool:
        """Whether SCOPE/KEY holds a value (False when the store cannot be read)."""
        try:
            return key in self._read()["scopes"].get(scope, {}).get("secrets", {})
        except (StoreFailure, OSError, TypeError, AttributeError):
            return False

    def resolve(self, scope: str, key: str) -> bytes | None:
        """The value of SCOPE/KEY, None when there is none. For the launcher only (a cluster
        resolving a `{{secrets/...}}` reference); never answered through the REST API."""
        try:
            item = self._read()["scopes"].get(scope, {}).get("secrets", {}).get(key)
            return base64.b64decode(item["value"]) if isinstance(item, dict) else None
        except (StoreFailure, OSError, KeyError, TypeError, ValueError, AttributeError):
            return None  # unreadable: resolved as missing (the fallback variable is asked next)

    # -- the file --------------------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        with self._locked():
            return self._load()

    def _change(self, change: Callable[[dict[str, Any]], None]) -> None:
        with self._locked():
            data = self._load()
            change(data)
            self._write(data)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl

        folder = self.path.parent
        _private_folder(folder)
        with self._lock:
            handle = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX)
                yield
            finally:
                os.close(handle)  # releases the flock

    def _load(self) -> dict[str, Any]:
        path = self.path
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            return {"scopes": {}}
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            os.chmod(path, 0o600)  # someone widened it: narrow it before reading
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise StoreFailure(500, "INTERNAL_ERROR",
                               f"the local secret store {path} is not readable JSON ({type(exc).__name__}); "
                               "move it away and put the secrets again") from None
        if not isinstance(data, dict) or not isinstance(data.get("scopes"), dict):
            raise StoreFailure(500, "INTERNAL_ERROR", f"the local secret store {path} is not a scopes file")
        return data

    def _write(self, data: dict[str, Any]) -> None:
        path = self.path
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".scopes-", suffix=".tmp")
        try:
            os.fchmod(handle, 0o600)  # before any byte is in it (mkstemp makes it 0600 too)
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump({"version": 1, **data}, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _private_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if folder.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        os.chmod(folder, 0o700)


def _check_name(name: Any, what: str) -> None:
    if not valid_name(name):
        raise StoreFailure(400, "INVALID_PARAMETER_VALUE",
                           f"{what} must consist of alphanumeric characters, dashes, underscores and periods, "
                           f"and may not exceed 128 characters (got {str(name)[:40]!r})")


def _scope(data: dict[str, Any], scope: Any) -> dict[str, Any]:
    found = data["scopes"].get(scope) if isinstance(scope, str) else None
    if not isinstance(found, dict):
        raise StoreFailure(404, "RESOURCE_DOES_NOT_EXIST", f"Scope {str(scope)[:128]} does not exist!")
    found.setdefault("secrets", {})
    return found
