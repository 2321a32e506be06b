"""The owner label: a leftover is removed only when its process is certainly gone."""

from __future__ import annotations

import subprocess
import sys

from dcs_magic.adapters import owner


def test_this_process_is_not_gone() -> None:
    assert not owner.is_gone(owner.this_process())


def test_an_exited_process_is_gone_and_a_running_one_is_not() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        machine = owner.this_process().split("/")[0]
        label = f"{machine}/{child.pid}/{owner._start_ticks(child.pid)}"
        assert not owner.is_gone(label)
        # The same pid with another start time is a recycled pid: not the owner.
        assert owner.is_gone(f"{machine}/{child.pid}/1")
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()
    assert owner.is_gone(label)


def test_never_certain_about_other_machines_or_unreadable_labels() -> None:
    pid = owner.this_process().split("/")[1]
    for label in (None, "", "garbage", f"another-machine/{pid}/1", f"{owner._machine()}/x/1",
                  f"{owner._machine()}/123/?"):
        assert not owner.is_gone(label)
