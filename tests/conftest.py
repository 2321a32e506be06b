"""Shared fixtures on real parts: a Docker engine, registries, a base image, an IPython shell.

Nothing is mocked. The helpers live in tests/support/ (plain functions, usable from a REPL).

Session fixtures
    docker_client   docker.DockerClient(version="auto") for the engine named by the usual
                    environment. When nothing answers on the default socket, `dockerd` is
                    started (own session, log in a temp file) and waited for (60 s); it keeps
                    running after the tests. If it cannot start the fixture fails, it never skips.
    registry        `docker-registry serve` on 127.0.0.1:<free port>, storage in a temp dir.
                    `.host` ("127.0.0.1:PORT"), `.url`, `.manifest_digest(repo, tag)`,
                    `.tags(repo)`, `.catalog()`, `.auth_config` (None), `.log_path`.
    auth_registry   the same behind htpasswd basic auth (bcrypt): `.username`, `.password`
                    (random per session, not in repr), `.auth_config` for docker-py pushes;
                    its HTTP helpers authenticate. The engine pushes to both over plain HTTP
                    (127.0.0.0/8 registries are insecure by default).
    busybox_image   "dcs-test/busybox:1": Debian's busybox-static imported with docker import
                    (reused when the engine already has it; never removed by docker_cleanup).

Function fixtures
    docker_cleanup  a support.cleanup.DockerCleanup: at the end of the test it removes the
                    containers/images named or labelled dcs-test that appeared during the test,
                    plus refs given to `.add(ref)`; `.unique(name)` gives a per-test name.
    shell           one IPython InteractiveShell for the session, prepared per test: cwd is the
                    test's tmp_path, the user namespace and `%config DcsMagics...` settings are
                    reset, and `%load_ext dcs_magic` is run again so each test gets a fresh
                    DcsMagics. run_cell_magic / run_line_magic raise the magic's exception.
    dcs_magics      that test's DcsMagics instance (session state: contexts, last_push, ...).
    no_databricks_config  nothing from the machine's environment or ~/.databrickscfg leaks into
                    the test (modules that talk to a workspace apply it with `pytestmark`).
    api             a support.clusters_api.ClustersApi: a local HTTP server speaking the
                    Clusters/Jobs API, recording every request.
    ws              a Workspace client of `api` (3 retries, no backoff sleeps).

Markers (declared in pyproject.toml, applied by the test files themselves): docker, slow,
browser.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The helpers are imported as `support`; pytest puts this directory on sys.path only in
# its default import mode, so make it explicit.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from support import cleanup, engine, images  # noqa: E402
from support.clusters_api import ClustersApi, isolate_databricks_config  # noqa: E402
from support.registry import Registry, start_registry  # noqa: E402

from dcs_magic import Workspace  # noqa: E402

# The local preflight workspace keeps ended clusters' records under $XDG_STATE_HOME (settings.
# local_state_dir): the suite, its subprocesses and kernels use a fresh folder, never the user's.
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="dcs-test-state-")


# -- lanes: `bash scripts/dev-env.sh test` runs two pytest processes at once ---------------------
# DCS_TEST_LANE=engine-free: the tests under tests/unit and tests/magics not marked `docker`, and
# the files of tests/faults and tests/integration below that touch no Docker engine nor browser
# (a `docker-registry` process, the Clusters API stand-in or a unix-socket engine stand-in of
# their own at most); DCS_TEST_LANE=engine: every other test. Unset: everything. The lanes never
# share Docker objects, so neither's cleanup can remove the other's.
LANES = ("engine-free", "engine")
_ENGINE_FREE_DIRS = ("unit", "magics")
_ENGINE_FREE_FILES = frozenset({
    "faults/test_credential_helpers.py", "faults/test_links.py", "faults/test_lock_registry.py",
    "faults/test_locked_build_args.py", "faults/test_round_two.py", "faults/test_secret_values.py",
    "faults/test_template_bombs.py", "faults/test_traceback_secrets.py", "integration/test_jobs_doctor.py",
    "integration/test_runtimes_update.py", "integration/test_why_workspace.py", "integration/test_local_secrets.py",
    "integration/test_registry_auth_cli.py",
})


def _engine_free(item: pytest.Item) -> bool:
    parts = Path(str(item.path)).relative_to(Path(__file__).parent).parts
    if item.get_closest_marker("docker") is not None:
        return False
    return parts[0] in _ENGINE_FREE_DIRS or "/".join(parts) in _ENGINE_FREE_FILES


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    lane = os.environ.get("DCS_TEST_LANE")
    if not lane:
        return
    if lane not in LANES:
        raise pytest.UsageError(f"DCS_TEST_LANE={lane!r}: expected one of {', '.join(LANES)} (or unset)")
    wanted = lane == "engine-free"
    keep = [item for item in items if _engine_free(item) == wanted]
    dropped = [item for item in items if _engine_free(item) != wanted]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = keep if wanted else _base_image_last(keep)


def _base_image_last(items: list[pytest.Item]) -> list[pytest.Item]:
    """The files none of whose tests need the realistic base (`dcs_base_image`) first, in their
    order, then the others: on a fresh machine scripts/dev-env.sh builds that base in the
    background while the first ones run. Whole files move, so module fixtures start once."""
    needs = {item.path for item in items if "dcs_base_image" in getattr(item, "fixturenames", ())}
    return [item for item in items if item.path not in needs] + [item for item in items if item.path in needs]


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """The real Docker engine (started when it does not answer)."""
    try:
        client = engine.connect_or_start()
    except engine.EngineUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    yield client
    client.close()


def _registry(tmp_path_factory: pytest.TempPathFactory, name: str, **auth: str) -> Registry:
    try:
        return start_registry(tmp_path_factory.mktemp(name), **auth)
    except Exception as exc:  # noqa: BLE001 - any start failure must fail loudly, with the log
        pytest.fail(f"could not start {name}: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A plain registry on 127.0.0.1."""
    reg = _registry(tmp_path_factory, "registry")
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry on 127.0.0.1 that requires basic auth (`.username` / `.password`)."""
    reg = _registry(tmp_path_factory, "auth_registry",
                    username="dcs-test", password=secrets.token_urlsafe(18))
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def _protected_images() -> set[str]:
    """Image refs owned by session fixtures; docker_cleanup never removes them."""
    return set()


@pytest.fixture(scope="session")
def busybox_image(docker_client: Any, _protected_images: set[str]) -> str:
    """Reference of a local busybox-static image ("dcs-test/busybox:1")."""
    _protected_images.add(images.BUSYBOX_REF)  # before creating it: a cleanup may be running
    return images.ensure_busybox_image(docker_client)


@pytest.fixture
def docker_cleanup(docker_client: Any, _protected_images: set[str]
                   ) -> Iterator[cleanup.DockerCleanup]:
    """Removes, after the test, the dcs-test containers and images the test created."""
    sweeper = cleanup.DockerCleanup(docker_client, protected=_protected_images)
    yield sweeper
    sweeper.run()


@pytest.fixture(scope="session")
def _ipython() -> Any:
    """The session's InteractiveShell (IPython supports one per process); history in memory."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False  # no SQLite file, no history thread
    return InteractiveShell.instance(config=config)


def _unload(ip: Any) -> None:
    if "dcs_magic" in ip.extension_manager.loaded:
        ip.extension_manager.unload_extension("dcs_magic")


@pytest.fixture
def shell(_ipython: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """InteractiveShell with a fresh `%load_ext dcs_magic`, cwd = tmp_path, clean namespace."""
    monkeypatch.chdir(tmp_path)
    _unload(_ipython)
    _ipython.config.pop("DcsMagics", None)  # forget earlier tests' %config DcsMagics.x = ...
    _ipython.reset(new_session=False)  # user namespace back to IPython's defaults
    _ipython.run_line_magic("load_ext", "dcs_magic")
    yield _ipython
    _unload(_ipython)


@pytest.fixture
def dcs_magics(shell: Any) -> Any:
    """The DcsMagics instance `shell` registered for this test."""
    return shell.magics_manager.registry["DcsMagics"]


@pytest.fixture
def no_databricks_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing from the machine's environment or ~/.databrickscfg leaks into a test."""
    isolate_databricks_config(monkeypatch, tmp_path)


@pytest.fixture
def api() -> Iterator[ClustersApi]:
    with ClustersApi() as server:
        yield server


@pytest.fixture
def ws(api: ClustersApi) -> Iterator[Workspace]:
    with Workspace(host=api.host, token=api.token, retries=3, backoff_factor=0) as workspace:
        yield workspace
