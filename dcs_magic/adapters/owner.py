"""Which process made a container, and whether that process is gone: the owner label.

Every container dcs-magic creates carries `dcs_magic.owner = <machine>/<pid>/<start>`
(`Engine.create_container` adds it). A process that is killed (SIGKILL, a crashed kernel)
cannot remove what it made, so the next one asks `is_gone(owner)` and removes the leftovers
of dead owners only: a probe or a launch that another live process is running is left alone.

`<machine>` is this boot's id (`/proc/sys/kernel/random/boot_id`, else the host name) and
`<start>` the process's start time in clock ticks since boot (`/proc/<pid>/stat`), so a
recycled pid or a reboot is not mistaken for the owner. Where that cannot be read (not
Linux, another machine's engine), `is_gone` answers False: never certain, never removed.
"""

from __future__ import annotations

import functools
import os
import socket

__all__ = ["OWNER_LABEL", "is_gone", "this_process"]

OWNER_LABEL = "dcs_magic.owner"


@functools.cache
def _machine() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip() or socket.gethostname()
    except OSError:
        return socket.gethostname()


def _start_ticks(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (after the parenthesised command name, which may hold spaces)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def this_process() -> str:
    """This process as an owner label value."""
    pid = os.getpid()
    return f"{_machine()}/{pid}/{_start_ticks(pid) or '?'}"


def is_gone(owner: str | None) -> bool:
    """True when OWNER (a label value) is certainly not a running process any more."""
    machine, _, rest = (owner or "").partition("/")
    pid_text, _, start = rest.partition("/")
    if machine != _machine() or not pid_text.isdigit() or start == "?":
        return False
    now = _start_ticks(int(pid_text))
    if now is None:
        return os.path.exists("/proc/self/stat")  # no such pid (where /proc can tell)
    return now != start
