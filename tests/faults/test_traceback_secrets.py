"""Fault suite: a password never reaches a traceback (issue 23, item 18).

The engine (a real Docker API server on a unix socket, tests/faults/standins.py) refuses the
push request itself with HTTP 500. `%xmode Verbose` prints every frame's locals, so every
frame of the error and of the errors it was raised from must be free of the password.
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

from dcs_magic.errors import DcsError
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
    frames = list(_frames(error))
    assert any("docker" in where for where, _ in frames)  # docker-py's frames are in the chain
    encoded = base64.urlsafe_b64encode(PASSWORD.encode()).decode()[:16]
    for where, local in frames:
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
