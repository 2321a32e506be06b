"""Fault suite: the image holds the user's context as `docker build` sends it, and the lock
records what was built (issue 23, items 14 and 15).

dcs-magic labels every image with one LABEL instruction appended to a copy of the Dockerfile.
That copy goes to the engine beside the user's files under a name `.dockerignore` lists, so
the engine reads it and removes it before any step: `COPY . /ctx` copies the user's own
Dockerfile and `.dockerignore` byte for byte, or neither when `.dockerignore` lists them, as
the docker CLI's classic build does. Each row builds the same context both ways on the real
engine and compares every file in /ctx by sha256, and every entry's mode, owner and size.

The lock hashes the files as the build streams them: a file rewritten between the lock's
pre-build look and the upload (the race is forced by rewriting it right after that look)
is recorded as the engine received it, and `--locked` refuses the build.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

import dcs_magic.ops.lock as lock_mod
from dcs_magic.errors import LockError
from dcs_magic.ops.build import build
from dcs_magic.ops.lock import lock_path, read_lock
from dcs_magic.ops.recipe import build_notebook

pytestmark = pytest.mark.docker

# (id, extra files, Dockerfile tail after FROM, whether dcs-magic's labels can ride the one
# appended instruction: False when .dockerignore does not list itself or the build has a target)
ROWS = [
    ("no-dockerignore", {"app.txt": "app\n"}, "COPY . /ctx\n", True),
    ("dockerignore-lists-itself-and-the-dockerfile",
     {"app.txt": "app\n", "x.log": "log\n", ".dockerignore": "*.log\n.dockerignore\nDockerfile\n"},
     "COPY . /ctx\n", True),
    ("dockerignore-lists-itself-no-newline", {"app.txt": "a", ".dockerignore": ".dockerignore"},
     "COPY . /ctx\n", True),
    ("dockerignore-kept-in-the-context", {"app.txt": "app\n", ".dockerignore": "*.log\n"},
     "COPY . /ctx\n", False),
    ("dockerfile-copied-by-name", {"app.txt": "app\n"}, "COPY Dockerfile app.txt /ctx/\n", True),
    ("star-with-a-reinclude", {"app.txt": "app\n", "b.txt": "b\n", ".dockerignore": "*\n!app.txt\n"},
     "COPY . /ctx\n", True),
]


def _modes(docker_client: Any, image: str) -> str:
    """Mode, owner and size of everything under /ctx, directories included."""
    command = "cd /ctx && find . | sort | xargs stat -c '%n %a %u:%g %s'"
    return docker_client.containers.run(image, ["sh", "-c", command], remove=True).decode()


def _files(docker_client: Any, image: str) -> dict[str, str]:
    out = docker_client.containers.run(
        image, ["sh", "-c", "cd /ctx && find . -type f | sort | xargs -r sha256sum"], remove=True)
    return {path: digest for digest, path in (line.split() for line in out.decode().splitlines())}


@pytest.mark.parametrize(("files", "tail", "one_step"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_the_image_holds_the_context_docker_build_sends(tmp_path: Path, busybox_image: str, docker_client: Any,
                                                         docker_cleanup: Any, files: dict[str, str], tail: str,
                                                         one_step: bool) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    dockerfile = f"FROM {busybox_image}\n{tail}"
    (tmp_path / "Dockerfile").write_text(dockerfile)
    ours = docker_cleanup.add(f"{docker_cleanup.unique('fidelity-ours')}:1")
    cli = docker_cleanup.add(f"{docker_cleanup.unique('fidelity-cli')}:1")
    # The CLI first: our build then writes its log under .dcs/, which only the CLI would send.
    subprocess.run(["/usr/bin/docker", "build", "-q", "-t", cli, str(tmp_path)], check=True,
                   capture_output=True, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    result = build(tmp_path, tags=[ours], name="app", hash_files=True)

    ours_files = _files(docker_client, ours)
    assert ours_files == _files(docker_client, cli)
    assert not any(".dcs-dockerfile" in path for path in ours_files)  # the labelled copy never lands
    if "./Dockerfile" in ours_files:
        assert ours_files["./Dockerfile"] == hashlib.sha256(dockerfile.encode()).hexdigest()
    assert _modes(docker_client, ours) == _modes(docker_client, cli)
    labels = docker_client.images.get(ours).labels
    assert labels["dcs_magic.dockerfile.sha256"] == hashlib.sha256(dockerfile.encode()).hexdigest()
    history = [row["CreatedBy"] for row in docker_client.api.history(ours)]
    label_steps = [h for h in history if "LABEL dcs_magic" in h]
    assert len(label_steps) == (1 if one_step else 2)  # one instruction, or the API's one per label
    # What the build streamed is what the lock would hash before it (nothing changed meanwhile).
    assert result.context_files == lock_mod.context_files(tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted([*files, "Dockerfile", ".dcs"])  # nothing left beside


def test_a_target_build_labels_through_the_api_and_keeps_the_context(tmp_path: Path, busybox_image: str,
                                                                      docker_client: Any, docker_cleanup: Any) -> None:
    (tmp_path / "Dockerfile").write_text(f"FROM {busybox_image} AS one\nCOPY . /ctx\nFROM one AS two\nRUN true\n")
    ours = docker_cleanup.add(f"{docker_cleanup.unique('fidelity-target')}:1")
    build(tmp_path, tags=[ours], name="app", target="one")
    assert set(_files(docker_client, ours)) == {"./Dockerfile"}
    assert docker_client.images.get(ours).labels["dcs_magic.version"]


# -- item 15: the lock records the bytes the engine received -------------------------------------


def _notebook(tmp_path: Path, busybox_image: str) -> Path:
    nb_path = tmp_path / "nb.ipynb"
    cells = [new_code_cell(f"%%dockerfile app\nFROM {busybox_image}\nCOPY data.txt /data.txt\n"),
             new_code_cell("%%dcs_file app data.txt\nversion one\n")]
    nbformat.write(new_notebook(cells=cells), nb_path)
    return nb_path


def _rewrite_after_the_lock_looks(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Rewrite data.txt right after the lock hashed the context, before the build streams it:
    the race a file written during `dcs build` runs, made certain."""
    seen: list[Path] = []
    original = lock_mod.context_files

    def hashed_then_rewritten(context_dir: Any) -> dict[str, str]:
        hashes = original(context_dir)
        (Path(context_dir) / "data.txt").write_text("version two, written during the build\n")
        seen.append(Path(context_dir))
        return hashes

    monkeypatch.setattr(lock_mod, "context_files", hashed_then_rewritten)
    return seen


def test_a_file_changed_during_the_build_is_locked_as_built(tmp_path: Path, busybox_image: str, docker_client: Any,
                                                            docker_cleanup: Any, monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    nb_path = _notebook(tmp_path, busybox_image)
    tag = docker_cleanup.add(f"{docker_cleanup.unique('fidelity-race')}:1")
    seen = _rewrite_after_the_lock_looks(monkeypatch)
    warnings: list[str] = []
    built = build_notebook(nb_path, tags=[tag], name="app", warn=warnings.append)
    assert seen
    in_image = docker_client.containers.run(tag, ["sha256sum", "/data.txt"], remove=True).decode().split()[0]
    locked = read_lock(lock_path(nb_path))
    assert locked is not None
    assert locked.images["app"].files["data.txt"] == in_image == built.entry.files["data.txt"]
    assert in_image == hashlib.sha256(b"version two, written during the build\n").hexdigest()
    assert any("changed while 'app' was built" in w and "data.txt" in w for w in warnings)


def test_locked_refuses_a_build_whose_files_changed_while_streaming(tmp_path: Path, busybox_image: str,
                                                                    docker_cleanup: Any,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    nb_path = _notebook(tmp_path, busybox_image)
    tag = docker_cleanup.add(f"{docker_cleanup.unique('fidelity-locked')}:1")
    build_notebook(nb_path, tags=[tag], name="app")  # writes the lock
    before = lock_path(nb_path).read_bytes()
    _rewrite_after_the_lock_looks(monkeypatch)
    with pytest.raises(LockError) as info:
        build_notebook(nb_path, tags=[tag], name="app", locked=True, registry_check=False)
    assert "changed while 'app' was built" in info.value.message and "data.txt" in info.value.message
    assert lock_path(nb_path).read_bytes() == before  # the lock still holds what it held
