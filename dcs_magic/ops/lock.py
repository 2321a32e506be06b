"""`<notebook>.dcs.lock.json`: what a notebook built, so the next build can be held to it.

For `quickstart.ipynb` the lock is `quickstart.dcs.lock.json` in the same directory. Per
build context NAME it records

- inputs: the rendered Dockerfile (its sha256 and its text, so a mismatch can show a diff),
  the sha256 of every other file in the build context (a symlink: of its link text), the
  base image reference and the registry digest it resolved to when the engine knew one, and
  each `--build-arg` by a hash of its name and value (`build_arg_sha256`; never the value);
- outputs: the image id, the tags, the pushed reference/digest/pinned reference, and the
  cluster JSON last launched with it (passwords masked, `{{secrets/...}}` references kept).

The JSON is stable (sorted keys, indent 2, trailing newline, no timestamps), so rebuilding
an unchanged notebook rewrites the same bytes and the lock diffs cleanly in review.

Each entry carries `sha256`, a hash over its content (the launched cluster left out) that
`dcs build` stores; `verify_entry` refuses an entry whose hash or pinned reference does not
check out (an edited `pinned` or digest), as `--locked` and `dcs launch --lock` do. The hash
has no key, so it catches accidental edits only: anyone with this code can `seal()` a forged
entry. Before a lock is trusted for a launch or a `--locked` build, `verify_pushed` asks the
registry whether the recorded reference still serves the recorded digest. Several
processes may build one notebook at once: `update_lock` holds an flock on the sidecar
`.<lock>.flock` while it reads, changes and atomically replaces the file.

`compare(lock, rendered)` lists, in words, how freshly rendered inputs differ from the
lock; `dcs build --locked` fails with that list. Outputs never count as differences: a CI
machine builds a new image id from the same inputs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ContextError, LockError, RegistryError
from ..model.secrets import mask_secrets

if TYPE_CHECKING:
    from ..model.credentials import Secret
    from ..model.imageref import ImageRef

__all__ = [
    "LOCK_SUFFIX",
    "ImageLock",
    "build_arg_hashes",
    "build_arg_sha256",
    "Lock",
    "compare",
    "compare_files",
    "context_files",
    "file_sha256",
    "lock_path",
    "read_lock",
    "symlink_sha256",
    "update_lock",
    "verify_entry",
    "verify_pushed",
    "write_lock",
]

LOCK_SUFFIX = ".dcs.lock.json"
LOCK_VERSION = 1
_DIFF_LINES = 40


@dataclass
class ImageLock:
    """The lock entry of one build context NAME (inputs first, then outputs)."""

    dockerfile_sha256: str
    dockerfile: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    base: str | None = None
    base_digest: str | None = None
    image_id: str | None = None
    tags: list[str] = field(default_factory=list)
    platform: str | None = None
    build_args: dict[str, str] = field(default_factory=dict)
    """`--build-arg` NAME -> `build_arg_sha256(NAME, value)`: pinned by hash, the value never stored."""
    push: dict[str, str] | None = None
    cluster: dict[str, Any] | None = None
    builder: str | None = None
    """The builder that built `image_id`: "classic" or "buildkit" (None in entries written before
    builders could be chosen)."""
    sha256: str | None = None
    """The entry's content hash (`content_sha256()`) when `dcs build` wrote it; see `verify`."""

    @property
    def pinned(self) -> str | None:
        """The pushed image pinned by digest (`repo@sha256:...`), when it was pushed."""
        return (self.push or {}).get("pinned")

    def record_push(self, image: ImageRef) -> None:
        """Record the pushed IMAGE (repository, tag and digest: `PushResult.image`) as `push`,
        the JSON strings `reference` (`repo:tag`), `digest` and `pinned` (`repo@sha256:...`)."""
        if not image.digest:
            raise ValueError(f"{image} has no digest: only a pushed image is recorded")
        self.push = {"reference": str(dataclasses.replace(image, digest=None)), "digest": image.digest,
                     "pinned": image.pinned()}

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "dockerfile": {"sha256": self.dockerfile_sha256, "text": self.dockerfile},
            "files": dict(self.files),
            "base": {"reference": self.base, "digest": self.base_digest},
            "image_id": self.image_id,
            "tags": list(self.tags),
            "platform": self.platform,
            "push": dict(self.push) if self.push else None,
            "cluster": mask_secrets(self.cluster) if self.cluster else None,
            "sha256": self.sha256,
        }
        if self.build_args:  # absent when none: entries written before build args were pinned still verify
            data["build_args"] = dict(self.build_args)
        if self.builder:  # absent when unknown: entries written before builders were recorded still verify
            data["builder"] = self.builder
        return data

    def content_sha256(self) -> str:
        """sha256 over the entry's inputs and outputs (stable JSON), leaving out the launched
        cluster (written later by `dcs launch`) and the stored hash itself."""
        data = self.to_dict()
        data.pop("cluster", None)
        data.pop("sha256", None)
        text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def seal(self) -> ImageLock:
        """Store the content hash (done by `dcs build` when it writes the entry). Returns self."""
        self.sha256 = self.content_sha256()
        return self

    def problems(self) -> list[str]:
        """Why this entry cannot be trusted, one sentence each (empty: it verifies).

        The pinned reference must be the pushed repository at the pushed digest, and the
        content must still hash to the hash `dcs build` stored: an edited `pinned`, digest,
        image id or Dockerfile shows here.
        """
        out = []
        push = self.push or {}
        pinned, digest, reference = push.get("pinned"), push.get("digest"), push.get("reference")
        if pinned or digest:
            repo = _repository(reference) if reference else None
            expected = f"{repo}@{digest}" if repo and digest else None
            if not pinned or pinned != expected:
                out.append(f"push.pinned {pinned!r} is not the pushed repository at the pushed digest "
                           f"({expected!r} from push.reference {reference!r} and push.digest {digest!r})")
        if not self.sha256:
            out.append("it has no content hash (sha256): it was written by hand or by an older dcs-magic")
        elif self.sha256 != self.content_sha256():
            out.append(f"its content no longer matches the hash dcs build stored (sha256 {self.sha256[:12]}, "
                       f"content now {self.content_sha256()[:12]}): the entry was edited after the build")
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageLock:
        dockerfile = data.get("dockerfile") or {}
        base = data.get("base") or {}
        if not isinstance(dockerfile, Mapping) or not dockerfile.get("sha256"):
            raise ValueError("dockerfile.sha256 is missing")
        return cls(
            dockerfile_sha256=str(dockerfile["sha256"]),
            dockerfile=dockerfile.get("text"),
            files={str(k): str(v) for k, v in (data.get("files") or {}).items()},
            base=base.get("reference"),
            base_digest=base.get("digest"),
            image_id=data.get("image_id"),
            tags=list(data.get("tags") or []),
            platform=data.get("platform"),
            build_args={str(k): str(v) for k, v in (data.get("build_args") or {}).items()},
            push=dict(data["push"]) if data.get("push") else None,
            cluster=dict(data["cluster"]) if data.get("cluster") else None,
            builder=str(data["builder"]) if data.get("builder") else None,
            sha256=data.get("sha256"),
        )


def _repository(reference: str) -> str | None:
    """`host/repo:tag` -> `host/repo` (as the push pinned it); None when it does not parse."""
    from ..model.imageref import parse_reference

    try:
        return parse_reference(reference).repository
    except ValueError:
        return None


def verify_entry(lock_file: str | os.PathLike[str], name: str, entry: ImageLock) -> None:
    """LockError saying what differs when ENTRY (NAME in LOCK_FILE) does not verify."""
    problems = entry.problems()
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise LockError(
            f"lock entry {name!r} in {lock_file} does not verify, so its image cannot be trusted:\n{listed}",
            hint="do not edit lock entries by hand; run `dcs build NOTEBOOK -t TAG --push` to write it again",
        )


NO_REGISTRY_CHECK = "--no-registry-check"
"""The CLI option that skips `verify_pushed` (the way out when the registry is unreachable)."""


def verify_pushed(lock_file: str | os.PathLike[str], name: str, entry: ImageLock, username: str | None = None,
                  password: Secret | None = None, warn: Callable[[str], Any] | None = None) -> None:
    """LockError unless the registry still serves ENTRY's recorded digest for its recorded
    reference (HEAD /v2/<repo>/manifests/<tag>, with USERNAME/PASSWORD, else this machine's
    `docker login`, credential helpers included). An entry that was never pushed has nothing to
    ask. A registry that wants credentials nobody gave (no USERNAME, no docker login: a spec
    whose password is a `{{secrets/...}}` reference, as recommended) cannot be asked: that is
    said to `warn` (when given) and the pinned digest is used as recorded, rather than refusing
    the lock.

    The entry's seal (`sha256`) has no key: it catches accidental edits, not a forger who runs
    `seal()` on a forged digest; this asks the one party a forger cannot edit. A registry that
    cannot be asked is a LockError too (a credential helper that fails included), whose hint
    names the way out (`--no-registry-check`).
    """
    import requests

    from ..adapters.registry import manifest_digest, network_reason

    push = entry.push or {}
    reference, digest = push.get("reference"), push.get("digest")
    if not reference or not digest:
        return
    where = f"lock entry {name!r} in {lock_file}"
    try:
        served = manifest_digest(reference, username, password)
    except RegistryError as exc:  # the credential helper Docker's config names could not answer
        raise LockError(f"cannot check {where} against the registry: {exc.message}",
                        hint=f"{exc.hint}; to use the lock without this check, pass {NO_REGISTRY_CHECK}") from None
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "an error"
        denied = status in (401, 403)
        if denied and username is None and warn is not None:
            warn(f"{where}: the registry wants credentials to say which digest {reference} is ({status}), so "
                 f"the recorded {digest[:19]}... is used unchecked; pass --username and --password-env (or "
                 "`docker login`) to have it checked")
            return
        raise LockError(
            f"cannot check {where} against the registry: HEAD of the manifest of {reference} answered {status}",
            hint=("pass the registry's --username and --password-env (or `docker login`), " if denied else
                  "if the image was deleted, build and push it again with `dcs build NOTEBOOK -t TAG --push`; ")
            + f"to use the lock without this check, pass {NO_REGISTRY_CHECK} (its seal then only catches "
              "accidental edits)") from None
    except (requests.RequestException, ValueError) as exc:
        raise LockError(
            f"cannot check {where} against the registry: {reference} is unreachable ({network_reason(exc)})",
            hint=f"start the registry or fix the network and try again; to use the lock without this check, pass "
                 f"{NO_REGISTRY_CHECK} (its seal then only catches accidental edits)") from None
    if served != digest:
        raise LockError(
            f"{where} records {digest} for {reference}, but the registry serves {served or 'no digest'} for it, "
            "so the lock cannot be trusted",
            hint="if the tag was pushed again since, run `dcs build NOTEBOOK -t TAG --push` to write the lock "
                 "again; otherwise the lock file may have been forged: check its history")


@dataclass
class Lock:
    """A whole lock file: one ImageLock per build context NAME."""

    images: dict[str, ImageLock] = field(default_factory=dict)
    notebook: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": LOCK_VERSION,
            "notebook": self.notebook,
            "images": {name: entry.to_dict() for name, entry in self.images.items()},
        }

    def dumps(self) -> str:
        """Stable JSON text: sorted keys, indent 2, trailing newline."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> Lock:
        if not isinstance(data, Mapping) or not isinstance(data.get("images", {}), Mapping):
            # ValueError, not TypeError: read_lock turns every ValueError into a LockError.
            raise ValueError("expected an object with an 'images' object")
        version = data.get("version", LOCK_VERSION)
        if version != LOCK_VERSION:
            raise ValueError(f"lock format version {version!r}; this dcs-magic reads {LOCK_VERSION}")
        images = {}
        for name, entry in data.get("images", {}).items():
            try:
                images[str(name)] = ImageLock.from_dict(entry)
            except (ValueError, TypeError, AttributeError) as exc:
                raise ValueError(f"entry {name!r}: {exc}") from exc
        return cls(images=images, notebook=data.get("notebook"))


def lock_path(notebook: str | os.PathLike[str]) -> Path:
    """`dir/name.ipynb` -> `dir/name.dcs.lock.json`."""
    path = Path(notebook)
    return path.with_name(path.stem + LOCK_SUFFIX)


def read_lock(path: str | os.PathLike[str]) -> Lock | None:
    """The lock at PATH, None when there is none; LockError when it cannot be read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LockError(f"cannot read lock file {path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise LockError(f"lock file {path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                        f"{exc.start}), so not a dcs-magic lock",
                        hint="restore it from version control, or delete it; `dcs build` without --locked "
                             "writes a new one") from None
    try:
        return Lock.from_dict(json.loads(text))
    except RecursionError:  # json's decoder (and the reading after it) recurse once per nesting level
        raise LockError(f"lock file {path} nests too deeply to be a dcs-magic lock (a lock is a few levels deep)",
                        hint="restore it from version control, or delete it; `dcs build` without --locked "
                             "writes a new one") from None
    except (ValueError, TypeError) as exc:
        raise LockError(
            f"lock file {path} is not a dcs-magic lock: {exc}",
            hint="fix or delete it; `dcs build` without --locked writes a new one",
        ) from exc


def write_lock(path: str | os.PathLike[str], lock: Lock) -> Path:
    """Write LOCK to PATH atomically (a reader never sees half a file). Returns PATH.

    This replaces the whole file: to change one entry while other processes may write the
    same lock, use `update_lock`, which holds the file's lock while reading and writing.
    """
    path = Path(path)
    _refuse_link(path, "write")
    text = lock.dumps()
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise LockError(f"cannot write lock file {path}: {exc}") from exc
    finally:
        if tmp is not None:  # a failed write leaves no temporary file behind
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return path


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on PATH's sidecar `.PATH.flock` (the lock file itself is
    replaced on every write, so it cannot carry the flock)."""
    import fcntl

    sidecar = path.with_name(f".{path.name}.flock")
    _refuse_link(sidecar, f"lock {path} with")
    try:
        # O_NOFOLLOW: a link planted under the sidecar's name is refused, never followed.
        fd = os.open(sidecar, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            _refuse_link(sidecar, f"lock {path} with", always=True)
        raise LockError(f"cannot open {sidecar} to lock {path}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _refuse_link(path: Path, doing: str, *, always: bool = False) -> None:
    """LockError naming PATH when it is a symlink: dcs-magic never writes through a link (one
    committed to a repository could point anywhere)."""
    if always or path.is_symlink():
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        raise LockError(f"{path} is a symlink (to {target}); dcs-magic does not {doing} it through a link",
                        hint=f"remove the link (rm {path}); dcs-magic writes a regular file there")


def update_lock(path: str | os.PathLike[str], change: Callable[[Lock], Any]) -> Lock:
    """Read the lock at PATH (empty when there is none), apply CHANGE to it and write it,
    holding an exclusive lock throughout: parallel `dcs build`s of one notebook each add
    their entry, none is lost. Returns the Lock written."""
    path = Path(path)
    with _exclusive(path):
        lock = read_lock(path) or Lock()
        change(lock)
        write_lock(path, lock)
    return lock


def context_files(context_dir: str | os.PathLike[str]) -> dict[str, str]:
    """sha256 of every file the engine receives from CONTEXT_DIR, by relative POSIX path.

    Same selection as the build: `.dockerignore` honoured, the private `.dcs/` directory
    (build logs) left out; the Dockerfile is left out too (the lock holds it separately).
    A symlink is hashed as its link text (`symlink_sha256`), which is what the engine
    receives: its target, maybe outside the context, is never read. A file that cannot be
    read is a ContextError naming it.
    """
    from ..adapters.engine import context_paths  # the very matcher the build uses

    root = Path(context_dir)
    hashes = {}
    for rel in sorted(context_paths(root)):
        path = root / rel
        if rel == "Dockerfile":
            continue
        try:
            if path.is_symlink():
                hashes[Path(rel).as_posix()] = symlink_sha256(path)
            elif path.is_file():
                hashes[Path(rel).as_posix()] = file_sha256(path)
        except OSError as exc:
            raise ContextError(
                f"cannot read {path} to hash it for the lock: {exc.strerror or exc}",
                hint=f"make it readable, or leave it out of the build context with a .dockerignore line {rel!r}",
            ) from exc
    return hashes


def symlink_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a symlink's link text (`os.readlink`), prefixed `symlink:` so it never equals a
    file's hash: the engine receives the link, not its target."""
    return "symlink:" + hashlib.sha256(os.fsencode(os.readlink(path))).hexdigest()


_CHUNK = 1 << 20


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file read in 1 MiB chunks: memory stays flat for a file of any size."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def compare(lock: Lock | None, rendered: Mapping[str, ImageLock]) -> list[str]:
    """How the freshly RENDERED inputs differ from LOCK, one sentence each (empty: same).

    Compared per NAME in RENDERED: the Dockerfile (with a short unified diff when the lock
    holds its text), the context files, the base image reference, the base digest when
    both sides know it, and the build arguments (by hash). Outputs (image id, push, cluster) are not compared.
    """
    if lock is None:
        return ["there is no lock file yet (run `dcs build` without --locked once to write it)"]
    differences: list[str] = []
    for name, now in rendered.items():
        before = lock.images.get(name)
        if before is None:
            have = ", ".join(sorted(lock.images)) or "none"
            differences.append(f"the lock has no entry for {name!r} (it has: {have})")
            continue
        differences += _compare_dockerfile(name, before, now)
        differences += compare_files(name, before.files, now.files)
        differences += _compare_base(name, before, now)
        differences += _compare_build_args(name, before.build_args, now.build_args)
    return differences


def build_arg_sha256(name: str, value: str) -> str:
    """What the lock keeps of `--build-arg NAME=VALUE`: sha256 over the name and the value, so
    a changed value shows and the value itself (maybe a token) is never written."""
    return hashlib.sha256(f"{name}={value}".encode()).hexdigest()


def build_arg_hashes(build_args: Mapping[str, str] | None) -> dict[str, str]:
    """NAME -> `build_arg_sha256` for each build argument."""
    return {name: build_arg_sha256(name, value) for name, value in sorted((build_args or {}).items())}


def _compare_build_args(name: str, before: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    return _compare_hashes(
        before, now, gone=lambda arg: f"--build-arg {arg} of {name!r} is in the lock but was not given now",
        new=lambda arg: f"--build-arg {arg} of {name!r} is new: the lock has no such build argument",
        changed=lambda arg, old, now_: f"--build-arg {arg} of {name!r} has another value than the lock pins "
                                       f"(sha256 {old} -> {now_}; values are not stored)")


def _compare_hashes(before: Mapping[str, str], now: Mapping[str, str], *, gone: Callable[[str], str],
                    new: Callable[[str], str], changed: Callable[[str, str, str], str]) -> list[str]:
    """One line per key gone, new or with another hash (hashes shortened to 12 characters)."""
    out = []
    for key in sorted(set(before) | set(now)):
        if key not in now:
            out.append(gone(key))
        elif key not in before:
            out.append(new(key))
        elif before[key] != now[key]:
            out.append(changed(key, before[key][:12], now[key][:12]))
    return out


def _compare_dockerfile(name: str, before: ImageLock, now: ImageLock) -> list[str]:
    if before.dockerfile_sha256 == now.dockerfile_sha256:
        return []
    text = (f"Dockerfile for {name!r} changed: sha256 {before.dockerfile_sha256[:12]} -> "
            f"{now.dockerfile_sha256[:12]}")
    if before.dockerfile is not None and now.dockerfile is not None:
        diff = list(difflib.unified_diff(
            before.dockerfile.splitlines(), now.dockerfile.splitlines(),
            "locked/Dockerfile", "rendered/Dockerfile", lineterm="", n=1))
        if len(diff) > _DIFF_LINES:
            diff = diff[:_DIFF_LINES] + [f"... ({len(diff) - _DIFF_LINES} more diff lines)"]
        if diff:
            text += "\n" + "\n".join("    " + line for line in diff)
    return [text]


def compare_files(name: str, before: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    """How NAME's context file hashes NOW differ from BEFORE, one sentence per file."""
    return _compare_hashes(
        before, now, gone=lambda path: f"file {path!r} of {name!r} is gone from the build context",
        new=lambda path: f"file {path!r} of {name!r} is new in the build context",
        changed=lambda path, old, now_: f"file {path!r} of {name!r} changed: sha256 {old} -> {now_}")


def _compare_base(name: str, before: ImageLock, now: ImageLock) -> list[str]:
    if before.base and now.base and before.base != now.base:
        return [f"base image of {name!r} changed: {before.base} -> {now.base}"]
    if before.base_digest and now.base_digest and before.base_digest != now.base_digest:
        moved = (f"base image {now.base or before.base} of {name!r} now resolves to "
                 f"{now.base_digest} (lock: {before.base_digest}); the tag moved")
        return [moved]
    return []


