"""dcs-magic: Databricks Container Services images from a Jupyter notebook.

`%load_ext dcs_magic` registers the magics. Heavy modules (docker, requests, widgets,
databricks-sdk) are imported only when a name that needs them is first used, so loading
the extension stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__
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
from .results import BuildResult, CheckItem, CheckReport, PushResult

if TYPE_CHECKING:  # pragma: no cover
    from .checks import check
    from .pipeline import build, push
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

# name -> module that defines it; imported on first attribute access (PEP 562).
_LAZY = {
    "ClusterSpec": ".spec",
    "Workspace": ".workspace",
    "build": ".pipeline",
    "push": ".pipeline",
    "check": ".checks",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dcs_magic' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext dcs_magic`: register DcsMagics and make `%config DcsMagics.x` work."""
    from .magics import DcsMagics

    magics = DcsMagics(shell=ipython)
    ipython.register_magics(magics)


def unload_ipython_extension(ipython: Any) -> None:
    from .magics import DcsMagics

    for magics in list(ipython.configurables):
        if isinstance(magics, DcsMagics):
            ipython.configurables.remove(magics)
            magics.close()
