"""The errors dcs-magic raises.

Every error is a real, catchable class under one root, carries its facts as attributes,
and says what was wrong and how to fix it. No message ever contains a secret: callers
pass references (host, profile, environment variable names), never tokens or passwords.

    DcsError
    ├─ TemplateError(DcsError, ValueError)   template name, line, the variable or construct
    ├─ ContextError(DcsError, ValueError)    unknown build context, path escaping it, unwritable dir
    ├─ SpecError(DcsError, ValueError)       invalid ClusterSpec field, before any request
    ├─ ConfigError(DcsError)                 no workspace host / credentials configured
    ├─ UsageError(DcsError, ValueError)      a bad argument or option value (before any work)
    ├─ EngineError(DcsError)                 Docker engine not reachable or refused a request
    │  └─ ImageNotFoundError                 the image is not in the local engine
    ├─ BuildError(DcsError)                  step, instruction, last lines, log path
    ├─ PushError(DcsError)                   reference, registry's reason
    ├─ RegistryError(DcsError)               a registry's answer (status, url) or no answer (status None)
    ├─ ApiError(DcsError)                    status, error_code, message
    │  ├─ BadRequest (400)  ├─ Unauthenticated (401)  ├─ PermissionDenied (403)
    │  ├─ NotFound (404)    ├─ ResourceConflict (409)  ├─ TooManyRequests (429)
    │  ├─ InternalError (500)  ├─ TemporarilyUnavailable (503)
    │  └─ DeadlineExceeded (no answer in time)
    ├─ ClusterError(DcsError)                state, termination_code, message
    ├─ NotebookError(DcsError, ValueError)   a notebook the `dcs` command cannot use
    ├─ LockError(DcsError)                   rendered output no longer matches the lock file
    └─ SourceError(DcsError)                 a data source (the runtime pins' download or copy) unusable

`hint` is a one-line "how to fix it"; notebooks show `message` + `hint` without the
library traceback unless `%config DcsMagics.short_errors = False`.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ApiError",
    "BadRequest",
    "BuildError",
    "ClusterError",
    "ConfigError",
    "ContextError",
    "DcsError",
    "DeadlineExceeded",
    "EngineError",
    "ImageNotFoundError",
    "InternalError",
    "LockError",
    "NotFound",
    "NotebookError",
    "PermissionDenied",
    "PushError",
    "RegistryError",
    "ResourceConflict",
    "SourceError",
    "SpecError",
    "TemplateError",
    "TemporarilyUnavailable",
    "TooManyRequests",
    "Unauthenticated",
    "UsageError",
]


class DcsError(Exception):
    """Root of every dcs-magic error. `hint` says how to fix it (may be empty)."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\nHint: {self.hint}"
        return self.message

    def short(self) -> str:
        """The message a notebook shows instead of a traceback."""
        return f"{type(self).__name__}: {self}"


class TemplateError(DcsError, ValueError):
    """A `%%dockerfile` / `%%dcs_file` template could not be rendered."""

    def __init__(self, message: str, *, template: str = "", lineno: int | None = None,
                 name: str | None = None, hint: str = "") -> None:
        where = f"{template or 'template'}, line {lineno}" if lineno else (template or "")
        super().__init__(f"{message} ({where})" if where else message, hint=hint)
        self.template = template
        self.lineno = lineno
        self.name = name


class ContextError(DcsError, ValueError):
    """A build context is unknown, unwritable, or a path would escape it."""


class SpecError(DcsError, ValueError):
    """A ClusterSpec is invalid; raised before any request is sent."""

    def __init__(self, message: str, *, field: str | None = None, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.field = field


class UsageError(DcsError, ValueError):
    """A bad argument or option value, found before any work is done (`KEY=VALUE` missing
    its `=`, `--password-env` without `--username`, a NaN timeout, ...)."""


class ConfigError(DcsError):
    """No usable workspace host or credentials."""


class EngineError(DcsError):
    """The Docker engine is not reachable or refused a request."""

    def __init__(self, message: str, *, host: str | None = None, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.host = host


class ImageNotFoundError(EngineError):
    """The image is not in the local Docker engine (build or pull it first)."""

    def __init__(self, message: str, *, image: str | None = None, host: str | None = None,
                 hint: str = "") -> None:
        super().__init__(message, host=host, hint=hint)
        self.image = image


class BuildError(DcsError):
    """A build failed. The message names the failing step and ends with its last output."""

    def __init__(self, message: str, *, step: int | None = None, instruction: str | None = None,
                 last_lines: list[str] | None = None, log_path: str | None = None,
                 hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.step = step
        self.instruction = instruction
        self.last_lines = list(last_lines or [])
        self.log_path = log_path


class PushError(DcsError):
    """A push failed; `reason` is the registry's own words."""

    def __init__(self, message: str, *, reference: str | None = None, reason: str | None = None,
                 hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.reference = reference
        self.reason = reason


class RegistryError(DcsError):
    """A registry could not answer a question dcs-magic asked it directly (not through the
    engine): `status` is its HTTP status, None when nothing answered; `url` what was asked."""

    def __init__(self, message: str, *, status: int | None = None, url: str | None = None,
                 hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.url = url


class ApiError(DcsError):
    """The workspace answered an API call with an error."""

    def __init__(self, message: str, *, status: int | None = None, error_code: str | None = None,
                 hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.error_code = error_code

    def __str__(self) -> str:
        prefix = " ".join(str(p) for p in (self.status, self.error_code) if p)
        return f"{prefix}: {super().__str__()}" if prefix else super().__str__()

    @classmethod
    def from_response(cls, status: int, body: Any, *, what: str = "", hint: str = "") -> ApiError:
        """Build from a response body: the JSON `message`/`error_code`, else the body text."""
        error_code = None
        message = ""
        if isinstance(body, dict):
            error_code = body.get("error_code") or body.get("error")
            message = str(body.get("message") or body.get("detail") or "")
        elif isinstance(body, (bytes, bytearray)):
            message = body.decode("utf-8", "replace")
        elif body is not None:
            message = str(body)
        message = message.strip()[:2000] or f"HTTP {status}"
        if what:
            message = f"{what}: {message}"
        klass = cls if cls is not ApiError else api_error_class(status)
        return klass(message, status=status, error_code=error_code, hint=hint)


class BadRequest(ApiError):
    """400: the request was invalid (INVALID_PARAMETER_VALUE, MALFORMED_REQUEST, ...)."""


class Unauthenticated(ApiError):
    """401: no valid credentials for the workspace."""


class PermissionDenied(ApiError):
    """403: the credentials work but may not do this."""


class NotFound(ApiError):
    """404: the cluster, run, path or endpoint does not exist."""


class ResourceConflict(ApiError):
    """409: the resource is in a state that does not allow this (e.g. already exists)."""


class TooManyRequests(ApiError):
    """429: rate limited (the client already retried after `Retry-After`)."""


class InternalError(ApiError):
    """500: the workspace failed to handle the request."""


class TemporarilyUnavailable(ApiError):
    """502/503/504: the workspace is temporarily unavailable."""


class DeadlineExceeded(ApiError):
    """No answer in time (a read timeout); the request may still have taken effect."""


_API_ERRORS_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest, 401: Unauthenticated, 403: PermissionDenied, 404: NotFound,
    409: ResourceConflict, 429: TooManyRequests, 500: InternalError,
    502: TemporarilyUnavailable, 503: TemporarilyUnavailable, 504: TemporarilyUnavailable,
}


def api_error_class(status: int | None) -> type[ApiError]:
    """The ApiError subclass for an HTTP status (ApiError itself for other statuses)."""
    return _API_ERRORS_BY_STATUS.get(status or 0, ApiError)


class ClusterError(DcsError):
    """A cluster ended TERMINATED or ERROR instead of RUNNING."""

    def __init__(self, message: str, *, cluster_id: str | None = None, state: str | None = None,
                 termination_code: str | None = None, termination_type: str | None = None,
                 parameters: dict[str, Any] | None = None, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.cluster_id = cluster_id
        self.state = state
        self.termination_code = termination_code
        self.termination_type = termination_type
        self.parameters = dict(parameters or {})


class NotebookError(DcsError, ValueError):
    """A notebook file the `dcs` command cannot use."""


class LockError(DcsError):
    """The rendered build no longer matches `<notebook>.dcs.lock.json`."""


class SourceError(DcsError):
    """A data source dcs-magic reads or writes could not be used: the runtime pins' download
    (no answer, not a copy of databricks/environments) or their file (unreadable, unwritable).
    Not bad usage: the same command can work once the network or the file is right."""
