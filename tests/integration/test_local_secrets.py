"""Secret scopes on the local preflight workspace (issue 26, items 1 and 2). Engine-free.

- The Secrets API through the official databricks-sdk client (`w.secrets.*`): scopes created,
  listed, deleted; secrets put (string and bytes), listed with their times, deleted; a value is
  never answered (`get_secret` is BAD_REQUEST, as Databricks answers outside a notebook).
- The store is one 0600 file in a 0700 folder: a second server (another process) sees what
  the first put, and the launcher resolves a reference from it before the DCS_SECRET_*
  fallback variable.
- `dcs secrets put --local` reads the value from stdin in a subprocess started from a clean
  environment; a second `dcs` command lists it; the value is in no output and no `ps` line.
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from databricks.sdk.errors import BadRequest, NotFound, ResourceAlreadyExists
from support.local_sdk import sdk_client

from dcs_magic import Workspace
from dcs_magic.adapters.secret_store import SecretStore
from dcs_magic.errors import ApiError, UsageError
from dcs_magic.model.forensics import Evidence, diagnose
from dcs_magic.ops.secrets import put_secret, read_secret_value
from dcs_magic.preflight import LocalWorkspaceServer
from dcs_magic.preflight.launcher import Terminate, _resolve_secret

NO_ENGINE = "unix:///nonexistent/dcs-test-secrets.sock"
VALUE = "Pw-dcs-test-secret-4711-x9Q"  # made up; looked for everywhere it must not be
CLI = [sys.executable, "-m", "dcs_magic.cli"]


@pytest.fixture
def server(tmp_path: Path):
    started = LocalWorkspaceServer(docker_host=NO_ENGINE, records=None,
                                   secrets_file=tmp_path / "state" / "secrets" / "scopes.json").start()
    yield started
    started.stop()


def test_secrets_api_through_the_sdk(server: LocalWorkspaceServer, tmp_path: Path) -> None:
    w = sdk_client(server, tmp_path)
    w.secrets.create_scope("dcs-test")
    with pytest.raises(ResourceAlreadyExists):
        w.secrets.create_scope("dcs-test")
    before_ms = int(time.time() * 1000)
    w.secrets.put_secret("dcs-test", "registry-password", string_value=VALUE)
    w.secrets.put_secret("dcs-test", "key-file", bytes_value="AAEC")  # base64 of 00 01 02
    with pytest.raises(NotFound, match="Scope nope does not exist"):
        w.secrets.put_secret("nope", "k", string_value=VALUE)

    assert [(s.name, s.backend_type.value if s.backend_type else None) for s in w.secrets.list_scopes()] == [
        ("dcs-test", "DATABRICKS")]
    listed = {s.key: s.last_updated_timestamp for s in w.secrets.list_secrets("dcs-test")}
    assert set(listed) == {"registry-password", "key-file"}
    assert all(before_ms - 1000 <= int(t or 0) <= int(time.time() * 1000) + 1000 for t in listed.values())
    with pytest.raises(BadRequest) as refused:  # never readable back through the REST API
        w.secrets.get_secret("dcs-test", "registry-password")
    assert VALUE not in str(refused.value)

    # One file, 0600 in a 0700 folder; a second server (another process) reads the same scopes,
    # and its launcher resolves from them.
    path = server.secrets.path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    other = LocalWorkspaceServer(docker_host=NO_ENGINE, records=None, secrets_file=path).start()
    try:
        with Workspace(host=other.host, token=other.token) as second:
            assert [s["key"] for s in second.list_secrets("dcs-test")] == ["key-file", "registry-password"]
            assert VALUE not in json.dumps(second.list_secrets("dcs-test"))
        assert other.secrets.resolve("dcs-test", "key-file") == b"\x00\x01\x02"
        assert _resolve_secret("{{secrets/dcs-test/registry-password}}", other.secrets) == VALUE
    finally:
        other.stop()

    w.secrets.delete_secret("dcs-test", "key-file")
    assert [s.key for s in w.secrets.list_secrets("dcs-test")] == ["registry-password"]
    with pytest.raises(NotFound):
        w.secrets.delete_secret("dcs-test", "key-file")
    w.secrets.delete_scope("dcs-test")
    assert list(w.secrets.list_scopes()) == []
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_names_and_values_are_checked(server: LocalWorkspaceServer) -> None:
    with Workspace(host=server.host, token=server.token) as ws:
        with pytest.raises(ApiError, match="INVALID_PARAMETER_VALUE") as bad:
            ws.create_secret_scope("no spaces")
        assert bad.value.status == 400
        # dcs's own client: a missing scope says how to create it (the Databricks CLI does not
        # create it either); --create-scope creates it.
        with pytest.raises(ApiError, match="Scope dcs-test-new does not exist") as missing:
            put_secret(ws, "dcs-test-new", "pw", VALUE)
        assert "dcs secrets create-scope dcs-test-new" in missing.value.hint and VALUE not in str(missing.value)
        stored = put_secret(ws, "dcs-test-new", "pw", VALUE, create_scope=True)
        assert stored.created_scope and stored.reference == "{{secrets/dcs-test-new/pw}}"
        assert not put_secret(ws, "dcs-test-new", "pw", VALUE + "2", create_scope=True).created_scope
        with pytest.raises(ApiError, match="larger than 128 KB") as big:
            ws.put_secret("dcs-test-new", "big", "x" * (128 * 1024 + 1))
        assert "xxxx" not in str(big.value)
    assert server.secrets.resolve("dcs-test-new", "pw") == (VALUE + "2").encode()


def test_a_reference_resolves_from_the_store_then_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SecretStore(tmp_path / "secrets" / "scopes.json")
    reference = "{{secrets/dcs-test/pw}}"
    monkeypatch.setenv("DCS_SECRET_DCS_TEST_PW", "from-the-variable")
    assert _resolve_secret(reference, store) == "from-the-variable"  # the fallback
    store.create_scope("dcs-test")
    store.put("dcs-test", "pw", b"from-the-store")
    assert _resolve_secret(reference, store) == "from-the-store"  # the store first
    monkeypatch.delenv("DCS_SECRET_DCS_TEST_PW")
    with pytest.raises(Terminate) as info:
        _resolve_secret("{{secrets/dcs-test/other}}", store)
    assert info.value.code == "SECRET_RESOLUTION_ERROR"
    assert "no key other in scope dcs-test" in info.value.message and "DCS_SECRET_DCS_TEST_OTHER" in info.value.message
    assert "from-the-store" not in info.value.message
    # `dcs why` names the command that stores it (and the variable, the fallback).
    first = diagnose(Evidence("SECRET_RESOLUTION_ERROR", info.value.message))[0]
    assert (first.signature, first.confidence) == ("local-secret-env", "certain")
    assert "dcs secrets put --local --create-scope dcs-test other" in first.fix
    assert "DCS_SECRET_DCS_TEST_OTHER" in first.fix
    # A file someone made readable by others is narrowed again before it is read.
    os.chmod(store.path, 0o644)
    assert store.has("dcs-test", "pw") and stat.S_IMODE(store.path.stat().st_mode) == 0o600


class _Input(io.StringIO):
    def __init__(self, text: str, tty: bool) -> None:
        super().__init__(text)
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_the_value_comes_from_stdin_or_a_hidden_prompt() -> None:
    assert read_secret_value(stdin=_Input(VALUE + "\n", tty=False)).reveal() == VALUE  # one newline dropped
    assert read_secret_value(stdin=_Input(VALUE + "\r\n", tty=False)).reveal() == VALUE
    assert read_secret_value(stdin=_Input("line 1\nline 2\n\n", tty=False)).reveal() == "line 1\nline 2\n"
    prompts: list[str] = []
    typed = read_secret_value(stdin=_Input("", tty=True), label="secret ci/pw",
                              prompt=lambda text: prompts.append(text) or VALUE)
    assert typed.reveal() == VALUE and prompts == ["Value of the secret ci/pw (hidden): "]
    assert VALUE not in repr(typed)
    with pytest.raises(UsageError, match="empty; nothing was stored"):
        read_secret_value(stdin=_Input("\n", tty=False))


def _clean_environment(home: Path) -> dict[str, str]:
    dropped = ("DATABRICKS_", "DCS_", "XDG_")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    return {**environment, "HOME": str(home), "XDG_STATE_HOME": str(home / "state"),
            "DOCKER_HOST": NO_ENGINE, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def test_dcs_secrets_put_from_stdin_then_another_command_sees_it(tmp_path: Path) -> None:
    environment = _clean_environment(tmp_path)
    put = subprocess.Popen([*CLI, "secrets", "put", "--local", "--create-scope", "dcs-examples", "registry-password"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=environment, cwd=tmp_path)
    processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    out, err = put.communicate(VALUE + "\n", timeout=120)
    assert put.returncode == 0, err
    assert "Stored dcs-examples/registry-password" in err and "{{secrets/dcs-examples/registry-password}}" in err
    listed = subprocess.run([*CLI, "secrets", "list", "--local", "dcs-examples"], capture_output=True, text=True,
                            env=environment, cwd=tmp_path, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split("\t")[0] == "registry-password"
    for text in (out, err, listed.stdout, listed.stderr, processes):
        assert VALUE not in text
    # Where the next `dcs launch --local` (or a kernel) of this user reads it: one trailing
    # newline dropped, 0600 in a 0700 folder; nothing else under the state folder holds it.
    path = tmp_path / "state" / "dcs-magic" / "local-workspace" / "secrets" / "scopes.json"
    assert SecretStore(path).resolve("dcs-examples", "registry-password") == VALUE.encode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    holding = [p for p in tmp_path.rglob("*") if p.is_file() and VALUE.encode() in p.read_bytes()]
    assert holding == []  # the scopes file holds it base64-encoded, as its only copy
