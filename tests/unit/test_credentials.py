"""model/credentials.py (the masked Secret, env_password, the unpinned-tag warning) and
ops/credentials.py (the one registry-password reader, with its hidden prompt)."""

from __future__ import annotations

import copy
import pickle

import pytest

from dcs_magic.errors import PushError, SpecError, UsageError
from dcs_magic.model.credentials import (
    PIN_HINT_NOTEBOOK,
    Secret,
    env_password,
    reveal,
    unpinned_warning,
)
from dcs_magic.ops.credentials import registry_password

VALUE = "s3cr3t-value-from-the-environment"


def test_secret_never_shows_its_value():
    secret = Secret(VALUE)
    assert repr(secret) == str(secret) == f"{secret}" == "Secret('****')"
    assert repr([secret, {"password": secret}]) == "[Secret('****'), {'password': Secret('****')}]"
    assert secret.reveal() == VALUE and reveal(secret) == VALUE and reveal("plain") == "plain" and reveal(None) is None
    assert secret == Secret(VALUE) and secret != Secret("other") and secret != VALUE
    assert bool(secret) and not Secret("")
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(secret)
    assert copy.deepcopy({"password": secret})["password"] is secret  # immutable: copies share it


def test_without_a_username_docker_credentials_are_used():
    assert registry_password(None, None) is None


def test_password_from_the_variable(monkeypatch):
    monkeypatch.setenv("DCS_TEST_PW", VALUE)
    password = registry_password("robot", "DCS_TEST_PW")
    assert isinstance(password, Secret) and password.reveal() == VALUE


def test_password_env_without_username_is_a_usage_error_naming_the_variable_not_its_value(monkeypatch):
    monkeypatch.setenv("DCS_TEST_PW", VALUE)
    with pytest.raises(UsageError) as info:
        registry_password(None, "DCS_TEST_PW")
    assert not isinstance(info.value, PushError)
    assert "DCS_TEST_PW" in str(info.value) and "--username" in str(info.value)
    assert VALUE not in str(info.value) + repr(info.value)


@pytest.mark.parametrize("value", [None, ""])
def test_unset_or_empty_variable_is_a_usage_error(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("DCS_TEST_PW", raising=False)
    else:
        monkeypatch.setenv("DCS_TEST_PW", value)
    with pytest.raises(UsageError, match="DCS_TEST_PW is not set or empty") as info:
        registry_password("robot", "DCS_TEST_PW")
    assert "export DCS_TEST_PW" in info.value.hint


def test_no_terminal_to_prompt_on_is_a_usage_error():
    def never(prompt: str) -> str:
        raise AssertionError("must not prompt")

    with pytest.raises(UsageError, match="no terminal") as info:
        registry_password("robot", None, prompt=never, interactive=False)
    assert "--password-env" in info.value.hint


def test_hidden_prompt_on_a_terminal():
    asked: list[str] = []

    def typed(prompt: str) -> str:
        asked.append(prompt)
        return VALUE

    password = registry_password("robot", None, prompt=typed, interactive=True)
    assert asked == ["Password for robot: "] and isinstance(password, Secret) and password.reveal() == VALUE


def test_spec_field_variable_is_a_spec_error(monkeypatch):
    monkeypatch.delenv("DCS_TEST_PW", raising=False)
    with pytest.raises(SpecError) as info:
        env_password("DCS_TEST_PW", field="docker_image.basic_auth.password")
    assert info.value.field == "docker_image.basic_auth.password" and "DCS_TEST_PW" in info.value.message


@pytest.mark.parametrize("url, warned", [
    ("registry.example.com/team/app:1.0", True),
    ("registry.example.com/team/app", True),
    ("registry.example.com/team/app@sha256:" + "a" * 64, False),
    ("registry.example.com/team/app:1.0@sha256:" + "a" * 64, False),
    ("Not A Reference", False),  # validation reports it, not this warning
    ("", False),
    (None, False),
])
def test_unpinned_warning(url, warned):
    text = unpinned_warning(url)
    assert (text is not None) is warned
    if warned:
        assert text.startswith(f"docker_image.url {url} is a tag, which can move") and "--image repo@sha256:" in text
        assert PIN_HINT_NOTEBOOK in unpinned_warning(url, how=PIN_HINT_NOTEBOOK)
