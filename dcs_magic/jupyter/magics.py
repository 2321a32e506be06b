"""IPython magics: parse the line, call one pipeline function, display or return the result.

Each magic is a thin adapter; the work lives in template/context (render), pipeline
(build, push), checks (check), spec/workspace/launch (launch). Configuration is traitlets on
`DcsMagics`, so `%config DcsMagics.<trait> = ...` and `ipython_config.py` both work.
"""

from __future__ import annotations

import argparse
import re
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from IPython.core.error import UsageError as MagicUsageError
from IPython.core.magic import (
    Magics,
    cell_magic,
    line_magic,
    magics_class,
    no_var_expand,
)
from IPython.core.magic_arguments import argument
from traitlets import Bool, Enum, Float, Unicode
from traitlets.config.configurable import Configurable

from ..errors import DcsError
from ..settings import BUILD_ROOT, PLATFORM, RUN_TIMEOUT_S

__all__ = ["NOTEBOOK_PROFILE_HINT", "DcsMagics", "cell_grammar", "for_notebook", "lazy_magic_arguments",
           "parse_cell_line", "parse_magic_line"]

# Names IPython puts in the user namespace that are never template variables.
_HIDDEN_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}


class _ArgMagic:
    """A magic method whose argparse parser, and the help text `%magic?` shows, are built on
    first use: IPython's `@magic_arguments()` builds every parser (and formats its help) when
    the class is defined, which was most of what `%load_ext dcs_magic` cost.

    `build` makes the parser from the function; by default IPython's construct_parser, from
    the function's `@argument`s (which also writes the help into its docstring)."""

    def __init__(self, func: Callable[..., Any],
                 build: Callable[[Callable[..., Any]], argparse.ArgumentParser] | None = None) -> None:
        self.__wrapped__ = func
        self.__module__ = func.__module__
        self.__name__ = func.__name__  # IPython registers the magic under this name
        self.__qualname__ = func.__qualname__
        self._build = build
        self._parser: argparse.ArgumentParser | None = None

    @property
    def parser(self) -> argparse.ArgumentParser:
        """The parser IPython's `@magic_arguments()` would have built, from the `@argument`s."""
        if self._parser is None:
            from IPython.core.magic_arguments import construct_parser

            # Also replaces the function's docstring with the full help, as IPython does.
            self._parser = (self._build or construct_parser)(self.__wrapped__)
        return self._parser

    def _help(self) -> str | None:
        self.parser  # noqa: B018 - building it writes the help into the docstring
        doc: str | None = self.__wrapped__.__doc__
        return doc

    # What `%magic?` shows (IPython reads the bound method's __doc__, i.e. this one).
    __doc__ = property(_help)

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        return self if instance is None else types.MethodType(self, instance)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__wrapped__(*args, **kwargs)


def lazy_magic_arguments(func: Callable[..., Any]) -> Any:
    """IPython's `@magic_arguments()` (same place: above the `@argument`s), with the parser
    built when the magic first parses a line or shows its help, not at import."""
    return _ArgMagic(func)


def cell_grammar(magic: str) -> Callable[[Callable[..., Any]], Any]:
    """`@magic_arguments()` for a build cell magic whose grammar is model/cells.py's (the
    `dcs` command reads notebooks with it too): `%%magic?` shows the help IPython would format
    for it, with the method's docstring as description, built on first use."""

    def build(func: Callable[..., Any]) -> argparse.ArgumentParser:
        from IPython.core.magic_arguments import MagicHelpFormatter

        from ..model.cells import cell_parser

        parser = cell_parser(magic, description=func.__doc__, formatter_class=MagicHelpFormatter)
        func.__doc__ = parser.format_help()  # as IPython's construct_parser does
        return parser

    def decorate(func: Callable[..., Any]) -> Any:
        return _ArgMagic(func, build)

    return decorate


def parse_magic_line(magic: Callable[..., Any], line: str) -> argparse.Namespace:
    """MAGIC's arguments from LINE, split like a shell line: `%dcs_run ... --parameters "a b"`
    gives the argument `a b` (IPython's own parse_argstring keeps the quotes). Raises
    IPython's UsageError for unbalanced quotes or bad arguments, as parse_argstring does."""
    from ..model.cells import split_line  # the build cells split their lines the same way

    argv = parse_cell_line(split_line, line)
    namespace: argparse.Namespace = magic.parser.parse_args(argv)  # type: ignore[attr-defined]
    return namespace


_Line = TypeVar("_Line")


def parse_cell_line(parse: Callable[[str], _Line], line: str) -> _Line:
    """A build cell's LINE parsed with its grammar (model/cells.py), e.g.
    `parse_cell_line(cells.parse_file_line, 'x "my file.txt"')`. A bad line raises IPython's
    UsageError with the grammar's message, as the `@argument` parsers always did."""
    from ..errors import UsageError

    try:
        return parse(line)
    except UsageError as exc:
        raise MagicUsageError(exc.message) from None


@contextmanager
def _details_in_widget(sink: Any) -> Iterator[None]:
    """Mark a DcsError raised while `sink` (a live widget) shows its details (issue 11.5): the
    widget's output became the static record, which shows the step, error, last lines and
    hint (issue 24.1)."""
    try:
        yield
    except DcsError as exc:
        if getattr(sink, "recorded", False):  # a ProgressWidget whose record replaced it
            exc.details_shown = True  # type: ignore[attr-defined]
        raise


def _one_line(error: DcsError) -> str:
    """The short form under a record that already shows the details and the hint (issues 11.5,
    24.1): what failed, not why (`BuildError: Step 3/3 failed (details above)`,
    `PushError: Push of R failed (details above)`). The cell still ends in an error (nbclient
    and papermill see a failed cell); the error is said once, in the record."""
    lines = (error.message or "").strip().splitlines()
    first = lines[0] if lines else ""
    step = re.match(r"(Step \d+/\d+) : ", first)
    end = first.find(" failed")
    summary = f"{step[1]} failed" if step else first[:end + len(" failed")] if end > 0 else first
    return f"{type(error).__name__}: {summary} (details above)"


_RESULT_TYPES = ("dcs_magic.model.results.BuildResult", "dcs_magic.model.results.PushResult")
"""The results whose record a magic's widget leaves (shown once per cell, issue 24.1)."""


NOTEBOOK_PROFILE_HINT = "in a notebook, `%config DcsMagics.profile = 'NAME'` selects it for every magic"
"""The notebook's own way to pick a profile, added where the notebook shows a "no usable
workspace" error (`for_notebook`); the library's hint is the `dcs` command's too."""


def for_notebook(error: DcsError) -> DcsError:
    """ERROR with the notebook's own way out added to its hint where there is one: the workspace
    configuration hint (adapters.workspace.HOW_TO_CONFIGURE, shared with the command line)
    gains `%config DcsMagics.profile`. Only the notebook says `%config`: `dcs` never does."""
    workspace = sys.modules.get("dcs_magic.adapters.workspace")  # not loaded: no such hint yet
    if workspace is not None and error.hint == workspace.HOW_TO_CONFIGURE:
        error.hint = f"{error.hint}; {NOTEBOOK_PROFILE_HINT}"
    return error


def _is_cancelled(error: BaseException) -> bool:
    """Whether ERROR is runner.Cancelled. Only a build or push raises it, so while ops.runner
    is not imported no interrupt can be one (and checking must not import it)."""
    runner = sys.modules.get("dcs_magic.ops.runner")
    return runner is not None and isinstance(error, runner.Cancelled)


@magics_class
class DcsMagics(Magics, Configurable):
    """%%dockerfile, %%dcs_file, %%init_script, %dcs_build, %dcs_push, %dcs_check, %dcs_outdated,
    %dcs_launch, %dcs_run, %dcs_why."""

    build_root = Unicode(
        BUILD_ROOT,
        config=True,
        help="Directory (relative to the current directory) under which NAME's build context "
        f"{BUILD_ROOT}/NAME is created when %%dockerfile gets no --context.",
    )
    short_errors = Bool(
        True,
        config=True,
        help="Show dcs-magic errors as a short message with a hint instead of a full traceback. "
        "Set to False to debug dcs-magic itself.",
    )
    default_platform = Unicode(
        PLATFORM,
        config=True,
        help="Platform %dcs_build builds for when --platform is not given. Databricks Container "
        f"Services runs {PLATFORM} only.",
    )
    progress = Enum(
        ["auto", "widget", "text", "none"],
        "auto",
        config=True,
        help="How build/push progress is shown: a live widget, throttled text lines, or nothing. "
        "'auto' uses the widget when a widget front-end is connected, text otherwise. %dcs_run's "
        "state changes: one output updated in place ('widget', or 'auto' in Jupyter), else printed lines.",
    )
    finished_widget = Enum(
        ["record", "keep"],
        "record",
        config=True,
        help="What a build/push progress widget leaves when the run ends, and the launch form when "
        "the cluster it created ended (TERMINATED or ERROR): 'record' replaces it with its static "
        "record (one block per cell that renders without a kernel or widget state); 'keep' keeps "
        "the finished widget (steps, log tail) or the open form, with the record under it.",
    )
    progress_interval = Float(
        0.1,
        config=True,
        help="Seconds between progress updates sent to the widget or terminal (throttle).",
    )
    profile = Unicode(
        None,
        allow_none=True,
        config=True,
        help="~/.databrickscfg profile used by %dcs_launch and %%init_script --upload when "
        "--profile is not given (None: the Databricks SDK's default resolution).",
    )

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)  # type: ignore[no-untyped-call]  # Magics.__init__: no annotations
        # The handler that was installed before ours (IPython keeps one), restored by close().
        self._previous_exc: tuple[Any, Any] | None = None
        self._our_exc: Any = None
        if shell is not None:
            # Magics.__init__ already adds us to shell.configurables (so %config works).
            self._previous_exc = (shell.custom_exceptions, shell.CustomTB)
            # runner.Cancelled (a KeyboardInterrupt raised by our build/push after its
            # cleanup) shows as its one line, not a traceback through docker-py and http.client.
            # The handler takes every KeyboardInterrupt and passes any other one on to IPython's
            # own traceback: naming Cancelled here would import ops.runner (the
            # progress model...) on %load_ext.
            shell.set_custom_exc((DcsError, KeyboardInterrupt), self._show_error)
            self._our_exc = shell.CustomTB
            self._register_result_display(shell)
        # Per-notebook session state: build contexts by NAME, init scripts, last results.
        self.contexts: dict[str, Path] = {}
        self.init_scripts: dict[str, Any] = {}
        self.last_build: Any = None
        self.last_push: Any = None
        self.last_check: Any = None
        self.last_outdated: Any = None
        self.last_why: Any = None
        self.last_run: Any = None
        self.dockerfile_cells: dict[str, str] = {}  # NAME -> the %%dockerfile cell's body, as written
        self.jobs: list[Any] = []
        # (id of a result, execution count) whose record the cell already shows (issue 24.1).
        self._recorded: tuple[int, int] | None = None

    def close(self) -> None:
        """Release what the magics hold (background jobs finish on their own).

        The exception handler installed before ours comes back, but only while ours is still
        the installed one: an extension that installed its own after us keeps it.
        """
        shell = self.shell
        if shell is not None and self._previous_exc is not None and self._our_exc is not None \
                and shell.CustomTB is self._our_exc:
            shell.custom_exceptions, shell.CustomTB = self._previous_exc
        self._previous_exc = self._our_exc = None
        if shell is not None:
            formatter = shell.display_formatter.ipython_display_formatter
            for name in _RESULT_TYPES:
                try:
                    if formatter.lookup_by_type(name) == self._display_result:
                        formatter.pop(name)
                except KeyError:
                    pass

    # -- one outcome block per cell (issue 24.1) ---------------------------------------------

    def _register_result_display(self, shell: Any) -> None:
        """Show a BuildResult / PushResult as its record, except as the value of the cell whose
        widget the record already replaced (`%dcs_build -t x` alone shows it once)."""
        formatter = shell.display_formatter.ipython_display_formatter
        for name in _RESULT_TYPES:  # by name: %load_ext imports no model module
            formatter.for_type_by_name(*name.rsplit(".", 1), self._display_result)

    def _mark_recorded(self, sink: Any, result: Any) -> Any:
        """Remember that this cell's output already shows RESULT's record (its widget's)."""
        if getattr(sink, "recorded", False) and self.shell is not None:
            self._recorded = (id(result), self.shell.execution_count)
        return result

    def _display_result(self, result: Any) -> None:
        if self.shell is not None and self._recorded == (id(result), self.shell.execution_count):
            return  # the widget's record above says it
        from IPython.display import display

        display({"text/plain": repr(result), "text/html": result._repr_html_()}, raw=True)

    # -- helpers -----------------------------------------------------------------------

    def _namespace(self) -> dict[str, Any]:
        """The notebook's variables as template context (private and IPython names left out)."""
        ns: dict[str, Any] = self.shell.user_ns if self.shell is not None else {}
        return {k: v for k, v in ns.items() if not k.startswith("_") and k not in _HIDDEN_NAMES}

    def _context_dir(self, name: str, context: str | None = None) -> Path:
        """NAME's build context directory: --context, the one used before, or build_root/NAME."""
        if context:
            return Path(context).expanduser()
        if name in self.contexts:
            return self.contexts[name]
        return Path(self.build_root) / name

    def _show_error(self, shell: Any, etype: type, value: BaseException, tb: Any,
                    tb_offset: int | None = None) -> Any:
        if isinstance(value, DcsError):
            for_notebook(value)
        if not self.short_errors or (isinstance(value, KeyboardInterrupt) and not _is_cancelled(value)):
            return shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
        # One short entry instead of the library frames: shown as the cell's `error` output in
        # notebooks (so nbclient/papermill still see a failed cell), printed in a terminal.
        if isinstance(value, DcsError) and getattr(value, "details_shown", False):
            stb = [_one_line(value)]  # the widget above shows the details: say it once
        elif isinstance(value, DcsError):
            stb = [value.short()]
        elif isinstance(value, KeyboardInterrupt):  # runner.Cancelled: its message is the line
            stb = [str(value) or "Cancelled"]
        else:
            stb = [f"{etype.__name__}: {value}"]
        shell._showtraceback(etype, value, stb)
        return stb

    # -- cell magics -------------------------------------------------------------------

    @no_var_expand
    @cell_grammar("dockerfile")
    @cell_magic
    def dockerfile(self, line: str, cell: str) -> Any:
        """Render the cell as a Jinja2 template into NAME's build context Dockerfile.

        Returns the `Rendered` result (text, path, sha256, lint findings); the notebook shows
        it as the highlighted Dockerfile with the lint warnings below. `--quiet` hides the
        Dockerfile text but never the warnings.
        """
        from ..model.cells import parse_dockerfile_line
        from ..ops import context

        args = parse_cell_line(parse_dockerfile_line, line)
        rendered = context.render_dockerfile(
            cell, self._namespace(), name=args.name,
            context_dir=self._context_dir(args.name, args.context), base=args.base,
        )
        self.contexts[args.name] = rendered.context_dir
        self.dockerfile_cells[args.name] = cell
        return rendered.quiet() if args.quiet else rendered

    @no_var_expand
    @cell_grammar("dcs_file")
    @cell_magic
    def dcs_file(self, line: str, cell: str) -> Any:
        """Render the cell (same Jinja rules) to PATH inside NAME's build context.

        Returns a `ContextFile` (path, size, sha256; `os.fspath()` gives the path), shown as
        one line naming what was written where.
        """
        from ..model.cells import parse_file_line
        from ..model.template import render
        from ..ops import context

        args = parse_cell_line(parse_file_line, line)
        context.validate_name(args.name)
        text = render(cell, self._namespace(), template_name=f"{args.name}/{args.path}")
        return context.write_context_file(self._context_dir(args.name), args.path, text, name=args.name)

    @no_var_expand
    @cell_grammar("init_script")
    @cell_magic
    def init_script(self, line: str, cell: str) -> Any:
        """Keep a cluster init script written in the cell; optionally upload it.

        `--upload DEST` sends it to /Workspace/..., /Volumes/... or dbfs:/... and records DEST,
        so %dcs_launch and ClusterSpec(init_scripts=[...]) reference it. A `file:/...` DEST is
        recorded without an upload: the script is baked into the image (e.g. %%dcs_file).
        Returns the kept script (`self.init_scripts[NAME]`).
        """
        from ..adapters.workspace import open_workspace
        from ..model.cells import parse_init_script_line
        from ..model.spec import NamedInitScript, init_script_info, upload_destination

        args = parse_cell_line(parse_init_script_line, line)
        script = NamedInitScript(args.name, cell)
        if args.upload and args.upload.startswith("file:"):
            init_script_info(args.upload)  # a path inside the image: nothing to upload
        elif args.upload:
            upload_destination(args.upload)  # a malformed DEST fails before any request
            workspace = open_workspace(args.profile or self.profile, local=args.local, session=True)
            workspace.upload(args.upload, cell)
        script.destination = args.upload
        self.init_scripts[args.name] = script
        return script

    # -- line magics -------------------------------------------------------------------

    @no_var_expand
    @lazy_magic_arguments
    @argument("name", nargs="?", default="default", help="Build context name (default: 'default').")
    @argument("-t", "--tag", action="append", default=[], dest="tags", help="Image tag (repeatable).")
    @argument("--build-arg", action="append", default=[], dest="build_args", metavar="K=V")
    @argument("--platform", default=None, help=f"Target platform (default: {PLATFORM}).")
    @argument("--no-cache", action="store_true", help="Do not use the engine's build cache.")
    @argument("--pull", action="store_true", help="Always pull a newer base image.")
    @argument("--target", default=None, help="Multi-stage target to build.")
    @argument("--label", action="append", default=[], dest="labels", metavar="K=V")
    @argument("--builder", default="auto", choices=("auto", "classic", "buildkit"),
              help="auto (default): BuildKit when the Dockerfile needs it (RUN --mount, heredocs, "
              "# syntax=) or --secret is given, through a BuildKit-capable docker CLI; else the "
              "classic builder.")
    @argument("--secret", action="append", default=[], dest="secrets", metavar="id=NAME,env=VAR",
              help="A build secret for RUN --mount=type=secret,id=NAME: id=NAME,env=VAR or "
              "id=NAME,src=FILE (repeatable; BuildKit; the value is never stored).")
    @argument("--bg", action="store_true",
              help="Build in the background; return a Job at once (stop it with the widget's Stop "
              "button or job.cancel(); Kernel > Interrupt only interrupts the running cell).")
    @line_magic
    def dcs_build(self, line: str) -> Any:
        """Build NAME's context with the Docker engine, with live progress."""
        from IPython.core.error import UsageError

        from ..model.buildkit import secret_specs
        from ..ops.build import build, parse_pairs
        from ..ops.context import check_buildable
        from ..ops.runner import Job
        from .widgets import progress_sink

        args = parse_magic_line(self.dcs_build, line)
        if not args.tags:
            raise UsageError("%dcs_build needs at least one -t TAG, e.g. -t 127.0.0.1:5000/team/app:1")
        # Before any widget is drawn: no Dockerfile, or a COPY of a missing file, is a
        # ContextError saying which cell to run, not a "failed 0.0s" progress widget.
        check_buildable(self._context_dir(args.name), args.name)
        try:
            build_args = parse_pairs(args.build_args, "--build-arg")
            labels = parse_pairs(args.labels, "--label")
            secrets = secret_specs(args.secrets)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        kwargs: dict[str, Any] = {
            "tags": args.tags, "name": args.name, "build_args": build_args, "labels": labels,
            "builder": args.builder, "secrets": secrets,
            "platform": args.platform or self.default_platform, "no_cache": args.no_cache,
            "pull": args.pull, "target": args.target, "interval": self.progress_interval,
            "progress": progress_sink("build", self.progress, title=args.name, foreground=not args.bg,
                                      keep=self.finished_widget == "keep")}
        context_dir = self._context_dir(args.name)
        if args.bg:
            job = Job("build", args.name, build, context_dir,
                      on_result=lambda result: setattr(self, "last_build", result), **kwargs)
            self.jobs.append(job)
            return job
        with _details_in_widget(kwargs["progress"]):
            self.last_build = build(context_dir, **kwargs)
        return self._mark_recorded(kwargs["progress"], self.last_build)

    @no_var_expand
    @lazy_magic_arguments
    @argument("ref", help="repo:tag to push.")
    @argument("--username", default=None, help="Registry user (else Docker's own credentials).")
    @argument("--password-env", default=None, metavar="VAR",
              help="Environment variable holding the password (else a hidden prompt).")
    @argument("--secret-ref", default=None, metavar="SCOPE/KEY",
              help="The workspace secret that holds the registry password: %%dcs_launch then sends "
              "{{secrets/SCOPE/KEY}} as the password (the push only records the name, unless --store-secret).")
    @argument("--store-secret", action="store_true",
              help="After a verified push, also store the password it used (--username's) as --secret-ref's "
              "SCOPE/KEY, creating the scope when missing, on the workspace: --local, --profile P, else the "
              "configured one.")
    @argument("--local", action="store_true", help="With --store-secret: store it on the local preflight workspace.")
    @argument("--profile", default=None, help="With --store-secret: the Databricks config profile to store it with.")
    @argument("--bg", action="store_true",
              help="Push in the background; return a Job at once (stop it with the widget's Stop "
              "button or job.cancel()).")
    @line_magic
    def dcs_push(self, line: str) -> Any:
        """Push an image to its registry, with per-layer progress; success once the registry
        serves the pushed digest (HEAD of the manifest with the same credentials).

        The result remembers `--username` and `--secret-ref` (never the password), so the next
        `%dcs_launch` starts from the same registry auth. `--store-secret` puts the password the
        push used into that secret (`--local`, `--profile P`, else the configured workspace), so
        nobody types it into a cluster spec."""
        from IPython.core.error import UsageError

        from ..model.secrets import secret_reference
        from ..ops.credentials import registry_password
        from ..ops.push import push
        from ..ops.runner import Job
        from .widgets import progress_sink

        args = parse_magic_line(self.dcs_push, line)
        try:  # a malformed name is refused before the password prompt and the push
            secret_ref = secret_reference(args.secret_ref) if args.secret_ref is not None else None
        except ValueError as exc:
            raise UsageError(f"--secret-ref: {exc}") from None
        workspace = self._secret_workspace(args, secret_ref)  # before the prompt: a refused store costs nothing
        # A Secret (masked in tracebacks), unwrapped only at the engine call. Jupyter asks for
        # a password in the front-end, so the prompt needs no terminal here.
        password = registry_password(args.username, args.password_env, interactive=True)
        kwargs: dict[str, Any] = {"username": args.username, "password": password, "secret_ref": secret_ref,
                                  "interval": self.progress_interval,
                                  "progress": progress_sink("push", self.progress, title=args.ref,
                                                            foreground=not args.bg,
                                                            keep=self.finished_widget == "keep")}
        stored = password if workspace is not None else None
        del password
        if args.bg:
            job = Job("push", args.ref, push, args.ref,
                      on_result=lambda result: setattr(self, "last_push", result), **kwargs)
            self.jobs.append(job)
            return job
        try:
            with _details_in_widget(kwargs["progress"]):
                self.last_push = push(args.ref, **kwargs)
            if workspace is not None and stored is not None and secret_ref is not None:
                from ..ops.secrets import scope_and_key, store_registry_password

                print(store_registry_password(workspace, *scope_and_key(secret_ref), stored).line())
        finally:
            del stored
            if workspace is not None:
                workspace.close()
        return self._mark_recorded(kwargs["progress"], self.last_push)

    def _secret_workspace(self, args: Any, secret_ref: str | None) -> Any:
        """The workspace `%dcs_push --store-secret` stores into (None without it), after the
        option checks: a UsageError before any prompt or push."""
        from IPython.core.error import UsageError

        if not args.store_secret:
            if args.local or args.profile:
                raise UsageError("--local and --profile say where --store-secret stores the password; "
                                 "add --store-secret --secret-ref SCOPE/KEY")
            return None
        if secret_ref is None:
            raise UsageError("--store-secret needs --secret-ref SCOPE/KEY (where to store the password)")
        if not args.username:
            raise UsageError("--store-secret needs --username (and --password-env VAR or the prompt): the "
                             "password of Docker's own credentials is not readable here")
        if args.bg:
            raise UsageError("--store-secret runs in the foreground: drop --bg")
        if args.local and args.profile:
            raise UsageError("--local and --profile exclude each other")
        from ..adapters.workspace import open_workspace

        return open_workspace(args.profile or self.profile, local=args.local, session=True)

    @no_var_expand
    @lazy_magic_arguments
    @argument("image", help="Local image reference or id.")
    @argument("--runtime", default=None, help="Databricks Runtime line targeted, e.g. 15.4.")
    @argument("--parity", action="store_true",
              help="Also compare /databricks/python3 with the runtime line's official image.")
    @line_magic
    def dcs_check(self, line: str) -> Any:
        """Run the image locally and check it against the DCS requirements.

        Returns the `CheckReport` (shown as a table with a fix for each failure) and keeps it
        as `last_check`. A report that fails is a result, not an error: only a missing image or
        a Docker engine that does not answer raises.
        """
        from ..ops.check import check

        args = parse_magic_line(self.dcs_check, line)
        self.last_check = check(args.image, runtime=args.runtime, parity=args.parity)
        return self.last_check

    @no_var_expand
    @lazy_magic_arguments
    @argument("notebook", nargs="?", default=None,
              help="The notebook (or its .dcs.lock.json) whose lock to read (default: this notebook, when the "
              "front-end says which it is).")
    @argument("--name", default=None, help="Only this lock entry (default: every one).")
    @line_magic
    def dcs_outdated(self, line: str) -> Any:
        """Ask the registry whether the base tags in the notebook's lock moved, and what changed
        that matters on Databricks (from both images' registry records; nothing is pulled or run).

        Returns the `OutdatedReport` (`exit_code` 0 up to date, 1 a base tag moved, 2 a registry
        could not be asked; the line that updates the lock per image) and keeps it as
        `last_outdated`. An outdated base is a result, not an error: only a missing or unreadable
        lock raises.
        """
        from IPython.core.error import UsageError

        from ..ops.outdated import outdated

        args = parse_magic_line(self.dcs_outdated, line)
        notebook = args.notebook or self._this_notebook()
        if not notebook:
            raise UsageError("%dcs_outdated needs the notebook whose lock to read (this front-end does not say "
                             "which notebook runs), e.g. %dcs_outdated app.ipynb")
        self.last_outdated = outdated(notebook, name=args.name)
        return self.last_outdated

    @no_var_expand
    @lazy_magic_arguments
    @argument("cluster_id", metavar="CLUSTER_ID", help="The cluster whose failed start or run to explain.")
    @argument("--profile", default=None, help="Databricks config profile.")
    @argument("--local", action="store_true", help="Ask the local preflight workspace.")
    @argument("--lock", default=None, metavar="NOTEBOOK",
              help="The notebook that built the image (default: this one, else this kernel's "
                   "%%dockerfile cells): the fix names its cell and line.")
    @line_magic
    def dcs_why(self, line: str) -> Any:
        """Why a cluster start or run failed: the termination reason, the events and the logs
        `cluster_log_conf` delivered, matched against known failures. Shows the most likely cause,
        the evidence lines, the fix (with the %%dockerfile cell and line it goes to) and the local
        check that would have caught it; an unknown failure says so and shows the most relevant
        lines. Returns the `Why` (kept as `last_why`; `.to_dict()` is `dcs why --json`'s object).
        """
        from ..adapters.workspace import open_workspace
        from ..ops.why import dockerfiles_of, why_cluster

        args = parse_magic_line(self.dcs_why, line)
        cells = dockerfiles_of(args.lock) if args.lock else self._dockerfile_sources()
        with open_workspace(args.profile or self.profile, local=args.local, session=True) as workspace:
            self.last_why = why_cluster(workspace, args.cluster_id, dockerfiles=cells)
        return self.last_why

    def _dockerfile_sources(self) -> list[Any]:
        """The %%dockerfile cells a diagnosis's fix can point at: this notebook's (with its lock's
        image references), else the ones this kernel ran."""
        from ..ops.why import DockerfileSource, dockerfiles_of

        notebook = self._this_notebook()
        if notebook:
            try:
                return dockerfiles_of(notebook)
            except DcsError:
                pass  # unsaved or unreadable: this kernel's cells still say where
        return [DockerfileSource(name, "its %%dockerfile cell in this notebook", body)
                for name, body in self.dockerfile_cells.items()]

    def _this_notebook(self) -> str | None:
        """The notebook this kernel runs, when the front-end says: JupyterLab / Notebook 7 through
        ipykernel's `__session__` (Jupyter Server's JPY_SESSION_NAME), VS Code's
        `__vsc_ipynb_file__`. None otherwise (a console, an older server)."""
        ns: dict[str, Any] = self.shell.user_ns if self.shell is not None else {}
        for key in ("__vsc_ipynb_file__", "__session__"):
            value = ns.get(key)
            if isinstance(value, str) and value.endswith(".ipynb") and Path(value).is_file():
                return value
        return None

    @no_var_expand
    @lazy_magic_arguments
    @argument("--image", default=None, help="Image reference (default: last push, pinned).")
    @argument("--profile", default=None, help="Databricks config profile.")
    @argument("--local", action="store_true", help="Target the local preflight workspace.")
    @argument("--spec", default=None, help="JSON file with a clusters/create body to start from.")
    @argument("--registry-auth", default="auto", choices=("auto", "dockerhub", "acr", "ecr", "gar", "basic", "none"),
              metavar="KIND", help="The registry's kind (dockerhub, acr, ecr, gar, basic, none; default auto, from "
              "the image's host): the form's Registry choice, with its username convention and notes.")
    @line_magic
    def dcs_launch(self, line: str) -> Any:
        """Show the launch form: assemble clusters/create JSON, create, follow the state.

        The image is --image, else the last %dcs_push (pinned by digest), else the --spec
        file's. Without a usable workspace the form is a preview and says what is missing.
        The form starts from the last push's registry auth, and from the image's Python
        (`%dcs_check`'s, else a quick look at the local image), and warns before Create about
        what it can see would fail. Once the cluster it created ended, the form is replaced by its
        record (`finished_widget = 'keep'` keeps it open); its Done button does that at any time.
        Returns the LaunchWidget: shown once as the cell's result (after `w = %dcs_launch`,
        show it with `w`).
        """
        from ..adapters.workspace import open_workspace
        from ..model.spec import ClusterSpec, DockerImage
        from ..ops.launch_form import private_registries
        from .launch import LaunchWidget

        args = parse_magic_line(self.dcs_launch, line)
        base = ClusterSpec.load(args.spec) if args.spec else None
        image = args.image or getattr(self.last_push, "pinned", None)
        workspace, unavailable = None, None
        try:
            workspace = open_workspace(args.profile or self.profile, local=args.local, session=True)
        except DcsError as exc:  # no host/credentials, or no local workspace: preview only
            unavailable = str(for_notebook(exc))
        shown = image or (base.docker_image.url if base is not None and isinstance(base.docker_image, DockerImage)
                          else None)
        return LaunchWidget(workspace, image=image, spec=base, init_scripts=self.init_scripts,
                            image_python=self._image_python(shown), push=self.last_push,
                            private=private_registries(shown, self.last_push),
                            unavailable=unavailable, local=args.local, spec_path=args.spec,
                            dockerfiles=self._dockerfile_sources(), finished=self.finished_widget,
                            registry_auth=args.registry_auth)

    def _image_python(self, image: str | None) -> str | None:
        """The Python of `image`'s /databricks/python3: `%dcs_check`'s, else a quick look at the
        local image (a pushed image is known by its pinned reference too), else None."""
        from ..ops.check import image_python

        if not image:
            return None
        checked = self._checked_python(image)
        return checked if checked is not None else image_python(image)

    def _checked_python(self, image: str | None) -> str | None:
        """The Python `%dcs_check` found in `image` (same repository), or None."""
        from ..model.imageref import parse_reference
        from ..model.requirements import report_python

        report = self.last_check
        if report is None or not image:
            return None
        try:
            same = parse_reference(report.image).repository == parse_reference(image).repository
        except ValueError:
            return None
        return report_python(report) if same else None

    # -- %dcs_run (one-time job run; the work is in ops.runs / jobs / Workspace) -----------

    @no_var_expand
    @lazy_magic_arguments
    @argument("--spec", required=True, help="JSON file with a clusters/create body (the job cluster).")
    @argument("--python-file", default=None,
              help="Python file to run: a file here (uploaded first, to /Workspace/Users/<you>/.dcs/runs/<hash>/), "
                   "or /Workspace/..., dbfs:/..., /Volumes/..., file:/... in the image.")
    @argument("--notebook", default=None, help="Workspace notebook path to run.")
    @argument("--parameters", nargs="...", default=[],  # "..." is argparse.REMAINDER
              help="Script arguments, or notebook NAME=VALUE pairs; last, it takes the rest of the line.")
    @argument("--image", default=None, help="docker_image.url (default: the last %%dcs_push, pinned).")
    @argument("--profile", default=None, help="Databricks config profile.")
    @argument("--local", action="store_true", help="Run on the local preflight workspace.")
    @argument("--timeout", type=float, default=RUN_TIMEOUT_S, help="Seconds to wait for the run.")
    @line_magic
    def dcs_run(self, line: str) -> Any:
        """Submit a one-time run on a job cluster made from --spec, show its state changes as
        they come (with the run page link), and return the `RunResult` (state, output, run
        page URL). A local --python-file is uploaded first. A run that does not succeed
        raises RunError with its exit code and the last lines of its output."""
        from ..adapters.workspace import open_workspace
        from ..model.exports import export_spec
        from ..model.jobs import RunProgress
        from ..model.spec import ClusterSpec
        from ..ops.runs import follow_run, python_file_source, submit_run
        from .widgets import RunStates, has_widget_frontend

        args = parse_magic_line(self.dcs_run, line)
        source = python_file_source(args.python_file) if args.python_file else None
        image = args.image or getattr(self.last_push, "pinned", None)
        spec = export_spec(ClusterSpec.load(args.spec), image=image)
        live = self.progress == "widget" or (self.progress == "auto" and has_widget_frontend())
        with open_workspace(args.profile or self.profile, local=args.local, session=True) as workspace:
            run_id = submit_run(workspace, spec, python_file=source, notebook=args.notebook,
                                parameters=args.parameters, on_upload=lambda up: print(up, flush=True))
            run = workspace.get_run(run_id)
            view = RunStates(RunProgress(run_id, workspace.run_url(run)), live=live)
            self.last_run = follow_run(workspace, run_id, timeout_s=args.timeout, first=run, on_change=view.change)
        view.finish(self.last_run)
        if self.last_run.output:
            print(self.last_run.shown_output.rstrip("\n"), flush=True)
        return self.last_run.raise_for_state()
