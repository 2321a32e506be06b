"""adapters/engine_address.py: which engine, as the docker CLI reads it, and how it is shown
(no engine needed: files in tmp_path, the environment through monkeypatch)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from support.remote_engine import isolated_docker_config

from dcs_magic.adapters.engine_address import EngineAddress, TlsFiles, resolve
from dcs_magic.adapters.ssh_transport import ssh_argv
from dcs_magic.errors import EngineError


@pytest.fixture
def config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    return isolated_docker_config(monkeypatch, tmp_path / "docker")


def _certs(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text("not shown\n")
    return folder


def test_labels_never_show_secrets() -> None:
    assert EngineAddress("unix:///var/run/docker.sock").label == "local"
    assert EngineAddress("unix:///tmp/d.sock").label == "local unix:///tmp/d.sock"
    assert EngineAddress("tcp://h:2376", tls=TlsFiles(True, "/c/ca.pem")).label == "tcp://h:2376 (TLS)"
    assert EngineAddress("tcp://h:2376", tls=TlsFiles(False)).label == "tcp://h:2376 (TLS, not verified)"
    assert EngineAddress("ssh://me:pw@box:2222").label == "ssh://me@box:2222"
    assert EngineAddress("ssh://me@box", context="big").label == "ssh://me@box (context big)"


def test_docker_host_with_tls(config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    certs = _certs(tmp_path / "certs", "ca.pem", "cert.pem", "key.pem")
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.5:2376")
    assert resolve() == EngineAddress("tcp://10.0.0.5:2376", "DOCKER_HOST")  # no TLS variable: plain, as the CLI
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(certs))
    address = resolve()
    assert address.tls == TlsFiles(True, str(certs / "ca.pem"), str(certs / "cert.pem"), str(certs / "key.pem"))
    assert address.label == "tcp://10.0.0.5:2376 (TLS)"
    assert address.cli_args() == ["--host", "tcp://10.0.0.5:2376", "--tlsverify", "--tlscacert",
                                  str(certs / "ca.pem"), "--tlscert", str(certs / "cert.pem"),
                                  "--tlskey", str(certs / "key.pem")]
    (certs / "key.pem").unlink()
    with pytest.raises(EngineError, match="has cert.pem but no key.pem"):
        resolve()
    (certs / "ca.pem").unlink()
    with pytest.raises(EngineError, match=r"DOCKER_TLS_VERIFY is set .* no ca.pem") as raised:
        resolve()
    assert "not shown" not in str(raised.value)


def test_contexts(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def context(name: str, host: str, skip: bool = False, *tls: str) -> None:
        digest = hashlib.sha256(name.encode()).hexdigest()
        meta = config / "contexts" / "meta" / digest
        meta.mkdir(parents=True)
        (meta / "meta.json").write_text(json.dumps(
            {"Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": skip}}}))
        if tls:
            _certs(config / "contexts" / "tls" / digest / "docker", *tls)

    context("tls", "tcp://box:2376", False, "ca.pem", "cert.pem", "key.pem")
    context("insecure", "tcp://box:2376", True)
    context("ssh", "ssh://me@box")
    assert resolve().label == "local"
    (config / "config.json").write_text(json.dumps({"currentContext": "tls"}))
    assert resolve().label == "tcp://box:2376 (TLS, context tls)"
    monkeypatch.setenv("DOCKER_CONTEXT", "insecure")  # wins over currentContext
    assert resolve().label == "tcp://box:2376 (TLS, not verified, context insecure)"
    monkeypatch.setenv("DOCKER_CONTEXT", "ssh")
    assert resolve().label == "ssh://me@box (context ssh)" and resolve().is_ssh
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/x.sock")  # wins over any context
    assert resolve().source == "DOCKER_HOST"
    monkeypatch.delenv("DOCKER_HOST")
    monkeypatch.setenv("DOCKER_CONTEXT", "nope")
    with pytest.raises(EngineError, match="docker context 'nope' does not exist"):
        resolve()


def test_ssh_command_line() -> None:
    assert ssh_argv("ssh://me@box:2222") == ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30", "-T",
                                             "-l", "me", "-p", "2222", "--", "box", "docker", "system", "dial-stdio"]
    assert ssh_argv("ssh://box", connect_timeout_s=5)[-5:] == ["--", "box", "docker", "system", "dial-stdio"]
    with pytest.raises(ValueError):
        ssh_argv("tcp://box:2376")


@pytest.mark.parametrize("kind", ["missing", "stale"])
def test_an_engine_socket_nobody_answers_on_is_one_error_and_leaves_no_socket_open(
        config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    # docker-py's unix connection does not close its socket when connect() fails: checked
    # first with a socket of ours, closed either way (pytest turns the warning into an error).
    import gc
    import socket
    import warnings

    from dcs_magic.adapters import engine

    path = tmp_path / "engine.sock"
    if kind == "stale":  # the file of an engine that is gone: nobody listens
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(str(path))
        stale.close()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(EngineError) as caught:
            engine.connect()
        message, hint = str(caught.value), caught.value.hint or ""
        del caught  # its traceback holds the frames (and a leaked socket with them)
        gc.collect()
    assert [w for w in seen if issubclass(w.category, ResourceWarning)] == []
    reason = "No such file or directory" if kind == "missing" else "Connection refused"
    assert message.splitlines()[0] == f"Cannot reach the Docker engine at unix://{path} (DOCKER_HOST): {reason}"
    assert "Start a Docker engine" in hint
