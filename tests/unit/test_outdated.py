"""ops/outdated.py and `dcs outdated` (in process), against a registry on 127.0.0.1 speaking the
distribution API with Bearer tokens (support/oci_registry.py), with lock files written as
`dcs build` writes them. The whole path through Docker and the real `docker-registry` is
tests/integration/test_base_drift.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.oci_registry import Store, index, multi_arch, serving

from dcs_magic.cli.commands import main
from dcs_magic.errors import LockError
from dcs_magic.ops.lock import ImageLock, Lock, lock_path, write_lock
from dcs_magic.ops.outdated import outdated


def write(tmp_path: Path, **entries: ImageLock) -> Path:
    """A notebook path whose lock holds ENTRIES (the notebook itself need not exist)."""
    notebook = tmp_path / "app.ipynb"
    write_lock(lock_path(notebook), Lock(images=dict(entries), notebook=notebook.name))
    return notebook


def entry(base: str | None, digest: str | None, *, pushed: str | None = "127.0.0.1:5000/team/app:1",
          cluster: dict[str, Any] | None = None) -> ImageLock:
    push = {"reference": pushed, "digest": "sha256:" + "e" * 64, "pinned": pushed.rsplit(":", 1)[0] + "@sha256:" + "e" * 64} \
        if pushed else None
    return ImageLock(dockerfile_sha256="0" * 64, base=base, base_digest=digest, tags=[pushed] if pushed else ["app:dev"],
                     platform="linux/amd64", push=push, cluster=cluster).seal()


def heads(store: Store) -> list[str]:
    return [path for method, path, auth in store.seen if method == "HEAD" and auth]


def test_up_to_date_then_moved_with_what_changed_and_the_update(tmp_path: Path) -> None:
    store = Store()
    old, old_amd64, _ = multi_arch(store)
    with serving(store) as host:
        nb = write(tmp_path, app=entry(f"{host}/team/base:1", old))
        report = outdated(nb)
        assert report.exit_code == 0 and report["app"].status == "current"
        assert report.lines() == [f"app: base {host}/team/base:1 up to date ({old})"]

        new, new_amd64, _ = multi_arch(store, python="3.12.3")  # the tag moves
        report = outdated(nb)
    moved = report["app"]
    assert report.exit_code == 1 and moved.status == "moved"
    assert moved.headline == f"app: base {host}/team/base:1 moved: {old} -> {new}"
    [python] = moved.changes
    assert str(python).startswith("Python: 3.11.9 -> 3.12.3 [ENV PYTHON_VERSION] (Python 3.12 is the Python of ")
    assert moved.update == f"dcs build {nb} -t 127.0.0.1:5000/team/app:1 --push --pull"
    assert (moved.old and moved.old.manifest, moved.new and moved.new.manifest) == (old_amd64, new_amd64)
    assert report.lines()[-1] == f"  update: {moved.update}"


def test_the_cluster_last_launched_is_the_runtime_compared_against(tmp_path: Path) -> None:
    store = Store()
    old, _, _ = multi_arch(store)
    with serving(store) as host:
        nb = write(tmp_path, app=entry(f"{host}/team/base:1", old, cluster={"spark_version": "15.4.x-scala2.12"}))
        multi_arch(store, python="3.12.3")
        [python] = outdated(nb)["app"].changes
    assert "Python 3.12.3 does not fit 15.4 LTS, which runs Python 3.11" in python.why


def test_only_another_platform_changed(tmp_path: Path) -> None:
    store = Store()
    old, amd64, _ = multi_arch(store)
    arm64 = store.image({"architecture": "arm64", "variant": "v8", "os": "linux", "config": {"Env": ["X=2"]}})
    with serving(store) as host:
        nb = write(tmp_path, app=entry(f"{host}/team/base:1", old))
        new = index(store, {"linux/amd64": amd64, "linux/arm64/v8": arm64}, tag="1")
        moved = outdated(nb)["app"]
    assert (moved.status, moved.current, moved.changes) == ("moved", new, [])
    assert moved.notes == [f"the tag serves another index, but its linux/amd64 image is the same one ({amd64}): "
                           "only other platforms changed; the rebuild gives the same image"]


def test_an_index_without_linux_amd64_is_named(tmp_path: Path) -> None:
    store = Store()
    old, _, arm64 = multi_arch(store)
    with serving(store) as host:
        nb = write(tmp_path, app=entry(f"{host}/team/base:1", old))
        index(store, {"linux/arm64/v8": arm64}, tag="1")
        [platform] = outdated(nb)["app"].changes
    assert platform.after == "no linux/amd64 image (the index has linux/arm64/v8)"
    assert "runs linux/amd64 only" in platform.why


def test_unrecorded_gone_unreachable_pinned_and_scratch(tmp_path: Path) -> None:
    store = Store()
    old, _, _ = multi_arch(store)
    pinned = f"127.0.0.1:9/team/base@{old}"
    with serving(store) as host:
        nb = write(tmp_path, a_unrecorded=entry(f"{host}/team/base:1", None), b_gone=entry(f"{host}/team/base:2", old),
                   c_closed=entry("127.0.0.1:9/team/base:1", old), d_pinned=entry(pinned, None), e_scratch=entry(None, None))
        report = outdated(nb)
    statuses = {e.name: (e.status, e.exit_code) for e in report.entries}
    assert statuses == {"a_unrecorded": ("unrecorded", 1), "b_gone": ("gone", 1), "c_closed": ("unreachable", 2),
                        "d_pinned": ("pinned", 0), "e_scratch": ("no-base", 0)}
    assert report.exit_code == 1  # a known needed update wins over an unanswered question
    unrecorded = report["a_unrecorded"]
    assert "rebuild to record it" in unrecorded.headline and unrecorded.current == old
    assert unrecorded.update == f"dcs build {nb} --name a_unrecorded -t 127.0.0.1:5000/team/app:1 --push --pull"
    assert report["b_gone"].notes[0].startswith(f"{host} answered 404 Not Found for {host}/team/base:2")
    assert report["c_closed"].notes == [
        "127.0.0.1:9 did not answer for 127.0.0.1:9/team/base:1: cannot connect (Connection refused)",
        "check that the registry is up and reachable from here"]
    assert outdated(nb, name="c_closed").exit_code == 2
    with pytest.raises(LockError, match="has no entry 'nope'"):
        outdated(nb, name="nope")


def test_a_from_with_tag_and_digest_is_followed_by_its_tag(tmp_path: Path) -> None:
    store = Store()
    old, _, _ = multi_arch(store)
    with serving(store) as host:
        nb = write(tmp_path, app=entry(f"{host}/team/base:1@{old}", None, pushed=None))
        assert outdated(nb).exit_code == 0
        new, _, _ = multi_arch(store, python="3.11.11")
        moved = outdated(nb)["app"]
    assert (moved.status, moved.recorded, moved.current) == ("moved", old, new)
    assert moved.update == (f"pin the new digest in the %%dockerfile cell: FROM {host}/team/base:1@{new}, "
                            f"then dcs build {nb} -t app:dev")
    assert moved.changes[0].why == "a patch release of Python 3.11: the same runtime lines fit"


def test_entries_sharing_a_base_ask_once_and_a_deleted_old_image_is_said(tmp_path: Path) -> None:
    store = Store()
    old, old_amd64, _ = multi_arch(store)
    with serving(store) as host:
        nb = write(tmp_path, app=entry(f"{host}/team/base:1", old), tools=entry(f"{host}/team/base:1", old))
        multi_arch(store, python="3.12.3")
        del store.manifests[old_amd64]  # garbage-collected
        store.seen.clear()
        report = outdated(nb)
    assert len(heads(store)) == 1
    for name in ("app", "tools"):
        drift = report[name]
        assert drift.status == "moved" and drift.changes == [] and drift.old is None
        assert drift.notes[0].startswith(f"cannot read the image the lock was built on ({old}): ")
        assert drift.notes[0].endswith("; the registry may have deleted it")


def test_the_lock_file_itself_can_be_given(tmp_path: Path) -> None:
    store = Store()
    old, _, _ = multi_arch(store)
    with serving(store) as host:
        nb = write(tmp_path, app=entry(f"{host}/team/base:1", None))
        report = outdated(lock_path(nb))
    assert report.lock_file == str(lock_path(nb)) and report.notebook == "app.ipynb"
    assert report["app"].update is not None and report["app"].update.startswith(f"dcs build {tmp_path / 'app.ipynb'} ")


def test_no_lock_is_a_lock_error(tmp_path: Path) -> None:
    with pytest.raises(LockError, match="there is no lock file") as raised:
        outdated(tmp_path / "app.ipynb")
    assert "records the base image's digest" in raised.value.hint


# -- the command ------------------------------------------------------------------------------------


def test_dcs_outdated_exit_status_text_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = Store()
    old, _, _ = multi_arch(store)
    with serving(store) as host:
        nb = write(tmp_path, app=entry(f"{host}/team/base:1", old))
        assert main(["outdated", str(nb)]) == 0
        assert capsys.readouterr().out == f"app: base {host}/team/base:1 up to date ({old})\n"
        new, _, _ = multi_arch(store, python="3.12.3")
        assert main(["outdated", str(nb)]) == 1
        out = capsys.readouterr().out.splitlines()
        assert out[0] == f"app: base {host}/team/base:1 moved: {old} -> {new}"
        assert out[1].startswith("  Python: 3.11.9 -> 3.12.3 [ENV PYTHON_VERSION]")
        assert out[-1] == f"  update: dcs build {nb} -t 127.0.0.1:5000/team/app:1 --push --pull"
        assert main(["outdated", str(nb), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert (data["status"], data["exit_code"], data["lock"]) == ("outdated", 1, str(lock_path(nb)))
    [image] = data["images"]
    assert (image["name"], image["status"], image["recorded"], image["current"]) == ("app", "moved", old, new)
    assert image["changes"][0]["what"] == "Python" and image["new"]["python"]["value"] == "3.12.3"
    # Nothing answers any more: 2, and the reason.
    assert main(["outdated", str(nb), "--timeout", "2"]) == 2
    assert "cannot connect (Connection refused)" in capsys.readouterr().out
    assert main(["outdated", str(tmp_path / "other.ipynb")]) == 1
    assert "there is no lock file" in capsys.readouterr().err


def test_a_rate_limited_or_refusing_registry_could_not_be_asked(tmp_path: Path) -> None:
    from support.registry import http_answer, rate_limited_registry

    old = "sha256:" + "a" * 64
    with rate_limited_registry() as limited, \
            http_answer(401, b"", "text/plain", {"WWW-Authenticate": 'Basic realm="private"'}) as private:
        nb = write(tmp_path, limited=entry(f"{limited}/team/base:1", old), private=entry(f"{private}/team/base:1", old))
        report = outdated(nb)
    assert report.exit_code == 2
    assert report["limited"].notes == [f"{limited} answered 429 Too Many Requests for {limited}/team/base:1",
                                       "the registry limits requests: try again later"]
    assert report["private"].notes[0] == f"{private} answered 401 Unauthorized for {private}/team/base:1"
    assert f"docker login {private}" in report["private"].notes[1]
