"""Build/push progress and reports on a terminal: rich when it is a TTY, plain lines otherwise.

`TerminalProgress` is a pipeline sink (`update(snapshot)` / `close(snapshot)`, snapshots
from dcs_magic.model.progress). On an interactive terminal it draws a rich Live area: a step bar
and the current instruction with the last lines of its output for builds, one bar per
layer plus a total for pushes and base-image pulls. Step headlines stay printed above it,
so the scrollback keeps the build's outline.

Anywhere else (CI logs, pipes) it prints plain lines, each once: every complete build log
line as it arrives, a layer's status when it changes (not its byte ticks), a progress
summary at most every `summary_interval` seconds, and the outcome. Nothing is redrawn, so a
log file reads top to bottom.

Also here: `print_check_report` (the `dcs check` table) for both kinds of terminal.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from ..model.progress import ProgressSnapshot, format_line, human_bytes, shown_engine
from ..model.results import CheckReport

__all__ = ["TerminalProgress", "print_check_report", "progress_sink", "use_rich"]

_LIVE_LOG_LINES = 8
_LIVE_LAYERS = 12
_BUILDER_LINES = (" ---> ", "Removing intermediate container ", "Successfully built ", "Successfully tagged ")


def use_rich(stream: TextIO) -> bool:
    """True when STREAM is an interactive terminal (rich's Live needs one)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def progress_sink(mode: str = "auto", stream: TextIO | None = None) -> TerminalProgress | None:
    """The sink for `--progress MODE`: auto | rich | plain | none (None: no progress)."""
    if mode == "none":
        return None
    stream = stream or sys.stderr
    rich = use_rich(stream) if mode == "auto" else mode == "rich"
    return TerminalProgress(stream, rich=rich)


class TerminalProgress:
    """A progress sink for terminals (see the module docstring)."""

    def __init__(self, stream: TextIO | None = None, *, rich: bool | None = None,
                 summary_interval: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream or sys.stderr
        self.rich = use_rich(self.stream) if rich is None else rich
        self.summary_interval = summary_interval
        self.clock = clock
        self._printed_lines = 0  # complete build log lines already handled
        self._layer_status: dict[str, str] = {}
        self._warned: set[str] = set()
        self._last_summary: float | None = None
        self._console: Any = None
        self._live: Any = None
        self._engine_shown = ""

    # -- sink interface ------------------------------------------------------------------

    def update(self, snapshot: ProgressSnapshot) -> None:
        """Show a running snapshot."""
        self._engine(snapshot)
        lines = self._new_log_lines(snapshot)
        if self.rich:
            self._rich_update(snapshot, lines)
        else:
            self._plain_update(snapshot, lines)

    def close(self, snapshot: ProgressSnapshot) -> None:
        """Show the final snapshot: the remaining lines, warnings and the outcome."""
        self._engine(snapshot)
        lines = self._new_log_lines(snapshot)
        if self.rich:
            self._rich_close(snapshot, lines)
        else:
            for line in lines:
                self._print(line)
            self._plain_layers(snapshot)
            self._plain_warnings(snapshot)
            self._print(format_line(snapshot))

    # -- shared ----------------------------------------------------------------------------

    def _engine(self, snapshot: ProgressSnapshot | Mapping[str, Any]) -> None:
        """`engine: tcp://host:2376 (TLS)` once, when the run knows its engine."""
        engine = shown_engine(snapshot.get("engine"))  # nothing for the local engine
        if not engine or engine == self._engine_shown:
            return
        self._engine_shown = engine
        if self.rich:
            from rich.text import Text

            self._rich_console().print(Text(f"engine: {engine}", style="dim"))
        else:
            self._print(f"engine: {engine}")

    def _new_log_lines(self, snapshot: ProgressSnapshot | dict[str, Any]) -> list[str]:
        """Complete build log lines not handled yet (the line still being written waits).

        `log_first` is the index of the tail's first line in the whole log, so lines that left
        the bounded tail between two snapshots are counted, not guessed.
        """
        tail = list(snapshot.get("log_tail") or [])
        total = int(snapshot.get("log_lines") or 0)
        first = int(snapshot.get("log_first", total - len(tail)) or 0)
        start = max(self._printed_lines, first)
        skipped = start - self._printed_lines
        new = tail[start - first:] if start < total else []
        self._printed_lines = max(total, self._printed_lines)
        if skipped > 0:
            return [f"... {skipped} log line{'s' if skipped != 1 else ''} not shown (see the build log)", *new]
        return new

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    # -- plain -----------------------------------------------------------------------------

    def _plain_update(self, snapshot: Mapping[str, Any], lines: list[str]) -> None:
        for line in lines:
            self._print(line)
        self._plain_warnings(snapshot)
        if snapshot.get("kind") == "push":
            self._plain_layers(snapshot)
        now = self.clock()
        if snapshot.get("layers_total") and (
                self._last_summary is None or now - self._last_summary >= self.summary_interval):
            self._last_summary = now
            self._print(format_line(snapshot))

    def _plain_layers(self, snapshot: Mapping[str, Any]) -> None:
        if snapshot.get("kind") != "push":
            return  # build pulls are already in the build log lines
        for layer in snapshot.get("layers") or []:
            status = str(layer.get("status", ""))
            if status and self._layer_status.get(layer["id"]) != status:
                self._layer_status[layer["id"]] = status
                self._print(f"{layer['id']}: {status}")

    def _plain_warnings(self, snapshot: Mapping[str, Any]) -> None:
        for warning in snapshot.get("warnings") or []:
            if warning not in self._warned:
                self._warned.add(warning)
                self._print(f"Warning: {warning}")

    # -- rich ------------------------------------------------------------------------------

    def _rich_console(self) -> Any:
        if self._console is None:
            from rich.console import Console

            # soft_wrap: printed lines wrap like plain text (copyable), only the Live area is cropped.
            self._console = Console(file=self.stream, force_terminal=True, highlight=False, soft_wrap=True)
        return self._console

    def _rich_update(self, snapshot: Mapping[str, Any], lines: list[str]) -> None:
        from rich.live import Live

        console = self._rich_console()
        self._rich_print_lines(snapshot, lines)
        if self._live is None:
            self._live = Live(console=console, auto_refresh=False, transient=True,
                              redirect_stdout=False, redirect_stderr=False)
            self._live.start()
        self._live.update(self._renderable(snapshot), refresh=True)

    def _rich_close(self, snapshot: Mapping[str, Any], lines: list[str]) -> None:
        from rich.text import Text

        if self._live is not None:
            self._live.stop()
            self._live = None
        console = self._rich_console()
        self._rich_print_lines(snapshot, lines)
        for warning in snapshot.get("warnings") or []:
            if warning not in self._warned:
                self._warned.add(warning)
                console.print(Text(f"Warning: {warning}", style="yellow"))
        style = {"done": "green", "failed": "bold red", "cancelled": "yellow"}.get(str(snapshot.get("status")), "")
        console.print(Text(format_line(snapshot), style=style))

    def _rich_print_lines(self, snapshot: Mapping[str, Any], lines: list[str]) -> None:
        """Keep step headlines in the scrollback; other output lives in the Live tail."""
        from rich.text import Text

        console = self._rich_console()
        for line in lines:
            if line.startswith(("Step ", "...")):
                console.print(Text(line, style="bold"))
        for warning in snapshot.get("warnings") or []:
            if warning not in self._warned:
                self._warned.add(warning)
                console.print(Text(f"Warning: {warning}", style="yellow"))

    def _renderable(self, snapshot: Mapping[str, Any]) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        parts: list[Any] = [Text(format_line(snapshot), style="bold cyan")]
        if snapshot.get("kind") == "build" and snapshot.get("total_steps"):
            bar = Table.grid(padding=(0, 1))
            bar.add_row(ProgressBar(total=snapshot["total_steps"], completed=snapshot.get("step", 0), width=40),
                        Text(f"step {snapshot.get('step', 0)}/{snapshot['total_steps']}"))
            parts.append(bar)
        layers = [layer for layer in snapshot.get("layers") or [] if not layer.get("done")]
        if snapshot.get("layers_total"):
            grid = Table.grid(padding=(0, 1))
            for layer in layers[:_LIVE_LAYERS]:
                total = layer.get("total") or 0
                grid.add_row(Text(str(layer["id"])[:12], style="dim"),
                             ProgressBar(total=total or None, completed=layer.get("current", 0), width=30),
                             Text(f"{layer.get('status', '')} "
                                  f"{human_bytes(layer.get('current')) + '/' + human_bytes(total) if total else ''}"))
            grid.add_row(Text("total", style="bold"),
                         ProgressBar(total=1.0, completed=float(snapshot.get("fraction") or 0.0), width=30),
                         Text(f"{snapshot.get('layers_done', 0)}/{snapshot['layers_total']} layers"))
            parts.append(grid)
        tail = list(snapshot.get("log_tail") or [])
        if snapshot.get("log_pending"):
            tail.append(snapshot["log_pending"])  # the line being written (a progress bar)
        for line in _step_output(tail)[-_LIVE_LOG_LINES:]:
            parts.append(Text("  " + line, style="dim", overflow="ellipsis", no_wrap=True))
        return Group(*parts)


def _step_output(log_tail: list[str]) -> list[str]:
    """The current step's own output: the lines after the last `Step N/M` headline, without
    the builder's bookkeeping (` ---> id`, `Removing intermediate container`)."""
    starts = [i for i, line in enumerate(log_tail) if line.startswith("Step ")]
    lines = log_tail[starts[-1] + 1:] if starts else log_tail
    return [line for line in lines if not line.startswith(_BUILDER_LINES)]


def print_check_report(report: CheckReport, stream: TextIO | None = None, *, rich: bool | None = None) -> None:
    """The `dcs check` output: one row per requirement, a fix under each failure."""
    stream = stream or sys.stdout
    if rich if rich is not None else use_rich(stream):
        _rich_report(report, stream)
        return
    if shown_engine(report.engine):
        print(f"engine: {report.engine}", file=stream)
    print(f"{report.image}: {'ok' if report.ok else 'FAILED'}", file=stream)
    for item in report.checks:
        print(f"  {item!r}", file=stream)
        if not item.ok and item.fix:
            print(f"      fix: {item.fix}", file=stream)


def _rich_report(report: CheckReport, stream: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{report.image}: {'ok' if report.ok else 'FAILED'}", title_justify="left",
                  caption=Text(f"engine: {report.engine}") if shown_engine(report.engine) else None, caption_justify="left")
    for column in ("", "check", "detail", "fix"):
        table.add_column(column, overflow="fold")
    for item in report.checks:
        mark = "[green]ok[/]" if item.ok else ("[yellow]warn[/]" if item.severity == "warning" else "[red]FAIL[/]")
        table.add_row(mark, item.name, item.detail, "" if item.ok else item.fix)
    Console(file=stream, force_terminal=True, highlight=False).print(table)
