"""dcs-magic: Databricks Container Services images from a Jupyter notebook.

`%load_ext dcs_magic` registers the magics. Every public name is imported when it is first
used (PEP 562), the error and result classes too, so `import dcs_magic` loads nothing beyond
this file and `_version` (no `typing`, no `__future__`: a fresh interpreter pays for no other
module) and loading the extension stays cheap.
"""

import sys
from importlib import import_module

from ._version import __version__

# mypy treats any name TYPE_CHECKING as true; at runtime this avoids importing `typing`.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    from .adapters.workspace import Workspace
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
    from .model.results import BuildResult, CheckItem, CheckReport, PushResult
    from .model.spec import ClusterSpec
    from .ops.build import build
    from .ops.check import check
    from .ops.push import push

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
    **dict.fromkeys(("BuildResult", "CheckItem", "CheckReport", "PushResult"), ".model.results"),
    "ClusterSpec": ".model.spec",
    "Workspace": ".adapters.workspace",
    "build": ".ops.build",
    "push": ".ops.push",
    "check": ".ops.check",
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
    from .jupyter.magics import DcsMagics

    magics = DcsMagics(shell=ipython)
    ipython.register_magics(magics)


def unload_ipython_extension(ipython: "Any") -> None:
    """`%unload_ext dcs_magic`: drop the magics' configurable and restore the exception handler."""
    from .jupyter.magics import DcsMagics

    for magics in list(ipython.configurables):
        if isinstance(magics, DcsMagics):
            ipython.configurables.remove(magics)
            magics.close()


# The flat layout of 0.x, module by module: `import dcs_magic.spec` still works for one release
# and warns where the module went (docs/architecture.md has the layers).
_MOVED = {
    "checks": "ops.check", "context": "ops.context", "credentials": "model.credentials",
    "dockerfile": "model.dockerfile", "doctor": "ops.doctor", "engine": "adapters.engine",
    "exports": "model.exports", "imageref": "model.imageref", "jobs": "model.jobs",
    "launch": "jupyter.launch", "lock": "ops.lock", "magics": "jupyter.magics",
    "notebook": "ops.notebook", "parity": "model.parity", "pipeline": "ops.build",
    "progress": "model.progress", "recipe": "ops.recipe", "results": "model.results",
    "runtime": "model.runtime", "spec": "model.spec", "tarstream": "adapters.tarstream",
    "template": "model.template", "terminal": "cli.terminal", "widgets": "jupyter.widgets",
    "workspace": "adapters.workspace",
}


class _MovedModules:
    """A meta path finder for the old module paths: the old name becomes an alias of the new
    module (the same object, so patches and isinstance checks agree) with a DeprecationWarning."""

    @classmethod
    def find_spec(cls, fullname: str, path: "Any" = None, target: "Any" = None) -> "Any":
        package, _, name = fullname.rpartition(".")
        if package != __name__ or name not in _MOVED:
            return None
        from importlib.util import spec_from_loader

        return spec_from_loader(fullname, cls)  # type: ignore[arg-type]

    @staticmethod
    def create_module(spec: "Any") -> "Any":
        import warnings

        new = f"{__name__}.{_MOVED[spec.name.rpartition('.')[2]]}"
        warnings.warn(f"{spec.name} has moved to {new}; import it from there (the old path will be "
                      "removed in the next release)", DeprecationWarning, stacklevel=2)
        return import_module(new)

    @staticmethod
    def exec_module(module: "Any") -> None:
        """The module was executed under its new name."""


if not any(isinstance(finder, type) and finder.__name__ == "_MovedModules" for finder in sys.meta_path):
    sys.meta_path.append(_MovedModules)
