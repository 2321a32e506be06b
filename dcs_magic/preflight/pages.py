"""Read-only HTML status pages of the local workspace: a cluster's and a run's. Pure: no I/O.

They are the `run_page_url` of a run and the "Open cluster" link of the launch form, so a
browser opens them without the token (the server serves only these GETs without it). What
they show is therefore chosen, not dumped: states, codes, exit codes, times, event types
with the scripts' statuses, and a state message only while it is a launch step's own words
(PENDING, RUNNING, ...). No process output at all: not a task's output or error, not an init
script's, not a termination message (it can quote a probe's or the registry's words), so
the page of an ended cluster or run says where that text is (the API, with the token).
Never the environment (spark_env_vars) or the registry credentials. Every value is
HTML-escaped.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["PAGE_HEADERS", "cluster_page", "not_found_page", "run_page"]

PAGE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    # No scripts, no outside resources, not framed, not cached, no referrer leaving the page.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# A state message is shown only in these states: then it is a launch step or a run's phase,
# written by the server (launcher.step, runs.py), never a process's words.
_STEP_STATES = frozenset({"PENDING", "RUNNING", "RESTARTING", "RESIZING", "QUEUED", "BLOCKED"})
ENDED_CLUSTER_NOTE = ("Not shown on this page, which is served without the token (it can quote "
                      "output): clusters/get's termination_reason, or `dcs why <cluster_id> --local`")
ENDED_RUN_NOTE = ("Not shown on this page, which is served without the token: the state message, "
                  "error and output are in runs/get and runs/get-output (with the token)")
_STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}"
          "th{text-align:left;padding-right:1em;vertical-align:top}"
          "pre{background:#f4f4f4;padding:1em;overflow:auto;max-height:40em}"
          # State colours at >= 4.5:1 on the white page; an end the user asked for is not an error.
          ".SUCCESS,.RUNNING{color:#006b00}.FAILED,.ERROR,.INTERNAL_ERROR,.TERMINATED{color:#a00000}"
          ".asked{color:inherit}")


# Termination codes of an end someone asked for (terminate, auto-termination, a finished job run).
_ASKED_ENDS = frozenset({"USER_REQUEST", "INACTIVITY", "JOB_FINISHED"})


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _when(ms: Any) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(int(ms) / 1000))
    except (TypeError, ValueError):
        return ""


def _page(title: str, body: str, *, refresh: bool = False) -> bytes:
    # A page of something still changing reloads itself (no script: a meta refresh).
    reload = "<meta http-equiv=\"refresh\" content=\"5\">" if refresh else ""
    return (f"<!doctype html><html><head><meta charset=\"utf-8\">{reload}<title>{_e(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{_e(title)}</h1>{body}"
            "<p><small>dcs-magic local preflight workspace (read-only status page)</small></p>"
            "</body></html>").encode()


def _table(rows: Iterable[tuple[str, str]]) -> str:
    """Rows of (label, already-escaped HTML)."""
    return "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def _event_summary(event: Mapping[str, Any]) -> str:
    details = event.get("details") or {}
    if event.get("type") == "INIT_SCRIPTS_FINISHED":
        parts = []
        for result in (details.get("init_scripts") or {}).get("cluster") or []:
            kind = next((k for k in result if isinstance(result[k], dict)), "")
            where = (result.get(kind) or {}).get("destination", "")
            shown = where if where.startswith(f"{kind}:") else f"{kind} {where}"  # not "file:file:/x.sh"
            parts.append(f"{shown} {result.get('status', '')}")  # no error_message
        return "; ".join(parts)
    if event.get("type") == "TERMINATING" and details.get("reason"):
        reason = details.get("reason") or {}
        return f"{reason.get('code', '')} ({reason.get('type', '')})"
    return ""


def cluster_page(info: Mapping[str, Any], events: Iterable[Mapping[str, Any]],
                 runs: Iterable[tuple[int, str]] = ()) -> bytes:
    """A cluster's page: clusters/get fields that carry no secret nor output, its events
    (oldest first), and the runs it serves as job cluster (id, page link)."""
    reason = info.get("termination_reason") or {}
    state = _e(info.get("state"))
    asked = " asked" if reason.get("code") in _ASKED_ENDS else ""
    rows = [("Cluster", _e(f"{info.get('cluster_name', '')} ({info.get('cluster_id', '')})")),
            ("State", f"<b class=\"{state}{asked}\">{state}</b>"),
            ("State message", _e(info.get("state_message")) if info.get("state") in _STEP_STATES
             else _e(ENDED_CLUSTER_NOTE)),
            ("Image", _e((info.get("docker_image") or {}).get("url"))),
            ("Runtime", _e(info.get("spark_version"))),
            ("Source", _e(info.get("cluster_source"))),
            ("Started", _e(_when(info.get("start_time"))))]
    if info.get("terminated_time"):
        rows.append(("Terminated", _e(_when(info.get("terminated_time")))))
    if reason:
        rows.append(("Termination reason", _e(f"{reason.get('code', '')} ({reason.get('type', '')})")))
    for run_id, url in runs:
        rows.append(("Job run", f"<a href=\"{_e(url)}\">run {_e(run_id)}</a>"))
    event_rows = "".join(f"<tr><td>{_e(_when(e.get('timestamp')))}</td><td>{_e(e.get('type'))}</td>"
                         f"<td>{_e(_event_summary(e))}</td></tr>" for e in events)
    body = _table(rows) + "<h2>Events</h2><table>" + (event_rows or "<tr><td>none yet</td></tr>") + "</table>"
    return _page(f"Cluster {info.get('cluster_name') or info.get('cluster_id')}", body,
                 refresh=info.get("state") in ("PENDING", "RESTARTING", "RESIZING", "TERMINATING"))


def run_page(info: Mapping[str, Any], output: Mapping[str, Any], cluster_url: str | None) -> bytes:
    """A run's page: runs/get state, the task, its job cluster, and its exit code (no output)."""
    state = info.get("state") or {}
    task = (info.get("tasks") or [{}])[0]
    what = ((task.get("spark_python_task") or {}).get("python_file")
            or (task.get("notebook_task") or {}).get("notebook_path"))
    shown = "/".join(s for s in (state.get("life_cycle_state"), state.get("result_state")) if s)
    css = _e(state.get("result_state") or state.get("life_cycle_state"))
    rows = [("Run", _e(f"{info.get('run_name', '')} ({info.get('run_id', '')})")),
            ("State", f"<b class=\"{css}\">{_e(shown)}</b>"),
            ("State message", _e(state.get("state_message")) if state.get("life_cycle_state") in _STEP_STATES
             else _e(ENDED_RUN_NOTE)),
            ("Task", _e(f"{task.get('task_key', '')}: {what or ''}")),
            ("Started", _e(_when(info.get("start_time"))))]
    if info.get("end_time"):
        rows.append(("Ended", _e(_when(info.get("end_time")))))
    if output.get("exit_code") is not None:
        rows.append(("Exit code", _e(output.get("exit_code"))))
    cluster_id = (task.get("cluster_instance") or {}).get("cluster_id")
    if cluster_id and cluster_url:
        rows.append(("Job cluster", f"<a href=\"{_e(cluster_url)}\">{_e(cluster_id)}</a>"))
    final = state.get("life_cycle_state") in ("TERMINATED", "SKIPPED", "INTERNAL_ERROR")
    if final:
        rows.append(("Output", _e(_output_size(output))))
    body = _table(rows)  # no output, no error text: see the module's docstring
    return _page(f"Run {info.get('run_name') or info.get('run_id')}", body, refresh=not final)


def _output_size(output: Mapping[str, Any]) -> str:
    """How much the run printed (never what): "(no output)", or its size and where to read it."""
    logs = output.get("logs") or ""
    if not logs and not output.get("error"):
        return "(no output)"
    lines = len(str(logs).splitlines())
    size = f"{lines} line{'s' if lines != 1 else ''}" + (" (its end)" if output.get("logs_truncated") else "")
    if output.get("error"):
        size += (", and an error" if logs else "an error")
    return f"{size}: in runs/get-output (with the token), or `dcs run` / %dcs_run in the notebook"


def not_found_page(what: str) -> bytes:
    return _page("Not found", f"<p>{_e(what)} is not known to this local workspace.</p>")
