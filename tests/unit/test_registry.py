"""adapters/registry.py and model/net.py: the one loopback rule, answered the same everywhere.

A loopback registry (`localhost`, 127.0.0.0/8, `[::1]`) is asked over plain http, every
other over https; the workspace client accepts plain http for exactly the same hosts.
"""

from __future__ import annotations

import base64
import http.server
import json
from pathlib import Path

import pytest
from support.registry import http_answer, serve_http

from dcs_magic.adapters import registry
from dcs_magic.adapters.docker_login import DockerLogin, docker_login
from dcs_magic.adapters.workspace import check_host
from dcs_magic.errors import ConfigError
from dcs_magic.model.imageref import parse_reference
from dcs_magic.model.net import host_name, is_loopback

# registry (as an image reference writes it) -> is it this machine?
HOSTS = [
    ("127.0.0.2:5000", True),
    ("[::1]:5000", True),
    ("localhost:5000", True),
    ("myreg.example:5000", False),
    ("127.0.0.1", True),
    ("127.255.255.254:443", True),
    ("localhost", True),
    ("LOCALHOST:5000", True),
    ("[::1]", True),
    ("[0:0:0:0:0:0:0:1]:5000", True),
    ("[::2]:5000", False),
    ("[fe80::1]:5000", False),
    ("128.0.0.1:5000", False),
    ("10.0.0.1:5000", False),
    ("localhost.example.com:5000", False),
    ("mylocalhost:5000", False),
    ("docker.io", False),
]


@pytest.mark.parametrize(("host", "loopback"), HOSTS)
def test_one_loopback_rule_for_the_registry_api(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    assert registry.scheme(host) == ("http" if loopback else "https")
    assert registry.api_url(f"{host}/team/app:1").startswith("http://" if loopback else "https://")


@pytest.mark.parametrize(("host", "loopback"), [(h, lo) for h, lo in HOSTS if h != "docker.io"])
def test_the_workspace_client_accepts_plain_http_for_the_same_hosts(host: str, loopback: bool) -> None:
    if loopback:
        assert check_host(f"http://{host}") == f"http://{host}"
    else:
        with pytest.raises(ConfigError, match="plain http"):
            check_host(f"http://{host}")


@pytest.mark.parametrize(("netloc", "name"), [
    ("127.0.0.2:5000", "127.0.0.2"), ("[::1]:5000", "::1"), ("[::1]", "::1"), ("::1", "::1"),
    ("localhost", "localhost"), ("myreg.example:5000", "myreg.example"), (" 127.0.0.1 ", "127.0.0.1"),
])
def test_host_name_drops_port_and_brackets(netloc: str, name: str) -> None:
    assert host_name(netloc) == name


def test_bare_ipv6_loopback_is_loopback() -> None:
    assert is_loopback("::1") and not is_loopback("::2") and not is_loopback("")


@pytest.mark.parametrize(("image", "url"), [
    ("127.0.0.2:5000/team/app:1", "http://127.0.0.2:5000/v2/"),
    ("[::1]:5000/team/app@sha256:" + "a" * 64, "http://[::1]:5000/v2/"),
    ("localhost:5000/app", "http://localhost:5000/v2/"),
    ("myreg.example:5000/team/app:1", "https://myreg.example:5000/v2/"),
    ("busybox:1", "https://registry-1.docker.io/v2/"),
    ("team/app:1", "https://registry-1.docker.io/v2/"),
])
def test_api_url(image: str, url: str) -> None:
    assert registry.api_url(image) == registry.api_url(parse_reference(image)) == url


@pytest.mark.parametrize(("image", "path"), [
    ("busybox:1", "library/busybox"), ("team/app", "team/app"),
    ("127.0.0.1:5000/app:1", "app"), ("myreg.example/team/app", "team/app"),
])
def test_repository_path_names_docker_hub_official_images_library(image: str, path: str) -> None:
    assert registry.repository_path(parse_reference(image)) == path


def test_bearer_challenge_fields_keep_commas_inside_quotes() -> None:
    header = 'Bearer realm="https://auth.example/token",service="reg.example",scope="repository:team/app:pull,push"'
    assert registry._challenge(header) == {"realm": "https://auth.example/token", "service": "reg.example",
                                           "scope": "repository:team/app:pull,push"}


def _write_config(folder: Path, auths: dict[str, object]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"auths": auths}), encoding="utf-8")


def _plain(login: DockerLogin | None) -> tuple[str, str, str] | None:
    return (login.username, login.password.reveal(), login.source) if login else None


def test_docker_login_reads_the_auths_of_docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = base64.b64encode(b"robot:pa:ss").decode()
    _write_config(tmp_path / "cfg", {"127.0.0.1:5000": {"auth": token}, "other.example": {},
                                     "https://legacy.example/v1/": {"auth": base64.b64encode(b"old:pw").decode()},
                                     "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw").decode()}})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "cfg"))
    assert _plain(docker_login("127.0.0.1:5000")) == ("robot", "pa:ss", "config.json auths")
    assert docker_login("other.example") is None
    assert docker_login("unknown.example") is None
    assert _plain(docker_login("legacy.example")) == ("old", "pw", "config.json auths")  # by host name, as Docker
    assert _plain(docker_login("docker.io")) == ("hub", "pw", "config.json auths")  # Hub's key is its index URL


def test_docker_login_defaults_to_the_home_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_config(tmp_path / ".docker", {"r.example": {"auth": base64.b64encode(b"u:p").decode()}})
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _plain(docker_login("r.example")) == ("u", "p", "config.json auths")


@pytest.mark.parametrize("content", ["not json", '{"auths": {"r.example": {"auth": "%%%"}}}', "[]"])
def test_an_unreadable_docker_config_gives_no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          content: str) -> None:
    (tmp_path / "config.json").write_text(content, encoding="utf-8")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert docker_login("r.example") is None


def test_a_registry_that_does_not_answer_is_the_probe_s_answer() -> None:
    # Port 9 (discard) on loopback: nothing listens; the probe reports it instead of raising.
    answer = registry.probe("127.0.0.1:9/team/app:1", timeout=2)
    assert answer.url == "http://127.0.0.1:9/v2/" and answer.status is None
    assert answer.reason == "cannot connect (Connection refused)"


# -- requires_auth: does the registry serve the image to anyone? (the launch form's warning) -----------


@pytest.mark.parametrize(("status", "headers", "private"), [
    (401, {"WWW-Authenticate": 'Basic realm="dcs-test"'}, True),  # htpasswd registries
    (403, {}, True),
    (200, {"Docker-Content-Digest": "sha256:" + "a" * 64}, False),
    (404, {}, None),  # no such manifest: private or not, nobody can tell
    (500, {}, None),
])
def test_requires_auth_reads_the_anonymous_answer(status: int, headers: dict[str, str], private: bool | None) -> None:
    with http_answer(status, b"{}", "application/json", headers) as host:
        assert registry.requires_auth(f"{host}/team/app@sha256:{'b' * 64}") is private


def test_requires_auth_asks_a_bearer_realm_for_an_anonymous_token_as_docker_pull_does() -> None:
    """Docker Hub, GHCR, ACR: the first answer is always 401; the anonymous token decides."""
    seen: list[tuple[str, str, str | None]] = []

    def handler(public_repository: str) -> type[http.server.BaseHTTPRequestHandler]:
        class Registry(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                seen.append((self.command, self.path, self.headers.get("Authorization")))
                if self.path.startswith("/token"):
                    scope = self.path.split("scope=")[-1]
                    body = json.dumps({"token": "anon-" + scope.split("%3A")[1]}).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                repository = self.path.split("/")[2]
                if self.headers.get("Authorization") == f"Bearer anon-{public_repository}" \
                        and repository == public_repository:
                    self.send_response(200)
                else:
                    self.send_response(401)
                    host = self.headers["Host"]
                    self.send_header("WWW-Authenticate", f'Bearer realm="http://{host}/token",service="test",'
                                                         f'scope="repository:{repository}:pull"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_HEAD = _answer

            def log_message(self, *args: object) -> None:
                pass

        return Registry

    with serve_http(handler("public")) as host:
        assert registry.requires_auth(f"{host}/public:1") is False
        assert registry.requires_auth(f"{host}/private:1") is True
    tokens = [auth for _, path, auth in seen if path.startswith("/token")]
    assert len(tokens) == 2 and tokens == [None, None]  # the token is asked for anonymously


def test_requires_auth_without_an_answer_cannot_tell() -> None:
    assert registry.requires_auth("127.0.0.1:9/team/app:1", timeout=2) is None
    assert registry.requires_auth("Not A Reference") is None


def test_network_reasons_are_a_few_words() -> None:
    import requests

    from dcs_magic.adapters.registry import network_reason

    refused = requests.ConnectionError(
        "HTTPConnectionPool(host='127.0.0.1', port=5999): Max retries exceeded with url: /v2/ (Caused by "
        "NewConnectionError(\"<urllib3.connection.HTTPConnection object>: Failed to establish a new connection: "
        "[Errno 111] Connection refused\"))")
    assert network_reason(refused) == "cannot connect (Connection refused)"
    assert network_reason(requests.ConnectTimeout("whatever")) == "timed out"
    assert network_reason(requests.ConnectionError("odd")) == "cannot connect (no answer)"
