"""Remote engines (issue 25.4, classic builder): builds, pushes and checks on a second dockerd
reached over TLS (`DOCKER_HOST=tcp://127.0.0.1:PORT`, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH),
over ssh (`ssh://root@127.0.0.1:PORT` through a local sshd) and through docker contexts; the
engine named in the progress, `dcs check` and `dcs doctor`; the build context streamed with no
temporary file; and one clear paragraph for each way of not getting there.

The second engine (tests/support/remote_engine.py) is started once for this module with its own
data root, sockets and no bridge, so the main engine, shared with other sessions, is never
touched: it only serves to show that what was built remotely is not there.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker.errors import ImageNotFound
from support import images, remote_engine

import dcs_magic
from dcs_magic.adapters.engine import connect
from dcs_magic.cli import main
from dcs_magic.cli.terminal import TerminalProgress
from dcs_magic.errors import EngineError
from dcs_magic.model.results import ProgressRecord

pytestmark = pytest.mark.docker

REMOTE_ONLY = "dcs-test/remote-only:1"  # a tag only the second engine has


@pytest.fixture(scope="module")
def second_engine() -> Iterator[remote_engine.SecondEngine]:
    """One second dockerd (TLS port + unix socket) for the module, busybox loaded into it."""
    folder = Path(tempfile.mkdtemp(prefix="dcs-re-"))  # short: unix socket paths have a limit
    started = time.monotonic()
    engine = None
    try:
        engine = remote_engine.start_second_engine(folder, remote_engine.make_certs(folder / "certs"))
        client = engine.client()
        images.ensure_busybox_image(client)
        client.images.get(images.BUSYBOX_REF).tag(*REMOTE_ONLY.split(":"))
        client.close()
        print(f"second engine ready in {time.monotonic() - started:.1f}s")
        yield engine
    finally:
        if engine is not None:
            engine.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def sshd(second_engine: remote_engine.SecondEngine) -> Iterator[remote_engine.Sshd]:
    """sshd on 127.0.0.1 whose sessions' docker is the second engine."""
    server = remote_engine.start_sshd(second_engine.folder / "ssh", second_engine.socket)
    yield server
    server.stop()


@pytest.fixture
def remote_client(second_engine: remote_engine.SecondEngine) -> Iterator[Any]:
    client = second_engine.client()
    yield client
    client.close()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No DOCKER_* from the machine; an empty Docker config folder (contexts live there)."""
    return remote_engine.isolated_docker_config(monkeypatch, tmp_path / "docker-config")


@pytest.fixture
def tls_env(clean_env: Path, second_engine: remote_engine.SecondEngine, monkeypatch: pytest.MonkeyPatch) -> str:
    """DOCKER_HOST on the second engine's TLS port, as `docker --tlsverify` is set up; its label."""
    monkeypatch.setenv("DOCKER_HOST", second_engine.tcp_host)
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(second_engine.certs.client_dir))
    return f"{second_engine.tcp_host} (TLS)"


@pytest.fixture
def ssh_env(clean_env: Path, sshd: remote_engine.Sshd, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PATH", f"{sshd.bin_dir}:{os.environ['PATH']}")  # the test's ssh config
    monkeypatch.setenv("DOCKER_HOST", sshd.url)
    return sshd.url


class Recorder:
    """A progress sink keeping every snapshot and printing plain terminal lines."""

    def __init__(self) -> None:
        self.snapshots: list[dict[str, Any]] = []
        self.out = io.StringIO()
        self.terminal = TerminalProgress(self.out, rich=False)

    def update(self, snapshot: Any) -> None:
        self.snapshots.append(dict(snapshot))
        self.terminal.update(snapshot)

    def close(self, snapshot: Any) -> None:
        self.snapshots.append(dict(snapshot))
        self.terminal.close(snapshot)


class RunningSink:
    """Keeps snapshots; `running` is set once the step prints `started` (its container named)."""

    def __init__(self) -> None:
        self.updates: list[dict[str, Any]] = []
        self.running = threading.Event()
        self.container: str | None = None

    def update(self, snapshot: Any) -> None:
        self.updates.append(snapshot)
        for line in snapshot.get("log_tail") or []:
            if line.startswith(" ---> Running in "):
                self.container = line.rsplit(" ", 1)[1]
        if self.container and "started" in (snapshot.get("log_tail") or []):
            self.running.set()

    def close(self, snapshot: Any) -> None:
        self.updates.append(snapshot)


def _context(folder: Path, token: str) -> Path:
    folder.mkdir()
    (folder / "Dockerfile").write_text(f"FROM {images.BUSYBOX_REF}\nCOPY data.txt /data.txt\n"
                                       "RUN cat /data.txt && echo built-on-the-remote-engine\n")
    (folder / "data.txt").write_text(f"{token}\n")
    return folder


def _no_temp_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any temporary file made from here on fails the test: the context must stream."""
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a temporary file was made during the build (the context must stream)")

    for name in ("NamedTemporaryFile", "TemporaryFile", "SpooledTemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, refuse)


def test_the_second_engine_leaves_the_main_engines_bridge_alone(second_engine: Any, docker_client: Any) -> None:
    """dockerd --bridge=none deletes docker0 as it starts: the main engine's containers then
    cannot start (seen once); the second engine has a bridge of its own."""
    bridge = docker_client.api.inspect_network("bridge")["Options"].get("com.docker.network.bridge.name", "docker0")
    assert subprocess.run(["ip", "link", "show", bridge], capture_output=True, check=False).returncode == 0
    container = docker_client.containers.run(images.BUSYBOX_REF, ["true"], detach=True)
    try:
        assert container.wait(timeout=60)["StatusCode"] == 0
    finally:
        container.remove(force=True)


def test_tls_engine_builds_pushes_and_checks(tls_env: str, second_engine: Any, remote_client: Any, registry: Any,
                                            docker_client: Any, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    token = secrets.token_hex(8)
    repository = f"{registry.host}/dcs-test-remote/tls"
    tag = f"{repository}:{token}"
    context = _context(tmp_path / "ctx", token)
    sink = Recorder()
    with monkeypatch.context() as patch:
        _no_temp_files(patch)
        result = dcs_magic.build(context, tags=[tag], progress=sink)

    # Built there, not here; its progress streamed back and named the engine.
    assert remote_client.images.get(tag).id == result.image_id
    with pytest.raises(ImageNotFound):
        docker_client.images.get(tag)
    assert sink.snapshots[-1]["engine"] == tls_env == f"tcp://127.0.0.1:{second_engine.tcp_host.rsplit(':', 1)[1]} (TLS)"
    assert sum(s["status"] == "running" for s in sink.snapshots) >= 2
    out = sink.out.getvalue()
    assert out.splitlines()[0] == f"engine: {tls_env}"
    assert token in out and "built-on-the-remote-engine" in out
    assert remote_client.images.get(tag).labels["dcs_magic.dockerfile.sha256"] == result.dockerfile_sha256
    assert f"  Engine: {tls_env}" in repr(ProgressRecord.from_snapshot(sink.snapshots[-1]))  # the static record

    # The remote engine pushes to the registry on 127.0.0.1 (it runs on this host).
    pushed = dcs_magic.push(tag, progress=(push_sink := Recorder()))
    assert pushed.digest == registry.manifest_digest("dcs-test-remote/tls", token)
    assert push_sink.snapshots[-1]["engine"] == tls_env

    # The check runs its probe container on the remote engine.
    report = dcs_magic.check(tag)
    assert report.engine == tls_env and report.checks
    assert f"  engine: {tls_env}" in repr(report)
    assert not remote_client.containers.list(all=True, filters={"ancestor": result.image_id})


def test_dcs_check_names_the_engine(tls_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    main(["check", REMOTE_ONLY])
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"engine: {tls_env}"
    assert f"{REMOTE_ONLY}: FAILED" in out  # busybox is no Databricks image, but it was probed there


def test_magics_build_and_check_on_the_remote_engine(tls_env: str, shell: Any, remote_client: Any,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """`%dcs_build` with text progress names the engine first; `%dcs_check` reports it."""
    shell.run_line_magic("config", "DcsMagics.progress = 'text'")
    shell.run_cell_magic("dockerfile", f"remote --base {images.BUSYBOX_REF} --quiet",
                         "FROM {{ base }}\nRUN echo magic-on-the-remote-engine\n")
    tag = f"dcs-test-remote/magic:{secrets.token_hex(4)}"
    result = shell.run_line_magic("dcs_build", f"remote -t {tag}")
    assert remote_client.images.get(tag).id == result.image_id
    assert f"engine: {tls_env}" in capsys.readouterr().out.splitlines()[:2]  # after "[build remote] starting"
    report = shell.run_line_magic("dcs_check", tag)
    assert report.engine == tls_env


def test_ssh_engine_builds(ssh_env: str, remote_client: Any, docker_client: Any, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    token = secrets.token_hex(8)
    tag = f"dcs-test-remote/ssh:{token}"
    sink = Recorder()
    with monkeypatch.context() as patch:
        _no_temp_files(patch)
        result = dcs_magic.build(_context(tmp_path / "ctx", token), tags=[tag], progress=sink)
    assert remote_client.images.get(tag).id == result.image_id
    with pytest.raises(ImageNotFound):
        docker_client.images.get(tag)
    assert ssh_env.startswith("ssh://root@127.0.0.1:")
    assert sink.snapshots[-1]["engine"] == ssh_env
    assert sink.out.getvalue().splitlines()[0] == f"engine: {ssh_env}"
    assert token in sink.out.getvalue()


def _write_context(config: Path, name: str, host: str, tls_from: Path | None = None) -> None:
    """A context as `docker context create NAME --docker host=HOST[,ca=,cert=,key=]` writes it."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    meta = config / "contexts" / "meta" / digest
    meta.mkdir(parents=True)
    meta.joinpath("meta.json").write_text(json.dumps({
        "Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}}}))
    if tls_from is not None:
        tls = config / "contexts" / "tls" / digest / "docker"
        tls.mkdir(parents=True)
        for file in ("ca.pem", "cert.pem", "key.pem"):
            shutil.copy(tls_from / file, tls / file)


def test_docker_contexts_choose_the_engine(clean_env: Path, second_engine: Any, sshd: Any,
                                           no_databricks_config: None, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    _write_context(clean_env, "dcs-test-tls", second_engine.tcp_host, second_engine.certs.client_dir)
    _write_context(clean_env, "dcs-test-ssh", sshd.url)

    monkeypatch.setenv("DOCKER_CONTEXT", "dcs-test-tls")
    with connect() as engine:
        assert engine.label == f"{second_engine.tcp_host} (TLS, context dcs-test-tls)"
        assert engine.image_exists(REMOTE_ONLY)

    # `docker context use dcs-test-ssh` writes currentContext; DOCKER_CONTEXT would win over it.
    monkeypatch.delenv("DOCKER_CONTEXT")
    (clean_env / "config.json").write_text(json.dumps({"currentContext": "dcs-test-ssh"}))
    monkeypatch.setenv("PATH", f"{sshd.bin_dir}:{os.environ['PATH']}")
    with connect() as engine:
        assert engine.label == f"{sshd.url} (context dcs-test-ssh)"
        assert engine.image_exists(REMOTE_ONLY)

    # DOCKER_HOST wins over any context, as for the docker CLI.
    monkeypatch.setenv("DOCKER_HOST", second_engine.socket)
    with connect() as engine:
        assert engine.label == f"local {second_engine.socket}" and engine.image_exists(REMOTE_ONLY)
    monkeypatch.delenv("DOCKER_HOST")

    # `dcs doctor` says which engine builds would use (no workspace configured here).
    (clean_env / "config.json").write_text(json.dumps({"currentContext": "dcs-test-tls"}))
    main(["doctor"])
    out = capsys.readouterr().out
    assert f"[ok] engine: {second_engine.tcp_host} (TLS, context dcs-test-tls) answers: Docker " in out
    assert "(docker context 'dcs-test-tls')" in out


def _cli_error(capsys: pytest.CaptureFixture[str]) -> str:
    """`dcs check` against the engine now configured: exit 1 and one paragraph on stderr."""
    assert main(["check", REMOTE_ONLY]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and captured.out == ""
    return captured.err


@pytest.mark.parametrize("case", ["wrong CA", "no ca.pem", "no client certificate", "plain HTTP"])
def test_tls_mistakes_are_one_clear_paragraph(case: str, tls_env: str, second_engine: Any, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    certs = second_engine.certs
    expected = {
        "wrong CA": (certs.wrong_ca_dir, "presented a TLS certificate that the CA in"),
        "no ca.pem": (tmp_path, "DOCKER_TLS_VERIFY is set for DOCKER_HOST="),
        "no client certificate": (certs.no_client_dir, "requires a client certificate it trusts"),
        "plain HTTP": (None, "speaks TLS and this client did not use it"),
    }
    folder, words = expected[case]
    if folder is None:
        monkeypatch.delenv("DOCKER_TLS_VERIFY")
    else:
        monkeypatch.setenv("DOCKER_CERT_PATH", str(folder))
    err = _cli_error(capsys)
    assert words in err and second_engine.tcp_host in err and "DOCKER_" in err
    assert "Hint: " in err and "BEGIN" not in err  # how to fix it; never a certificate's content
    assert len(err.strip().splitlines()) <= 3, err


def test_engine_not_answering(clean_env: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    host = f"tcp://127.0.0.1:{remote_engine.free_port()}"
    monkeypatch.setenv("DOCKER_HOST", host)
    err = _cli_error(capsys)
    assert f"The Docker engine at {host} (DOCKER_HOST) does not answer: Connection refused" in err
    assert "unset DOCKER_HOST" in err and len(err.strip().splitlines()) <= 3


def test_ssh_unreachable_and_unknown_host_key(ssh_env: str, sshd: Any, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    port = remote_engine.free_port()
    monkeypatch.setenv("DOCKER_HOST", f"ssh://root@127.0.0.1:{port}")
    err = _cli_error(capsys)
    assert f"Cannot reach the Docker engine at ssh://root@127.0.0.1:{port} (DOCKER_HOST) through ssh:" in err
    assert f"port {port}: Connection refused" in err and "known_hosts" in err

    # A host whose key is not known is refused (BatchMode: no prompt, no silent acceptance).
    monkeypatch.setenv("DOCKER_HOST", ssh_env)
    known = sshd.known_hosts.read_text()
    sshd.known_hosts.write_text("")
    try:
        with pytest.raises(EngineError, match="Host key verification failed"):
            connect()
    finally:
        sshd.known_hosts.write_text(known)


def test_stop_over_ssh_ends_the_remote_build(ssh_env: str, remote_client: Any, tmp_path: Path) -> None:
    """Stop (a Job's cancel, as the widget's button) closes the stream through ssh: the remote
    engine aborts the step and no container is left there."""
    from dcs_magic.ops.runner import Cancelled, Job

    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {images.BUSYBOX_REF}\nRUN echo started; sleep 40; echo never\n")
    sink = RunningSink()
    job = Job("build", "silent", dcs_magic.build, context, tags=["dcs-test-remote/stopped:1"], no_cache=True,
              progress=sink, interval=0.05)
    assert sink.running.wait(60), sink.updates[-1:]
    running = remote_client.containers.list(all=True, filters={"id": sink.container})
    assert running, (sink.container, sink.updates[-1]["log_tail"])  # the step runs over there
    started = time.monotonic()
    assert job.cancel() is True
    took = time.monotonic() - started
    assert took < 10, f"cancel took {took:.1f}s"
    with pytest.raises(Cancelled):
        job.result(timeout=0)
    assert remote_client.containers.list(all=True, filters={"id": sink.container}) == []
    print(f"stop over ssh took {took:.2f}s")
