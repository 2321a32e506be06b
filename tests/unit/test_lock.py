"""lock.py: stable lock files, comparison in words, masking of cluster JSON."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from dcs_magic.errors import LockError
from dcs_magic.model.imageref import ImageRef
from dcs_magic.model.results import PushResult
from dcs_magic.model.secrets import mask_secrets
from dcs_magic.ops.lock import (
    ImageLock,
    Lock,
    compare,
    lock_path,
    read_lock,
    write_lock,
)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def entry(dockerfile: str = "FROM base\nRUN true\n", **kw) -> ImageLock:
    return ImageLock(dockerfile_sha256=sha(dockerfile), dockerfile=dockerfile, **kw)


def test_lock_path_sits_next_to_notebook(tmp_path):
    assert lock_path(tmp_path / "dir" / "quick.start.ipynb") == tmp_path / "dir" / "quick.start.dcs.lock.json"


def test_round_trip_and_stable_bytes(tmp_path):
    lock = Lock(notebook="nb.ipynb", images={
        "web": entry(files={"b.txt": sha("b"), "a.txt": sha("a")}, base="img:1", base_digest="sha256:" + "1" * 64,
                     image_id="sha256:" + "2" * 64, tags=["r/web:1"], platform="linux/amd64",
                     push={"reference": "r/web:1", "digest": "sha256:" + "3" * 64,
                           "pinned": "r/web@sha256:" + "3" * 64}),
        "app": entry("FROM other\n"),
    })
    path = write_lock(tmp_path / "nb.dcs.lock.json", lock)
    text = path.read_text()
    assert text.endswith("}\n") and text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    again = read_lock(path)
    assert again == lock
    assert again.images["web"].pinned == "r/web@sha256:" + "3" * 64
    write_lock(path, again)
    assert path.read_text() == text
    assert [p.name for p in tmp_path.iterdir()] == ["nb.dcs.lock.json"]  # no temp file left behind


def test_missing_lock_is_none_and_corrupt_lock_is_error(tmp_path):
    assert read_lock(tmp_path / "none.dcs.lock.json") is None
    bad = tmp_path / "bad.dcs.lock.json"
    for text in ("{not json", "[]", '{"images": {"x": {}}}', '{"version": 99, "images": {}}'):
        bad.write_text(text)
        with pytest.raises(LockError, match="is not a dcs-magic lock"):
            read_lock(bad)


def test_compare_same_is_empty():
    lock = Lock(images={"default": entry(files={"a": sha("a")}, base="b:1", base_digest="sha256:aa")})
    assert compare(lock, {"default": entry(files={"a": sha("a")}, base="b:1", base_digest="sha256:aa",
                                                image_id="other", push=None)}) == []


def test_compare_dockerfile_change_shows_hashes_and_diff():
    old, new = "FROM base\nRUN echo one\nRUN true\n", "FROM base\nRUN echo two\nRUN true\n"
    [text] = compare(Lock(images={"default": entry(old)}), {"default": entry(new)})
    assert text.startswith(f"Dockerfile for 'default' changed: sha256 {sha(old)[:12]} -> {sha(new)[:12]}")
    assert "-RUN echo one" in text and "+RUN echo two" in text


def test_compare_without_stored_text_has_no_diff():
    old = ImageLock(dockerfile_sha256=sha("a"))
    [text] = compare(Lock(images={"x": old}), {"x": entry("b")})
    assert text == f"Dockerfile for 'x' changed: sha256 {sha('a')[:12]} -> {sha('b')[:12]}"


def test_compare_long_diff_is_cut():
    old = "".join(f"RUN echo {i}\n" for i in range(200))
    new = "".join(f"RUN echo {i} changed\n" for i in range(200))
    [text] = compare(Lock(images={"x": entry(old)}), {"x": entry(new)})
    assert "more diff lines" in text and len(text.splitlines()) < 50


def test_compare_files_base_and_missing_entry():
    lock = Lock(images={"default": entry(files={"gone": sha("1"), "same": sha("2"), "edit": sha("3")},
                                         base="b:1", base_digest="sha256:old")})
    now = {"default": entry(files={"same": sha("2"), "edit": sha("4"), "new": sha("5")},
                            base="b:1", base_digest="sha256:new"),
           "other": entry()}
    assert compare(lock, now) == [
        f"file 'edit' of 'default' changed: sha256 {sha('3')[:12]} -> {sha('4')[:12]}",
        "file 'gone' of 'default' is gone from the build context",
        "file 'new' of 'default' is new in the build context",
        "base image b:1 of 'default' now resolves to sha256:new (lock: sha256:old); the tag moved",
        "the lock has no entry for 'other' (it has: default)",
    ]


def test_compare_base_reference_and_unknown_digest():
    lock = Lock(images={"d": entry(base="b:1", base_digest="sha256:x")})
    assert compare(lock, {"d": entry(base="b:2")}) == ["base image of 'd' changed: b:1 -> b:2"]
    assert compare(lock, {"d": entry(base="b:1", base_digest=None)}) == []  # engine does not know it


def test_compare_without_lock():
    assert "no lock file yet" in compare(None, {"d": entry()})[0]


def test_cluster_is_masked_but_secret_refs_kept(tmp_path):
    body = {"cluster_name": "c", "docker_image": {"url": "r/i@sha256:aa", "basic_auth": {
        "username": "u", "password": "hunter2"}},
        "spark_env_vars": {"API_TOKEN": "t0k3n", "REF_SECRET": "{{secrets/scope/key}}", "PLAIN": "v"}}
    masked = mask_secrets(body)
    assert masked["docker_image"]["basic_auth"] == {"username": "u", "password": "****"}
    assert masked["spark_env_vars"] == {"API_TOKEN": "****", "REF_SECRET": "{{secrets/scope/key}}",
                                        "PLAIN": "v"}
    assert body["docker_image"]["basic_auth"]["password"] == "hunter2"  # the input is not changed
    path = write_lock(tmp_path / "x.dcs.lock.json", Lock(images={"d": entry(cluster=body)}))
    assert "hunter2" not in path.read_text() and "t0k3n" not in path.read_text()


# -- self-checking entries (issue 13, item 6) ---------------------------------------------------------


def test_a_sealed_entry_verifies_and_any_edit_is_named() -> None:
    digest = "sha256:" + "3" * 64
    sealed = entry(image_id="sha256:" + "2" * 64, push={"reference": "127.0.0.1:5000/r/web:1", "digest": digest,
                                                        "pinned": f"127.0.0.1:5000/r/web@{digest}"}).seal()
    assert sealed.problems() == []
    again = ImageLock.from_dict(json.loads(json.dumps(sealed.to_dict())))
    assert again.problems() == [] and again.sha256 == sealed.sha256
    again.cluster = {"cluster_name": "launched later"}  # dcs launch records it: not covered by the hash
    assert again.problems() == []
    pinned = ImageLock.from_dict(sealed.to_dict())
    pinned.push = {**(pinned.push or {}), "pinned": "127.0.0.1:5000/evil@" + digest}
    [problem] = [p for p in pinned.problems() if "push.pinned" in p]
    assert "'127.0.0.1:5000/r/web@" + digest + "'" in problem
    edited = ImageLock.from_dict(sealed.to_dict())
    edited.image_id = "sha256:" + "9" * 64
    assert [p for p in edited.problems() if "no longer matches the hash" in p]
    assert ImageLock.from_dict({**sealed.to_dict(), "sha256": None}).problems() == [
        "it has no content hash (sha256): it was written by hand or by an older dcs-magic"]


def test_file_sha256_reads_in_chunks_and_matches_hashlib(tmp_path: Path) -> None:
    from dcs_magic.ops.lock import file_sha256

    data = bytes(range(256)) * 10_000  # several chunks and a partial one
    (tmp_path / "f").write_bytes(data)
    assert file_sha256(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def test_update_lock_keeps_other_entries_and_leaves_no_temp_file(tmp_path: Path) -> None:
    from dcs_magic.ops.lock import update_lock

    path = tmp_path / "app.dcs.lock.json"
    update_lock(path, lambda lock: lock.images.__setitem__("a", entry().seal()))
    update_lock(path, lambda lock: lock.images.__setitem__("b", entry().seal()))
    assert sorted(read_lock(path).images) == ["a", "b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".app.dcs.lock.json.flock", "app.dcs.lock.json"]


def test_record_push_writes_the_strings_of_the_pushed_image_ref():
    digest = "sha256:" + "4" * 64
    pushed = PushResult(reference="127.0.0.1:5000/team/web:1", digest=digest,
                        pinned="127.0.0.1:5000/team/web@" + digest)
    assert pushed.image == ImageRef("127.0.0.1:5000", "team/web", "1", digest)  # parsed once, from the strings
    sealed = entry()
    sealed.record_push(pushed.image)
    assert sealed.push == {"reference": pushed.reference, "digest": digest, "pinned": pushed.pinned}
    assert sealed.pinned == pushed.pinned and sealed.seal().problems() == []
    with pytest.raises(ValueError, match="no digest"):
        entry().record_push(ImageRef("127.0.0.1:5000", "team/web", "1", None))
