"""Faults and bad input (issue 13, "Hangs and wrong results" 16-17, and the cases that held).

Table-driven: each row feeds one fault to the real product (templates, notebooks, the `dcs`
CLI, the Workspace client against a local HTTP server, the Docker engine and registries) and
asserts two things: the clear dcs-magic error (class, and the words that say what and how),
and that nothing was lost or leaked (earlier files intact, no stray file or container, no
token in the error). Rows that need the engine are marked `docker`.

Covered elsewhere, not repeated here: issue 13 items 9, 11, 15 (tests/integration/
test_preflight_http.py, test_local_workspace.py), 12 and the "cancelled twice" /
"build-args not consumed" rows of 17 (tests/integration/test_push.py, test_build.py), and the
security rows 1, 4-7, 10, 13, 14 (tests/faults/test_security.py) and the issue 23 rows (tests/faults/test_round_two.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from standins import stalled_tcp, stalled_unix
from support.clusters_api import ClustersApi, isolate_databricks_config

from dcs_magic.adapters.workspace import Workspace
from dcs_magic.cli.commands import main as dcs_main
from dcs_magic.cli.commands import parse_seconds
from dcs_magic.errors import (
    ApiError,
    ContextError,
    DcsError,
    DeadlineExceeded,
    EngineError,
    NotebookError,
    PermissionDenied,
    PushError,
    SpecError,
    TemplateError,
    TemporarilyUnavailable,
    TooManyRequests,
    Unauthenticated,
    UsageError,
)
from dcs_magic.model.progress import BuildState
from dcs_magic.model.spec import ClusterSpec
from dcs_magic.model.template import render
from dcs_magic.ops.build import KEEP_BUILD_LOGS, build
from dcs_magic.ops.notebook import read_notebook
from dcs_magic.ops.push import push

GOOD_DOCKERFILE = "FROM dcs-test/busybox:1\nRUN echo ok\n"


def finishes(fn: Callable[[], Any], within_s: float = 30.0) -> BaseException | None:
    """Run FN in a thread; fail if it does not return within WITHIN_S (a generous bound for
    "quickly": a hang, not a speed, is what is tested). Returns what it raised."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(within_s)
    assert outcome, f"still running after {within_s} s"
    return outcome[0]


# -- templates: 16 (huge numbers, deep nesting, lone surrogate), 17 (NUL), sandbox escapes -------

TEMPLATE_ROWS = [
    # id, template body (after the magic line), variables, words in the error, line or None
    ("huge-power", "FROM x\nRUN echo {{ 10 ** (10 ** 8) }}\n", {}, "too large", 2),
    ("chained-power", "FROM x\n\nRUN echo {{ 9 ** 99999 ** 9 }}\n", {}, "too large", 3),
    ("huge-repeat", "FROM x\nRUN echo {{ 'x' * 10 ** 10 }}\n", {}, "too large", 2),
    ("2000-nested-ifs", "FROM x\n" + "{% if 1 %}\n" * 2000 + "{% endif %}" * 2000, {}, "nest", 42),
    ("3000-parentheses", "FROM x\nRUN echo {{ " + "(" * 3000 + "1" + ")" * 3000 + " }}\n", {}, "nest", 2),
    ("lone-surrogate", "FROM x\nRUN echo {{ v }}\n", {"v": "caf\ud800"}, "surrogate", None),
    ("nul-byte", "FROM x\nRUN echo a\x00b\n", {}, "NUL", 2),
    ("nul-from-variable", "FROM x\nRUN echo {{ v }}\n", {"v": "a\x00b"}, "NUL", 2),
    ("mro-escape", "FROM x\nRUN echo {{ ''.__class__.__mro__ }}\n", {}, "not allowed in the sandbox", 2),
    ("cycler-globals", "FROM x\nRUN echo {{ cycler.__init__.__globals__ }}\n", {}, "not allowed", 2),
    ("underscore-attribute", "FROM x\nRUN echo {{ obj._secret }}\n", {"obj": "OBJ"}, "not allowed", 2),
    ("module-attribute", "FROM x\nRUN echo {{ os.system }}\n", {"os": os}, "not allowed", 2),
    ("mutating-method", "FROM x\n{{ items.append(1) }}\n", {"items": []}, "not allowed", 2),
]


class _Private:
    _secret = "hidden"


@pytest.mark.parametrize("body,variables,words,lineno",
                         [row[1:] for row in TEMPLATE_ROWS], ids=[row[0] for row in TEMPLATE_ROWS])
def test_template_fault_is_a_template_error_and_keeps_the_last_dockerfile(
        shell: Any, tmp_path: Path, body: str, variables: dict[str, Any], words: str,
        lineno: int | None) -> None:
    shell.user_ns.update(variables)
    if "obj" in variables:
        shell.user_ns["obj"] = _Private()
    items_before = list(variables.get("items", []))
    shell.run_cell_magic("dockerfile", "app", GOOD_DOCKERFILE)
    dockerfile = tmp_path / "dcs-build" / "app" / "Dockerfile"
    assert dockerfile.read_text() == GOOD_DOCKERFILE

    raised = finishes(lambda: shell.run_cell_magic("dockerfile", "app", body))

    assert isinstance(raised, TemplateError), repr(raised)
    assert words in raised.message
    assert raised.lineno == lineno
    assert dockerfile.read_text() == GOOD_DOCKERFILE  # the last good render is not lost
    assert sorted(p.name for p in dockerfile.parent.iterdir()) == ["Dockerfile"]
    if "items" in variables:
        assert shell.user_ns["items"] == items_before  # notebook state untouched
    if "obj" in variables:
        assert "hidden" not in str(raised)


def test_surrogate_error_names_the_variable() -> None:
    with pytest.raises(TemplateError) as info:
        render("FROM x\nRUN echo {{ v }}\n", {"v": "caf\ud800"})
    assert info.value.name == "v" and "rendered line 2" in info.value.message


def test_nul_bytes_are_kept_in_other_files(shell: Any, tmp_path: Path) -> None:
    # Only a Dockerfile is refused: a %%dcs_file may hold any text the user wants.
    written = shell.run_cell_magic("dcs_file", "app data.txt", "a\x00b\n")
    assert Path(written).read_bytes() == b"a\x00b\n"


# -- %%dcs_file paths: 17 (quotes) and context escapes --------------------------------------------


@pytest.mark.parametrize("line,relative", [
    ('app "my file.txt"', "my file.txt"),
    ("app 'conf dir/a b.ini'", "conf dir/a b.ini"),
    ("app plain.txt", "plain.txt"),
])
def test_dcs_file_names_lose_their_shell_quotes(shell: Any, tmp_path: Path, line: str, relative: str) -> None:
    written = Path(shell.run_cell_magic("dcs_file", line, "content\n"))
    root = tmp_path / "dcs-build" / "app"
    assert written == root / relative and written.read_text() == "content\n"
    assert not any('"' in p.name or "'" in p.name for p in root.rglob("*"))


def test_dcs_file_quotes_in_a_notebook_read_by_dcs(tmp_path: Path) -> None:
    path = tmp_path / "nb.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("%%dockerfile app\nFROM x\n"),
                                       new_code_cell('%%dcs_file app "my file.txt"\nhi\n')]), path)
    (item,) = read_notebook(path).files
    assert item.path == "my file.txt"
    with pytest.raises(NotebookError, match="not a valid magic line"):
        nbformat.write(new_notebook(cells=[new_code_cell("%%dockerfile app\nFROM x\n"),
                                           new_code_cell('%%dcs_file app "my file.txt\nhi\n')]), path)
        read_notebook(path)


@pytest.mark.parametrize("path_arg,words", [
    ("../escape.txt", ".."),
    ("sub/../../escape.txt", ".."),
    ("/tmp/dcs-test-faults-absolute.txt", "absolute"),
    ("link/escape.txt", "symlink"),
    ("Dockerfile", "Dockerfile"),
])
def test_dcs_file_cannot_leave_its_context(shell: Any, tmp_path: Path, path_arg: str, words: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "dcs-build" / "app"
    root.mkdir(parents=True)
    (root / "link").symlink_to(outside)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(ContextError) as info:
        shell.run_cell_magic("dcs_file", f"app {path_arg}", "pwned\n")
    assert words in str(info.value)
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before  # nothing written, nothing overwritten
    assert not Path("/tmp/dcs-test-faults-absolute.txt").exists()


# -- notebooks, specs, arguments: 16 --------------------------------------------------------------


@pytest.mark.parametrize("tags", [5, "parameters", [1, 2], {"parameters": True}])
def test_bad_tags_metadata_is_a_notebook_error(tmp_path: Path, capsys: Any, tags: Any) -> None:
    path = tmp_path / "nb.ipynb"
    notebook = new_notebook(cells=[new_code_cell("x = 1\n"), new_code_cell("%%dockerfile app\nFROM x\n")])
    notebook.cells[0].metadata["tags"] = tags
    path.write_text(json.dumps(notebook))  # nbformat.write would refuse to save it
    with pytest.raises(NotebookError, match="metadata.tags must be a list of strings") as info:
        read_notebook(path)
    assert "cell 1" in str(info.value)
    assert dcs_main(["render", str(path)]) == 1
    assert "NotebookError" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nb.ipynb"]  # nothing rendered


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_deeply_nested_json_spec_is_a_spec_error(tmp_path: Path, capsys: Any, depth: int) -> None:
    path = tmp_path / "spec.json"
    path.write_text('{"cluster_name": "x", "spark_conf": ' + '{"a": ' * depth + "1" + "}" * (depth + 1))
    with pytest.raises(SpecError, match="nests too deeply"):
        ClusterSpec.load(path)
    assert dcs_main(["launch", "--spec", str(path), "--print"]) == 1
    err = capsys.readouterr().err
    assert "SpecError" in err and "RecursionError" not in err


@pytest.mark.parametrize("value", ["nan", "inf", "-5", "0", "soon"])
def test_timeout_must_be_a_finite_positive_number(capsys: Any, value: str) -> None:
    with pytest.raises(UsageError, match="seconds"):
        parse_seconds(value)
    for command in (["launch", "--spec", "x.json", "--wait"], ["run", "--python-file", "/x.py"]):
        with pytest.raises(SystemExit) as info:
            dcs_main([*command, "--timeout", value])
        assert info.value.code == 2
        assert "argument --timeout" in capsys.readouterr().err
    assert parse_seconds("1.5") == 1.5


# -- the workspace: 16 (create answers [], read timeout, echoed token), 401/403/429/503/stall ---


@pytest.fixture(autouse=True)
def _no_databricks_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_databricks_config(monkeypatch, tmp_path)


BODY = {"cluster_name": "dcs-test-faults", "spark_version": "15.4.x-scala2.12", "node_type_id": "i3.xlarge",
        "num_workers": 0, "docker_image": {"url": "registry.example.com/app@sha256:" + "a" * 64}}


def _echo(token: str) -> dict[str, str]:
    return {"error_code": "INVALID_PARAMETER_VALUE",
            "message": f"bad request; headers were Authorization: Bearer {token}; token={token}"}


WORKSPACE_ROWS = [
    # id, (path, status, body, headers, times) or None, token kind, error class, words in the error
    ("401", None, "wrong", Unauthenticated, "profile"),
    ("403", None, "forbidden", PermissionDenied, "profile"),
    ("429", ("clusters/get", 429, {"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "slow down"},
             {"Retry-After": "0"}, 10), "good", TooManyRequests, "retries"),
    ("503", ("clusters/get", 503, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "maintenance"},
             {}, 10), "good", TemporarilyUnavailable, "try again"),
    ("500-html", ("clusters/get", 500, "<html><title>Internal error</title></html>", {}, 10), "good",
     ApiError, "Internal error"),
    ("echoed-token-json", ("clusters/get", 400, "ECHO", {}, 1), "good", ApiError, "bad request"),
]


@pytest.mark.parametrize("canned,token_kind,klass,words", [r[1:] for r in WORKSPACE_ROWS],
                         ids=[r[0] for r in WORKSPACE_ROWS])
def test_workspace_error_answers(canned: Any, token_kind: str, klass: type[ApiError], words: str) -> None:
    with ClustersApi() as api:
        token = {"good": api.token, "wrong": "dapi0123456789abcdef0123456789abcdef",
                 "forbidden": api.forbidden_token}[token_kind]
        if canned:
            path, status, body, headers, times = canned
            api.fail(path, status, _echo(token) if body == "ECHO" else body, headers=headers, times=times)
        with Workspace(host=api.host, token=token, retries=2, backoff_factor=0) as ws, pytest.raises(klass) as info:
            ws.get_cluster("0101-000000-dcstest0")
    error = info.value
    assert type(error) is klass or klass is ApiError
    assert words in str(error) and error.hint
    for text in (str(error), repr(error), error.message, " ".join(map(str, error.args))):
        assert token not in text and "Bearer dapi" not in text
    assert not api.clusters  # a read never made a cluster


def test_create_answering_a_list_is_an_api_error() -> None:
    with ClustersApi() as api:
        api.fail("clusters/create", 200, [])
        with Workspace(host=api.host, token=api.token, retries=0) as ws, \
                pytest.raises(ApiError, match="without a cluster_id") as info:
            ws.create_cluster(BODY)
    assert "dcs-test-faults" in info.value.hint  # how to find a cluster that may exist
    assert len(api.requests_to("clusters/create")) == 1


def test_create_echoing_the_token_in_an_error_never_carries_it() -> None:
    with ClustersApi() as api:
        api.fail("clusters/create", 400, _echo(api.token))
        with Workspace(host=api.host, token=api.token, retries=0) as ws, pytest.raises(ApiError) as info:
            ws.create_cluster(BODY)
    text = f"{info.value} {info.value!r} {info.value.args}"
    assert api.token not in text and "Bearer ****" in text
    assert not api.clusters


def test_create_read_timeout_says_the_cluster_may_exist() -> None:
    with stalled_tcp() as (host, stalled), Workspace(host=host, token="dapi-faults-token-0000", timeout=1, retries=3) as ws:
        raised = finishes(lambda: ws.create_cluster(BODY), 30)
    assert isinstance(raised, DeadlineExceeded), repr(raised)
    assert "may have been created" in raised.hint and "dcs-test-faults" in raised.hint
    assert "list_clusters" in raised.hint
    # Sent once: a read timeout on create is never retried (one error is better than two clusters).
    assert sum(b"/clusters/create" in data for data in stalled.received) == 1


def test_stalled_workspace_read_is_a_deadline_error() -> None:
    with stalled_tcp() as (host, _), \
            Workspace(host=host, token="dapi-faults-token-0000", timeout=0.5, retries=1, backoff_factor=0) as ws:
        raised = finishes(lambda: ws.get_cluster("0101-000000-dcstest0"), 30)
    assert isinstance(raised, DeadlineExceeded), repr(raised)
    assert "no answer" in raised.message and "dapi-faults-token" not in str(raised)


# -- progress: 17 (a 60 MB single line) ------------------------------------------------------------


def test_a_60_mb_line_keeps_the_widget_tail_small() -> None:
    state = BuildState(title="app")
    state.apply({"stream": "Step 1/2 : RUN yes | tr -d '\\n'\n"})
    chunk = "y" * (1 << 20)
    for _ in range(60):  # the engine sends a long line in pieces
        state.apply({"stream": chunk})
    state.apply({"stream": "\nStep 2/2 : RUN true\n"})
    snapshot = state.snapshot()
    tail_bytes = sum(len(line.encode()) for line in snapshot["log_tail"])
    assert tail_bytes <= 128 * 1024, f"{tail_bytes} bytes of tail in a snapshot"
    assert len(json.dumps(snapshot)) <= 256 * 1024
    assert snapshot["instruction"] == "RUN true"


# -- build log: 16 (disk full), 17 (rotation) ---------------------------------------------------


@pytest.mark.docker
def test_disk_full_while_writing_the_build_log(tiny_disk: Path, busybox_image: str,
                                               docker_cleanup: Any) -> None:
    dockerfile = f"FROM {busybox_image}\nRUN seq 1 200000\n"
    (tiny_disk / "Dockerfile").write_text(dockerfile)
    tag = f"{docker_cleanup.unique('diskfull')}:1"
    with pytest.raises(ContextError) as info:
        build(tiny_disk, tags=[tag], name="app", no_cache=True)
    assert "Cannot write the build log" in info.value.message and "space" in info.value.message
    assert "Free space" in info.value.hint
    assert (tiny_disk / "Dockerfile").read_text() == dockerfile  # the context is intact
    (log,) = (tiny_disk / ".dcs").glob("build-*.log")
    assert log.stat().st_size > 0


@pytest.mark.docker
def test_build_logs_are_rotated(tmp_path: Path, busybox_image: str, docker_cleanup: Any) -> None:
    (tmp_path / "Dockerfile").write_text(f"FROM {busybox_image}\nRUN echo rotated\n")
    logs = tmp_path / ".dcs"
    logs.mkdir()
    for day in range(1, 31):
        (logs / f"build-202601{day:02d}-000000-000000.log").write_text(f"old {day}\n")
    result = build(tmp_path, tags=[f"{docker_cleanup.unique('rotate')}:1"], name="app")
    kept = sorted(p.name for p in logs.glob("build-*.log"))
    assert len(kept) == KEEP_BUILD_LOGS
    assert Path(result.log_path).name == kept[-1] and "rotated" in Path(result.log_path).read_text()
    assert kept[0] == "build-20260112-000000-000000.log"  # the oldest went, the newest stayed


# -- the engine: down, stalled ------------------------------------------------------------------


def test_engine_down_names_the_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "Dockerfile").write_text(GOOD_DOCKERFILE)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(EngineError) as info:
        build(tmp_path, tags=["dcs-test-faults:1"], name="app")
    assert info.value.host == "unix:///nonexistent/docker.sock"
    assert "unix:///nonexistent/docker.sock" in str(info.value) and info.value.hint
    assert (tmp_path / "Dockerfile").read_text() == GOOD_DOCKERFILE


def test_engine_stalled_is_an_engine_error(tmp_path: Path) -> None:
    from dcs_magic.adapters import engine

    sock = tmp_path / "stalled.sock"
    with stalled_unix(sock):
        raised = finishes(lambda: engine.connect(timeout=1, host=f"unix://{sock}"), 30)
    assert isinstance(raised, EngineError), repr(raised)
    assert str(sock) in str(raised) and "timed out" in str(raised)


# -- registries: down, 500, HTML page, 429 ------------------------------------------------------

HTML_PAGE = b"<html><head><title>500 Internal Server Error</title></head><body>nginx</body></html>"


@pytest.mark.docker
@pytest.mark.parametrize("kind,words", [
    ("down", "connection refused"),
    ("html-500", "500"),  # at the manifest: the engine retries a failed layer upload for ~50 s
    ("429", "429"),
])
def test_registry_faults_are_push_errors(kind: str, words: str, docker_client: Any, busybox_image: str,
                                         docker_cleanup: Any) -> None:
    from contextlib import nullcontext

    from support.registry import manifest_refusing_registry, rate_limited_registry

    servers = {
        "down": nullcontext("127.0.0.1:9"),  # the discard port: nothing listens there
        "html-500": manifest_refusing_registry(500, HTML_PAGE, "text/html"),
        "429": rate_limited_registry(),
    }
    with servers[kind] as host:
        ref = docker_cleanup.add(f"{host}/{docker_cleanup.unique(kind)}:1")
        docker_client.images.get(busybox_image).tag(ref)
        raised = finishes(lambda: push(ref), 120)
    assert isinstance(raised, PushError), repr(raised)
    assert words in str(raised).lower() and host in str(raised) and raised.hint
    assert docker_client.images.get(ref)  # the local image is kept


# -- .dockerignore parity with the docker CLI ------------------------------------------------------

IGNORE = """\
# comment
*.log
!keep.log
**/__pycache__
build/
docs/**/*.md
!docs/README.md
secret*
"""
FILES = ["a.py", "x.log", "keep.log", "pkg/__pycache__/m.pyc", "pkg/m.py", "build/out.bin",
         "docs/README.md", "docs/guide/intro.md", "docs/guide/img.png", "secret.env", "sub/secret.txt",
         "Secret.TXT", "X.LOG"]  # case-sensitive on Linux: `secret*` and `*.log` keep these


@pytest.mark.docker
def test_dockerignore_matches_the_docker_cli(tmp_path: Path, busybox_image: str, docker_client: Any,
                                             docker_cleanup: Any) -> None:
    for name in FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    (tmp_path / ".dockerignore").write_text(IGNORE)
    (tmp_path / "Dockerfile").write_text(f"FROM {busybox_image}\nCOPY . /ctx\n")
    ours = docker_cleanup.add(f"{docker_cleanup.unique('ignore-ours')}:1")
    cli = docker_cleanup.add(f"{docker_cleanup.unique('ignore-cli')}:1")
    build(tmp_path, tags=[ours], name="app")
    subprocess.run(["/usr/bin/docker", "build", "-q", "-t", cli, str(tmp_path)], check=True,
                   capture_output=True, env={**os.environ, "DOCKER_BUILDKIT": "0"})

    def files_in(image: str) -> list[str]:
        out = docker_client.containers.run(image, ["find", "/ctx", "-type", "f"], remove=True)
        return sorted(out.decode().split())

    ours_files, cli_files = files_in(ours), files_in(cli)
    assert ours_files == sorted(f for f in cli_files if not f.startswith("/ctx/.dcs/"))
    assert "/ctx/keep.log" in ours_files and "/ctx/x.log" not in ours_files
    assert "/ctx/docs/README.md" in ours_files and "/ctx/docs/guide/intro.md" not in ours_files
    assert {"/ctx/Secret.TXT", "/ctx/X.LOG"} <= set(ours_files) and "/ctx/secret.env" not in ours_files
    assert not any(".dcs" in f for f in ours_files)  # our build logs never reach the engine


# -- 60 concurrent local clusters -----------------------------------------------------------------

CONCURRENT_CLUSTERS = 60


@pytest.mark.docker
@pytest.mark.slow
def test_concurrent_local_clusters_are_all_accounted_for(docker_client: Any, busybox_image: str,
                                                         registry: Any, docker_cleanup: Any) -> None:
    from dcs_magic.preflight import LABEL

    ref = docker_cleanup.add(f"{registry.host}/{docker_cleanup.unique('many')}:1")
    docker_client.images.get(busybox_image).tag(ref)
    for event in docker_client.api.push(ref, stream=True, decode=True):
        assert "error" not in event, event
    body = {**BODY, "node_type_id": "local", "docker_image": {"url": ref}}

    with Workspace.local() as ws:
        def launch(i: int) -> tuple[str, str]:
            cluster_id = ws.create_cluster({**body, "cluster_name": f"dcs-test-many-{i}"})
            try:
                ws.wait_for_cluster(cluster_id, timeout_s=600)
            except DcsError as exc:
                return cluster_id, getattr(exc, "state", "") or type(exc).__name__
            return cluster_id, "RUNNING"

        with ThreadPoolExecutor(CONCURRENT_CLUSTERS) as pool:
            outcomes = list(pool.map(launch, range(CONCURRENT_CLUSTERS)))
        ids = [cluster_id for cluster_id, _ in outcomes]
        listed = {c["cluster_id"]: c for c in ws.list_clusters()}
    assert len(set(ids)) == CONCURRENT_CLUSTERS
    assert {state for _, state in outcomes} == {"TERMINATED"}  # busybox has no java: each one fails
    assert set(ids) <= set(listed)
    assert {listed[i]["cluster_name"] for i in ids} == {f"dcs-test-many-{i}" for i in range(CONCURRENT_CLUSTERS)}
    assert all(listed[i]["state"] == "TERMINATED" for i in ids)
    leftovers = docker_client.api.containers(all=True, filters={"label": LABEL})
    assert not [c for c in leftovers if c["Labels"].get(LABEL) in ids]


# -- secret scan of every written file after a run that was given a secret --------------------------


@pytest.mark.docker
def test_no_written_file_holds_the_registry_password(tmp_path: Path, busybox_image: str, auth_registry: Any,
                                                    docker_cleanup: Any, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: Any) -> None:
    password = auth_registry.password
    assert password and len(password) >= 8
    notebook = tmp_path / "nb.ipynb"
    nbformat.write(new_notebook(cells=[
        new_code_cell(f"%%dockerfile app\nFROM {busybox_image}\nCOPY hello.txt /hello.txt\n"),
        new_code_cell("%%dcs_file app hello.txt\nhello\n"),
    ]), notebook)
    notebook_before = notebook.read_bytes()
    ref = docker_cleanup.add(f"{auth_registry.host}/{docker_cleanup.unique('secretscan')}:1")
    monkeypatch.setenv("DCS_FAULTS_PASSWORD", password)
    status = dcs_main(["build", str(notebook), "-t", ref, "--push", "--username", auth_registry.username,
                       "--password-env", "DCS_FAULTS_PASSWORD"])
    out, err = capsys.readouterr()
    assert status == 0, err
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    names = {p.relative_to(tmp_path).as_posix() for p in written}
    assert "nb.dcs.lock.json" in names and any(n.startswith("dcs-build/app/.dcs/build-") for n in names)
    assert "dcs-build/app/Dockerfile" in names and "dcs-build/app/hello.txt" in names
    for path in written:
        assert password.encode() not in path.read_bytes(), path
    assert password not in out + err
    assert notebook.read_bytes() == notebook_before  # the notebook is read, never rewritten
    lock = json.loads((tmp_path / "nb.dcs.lock.json").read_text())
    assert ref.rsplit(":", 1)[0] in json.dumps(lock)  # the run did record its push
