"""Registry passwords as `Secret`s, and image-reference warnings shared by the CLI, the magics and the spec.

A registry password is held as a `Secret`, whose repr and str are `Secret('****')`, so
tracebacks with locals (`%xmode Verbose`), logs and reprs never show it; it is unwrapped with
`reveal()` only where it is handed to the Docker engine or put into a request body.
`env_password` reads one from the environment variable that `--password-env VAR` (or
`BasicAuth(password_env="VAR")`) names, through `dcs_magic.settings`; the hidden prompt
(`registry_password`) is I/O and lives in `dcs_magic.ops.credentials`.

An unset variable raises `UsageError` (or `SpecError` for a spec field) naming the variable,
never its value. No I/O but reading the environment.
"""

from __future__ import annotations

from typing import Any

from ..errors import SpecError, UsageError
from ..settings import env

__all__ = ["PIN_HINT_CLI", "PIN_HINT_NOTEBOOK", "Secret", "env_password", "reveal", "unpinned_warning"]


class Secret:
    """A password that does not show itself: repr/str are `Secret('****')`.

    `reveal()` gives the value; call it only at the point of use (the engine call, the
    request body). It cannot be pickled, so it never lands in a saved file by accident.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The password itself."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('****')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")

    def __copy__(self) -> Secret:
        return self  # immutable

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self


def reveal(value: Secret | str | None) -> str | None:
    """The plain password for a `Secret`, a str or None (for callers that take either)."""
    return value.reveal() if isinstance(value, Secret) else value


def env_password(name: str, *, field: str | None = None) -> Secret:
    """The password held by environment variable `name`.

    Unset or empty: `UsageError` (an option named it), or `SpecError(field=field)` when a
    cluster spec field (`BasicAuth.password_env`) named it. The message names the variable.
    """
    value = env(name)
    if value:
        return Secret(value)
    if field is not None:
        raise SpecError(f"environment variable {name} (the registry password) is not set",
                        field=field, hint=f"set {name} in the environment the kernel runs in, or use a "
                                          "{{secrets/scope/key}} reference")
    raise UsageError(f"--password-env {name}: the environment variable {name} is not set or empty",
                     hint=f"export {name} (in CI: from a secret)")


PIN_HINT_CLI = "--image repo@sha256:..., or --lock after `dcs build --push`"
PIN_HINT_NOTEBOOK = "%dcs_push returns repo@sha256:..."


def unpinned_warning(url: str | None, *, how: str = PIN_HINT_CLI) -> str | None:
    """The warning for a `docker_image.url` that is a tag (it can move under the cluster),
    None when the reference is pinned by digest, absent or unparsable (validation reports
    that). `how` says where a pinned reference comes from."""
    from .imageref import parse_reference

    if not url:
        return None
    try:
        pinned = parse_reference(url).is_pinned
    except ValueError:
        return None
    if pinned:
        return None
    return f"docker_image.url {url} is a tag, which can move under the cluster; pin it by digest ({how})"
