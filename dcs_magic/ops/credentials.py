"""The one registry-password reader of `--username` / `--password-env` (the CLI, the magics,
`build_notebook`): the environment variable the option names, else a hidden prompt on a
terminal. The password comes back as a `model.credentials.Secret`.

Bad usage (`--password-env` without `--username`, the variable unset, no terminal to prompt
on) raises `UsageError` naming the variable, never its value.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable

from ..errors import UsageError
from ..model.credentials import Secret, env_password

__all__ = ["registry_password"]


def registry_password(username: str | None, password_env: str | None, *,
                      prompt: Callable[[str], str] | None = None,
                      interactive: bool | None = None) -> Secret | None:
    """The registry password for `--username`/`--password-env`: None without a username
    (Docker's own credentials are used), else from the variable, else a hidden prompt.

    `interactive` says whether a terminal can be prompted on (default: stdin is a tty; the
    magics pass True, Jupyter asks in the front-end). `prompt` defaults to `getpass.getpass`,
    looked up at call time (ipykernel replaces it while a cell runs).
    Raises UsageError for `--password-env` without `--username`, an unset variable, and a
    username with no variable and no terminal.
    """
    if password_env and not username:
        raise UsageError(f"--password-env {password_env} needs --username (whose password the variable holds)",
                         hint="pass --username USER as well")
    if not username:
        return None
    if password_env:
        return env_password(password_env)
    if interactive is None:
        interactive = sys.stdin is not None and sys.stdin.isatty()
    if not interactive:
        raise UsageError(f"--username {username} without a password and no terminal to ask on",
                         hint="pass --password-env VAR naming an environment variable that holds it")
    return Secret((prompt or getpass.getpass)(f"Password for {username}: "))

