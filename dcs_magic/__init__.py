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
# and warns where the module went (docs/architecture.md has the layers). A module that was split
# lists every part; its old path then reads its names from them in that order.
_MOVED = {
    "checks": "ops.check model.requirements model.probe", "context": "ops.context",
    "credentials": "model.credentials ops.credentials", "dockerfile": "model.dockerfile model.lint",
    "doctor": "ops.doctor adapters.registry", "engine": "adapters.engine", "exports": "model.exports",
    "imageref": "model.imageref", "jobs": "model.jobs ops.runs",
    "launch": "jupyter.launch ops.launch_form model.form_values", "lock": "ops.lock",
    "magics": "jupyter.magics", "notebook": "ops.notebook model.cells", "parity": "model.parity",
    "pipeline": "ops.build ops.push ops.runner", "progress": "model.progress",
    "recipe": "ops.recipe adapters.registry", "results": "model.results", "runtime": "model.runtime",
    "spec": "model.spec model.secrets", "tarstream": "adapters.tarstream", "template": "model.template",
    "terminal": "cli.terminal", "widgets": "jupyter.widgets", "workspace": "adapters.workspace adapters.follow",
}


class _MovedModules:
    """A meta path finder for the old module paths. A module that moved whole is aliased (the
    same object, so patches and isinstance checks agree); a split one becomes a module that
    looks its names up in the parts. Either way with a DeprecationWarning naming the new place."""

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
        from types import ModuleType

        parts = [f"{__name__}.{part}" for part in _MOVED[spec.name.rpartition(".")[2]].split()]
        warnings.warn(f"{spec.name} has moved to {' and '.join(parts)}; import it from there (the old "
                      "path will be removed in the next release)", DeprecationWarning, stacklevel=2)
        modules = [import_module(part) for part in parts]
        if len(modules) == 1:
            return modules[0]
        old = ModuleType(spec.name, f"0.x's {spec.name}, now split into {', '.join(parts)}.")

        def lookup(name: str) -> "Any":
            for module in modules:
                if hasattr(module, name):
                    return getattr(module, name)
            raise AttributeError(f"{spec.name} has no attribute {name!r} (it moved to {', '.join(parts)})")

        old.__getattr__ = lookup  # type: ignore[method-assign]
        return old

    @staticmethod
    def exec_module(module: "Any") -> None:
        """The parts were executed under their new names."""


if not any(isinstance(finder, type) and finder.__name__ == "_MovedModules" for finder in sys.meta_path):
    sys.meta_path.append(_MovedModules)
