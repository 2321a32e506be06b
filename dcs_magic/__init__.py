"""dcs-magic: Databricks Container Services images from a Jupyter notebook.

`%load_ext dcs_magic` registers the magics. Every public name is imported when it is first
used (PEP 562), the error and result classes too, so `import dcs_magic` loads nothing beyond
this file and `_version` (no `typing`, no `__future__`: a fresh interpreter pays for no other
module) and loading the extension stays cheap.
"""

from importlib import import_module

from ._version import __version__

# mypy treats any name TYPE_CHECKING as true; at runtime this avoids importing `typing`.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    from .checks import check
    from .errors import (
        ApiError,
        BuildError,
        ClusterError,
        ConfigError,
        ContextError,
        DcsError,
        EngineError,
        LockError,
        NotebookError,
        PushError,
        SpecError,
        TemplateError,
    )
    from .pipeline import build, push
    from .results import BuildResult, CheckItem, CheckReport, PushResult
    from .spec import ClusterSpec
    from .workspace import Workspace

__all__ = [
    "ApiError",
    "BuildError",
    "BuildResult",
    "CheckItem",
    "CheckReport",
    "ClusterError",
    "ClusterSpec",
    "ConfigError",
    "ContextError",
    "DcsError",
    "EngineError",
    "LockError",
    "NotebookError",
    "PushError",
    "PushResult",
    "SpecError",
    "TemplateError",
    "Workspace",
    "__version__",
    "build",
    "check",
    "load_ipython_extension",
    "push",
]

_ERRORS = ("ApiError", "BuildError", "ClusterError", "ConfigError", "ContextError", "DcsError",
           "EngineError", "LockError", "NotebookError", "PushError", "SpecError", "TemplateError")

# name -> module that defines it; imported on first attribute access (PEP 562).
_LAZY = {
    **dict.fromkeys(_ERRORS, ".errors"),
    **dict.fromkeys(("BuildResult", "CheckItem", "CheckReport", "PushResult"), ".results"),
    "ClusterSpec": ".spec",
    "Workspace": ".workspace",
    "build": ".pipeline",
    "push": ".pipeline",
    "check": ".checks",
}


def __getattr__(name: str) -> "Any":
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dcs_magic' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load_ipython_extension(ipython: "Any") -> None:
    """`%load_ext dcs_magic`: register DcsMagics and make `%config DcsMagics.x` work."""
    from .magics import DcsMagics

    magics = DcsMagics(shell=ipython)
    ipython.register_magics(magics)


def unload_ipython_extension(ipython: "Any") -> None:
    """`%unload_ext dcs_magic`: drop the magics' configurable and restore the exception handler."""
    from .magics import DcsMagics

    for magics in list(ipython.configurables):
        if isinstance(magics, DcsMagics):
            ipython.configurables.remove(magics)
            magics.close()
