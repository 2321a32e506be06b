"""Fault suite: `dcs build --locked` holds the build arguments too (issue 23, item 5).

The lock pins each `--build-arg` by a hash of its name and value (never the value); a build
with other arguments fails naming the difference, before anything is built. Engine-free: the
base is pinned by digest, and the engine is a stand-in on a unix socket (tests/faults/
standins.py) that refuses builds, so a build that gets past `--locked` fails at the engine.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from standins import refusing_engine

from dcs_magic.cli.commands import main
from dcs_magic.ops.lock import ImageLock, Lock, lock_path, read_lock, write_lock
from dcs_magic.ops.notebook import read_notebook
from dcs_magic.ops.recipe import _lock_entry, render_one
from dcs_magic.settings import PLATFORM

DOCKERFILE = ("%%dockerfile app\nFROM busybox@sha256:" + "ab" * 32 + "\nARG VERSION\nARG NPM_TOKEN\n"
              "RUN echo $VERSION\n")
LOCKED_ARGS = {"VERSION": "1.0", "NPM_TOKEN": "npm_DcsTestValue0123456789abcdefghijklmn"}

ROWS = [
    # (id, --build-arg values given now, words the error holds; None: --locked lets the build go on)
    ("same", ["VERSION=1.0", f"NPM_TOKEN={LOCKED_ARGS['NPM_TOKEN']}"], None),
    ("changed", ["VERSION=2.0", f"NPM_TOKEN={LOCKED_ARGS['NPM_TOKEN']}"],
     ["--build-arg VERSION of 'app' has another value"]),
    ("missing", ["VERSION=1.0"], ["--build-arg NPM_TOKEN of 'app' is in the lock but was not given now"]),
    ("new", ["VERSION=1.0", f"NPM_TOKEN={LOCKED_ARGS['NPM_TOKEN']}", "EXTRA=1"],
     ["--build-arg EXTRA of 'app' is new"]),
    ("none", [], ["VERSION", "NPM_TOKEN", "not given now"]),
]


@pytest.fixture
def locked_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    sock = tmp_path / "engine.sock"
    with refusing_engine(sock):
        monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
        nb_path = tmp_path / "nb.ipynb"
        nbformat.write(new_notebook(cells=[new_code_cell(DOCKERFILE)]), nb_path)
        rendered = render_one(read_notebook(nb_path), "app")
        entry = _lock_entry(rendered, dict(LOCKED_ARGS), PLATFORM, None)
        write_lock(lock_path(nb_path), Lock({"app": entry.seal()}, notebook=nb_path.name))
        yield nb_path


@pytest.mark.parametrize(("given", "words"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_locked_build_compares_build_args(locked_notebook: Path, given: list[str], words: list[str] | None,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    lock_before = lock_path(locked_notebook).read_bytes()
    assert LOCKED_ARGS["NPM_TOKEN"] not in lock_before.decode()  # pinned by hash only
    args = ["build", str(locked_notebook), "-t", "127.0.0.1:5999/dcs-test-locked/app:1", "--locked",
            "--progress", "none"]
    for item in given:
        args += ["--build-arg", item]
    assert main(args) == 1
    err = capsys.readouterr().err
    if words is None:
        assert "--locked" not in err and "refused by the test engine" in err  # past the lock, at the engine
    else:
        assert "--locked: the rendered build no longer matches" in err
        for word in words:
            assert word in err
        assert "refused by the test engine" not in err  # nothing was sent to build
    assert LOCKED_ARGS["NPM_TOKEN"] not in err
    assert lock_path(locked_notebook).read_bytes() == lock_before


def test_an_entry_without_build_args_still_verifies() -> None:
    entry = ImageLock(dockerfile_sha256="0" * 64).seal()
    assert "build_args" not in entry.to_dict() and entry.problems() == []
    data = Lock({"app": entry}).to_dict()["images"]["app"]
    assert ImageLock.from_dict(data).problems() == []


def test_build_args_are_sealed(tmp_path: Path) -> None:
    from dcs_magic.ops.lock import build_arg_hashes

    entry = ImageLock(dockerfile_sha256="0" * 64, build_args=build_arg_hashes({"VERSION": "1"})).seal()
    path = write_lock(tmp_path / "x.dcs.lock.json", Lock({"app": entry}))
    found = read_lock(path)
    assert found is not None and found.images["app"].problems() == []
    found.images["app"].build_args["VERSION"] = build_arg_hashes({"VERSION": "2"})["VERSION"]
    assert any("edited after the build" in p for p in found.images["app"].problems())
