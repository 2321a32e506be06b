"""A notebook's build recipe, headless: render, build, push, lock and launch from Python.

What `dcs render`, `dcs build` and `dcs launch` do, as library functions that know nothing
of the command line (the CLI only parses arguments and prints what these return):

    render_notebook("app.ipynb", variables={"tag": "1.0"})            -> RenderedNotebook
    build_notebook("app.ipynb", tags=["r.example.com/app:1"], push=True) -> NotebookBuild
    launch_spec("cluster.json", lock="app.ipynb")                      -> LaunchPlan
    create_cluster(plan, local=True, wait=True)                        -> cluster id

Build contexts: `out=DIR` puts NAME's context in DIR/NAME. Without it, a cell's own
`--context` is used, else `dcs-build/NAME`, both relative to the notebook's directory: the
place the magics write to when the notebook runs in Jupyter (kernel cwd = the notebook's
directory), so the notebook and the headless build share one context. `%%init_script`
cells are written verbatim to `<build root>/init-scripts/NAME.sh`.

Template variables: `variables` (the CLI's `--var`) > `DCS_VAR_<NAME>` > the parameters cell
(see dcs_magic.ops.notebook); a `variables` name the notebook never uses is a UsageError naming
the closest one it does. The lock file `<notebook stem>.dcs.lock.json` (dcs_magic.ops.lock) is
written by every successful build; `locked=True` first checks that the rendered Dockerfile,
the context files and the base image digest still match it, and raises LockError listing
what changed.

Warnings (lint findings, a docker_image.url that is a tag) go to the `warn` callback;
progress to the sinks `progress(kind)` returns ("build", "push").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing, nullcontext
from dataclasses import dataclass, field
from dataclasses import replace as replace_fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ClusterError, ContextError, DcsError, LockError, PushError, SpecError, UsageError
from ..model.credentials import Secret, env_password, unpinned_warning
from ..settings import BUILD_ROOT, CLUSTER_TIMEOUT_S, PLATFORM
from .credentials import registry_password

if TYPE_CHECKING:
    from ..adapters.workspace import Workspace
    from ..model.buildkit import SecretSpec
    from ..model.results import BuildResult, PushResult
    from ..model.spec import ClusterSpec
    from .lock import ImageLock, Lock
    from .notebook import DockerfileCell, Notebook, RenderedContext
    from .runner import ProgressSink

__all__ = [
    "INIT_SCRIPTS_DIR",
    "LaunchPlan",
    "NotebookBuild",
    "RenderedNotebook",
    "build_notebook",
    "create_cluster",
    "launch_spec",
    "read_lock_entry",
    "render_notebook",
]

INIT_SCRIPTS_DIR = "init-scripts"

Warn = Callable[[str], Any]
ProgressFactory = Callable[[str], "ProgressSink | None"]


def _ignore(_text: str) -> None:
    return None


# -- render ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedNotebook:
    """What `render_notebook` wrote: the build contexts and the init script files."""

    contexts: tuple[RenderedContext, ...]
    init_scripts: tuple[Path, ...]


def _read(notebook: str | os.PathLike[str] | Notebook) -> Notebook:
    from .notebook import Notebook, read_notebook

    return notebook if isinstance(notebook, Notebook) else read_notebook(notebook)


def _check_overrides(notebook: Notebook, variables: Mapping[str, str] | None) -> None:
    from .notebook import check_overrides

    check_overrides(notebook, variables)


def context_dir(notebook: Notebook, cell: DockerfileCell, out: str | os.PathLike[str] | None) -> Path:
    """Where NAME's context goes: OUT/NAME, else the cell's --context, else dcs-build/NAME
    (both relative to the notebook's directory)."""
    if out:
        return Path(out) / cell.name
    here = notebook.path.parent
    return here / cell.context if cell.context else here / BUILD_ROOT / cell.name


def confine(notebook: Notebook, path: Path, out: str | os.PathLike[str] | None, what: str) -> Path:
    """PATH when it stays inside the notebook's folder or the `--out` directory (symlinks
    resolved); ContextError naming WHAT and the path otherwise.

    `dcs render`/`dcs build` promise to run no notebook code, so CI builds notebooks from pull
    requests: a cell's `--context /etc` or `../../..` must not let it write anywhere. (In an
    interactive notebook the magics write where the user says; that is the user's choice.)
    """
    roots = [notebook.path.parent.resolve()] + ([Path(out).resolve()] if out else [])
    resolved = path.resolve()
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        allowed = " or ".join(str(root) for root in roots)
        raise ContextError(
            f"{notebook.path}, {what} {str(path)!r} leads outside the notebook's folder"
            f"{' and the --out directory' if out else ''} (to {resolved}); dcs render/build refuse to write there",
            hint=f"use a relative --context inside {allowed} (no '..', no symlink out), or pass --out DIR")
    return path


def _confine_context(notebook: Notebook, cell: DockerfileCell, out: str | os.PathLike[str] | None) -> Path:
    """CELL's context directory, and each of its `%%dcs_file` targets, confined (see `confine`)."""
    where = confine(notebook, context_dir(notebook, cell, out), out,
                    f"%%dockerfile cell {cell.cell} ({cell.name!r}): its build context")
    for item in notebook.files_for(cell.name):
        confine(notebook, where / item.path, out, f"%%dcs_file cell {item.cell} ({item.path!r})")
    return where


def render_one(notebook: Notebook, name: str | None, *, variables: Mapping[str, str] | None = None,
               out: str | os.PathLike[str] | None = None, warn: Warn | None = None,
               allow_multiline_vars: bool = False) -> RenderedContext:
    """Render NAME's context (the only one when None) and pass its lint findings to `warn`.

    A `--var`/`DCS_VAR_` value with a newline that the Dockerfile template uses is refused
    (NotebookError) unless `allow_multiline_vars`; an instruction a variable's newline made
    is a lint finding either way.
    """
    from ..errors import NotebookError
    from ..model.lint import injected_instructions
    from .notebook import multiline_variables, render_context, resolve_variables

    cell = notebook.dockerfile(name)
    multiline = multiline_variables(cell.template, variables)
    if multiline and not allow_multiline_vars:
        raise NotebookError(
            f"{notebook.path}, %%dockerfile cell {cell.cell} ({cell.name!r}): {', '.join(multiline)} has a "
            "newline; pasted into the Dockerfile, each line after it becomes an instruction of its own",
            hint="give a single-line value, or pass --allow-multiline-vars if the newline is meant")
    values = resolve_variables(notebook.parameters, variables)
    rendered = render_context(notebook, cell.name, values, _confine_context(notebook, cell, out))
    findings = list(rendered.findings) + injected_instructions(rendered.dockerfile, values.values())
    for finding in findings:
        (warn or _ignore)(f"{cell.name}/Dockerfile {finding}")
    return replace_fields(rendered, findings=tuple(findings))


def render_notebook(notebook: str | os.PathLike[str] | Notebook, *, name: str | None = None,
                    variables: Mapping[str, str] | None = None, out: str | os.PathLike[str] | None = None,
                    warn: Warn | None = None, allow_multiline_vars: bool = False) -> RenderedNotebook:
    """Render NAME's build context (default: every `%%dockerfile` cell's) and write every
    `%%init_script` cell to `<out or dcs-build>/init-scripts/NAME.sh`. Runs no notebook code."""
    from .context import write_file

    nb = _read(notebook)
    _check_overrides(nb, variables)
    names = [nb.dockerfile(name).name] if name else list(nb.dockerfiles)
    root = Path(out) if out else nb.path.parent / BUILD_ROOT
    # Every place is checked before anything is written: a refused notebook writes nothing.
    for each in names:
        _confine_context(nb, nb.dockerfile(each), out)
    for script_name, script in nb.init_scripts.items():
        confine(nb, root / INIT_SCRIPTS_DIR / f"{script_name}.sh", out,
                f"%%init_script cell {script.cell} ({script_name!r}): its file")
    contexts = tuple(render_one(nb, each, variables=variables, out=out, warn=warn,
                                allow_multiline_vars=allow_multiline_vars) for each in names)
    scripts = tuple(write_file(root / INIT_SCRIPTS_DIR, f"{script_name}.sh", script.text)
                    for script_name, script in nb.init_scripts.items())
    return RenderedNotebook(contexts, scripts)


# -- build -------------------------------------------------------------------------------------


@dataclass
class NotebookBuild:
    """The outcome of `build_notebook`: the lock entry written, the build and the pushes."""

    name: str
    entry: ImageLock
    lock_file: Path
    build: BuildResult
    pushes: list[PushResult] = field(default_factory=list)

    @property
    def references(self) -> list[str]:
        """The pinned reference of every pushed tag, else the image id (what `dcs build` prints)."""
        return [p.pinned for p in self.pushes] or [self.build.image_id]


def _pairs(items: Mapping[str, str] | Sequence[str] | None, option: str) -> dict[str, str]:
    from .build import parse_pairs

    if items is None or isinstance(items, Mapping):
        return dict(items or {})
    try:
        return parse_pairs(list(items), option)
    except ValueError as exc:
        raise UsageError(str(exc), hint="write it as KEY=VALUE") from exc


def build_notebook(notebook: str | os.PathLike[str] | Notebook, *, tags: Sequence[str], name: str | None = None,
                   push: bool = False, variables: Mapping[str, str] | None = None, locked: bool = False,
                   out: str | os.PathLike[str] | None = None, platform: str = PLATFORM,
                   build_args: Mapping[str, str] | Sequence[str] | None = None,
                   labels: Mapping[str, str] | Sequence[str] | None = None, no_cache: bool = False,
                   pull: bool = False, target: str | None = None, username: str | None = None,
                   password: Secret | None = None, password_env: str | None = None,
                   progress: ProgressFactory | None = None, warn: Warn | None = None,
                   allow_multiline_vars: bool = False, registry_check: bool = True,
                   builder: str = "auto", secrets: Sequence[str] | None = None) -> NotebookBuild:
    """Render NAME's context, build it, push every tag (`push=True`) and record the result
    in the notebook's lock file; return the NotebookBuild (its `entry` is the lock entry).

    `build_args`/`labels` are dicts or `["K=V", ...]` (UsageError when malformed). Push
    credentials: Docker's own unless `username` with `password` (a Secret), or with the
    variable `password_env` names, or (on a terminal) a hidden prompt. `locked=True` raises
    LockError before building when the lock no longer matches the rendered inputs (build
    arguments included), or, unless `registry_check=False`, when the registry no longer
    serves the digest the lock recorded for its pushed reference (`lock.verify_pushed`).
    `builder` and `secrets` as `build()` takes them; the lock records the builder used.
    """
    from ..model.buildkit import secret_specs
    from ..model.lint import secret_build_arg_warnings
    from .lock import lock_path, read_lock

    if not tags:
        raise UsageError("a build needs at least one tag", hint="pass -t registry.example.com/team/app:1.0")
    build_arg_map = _pairs(build_args, "--build-arg")
    label_map = _pairs(labels, "--label")
    try:
        secret_list = secret_specs(secrets)
    except ValueError as exc:
        raise UsageError(str(exc), hint="e.g. --secret id=pip,env=PIP_INDEX_URL") from None
    if push and password is None:
        password = registry_password(username, password_env)  # before any work: fail fast
    nb = _read(notebook)
    _check_overrides(nb, variables)
    lock_file = lock_path(nb.path)
    lock = read_lock(lock_file)
    rendered = render_one(nb, name, variables=variables, out=out, warn=warn,
                          allow_multiline_vars=allow_multiline_vars)
    entry = _lock_entry(rendered, build_arg_map, platform, target)
    if locked:
        _check_locked(lock, rendered.name, entry, lock_file)
        if registry_check and lock is not None:
            from .lock import verify_pushed

            verify_pushed(lock_file, rendered.name, lock.images[rendered.name], username, password, warn=warn)
    sink = _sink(progress, "build")
    if sink is None:  # no progress display (`--progress none`) to show the build's own warnings
        for warning in secret_build_arg_warnings(build_arg_map):
            (warn or _ignore)(warning)
    result = _build(rendered, tags, build_arg_map, label_map, platform=platform, no_cache=no_cache, pull=pull,
                    target=target, sink=sink, builder=builder, secrets=secret_list)
    # The digest of the base the image was built from: the engine's, asked before the build,
    # unless the build pulled the base (`pull`, or it was not local): then the build's answer,
    # which is the pulled image's (with --pull the digest asked before is the old local copy's).
    built_from = result.base_digest if pull else (entry.base_digest or result.base_digest)
    if entry.base and built_from != entry.base_digest:
        entry.base_digest = built_from
        if locked:
            _check_locked(lock, rendered.name, entry, lock_file)
    _record_streamed(entry, result, rendered.name, locked, lock_file, warn)
    pushes = [_push(tag, username, password, progress) for tag in result.tags] if push else []
    for pushed in pushes:
        verify_push(pushed, username, password, warn)
    _update_lock(lock_file, nb, rendered.name, entry, result, pushes)
    return NotebookBuild(rendered.name, entry, lock_file, result, pushes)


def _record_streamed(entry: ImageLock, result: BuildResult, name: str, locked: bool, lock_file: Path,
                     warn: Warn | None) -> None:
    """The lock records the files as the engine received them (hashed while streamed), not as
    they were before the build: a file changed in between is what the image holds. With
    --locked such a change is refused (the image is not the locked one); otherwise it is said."""
    from .lock import compare_files

    if result.context_files is None or result.context_files == entry.files:
        return
    changed = compare_files(name, entry.files, result.context_files)
    listed = "\n".join(f"  - {c}" for c in changed)
    if locked:
        raise LockError(f"--locked: build context files changed while {name!r} was built, so the image "
                        f"({result.image_id[:19]}) is not the locked one:\n{listed}",
                        hint="stop whatever writes into the build context during the build, then build again")
    entry.files = dict(result.context_files)
    (warn or _ignore)(f"build context files changed while {name!r} was built; the lock records what the "
                      f"image was built from:\n{listed}")


def _lock_entry(rendered: RenderedContext, build_args: dict[str, str], platform: str,
                target: str | None) -> ImageLock:
    from ..model.dockerfile import final_base
    from .lock import ImageLock, build_arg_hashes, context_files

    base = final_base(rendered.dockerfile, build_args, target) or rendered.base
    return ImageLock(dockerfile_sha256=rendered.dockerfile_sha256, dockerfile=rendered.dockerfile,
                     files=context_files(rendered.context_dir), base=base,
                     base_digest=_base_digest(base) if base else None, platform=platform,
                     build_args=build_arg_hashes(build_args))


def _base_digest(base: str) -> str | None:
    """The registry digest of the local base image, None when the engine does not have it."""
    from ..adapters.engine import connect

    with closing(connect()) as engine:
        return engine.repo_digest(base)


def _check_locked(lock: Lock | None, name: str, entry: ImageLock, lock_file: Path) -> None:
    from .lock import compare, verify_entry

    if lock is not None and name in lock.images:
        verify_entry(lock_file, name, lock.images[name])

    differences = compare(lock, {name: entry})
    if differences:
        listed = "\n".join(f"  - {d}" for d in differences)
        raise LockError(
            f"--locked: the rendered build no longer matches {lock_file}:\n{listed}",
            hint="if the change is intended, run `dcs build` without --locked and commit the new lock file")


def _sink(progress: ProgressFactory | None, kind: str) -> ProgressSink | None:
    return progress(kind) if progress is not None else None


def _build(rendered: RenderedContext, tags: Sequence[str], build_args: dict[str, str], labels: dict[str, str],
           *, platform: str, no_cache: bool, pull: bool, target: str | None,
           sink: ProgressSink | None, builder: str = "auto", secrets: Sequence[SecretSpec] = ()) -> BuildResult:
    from .build import build

    return build(rendered.context_dir, tags=list(tags), name=rendered.name, build_args=build_args or None,
                 platform=platform, no_cache=no_cache, pull=pull, target=target, labels=labels or None,
                 progress=sink, hash_files=True, builder=builder, secrets=list(secrets))


def _push(tag: str, username: str | None, password: Secret | None, progress: ProgressFactory | None) -> PushResult:
    from .push import push

    # Not verified here: build_notebook asks the registry itself (verify_push: a LockError).
    return push(tag, username=username, password=password, progress=_sink(progress, "push"), verify=False)


def _update_lock(lock_file: Path, notebook: Notebook, name: str, entry: ImageLock,
                 result: BuildResult, pushes: list[PushResult]) -> None:
    """Record NAME's entry in the lock file, holding the file's lock while reading and
    writing it, so parallel builds of other NAMEs keep their entries."""
    from .lock import update_lock

    def change(lock: Lock) -> None:
        lock.notebook = notebook.path.name
        before = lock.images.get(name)
        entry.image_id = result.image_id
        entry.tags = list(result.tags)
        entry.builder = result.builder
        if pushes:
            entry.record_push(pushes[0].image)
        elif before is not None and before.image_id == result.image_id and not before.problems():
            entry.push = before.push  # same image: what was pushed still describes it
        if before is not None:
            entry.cluster = before.cluster
        lock.images[name] = entry.seal()

    update_lock(lock_file, change)


def verify_push(push: PushResult, username: str | None = None, password: Secret | None = None,
                warn: Warn | None = None) -> None:
    """LockError when the registry serves another digest for the pushed tag than the push
    reported (so the lock never records a digest the registry does not hold); a warning when
    the registry cannot be asked. The question is `push.verify_pushed_digest`'s, as `%dcs_push`
    asks it."""
    from .push import verify_pushed_digest

    try:
        problem = verify_pushed_digest(push.reference, push.digest, username, password)
    except PushError as exc:
        raise LockError(f"{exc.message}; the lock was not updated", hint=exc.hint) from exc
    if problem:
        (warn or _ignore)(f"{problem}; the lock records it")


# -- launch ------------------------------------------------------------------------------------


@dataclass
class LaunchPlan:
    """A clusters/create request ready to send: the spec, its body, and the lock entry
    (file, Lock, NAME) the launched body is recorded in, when one was given."""

    spec: ClusterSpec
    body: dict[str, Any] = field(repr=False)  # the request body: may hold a password
    lock_file: Path | None = None
    lock: Lock | None = None
    name: str | None = None

    @property
    def literal_password(self) -> bool:
        """True when docker_image.basic_auth.password is a literal (not a secret reference)."""
        from ..model.secrets import is_secret_reference

        auth = (self.body.get("docker_image") or {}).get("basic_auth") or {}
        password = auth.get("password")
        return bool(password) and not is_secret_reference(password)


def launch_spec(spec: str | os.PathLike[str] | ClusterSpec, *, image: str | None = None,
                lock: str | os.PathLike[str] | None = None, name: str | None = None,
                username: str | None = None, password_env: str | None = None,
                warn: Warn | None = None, strict: bool = False, registry_check: bool = True,
                registry_auth: str | None = None) -> LaunchPlan:
    """The validated clusters/create body from a spec (file or ClusterSpec).

    The image is `image`, else the pinned digest recorded in `lock` (a lock file or the
    notebook whose lock to use; entry `name`, default the only one), else the spec's. A lock's
    image is trusted only when the registry still serves its recorded digest for its recorded
    reference (`lock.verify_pushed`, with `username`/`password_env` or Docker's config), unless
    `registry_check=False`.
    `username`/`password_env` replace docker_image.basic_auth's (the variable is read when
    the body is built). `registry_auth` (`--registry-auth`: dockerhub, acr, ecr, gar, basic,
    none; None or auto: the kind the image's host says) sets the kind's username convention
    (`_json_key`, `AWS`) when none is given, or takes basic_auth out (`none`); its notes (a kind
    that does not fit the host, ECR's 12-hour token, Artifact Registry) go to `warn`, as do a
    docker_image.url that is a tag and an unknown field of a spec file (SpecError with `strict`).
    """
    from ..model import registry_auth as kinds
    from ..model.spec import ClusterSpec

    if registry_auth not in (None, kinds.AUTO, *kinds.KINDS):
        raise UsageError(f"--registry-auth {registry_auth}: not a registry kind",
                         hint=f"use one of {', '.join((kinds.AUTO, *kinds.KINDS))}")
    if registry_auth == "none" and (username or password_env):
        raise UsageError("--registry-auth none sends no basic_auth, so --username / --password-env have nothing "
                         "to fill", hint="drop them, or pick the registry's kind (dockerhub, acr, ecr, gar, basic)")
    if registry_auth and password_env and not username:
        username = kinds.username_for(registry_auth)  # gar: _json_key, ecr: AWS

    plan_spec = spec if isinstance(spec, ClusterSpec) else ClusterSpec.load(spec, strict=strict, warn=warn)
    lock_file, lock_obj, entry_name = _launch_lock(lock, name, image_given=bool(image))
    if not image and registry_check and lock_file is not None and lock_obj is not None and entry_name:
        from ..model.credentials import env_password
        from .lock import verify_pushed

        verify_pushed(lock_file, entry_name, lock_obj.images[entry_name], username,
                      env_password(password_env) if username and password_env else None, warn=warn)
    chosen = image or (lock_obj.images[entry_name].pinned if lock_obj is not None and entry_name else None)
    if chosen:
        plan_spec = plan_spec.with_image(chosen)
    if username or password_env:
        plan_spec = _with_credentials(plan_spec, username, password_env)
    plan_spec, notes = kinds.apply(plan_spec, registry_auth)
    for note in notes:
        (warn or _ignore)(note)
    warning = unpinned_warning(plan_spec.image_url)
    if warning:
        (warn or _ignore)(warning)
    body = plan_spec.to_dict(validate=True)
    return LaunchPlan(plan_spec, body, lock_file, lock_obj, entry_name)


def _launch_lock(lock: str | os.PathLike[str] | None, name: str | None, *,
                 image_given: bool) -> tuple[Path | None, Lock | None, str | None]:
    """(lock file, Lock, entry NAME) for `lock`; (None, None, None) without it."""
    if not lock:
        return None, None, None
    return read_lock_entry(lock, name, need_pinned=not image_given)


def read_lock_entry(where: str | os.PathLike[str], name: str | None = None, *,
                    need_pinned: bool = True) -> tuple[Path, Lock, str]:
    """(lock file, Lock, entry NAME) of a `.dcs.lock.json` or of the notebook whose lock it is.

    `name` None: the only entry. LockError when there is no lock file, the entry is missing or
    ambiguous, or (`need_pinned`) it was never pushed, so there is no pinned image.
    """
    from .lock import LOCK_SUFFIX, lock_path, read_lock, verify_entry

    path = Path(where)
    lock_file = path if path.name.endswith(LOCK_SUFFIX) else lock_path(path)
    found = read_lock(lock_file)
    if found is None:
        raise LockError(f"there is no lock file {lock_file}",
                        hint="run `dcs build NOTEBOOK -t TAG --push` first; it writes the lock")
    if name is None:
        if len(found.images) != 1:
            raise LockError(f"{lock_file} has {len(found.images)} entries "
                            f"({', '.join(sorted(found.images)) or 'none'}); say which one",
                            hint="pass --name NAME")
        name = next(iter(found.images))
    if name not in found.images:
        raise LockError(f"{lock_file} has no entry {name!r} (it has: {', '.join(sorted(found.images))})",
                        hint="check --name, or build that NAME with `dcs build`")
    verify_entry(lock_file, name, found.images[name])
    if need_pinned and not found.images[name].pinned:
        raise LockError(f"{lock_file}: {name!r} was never pushed, so there is no pinned image",
                        hint="run `dcs build NOTEBOOK -t TAG --push`, or pass --image REF")
    return lock_file, found, name


def _with_credentials(spec: ClusterSpec, username: str | None, password_env: str | None) -> ClusterSpec:
    """docker_image.basic_auth with `username` and the password from variable `password_env`
    (read when the body is built; the spec never holds it)."""
    from ..model.spec import BasicAuth, DockerImage

    if password_env:
        env_password(password_env)  # UsageError naming the variable, before anything else
    image = spec.docker_image if isinstance(spec.docker_image, DockerImage) else None  # else validate refuses it
    auth = image.basic_auth if image is not None and isinstance(image.basic_auth, BasicAuth) else None
    old_user = auth.username if auth is not None else None
    old_password = auth.password if auth is not None else None
    old_env = auth.password_env if auth is not None else None
    user = username or old_user
    if not user or not (password_env or old_password or old_env):
        raise SpecError("docker_image.basic_auth needs both a username and a password",
                        field="docker_image.basic_auth",
                        hint="give --username and --password-env, or put the missing one in the spec file")
    basic = BasicAuth(user, password_env=password_env) if password_env else \
        BasicAuth(user, password=old_password, password_env=old_env)
    url = image.url if image is not None else None
    return spec.replace(docker_image=DockerImage(url, basic))  # type: ignore[arg-type]


def create_cluster(plan: LaunchPlan, *, profile: str | None = None, local: bool = False, wait: bool = False,
                   timeout: float = CLUSTER_TIMEOUT_S, on_created: Callable[[str, str | None], Any] | None = None,
                   on_state: Callable[[dict[str, Any]], Any] | None = None,
                   workspace: Workspace | None = None, warn: Warn | None = None,
                   on_failed: Callable[[Workspace, str], Any] | None = None) -> str:
    """Create the plan's cluster; record the launched body (masked) in its lock entry; with
    `wait` follow it to RUNNING (ClusterError on TERMINATED/ERROR or timeout). Returns the id.

    The workspace is `workspace`, else `open_workspace(profile, local=local)`.
    `on_created(cluster_id, url)` is called as soon as the cluster exists (`url` its page; None
    when that page ends before the cluster does: a local workspace served by this process, see
    `Workspace.page_links`); `on_failed(workspace, cluster_id)` when the wait ends
    TERMINATED/ERROR, before the ClusterError is raised (`dcs launch --wait` prints
    `why_cluster`'s diagnosis there, on the same workspace). Literal values
    under credential-like keys are masked in the lock and passed to `warn` with the
    `{{secrets/scope/key}}` reference to use instead.
    """
    from ..adapters.workspace import open_workspace

    ws = workspace if workspace is not None else open_workspace(profile, local=local)
    with closing(ws) if workspace is None else nullcontext(ws):
        cluster_id = ws.create_cluster(plan.spec)
        if on_created is not None:
            on_created(cluster_id, ws.cluster_url(cluster_id) if ws.page_links else None)
        if plan.lock is not None and plan.lock_file is not None and plan.name is not None:
            _record_cluster(plan, warn)
        if wait:
            try:
                ws.wait_for_cluster(cluster_id, timeout_s=timeout, on_state=on_state)
            except KeyboardInterrupt:
                # Ctrl-C or SIGTERM (a cancelled CI job) while waiting: what was started is
                # terminated, not left starting (and billing) unwatched.
                _terminate_quietly(ws, cluster_id, warn)
                raise
            except ClusterError as exc:
                if on_failed is not None and exc.state in ("TERMINATED", "ERROR"):
                    on_failed(ws, cluster_id)
                raise
    return cluster_id


def _terminate_quietly(ws: Workspace, cluster_id: str, warn: Warn | None) -> None:
    try:
        ws.terminate_cluster(cluster_id)
    except DcsError as exc:
        (warn or _ignore)(f"cluster {cluster_id} could not be terminated ({exc.message}); terminate it "
                          f"yourself: dcs terminate {cluster_id}")
    else:
        (warn or _ignore)(f"interrupted: cluster {cluster_id} was terminated")


def _record_cluster(plan: LaunchPlan, warn: Warn | None) -> None:
    """Record the launched body in its lock entry (masked by ImageLock.to_dict, the one
    masking function `secrets.mask_secrets`); the entry's content hash does not cover it."""
    from ..model.secrets import secret_warnings
    from .lock import update_lock

    assert plan.lock_file is not None and plan.name is not None
    name = plan.name

    def change(lock: Lock) -> None:
        if name in lock.images:
            lock.images[name].cluster = plan.body

    for warning in secret_warnings(plan.body):
        (warn or _ignore)(f"{warning} (masked as **** in {plan.lock_file.name})")
    update_lock(plan.lock_file, change)
