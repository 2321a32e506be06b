"""Fault suite: a password never reaches a traceback (issue 23, item 18; issue 26, item 3).

The engine (a real Docker API server on a unix socket, tests/faults/standins.py) refuses the
push request itself with HTTP 500. A Docker credential helper (tests/support/credential_helpers.py)
gives a password the htpasswd registry refuses, or prints its answer and fails. `%xmode Verbose`
prints every frame's locals, so every frame of the error and of the errors it was raised from
must be free of the password.
Engine-free: no Docker engine is needed.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from standins import refusing_engine
from support.credential_helpers import ANSWER_THEN_FAIL, GARBAGE, Helpers, on_path

from dcs_magic.adapters.registry import current_digest
from dcs_magic.errors import DcsError, RegistryError
from dcs_magic.model.credentials import Secret
from dcs_magic.ops.push import push

PASSWORD = "dcs-test-pw-7f3a9c1e"


def _frames(exc: BaseException) -> Iterator[tuple[str, dict[str, Any]]]:
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        tb: TracebackType | None = error.__traceback__
        while tb is not None:
            yield f"{tb.tb_frame.f_code.co_filename}:{tb.tb_frame.f_code.co_name}", dict(tb.tb_frame.f_locals)
            tb = tb.tb_next
        error = error.__cause__ or error.__context__


def _holds(value: Any, needle: str, depth: int = 0) -> bool:
    if depth > 4:
        return False
    if isinstance(value, (str, bytes)):
        return needle in (value if isinstance(value, str) else value.decode("latin-1"))
    if isinstance(value, dict):
        return any(_holds(k, needle, depth + 1) or _holds(v, needle, depth + 1) for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return any(_holds(v, needle, depth + 1) for v in value)
    try:
        return needle in repr(value)
    except Exception:  # noqa: BLE001 - a repr that fails shows nothing either
        return False


@pytest.mark.parametrize("password", [Secret(PASSWORD), PASSWORD], ids=["secret", "str"])
def test_refused_push_leaves_no_password_in_any_frame(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      password: Secret | str) -> None:
    sock = tmp_path / "engine.sock"
    with refusing_engine(sock) as received:
        monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
        with pytest.raises(DcsError) as caught:
            push("127.0.0.1:5999/dcs-test-tb/app:1", username="dcs-test-user", password=password)
    assert any("/push" in line for line in received), received  # the engine did refuse the push itself
    del password
    _assert_no_password(caught.value)


def _assert_no_password(error: BaseException) -> None:
    assert any("docker" in where for where, _ in _frames(error))  # docker-py's frames are in the chain
    _assert_no_password_in_frames(error)


def _assert_no_password_in_frames(error: BaseException) -> None:
    encoded = base64.urlsafe_b64encode(PASSWORD.encode()).decode()[:16]
    for where, local in _frames(error):
        for name, value in local.items():
            assert not _holds(value, PASSWORD), f"{where}: local {name!r} holds the password"
            assert not _holds(value, encoded), f"{where}: local {name!r} holds the password base64"
    assert PASSWORD not in str(error) and PASSWORD not in repr(error.args)
    response = getattr(error.__cause__, "response", None)
    if response is not None:
        assert response.request.headers.get("X-Registry-Auth") in (None, "****")


def test_refused_pull_leaves_no_password_in_any_frame(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The local workspace's pull (a cluster's basic_auth) holds the password as a Secret until
    the engine call: the engine refusing `POST /images/create` leaves it in no frame."""
    from dcs_magic.adapters.engine import StreamError, connect

    sock = tmp_path / "engine.sock"
    with refusing_engine(sock) as received:
        monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
        engine = connect()
        try:
            with pytest.raises(StreamError) as caught:  # the launcher turns it into the cluster's reason
                for _event in engine.pull_events("127.0.0.1:5999/dcs-test-tb/app:1",
                                                 auth_config={"username": "u", "password": Secret(PASSWORD)}):
                    pass
        finally:
            engine.close()
    assert any("/images/create" in line for line in received), received
    _assert_no_password(caught.value)


@pytest.fixture
def helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, auth_registry: Any) -> Helpers:
    found = on_path(tmp_path, monkeypatch, auth_registry)
    monkeypatch.setenv("DCS_TEST_HELPER_SECRET", PASSWORD)  # not the registry's: it answers 401
    return found


def test_a_refused_helper_login_leaves_no_password_in_any_frame(helpers: Helpers) -> None:
    """The registry refuses what the helper gave: the RegistryError's frames (and those of the
    requests it came from) hold the login only as a Secret."""
    helpers.add("good")
    helpers.configure(credsStore="good")
    with pytest.raises(RegistryError) as caught:
        current_digest(f"{helpers.registry.host}/dcs-test-tb/app:1")
    assert caught.value.status == 401 and "docker-credential-good asked" in helpers.asked()
    _assert_no_password_in_frames(caught.value)
    assert PASSWORD not in helpers.asked()  # the helper's command line and its parent's


@pytest.mark.parametrize("script", [GARBAGE, ANSWER_THEN_FAIL], ids=["half-an-answer", "answer-then-exit-2"])
def test_a_helper_whose_output_holds_the_password_leaves_it_in_no_frame(helpers: Helpers, script: str) -> None:
    helpers.add("leaky", script)
    helpers.configure(credHelpers={helpers.registry.host: "leaky"})
    with pytest.raises(RegistryError, match="docker-credential-leaky") as caught:
        current_digest(f"{helpers.registry.host}/dcs-test-tb/app:1")
    _assert_no_password_in_frames(caught.value)
