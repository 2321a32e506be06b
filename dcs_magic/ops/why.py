"""`dcs why` / `%dcs_why`: why a cluster start or run failed, from what the workspace kept.

Two ways in, one diagnosis (`model.forensics.diagnose` over the signatures table):

    why_cluster(workspace, CLUSTER_ID)   asks the workspace: clusters/get (state, termination
                                         reason), clusters/events (every page, init-script
                                         details), and the logs `cluster_log_conf` delivered to
                                         a volume or DBFS (`<dest>/<cluster-id>/driver/...`,
                                         `.../init_scripts/<cluster-id>_<ip>/*.sh.{stdout,stderr}.log`,
                                         read through the Files / DBFS API, tails only)
    why_from(PATH)                       the same from what a user downloaded or pasted: a
                                         clusters/get JSON, an events JSON, a copied cluster-log
                                         folder, a single log file (a folder or one file)

`notebook=` (`--lock NOTEBOOK`) names where the fix goes: the `%%dockerfile` cell that built the
cluster's image (by the lock's pushed reference) and the line of it to change. What could not be
read (no log delivery, logs not delivered yet, a volume the token may not read) is said in
`notes`, never raised: the termination reason and events still explain most failures.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ApiError, NotebookError, UsageError
from ..model.forensics import Diagnosis, Evidence, Line, diagnose, relevant_lines, signatures

if TYPE_CHECKING:  # pragma: no cover
    from ..adapters.workspace import RemoteFile, Workspace
    from ..model.jobs import RunResult

__all__ = ["DockerfileSource", "Why", "dockerfiles_of", "place_fix", "why_cluster", "why_from", "why_run"]

MAX_FILE_BYTES = 16 * 2**20
MAX_FILES = 500
LOG_TAIL_BYTES = 512 * 2**10
"""How much of each delivered log is read (its end: where a failure is)."""
MAX_LOGS = 24
DELIVERY_MINUTES = 5
"""Databricks delivers cluster logs every few minutes and at termination."""
_STARTING = ("PENDING", "RESTARTING", "RESIZING")
_SUCCESS_CODES = ("USER_REQUEST", "INACTIVITY", "JOB_FINISHED")


@dataclass(frozen=True)
class DockerfileSource:
    """A `%%dockerfile` cell as the user wrote it: NAME, where it is, its body, the images built
    from it (references the lock recorded), so a fix can name its line."""

    name: str
    where: str  # "cell 4 of app.ipynb", "this notebook"
    template: str
    first_line: int = 2  # the body's first line number in the cell (line 1 is the magic line)
    images: tuple[str, ...] = ()


@dataclass
class Why:
    """A diagnosis: the causes (most likely first), the evidence read, what could not be read."""

    source: str
    code: str | None
    message: str
    causes: list[Diagnosis]
    shown: list[Line] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    state: str | None = None
    notes: list[str] = field(default_factory=list)
    place: str | None = None  # the %%dockerfile cell and line the first cause's fix goes to

    @property
    def failed(self) -> bool:
        """False for a cluster that is starting, running or ended normally with nothing in its
        logs that failed."""
        if self.causes:
            return True
        if self.state in ("RUNNING", *_STARTING):
            return False
        return not (self.state in ("TERMINATED", "TERMINATING") and self.code in _SUCCESS_CODES)

    @property
    def confidence(self) -> str:
        return self.causes[0].confidence if self.causes else "unknown"

    @property
    def exit_code(self) -> int:
        """`dcs why`'s exit status: 0 a cause is named (or nothing failed), 1 unknown."""
        return 0 if self.causes or not self.failed else 1

    def fix(self, diagnosis: Diagnosis) -> str:
        return f"{self.place}: {diagnosis.fix}" if self.place and diagnosis is self.causes[0] else diagnosis.fix

    def to_dict(self) -> dict[str, Any]:
        first = self.causes[0] if self.causes else None
        return {
            "cause": first.cause if first else None, "code": self.code,
            "evidence": [{"source": _where(line), "line": line.text[:500]}
                         for line in (first.evidence if first else self.shown)],
            "fix": self.fix(first) if first else None, "check": first.check if first else None,
            "confidence": self.confidence, "state": self.state, "where": self.place,
            "also": [{"cause": d.cause, "confidence": d.confidence, "fix": d.fix} for d in self.causes[1:]],
            "notes": list(self.notes), "skipped": list(self.skipped),
        }

    def headline(self) -> str:
        if self.causes:
            return f"Cause ({self.confidence}): {self.causes[0].cause}"
        if not self.failed:
            return f"Nothing failed: {self.source} is {self.state}" + (f" ({self.code})" if self.code else "")
        return ("Cause: unknown: no known signature matches" + (f" (termination code {self.code})" if self.code
                                                                else "") + "; the most relevant lines:")

    def lines(self) -> list[str]:
        out = [self.headline()]
        if not self.causes:
            out += [f"  {_where(line)}: {line.text[:300]}" for line in self.shown]
        for index, cause in enumerate(self.causes):
            if index:
                out.append(f"Also possible ({cause.confidence}): {cause.cause}")
            out += [f"  evidence {_where(line)}: {line.text[:300]}" for line in cause.evidence]
            out.append(f"  fix: {self.fix(cause)}")
            out.append(f"  caught before a start by: {cause.check}")
        out += [f"note: {note}" for note in self.notes]
        out += [f"(not read: {item})" for item in self.skipped]
        return out

    def __repr__(self) -> str:
        return "\n".join(self.lines())

    def _repr_html_(self) -> str:
        """The cause, its evidence and fix; colours from JupyterLab's theme variables only (a
        bar beside the text; the words say it), as the check and outdated reports do."""
        from html import escape

        bar = ("--jp-error-color1" if self.failed and not self.causes else
               "--jp-warn-color0" if self.failed else "--jp-success-color1")
        text = "color:var(--jp-content-font-color1)"
        items = []
        for index, cause in enumerate(self.causes):
            evidence = "".join(f"<li><code>{escape(_where(line))}</code>: <code>{escape(line.text[:300])}</code></li>"
                               for line in cause.evidence)
            head = "" if index == 0 else f"<p><b>Also possible ({escape(cause.confidence)})</b>: {escape(cause.cause)}</p>"
            items.append(f"{head}<ul>{evidence}<li>fix: {escape(self.fix(cause))}</li>"
                         f"<li>caught before a start by: <code>{escape(cause.check)}</code></li></ul>")
        if not self.causes and self.shown:
            items.append("<ul>" + "".join(f"<li><code>{escape(_where(line))}</code>: <code>{escape(line.text[:300])}"
                                          "</code></li>" for line in self.shown) + "</ul>")
        notes = "".join(f"<p>note: {escape(n)}</p>" for n in self.notes)
        return (f'<div class="dcs-why" style="{text};border-left:4px solid var({bar});padding-left:6px">'
                f'<p role="status"><b>{escape(self.headline())}</b></p>{"".join(items)}{notes}</div>')


def _where(line: Line) -> str:
    return f"{line.source}:{line.number}" if line.number else line.source


# -- gathering ------------------------------------------------------------------------------


@dataclass
class _Gathered:
    code: str | None = None
    message: str = ""
    state: str | None = None
    image: str | None = None
    lines: list[Line] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def cluster(self, data: Mapping[str, Any]) -> None:
        """A clusters/get answer: state, termination code and message, the image."""
        reason = data.get("termination_reason") or {}
        self.state = self.state or data.get("state")
        self.code = self.code or reason.get("code")
        self.message = self.message or str((reason.get("parameters") or {}).get("databricks_error_message")
                                           or data.get("state_message") or "")
        self.image = self.image or (data.get("docker_image") or {}).get("url")

    def text(self, name: str, text: str, *, first_number: int = 1) -> None:
        """A file read: a clusters/get JSON, an events JSON, or log lines."""
        data = _json(text)
        if isinstance(data, dict) and ("termination_reason" in data or "state" in data):
            self.cluster(data)
            return
        events = _events(data)
        if events is not None:
            self.lines += _event_lines(name, events)
            return
        self.lines += [Line(name, number, row) for number, row in enumerate(text.splitlines(), first_number)
                       if row.strip()]

    def why(self, source: str, dockerfiles: Iterable[DockerfileSource] = ()) -> Why:
        # The TERMINATING event repeats the termination reason: one copy of it is evidence.
        again = f"TERMINATING {self.code}: {self.message}".strip() if self.code else None
        lines = [line for line in self.lines if line.text != again]
        causes = diagnose(Evidence(self.code, self.message, lines))
        found = Why(source, self.code, self.message, causes, [] if causes else relevant_lines(lines),
                    self.skipped, self.state, self.notes)
        if causes:
            found.place = place_fix(causes[0], list(dockerfiles), self.image)
        return found


def why_from(path: str | os.PathLike[str], *, dockerfiles: Iterable[DockerfileSource] = ()) -> Why:
    """Diagnose the files at PATH (a directory or one file). UsageError when nothing is there."""
    root = Path(path).expanduser()
    if not root.exists():
        raise UsageError(f"{root} does not exist", hint="give a folder or file you downloaded: a clusters/get "
                         "JSON, an events JSON, cluster logs")
    files = sorted(p for p in (root.rglob("*") if root.is_dir() else [root]) if p.is_file())[:MAX_FILES]
    if not files:
        raise UsageError(f"{root} holds no file to read", hint="put the cluster's JSON, events or logs there")
    found = _Gathered()
    for file in files:
        name = file.relative_to(root).as_posix() if root.is_dir() else file.name
        try:
            if file.stat().st_size > MAX_FILE_BYTES:
                found.skipped.append(f"{name}: larger than {MAX_FILE_BYTES // 2**20} MiB")
                continue
            text = file.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            found.skipped.append(f"{name}: {exc.strerror or exc}")
            continue
        found.text(name, text)
    return found.why(str(root), dockerfiles)


def why_cluster(workspace: Workspace, cluster_id: str, *, dockerfiles: Iterable[DockerfileSource] = (),
                extra: Iterable[Line] = ()) -> Why:
    """Diagnose CLUSTER_ID from the workspace: its state and termination reason, its events
    (every page), its delivered logs; `extra` lines (a run's error output) count as evidence.
    ApiError when the cluster cannot be read (no such cluster, no permission)."""
    found = _Gathered()
    info = workspace.get_cluster(cluster_id)
    found.cluster(info)
    events = list(workspace.events(cluster_id, order="ASC", page_size=500))
    found.lines += _event_lines("events", events)
    found.lines += list(extra)
    _read_logs(workspace, cluster_id, info, found)
    return found.why(f"cluster {cluster_id}", dockerfiles)


def why_run(workspace: Workspace, result: RunResult, *, dockerfiles: Iterable[DockerfileSource] = ()) -> Why:
    """Diagnose a run that did not succeed: its job cluster (as `why_cluster`) with the task's
    error and output as evidence; the output alone when the run names no cluster."""
    logs = result.logs
    if len(logs) > LOG_TAIL_BYTES:  # as of a delivered log, its end only (from a whole line): where a failure is
        logs = logs[-LOG_TAIL_BYTES:].split("\n", 1)[-1]
    output = "\n".join(t for t in (result.error, result.error_trace[-LOG_TAIL_BYTES:], logs) if t)
    lines = [Line("run output", number, text) for number, text in enumerate(output.splitlines(), 1) if text.strip()]
    tasks = result.raw.get("tasks") or [{}]
    cluster_id = (tasks[0].get("cluster_instance") or {}).get("cluster_id") if isinstance(tasks[0], dict) else None
    if cluster_id:
        try:
            return why_cluster(workspace, str(cluster_id), dockerfiles=dockerfiles, extra=lines)
        except ApiError:  # the job cluster is gone or unreadable: the output still explains most
            pass
    found = _Gathered(lines=lines)
    return found.why(f"run {result.run_id}", dockerfiles)


def _read_logs(workspace: Workspace, cluster_id: str, info: Mapping[str, Any], found: _Gathered) -> None:
    """The delivered driver and init-script logs (tails), or a note saying why there are none."""
    conf = info.get("cluster_log_conf") or {}
    if not conf:
        found.notes.append("no cluster_log_conf: only the termination reason and events were read. Set "
                           "cluster_log_conf to a volume (the launch form does by default) so the next "
                           "failure's driver and init-script logs can be read too")
        return
    kind, target = next(iter(conf.items()))
    dest = str((target or {}).get("destination") or "").rstrip("/")
    root = f"{dest}/{cluster_id}"
    if kind not in ("volumes", "dbfs"):
        found.notes.append(f"the logs go to {kind} {dest}, which dcs why does not read: download "
                           f"{root}/ and run `dcs why --from DIR`")
        return
    if kind == "dbfs" and not root.startswith("dbfs:"):
        root = "dbfs:" + root
    try:
        logs = _log_files(workspace, root)
    except ApiError as exc:
        if exc.status in (401, 403):
            found.notes.append(f"the logs in {root} cannot be read with these credentials ({exc.status} "
                               f"{exc.error_code or 'refused'}): {exc.message.splitlines()[0][:300]}. The user needs "
                               "READ VOLUME on that volume (or read access to the DBFS path), or download the "
                               "folder and run `dcs why --from DIR`")
        else:
            found.notes.append(f"the logs in {root} could not be listed ({exc.short().splitlines()[0][:300]})")
        return
    if not logs:
        found.notes.append(_not_there_yet(root, info))
        return
    for item in logs:
        name = item.path[len(root) + 1:]
        try:
            data, size = workspace.read_tail(item.path, LOG_TAIL_BYTES)
        except ApiError as exc:
            found.skipped.append(f"{name}: {exc.status} {exc.error_code or ''}".strip())
            continue
        text = data.decode("utf-8", "replace")
        if size > len(data):  # a tail: its first line is likely cut; numbers count from the tail
            text = text.split("\n", 1)[-1]
            name += f" (last {len(data) // 1024} KiB)"
        found.text(name, text)


def _log_files(workspace: Workspace, root: str) -> list[RemoteFile]:
    """driver/{stderr,stdout,log4j-active.log} and the newest init-script logs under `root`;
    [] when nothing was delivered yet."""
    from ..errors import NotFound

    picked: list[RemoteFile] = []
    for sub in ("init_scripts", "driver"):
        try:
            entries = workspace.list_files(f"{root}/{sub}")
        except NotFound:
            continue
        if sub == "driver":
            picked += [e for e in entries if not e.is_dir and e.name in ("stderr", "stdout", "log4j-active.log")]
            continue
        scripts: list[RemoteFile] = []
        for node in (e for e in entries if e.is_dir):  # <cluster-id>_<ip>: one folder per node
            try:
                scripts += [e for e in workspace.list_files(node.path) if not e.is_dir and e.name.endswith(".log")]
            except NotFound:
                continue
        picked += sorted(scripts, key=lambda e: e.name)[-MAX_LOGS:]
    return picked


def _not_there_yet(root: str, info: Mapping[str, Any]) -> str:
    status = info.get("cluster_log_status") or {}
    if status.get("last_exception"):
        return (f"no logs in {root}: log delivery failed ({status['last_exception']}); check that the "
                "volume exists and the cluster's owner may write to it")
    ended = info.get("terminated_time")
    minutes = (time.time() * 1000 - ended) / 60_000 if isinstance(ended, (int, float)) else None
    if info.get("state") not in ("TERMINATED", "ERROR") or (minutes is not None and minutes < 2 * DELIVERY_MINUTES):
        return (f"no logs in {root} yet: Databricks delivers logs every {DELIVERY_MINUTES} minutes or so and at "
                "termination; ask again in a few minutes")
    return f"no logs in {root}: nothing was delivered (was cluster_log_conf set when the cluster started?)"


# -- where the fix goes ---------------------------------------------------------------------


def place_fix(diagnosis: Diagnosis, dockerfiles: list[DockerfileSource], image: str | None) -> str | None:
    """"%%dockerfile NAME (cell 4 of app.ipynb), line 7: `RUN ...`" for a diagnosis whose fix is in
    the Dockerfile: the cell that built `image` (by the lock's references; the only cell when
    there is one) and its first line the signature's `dockerfile` pattern matches (else the
    FROM line for an image-wide fix); None when the fix is not the Dockerfile's."""
    row = next((s for s in signatures() if s.id == diagnosis.signature), None)
    pattern = getattr(row, "dockerfile", "") if row is not None else ""
    if not pattern or not dockerfiles:
        return None
    cell = _cell_for(dockerfiles, image)
    if cell is None:
        return None
    lines = cell.template.splitlines()
    for wanted in (pattern, r"^\s*FROM\b"):
        for index, text in enumerate(lines):
            if re.search(wanted, text, re.IGNORECASE):
                return f"%%dockerfile {cell.name} ({cell.where}), line {index + cell.first_line}: `{text.strip()[:120]}`"
    return f"%%dockerfile {cell.name} ({cell.where})"


def _cell_for(dockerfiles: list[DockerfileSource], image: str | None) -> DockerfileSource | None:
    if image:
        bare = image.split("@", 1)[0]
        for cell in dockerfiles:
            if any(ref in (image, bare) or image.startswith(ref.split("@", 1)[0] + "@") for ref in cell.images):
                return cell
    return dockerfiles[0] if len(dockerfiles) == 1 else None


def dockerfiles_of(notebook: str | os.PathLike[str]) -> list[DockerfileSource]:
    """The notebook's `%%dockerfile` cells with the images its lock recorded for each
    (`--lock NOTEBOOK`); NotebookError when it is not a notebook with such a cell."""
    from .lock import lock_path, read_lock
    from .notebook import read_notebook

    path = Path(notebook)
    if path.name.endswith(".dcs.lock.json"):
        raise NotebookError(f"{path} is a lock file; give the notebook it belongs to",
                            hint="--lock NOTEBOOK.ipynb: the fix names its %%dockerfile cell and line")
    book = read_notebook(path)
    lock = read_lock(lock_path(path))
    out = []
    for name, cell in book.dockerfiles.items():
        entry = lock.images.get(name) if lock is not None else None
        refs: list[str] = []
        if entry is not None:
            refs += list(entry.tags) + [v for v in ((entry.push or {}).get("reference"), entry.pinned) if v]
        out.append(DockerfileSource(name, f"cell {cell.cell} of {path.name}", cell.template, 2, tuple(refs)))
    return out


# -- reading artefacts ----------------------------------------------------------------------


def _json(text: str) -> Any:
    stripped = text.lstrip()
    if not stripped.startswith(("{", "[")):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _events(data: Any) -> list[Any] | None:
    if isinstance(data, dict) and isinstance(data.get("events"), list):
        return list(data["events"])
    if isinstance(data, list) and data and all(isinstance(e, dict) and "type" in e for e in data):
        return data
    return None


def _event_lines(name: str, events: list[Any]) -> list[Line]:
    """An event as lines: its type and reason, and each init script's status and error."""
    out = []
    for number, event in enumerate(events, 1):
        if not isinstance(event, dict):
            continue
        details = event.get("details") or {}
        reason = details.get("reason") or {}
        text = f"{event.get('type')}"
        if reason.get("code"):
            text += f" {reason.get('code')}: {(reason.get('parameters') or {}).get('databricks_error_message', '')}"
        out.append(Line(name, number, text.strip()))
        scripts = details.get("init_scripts") or {}
        for script in [*(scripts.get("global") or []), *(scripts.get("cluster") or [])]:
            if isinstance(script, dict) and script.get("status") not in (None, "SUCCEEDED"):
                where = next((v.get("destination") for v in script.values() if isinstance(v, dict)), None)
                out.append(Line(name, number, f"init script {script.get('status')}: {script.get('error_message', '')}"
                                              + (f" ({where})" if where else "")))
    return out
