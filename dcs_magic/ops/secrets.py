"""Secret scopes through a workspace's public Secrets API: `dcs secrets put|list|create-scope`,
`%dcs_push --store-secret`, and the launch form's "store this password as a secret".

The same calls reach Databricks and the local preflight workspace (`Workspace.local()`, whose
scopes live in a 0600 file every process of the user shares), so a `{{secrets/scope/key}}`
reference resolves on both. A value goes one way only: into `secrets/put`; no workspace
answers it back (`secrets/get` is refused outside a cluster).

Scopes: `secrets/put` into a scope that does not exist fails with RESOURCE_DOES_NOT_EXIST, and
the Databricks CLI (`databricks secrets put-secret`) does not create it either; here it is
created only when asked (`create_scope=True`: `dcs secrets put --create-scope`, and the push's
`--store-secret`, whose user named the scope to store into).

Values typed or piped in (`read_secret_value`): from standard input when it is not a terminal
(the whole input, one trailing newline dropped: `echo "$PW" | dcs secrets put ...`), else a
hidden prompt. Never from an argument (it would be in `ps` and the shell's history).
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from ..errors import ApiError, NotFound, UsageError
from ..model.credentials import Secret
from ..model.secrets import secret_reference

if TYPE_CHECKING:
    from ..adapters.workspace import Workspace

__all__ = ["SecretPut", "put_secret", "read_secret_value", "scope_and_key", "secret_listing",
           "store_registry_password"]


@dataclass(frozen=True)
class SecretPut:
    """Where a value went: its `reference` (`{{secrets/scope/key}}`, for a cluster spec), the
    workspace `host`, and whether the scope was created for it."""

    scope: str
    key: str
    host: str
    created_scope: bool = False

    @property
    def reference(self) -> str:
        return f"{{{{secrets/{self.scope}/{self.key}}}}}"

    def line(self) -> str:
        made = f"created scope {self.scope}; " if self.created_scope else ""
        return f"Stored {self.scope}/{self.key} on {self.host} ({made}reference it as {self.reference})"


def scope_and_key(scope_key: str) -> tuple[str, str]:
    """`SCOPE/KEY` (or a whole `{{secrets/SCOPE/KEY}}` reference) -> (scope, key); ValueError
    saying the expected shape otherwise."""
    reference = secret_reference(scope_key)
    scope, key = reference.strip("{} ").split("/", 2)[1:]
    return scope, key


def read_secret_value(*, stdin: IO[str] | None = None, prompt: Callable[[str], str] | None = None,
                      interactive: bool | None = None, label: str = "secret value") -> Secret:
    """The value to store: standard input when it is not a terminal (read whole, one trailing
    newline dropped), else a hidden prompt. UsageError for an empty value."""
    stream = stdin if stdin is not None else sys.stdin
    if interactive is None:
        interactive = stream is not None and stream.isatty()
    if interactive:
        value = (prompt or getpass.getpass)(f"Value of the {label} (hidden): ")
    elif stream is None:
        raise UsageError("no standard input to read the secret value from",
                         hint="pipe it in (printf %s \"$VALUE\" | dcs secrets put SCOPE KEY) or run on a terminal")
    else:
        value = stream.read()
        if value.endswith("\r\n"):
            value = value[:-2]
        elif value.endswith("\n"):
            value = value[:-1]
    if not value:
        raise UsageError(f"the {label} is empty; nothing was stored",
                         hint="pipe the value in on standard input, or type it at the hidden prompt")
    return Secret(value)


def put_secret(workspace: Workspace, scope: str, key: str, value: Secret | str | bytes, *,
               create_scope: bool = False) -> SecretPut:
    """Put VALUE under SCOPE/KEY on WORKSPACE (overwriting). Without `create_scope`, a missing
    scope is an ApiError whose hint says how to create it (as the Databricks CLI leaves it);
    with it, the scope is created first when the workspace does not list it."""
    created = False
    if create_scope and scope not in {s.get("name") for s in workspace.list_secret_scopes()}:
        try:
            workspace.create_secret_scope(scope)
            created = True
        except ApiError as exc:  # made meanwhile by someone else: fine
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
    try:
        workspace.put_secret(scope, key, value)
    except NotFound as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST" and not create_scope:
            exc.hint = (f"create the scope first: dcs secrets create-scope {scope}{_where(workspace)} (or pass "
                        "--create-scope); the Databricks CLI does not create it on put either")
        raise
    return SecretPut(scope, key, workspace.host, created)


def store_registry_password(workspace: Workspace, scope: str, key: str, password: Secret | str) -> SecretPut:
    """Store the registry password a push used into SCOPE/KEY (the scope created when missing),
    so a cluster spec names it as `{{secrets/SCOPE/KEY}}` and nobody types it into JSON.
    For `%dcs_push --store-secret` and the launch form's "store this password as a secret"."""
    secret = password if isinstance(password, Secret) else Secret(password)
    if not secret:
        raise UsageError("no registry password to store", hint="push with --username U (and --password-env VAR "
                         "or the prompt): Docker's own credentials are not readable here")
    return put_secret(workspace, scope, key, secret, create_scope=True)


def secret_listing(workspace: Workspace, scope: str | None = None) -> list[dict[str, Any]]:
    """What `dcs secrets list` prints: the scopes (`name`, `backend_type`), or SCOPE's secrets
    (`key`, `last_updated_timestamp`): names and times, never values."""
    if scope is None:
        return sorted(workspace.list_secret_scopes(), key=lambda s: str(s.get("name")))
    return sorted(workspace.list_secrets(scope), key=lambda s: str(s.get("key")))


def _where(workspace: Workspace) -> str:
    return " --local" if getattr(workspace, "is_local", False) else ""
