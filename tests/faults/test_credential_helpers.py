"""Docker credential helpers and `credsStore`, wherever dcs-magic asks a registry itself (issue 26,
item 3): lock verification (`dcs launch --lock`), `dcs doctor`'s registry check, `dcs outdated`
and the check after a push (`verify_pushed_digest`).

Real parts: the htpasswd `docker-registry` of the session (`auth_registry`; images uploaded
over its HTTP API, no Docker engine), helper scripts `docker-credential-<name>` first on PATH
and a DOCKER_CONFIG folder (tests/support/credential_helpers.py). The helpers' log holds their
command lines and their parent's (what `ps` shows): never the password, nor does any output,
error or report. Frames of a traceback: tests/faults/test_traceback_secrets.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from support.credential_helpers import ANSWER_THEN_FAIL, FAILING, GARBAGE, SLOW, Helpers, on_path
from support.oci_registry import Store, serving
from support.registry import push_manifest

from dcs_magic.adapters import registry as registry_api
from dcs_magic.adapters.docker_login import DOCKER_HUB_SERVER, docker_login
from dcs_magic.cli.commands import main
from dcs_magic.errors import RegistryError
from dcs_magic.model.imageref import parse_reference
from dcs_magic.model.spec import ClusterSpec
from dcs_magic.ops.doctor import doctor
from dcs_magic.ops.lock import ImageLock, Lock, lock_path, write_lock
from dcs_magic.ops.outdated import outdated
from dcs_magic.ops.push import verify_pushed_digest

pytestmark = pytest.mark.usefixtures("no_databricks_config")

SPEC = {"cluster_name": "dcs-test-credhelper", "spark_version": "15.4.x-scala2.12", "node_type_id": "i3.xlarge",
        "num_workers": 0}

@pytest.fixture
def helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, auth_registry: Any) -> Helpers:
    return on_path(tmp_path, monkeypatch, auth_registry)


@pytest.fixture(scope="module")
def private(auth_registry: Any) -> tuple[str, str]:
    """(reference, digest) of an image only the htpasswd login may read."""
    repo = "dcs-test-credhelper/app"
    return f"{auth_registry.host}/{repo}:1", push_manifest(auth_registry, repo, "1", "credhelper")


def _no_password(helpers: Helpers, *texts: str) -> None:
    """The password in none of TEXTS, nor in the helpers' log (their command lines)."""
    for text in (*texts, helpers.asked()):
        assert helpers.registry.password not in text


# -- Docker's rules ------------------------------------------------------------------------------


def test_cred_helpers_wins_over_creds_store_which_wins_over_auths(helpers: Helpers) -> None:
    host = helpers.registry.host
    helpers.add("good")
    helpers.add("store", FAILING)
    helpers.configure(credsStore="good", auths={host: {"auth": "d3Jvbmc6d3Jvbmc="}})  # wrong:wrong, not read
    login = docker_login(host)
    assert login is not None and login.source == "docker-credential-good"
    assert (login.username, login.password.reveal()) == (helpers.registry.username, helpers.registry.password)
    assert repr(login.password) == "Secret('****')" and helpers.registry.password not in repr(login)

    helpers.configure(credsStore="store", credHelpers={host: "good"})
    assert docker_login(host) is not None  # credHelpers[host] is asked, not the failing store
    assert "docker-credential-store" not in helpers.asked()
    with pytest.raises(RegistryError, match="docker-credential-store"):
        docker_login("other.example:5000")  # any other host goes to the store


def test_not_found_is_no_login_and_docker_hub_is_asked_by_its_index_url(helpers: Helpers) -> None:
    helpers.add("good")
    helpers.configure(credsStore="good")
    assert docker_login("elsewhere.example") is None  # "credentials not found": no login, not an error
    assert docker_login("docker.io") is None
    assert f"asked for {DOCKER_HUB_SERVER}\n" in helpers.asked()
    assert "asked for elsewhere.example\n" in helpers.asked()


@pytest.mark.parametrize(("script", "words"), [
    (None, ["docker-credential-broken", "is not on PATH", "install docker-credential-broken",
            "remove it from", "config.json"]),
    (FAILING, ["docker-credential-broken", "failed (exit 1", "out: token **** expired", "run `docker login 127.0.0.1:"]),
    (GARBAGE, ["docker-credential-broken", "answered something other than its JSON", "reinstall"]),
    (ANSWER_THEN_FAIL, ["docker-credential-broken", "failed (exit 2)", "docker login"]),
], ids=["missing", "exit-1", "not-json", "answer-then-exit-2"])
def test_a_helper_that_cannot_answer_is_one_clear_error(helpers: Helpers, script: str | None,
                                                        words: list[str]) -> None:
    if script is not None:
        helpers.add("broken", script)
    helpers.configure(credHelpers={helpers.registry.host: "broken"})
    with pytest.raises(RegistryError) as caught:
        docker_login(helpers.registry.host)
    text = str(caught.value)
    for word in [*words, helpers.registry.host]:
        assert word in text
    assert "ghp_0123456789" not in text
    _no_password(helpers, text)


def test_a_registry_that_wants_no_credentials_runs_no_helper(helpers: Helpers, registry: Any) -> None:
    """The helper is asked at the registry's first 401 only (as `docker pull` would need it):
    a broken store does not stop a question to an open registry."""
    digest = push_manifest(registry, "dcs-test-credhelper/open", "1", "open")
    helpers.add("store", FAILING)
    helpers.configure(credsStore="store")
    assert registry_api.manifest_digest(f"{registry.host}/dcs-test-credhelper/open:1") == digest
    assert verify_pushed_digest(f"{registry.host}/dcs-test-credhelper/open:1", digest) is None
    with pytest.raises(RegistryError, match="docker-credential-store"):  # the private one needs it
        registry_api.manifest_digest(f"{helpers.registry.host}/dcs-test-credhelper/app:1")


def test_a_helper_that_hangs_is_stopped_with_what_it_started(helpers: Helpers) -> None:
    helpers.add("slow", SLOW)
    helpers.configure(credsStore="slow")
    started = time.monotonic()
    with pytest.raises(RegistryError, match=r"docker-credential-slow .* did not answer within 0.5 s"):
        docker_login(helpers.registry.host, timeout=0.5)
    assert time.monotonic() - started < 5  # not held by the child's open stdout
    child = int(helpers.asked().split()[0])  # its `sleep 30` is ended with it
    deadline = time.monotonic() + 5
    while _running(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(child)


def _running(pid: int) -> bool:
    """PID is a live process (not ended, not a zombie waiting for its reaper)."""
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    except OSError:
        return False


# -- every place that asks a registry ------------------------------------------------------------


def test_lock_verification_asks_with_the_helper(helpers: Helpers, private: tuple[str, str], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    reference, digest = private
    entry = ImageLock(dockerfile_sha256="0" * 64)
    entry.record_push(parse_reference(f"{reference}@{digest}"))
    lock_file = write_lock(tmp_path / "nb.dcs.lock.json", Lock({"app": entry.seal()}))
    spec = tmp_path / "cluster.json"
    spec.write_text(json.dumps(SPEC))
    launch = ["launch", "--spec", str(spec), "--lock", str(lock_file), "--print"]

    helpers.configure()  # no login: the registry cannot be asked, which is said
    assert main(launch) == 0
    assert "used unchecked" in capsys.readouterr().err

    helpers.add("good")
    helpers.configure(credHelpers={helpers.registry.host: "good"})
    assert main(launch) == 0
    out, err = capsys.readouterr()
    assert "unchecked" not in err and json.loads(out)["docker_image"]["url"].endswith(digest)
    assert f"docker-credential-good asked for {helpers.registry.host}" in helpers.asked()

    helpers.add("good", FAILING)
    assert main(launch) == 1
    out, err = capsys.readouterr()
    assert out == "" and "docker-credential-good" in err and "--no-registry-check" in err
    _no_password(helpers, out, err)


def test_the_check_after_a_push_asks_with_the_helper(helpers: Helpers, private: tuple[str, str]) -> None:
    reference, digest = private
    helpers.add("good")
    helpers.configure(credsStore="good")
    assert verify_pushed_digest(reference, digest) is None  # 200, and the same digest

    helpers.add("good", FAILING)
    warning = verify_pushed_digest(reference, digest)
    assert warning is not None and "docker-credential-good" in warning and digest in warning
    _no_password(helpers, warning)


def test_outdated_reads_a_private_base_with_the_helper(helpers: Helpers, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    repo = "dcs-test-credhelper/base"
    old = push_manifest(helpers.registry, repo, "1", "old-base")
    base = f"{helpers.registry.host}/{repo}:1"
    notebook = tmp_path / "app.ipynb"
    write_lock(lock_path(notebook), Lock(images={"app": ImageLock(
        dockerfile_sha256="0" * 64, base=base, base_digest=old, tags=["app:dev"], platform="linux/amd64").seal()},
        notebook=notebook.name))
    helpers.add("good")
    helpers.configure(credHelpers={helpers.registry.host: "good"})
    assert outdated(notebook)["app"].status == "current"

    new = push_manifest(helpers.registry, repo, "1", "new-base")  # the tag moves: both images are read
    report = outdated(notebook)
    assert report["app"].status == "moved" and report["app"].headline.endswith(f"{old} -> {new}")
    assert report["app"].old is not None and report["app"].new is not None  # both configs were read

    helpers.add("good", FAILING)
    assert main(["outdated", str(notebook)]) == 2
    out, err = capsys.readouterr()
    assert "the registry could not be asked" in out and "docker-credential-good" in out
    _no_password(helpers, out, err, json.dumps([str(n) for n in report["app"].notes]))


def test_doctor_asks_with_the_machine_s_login_when_the_spec_has_none(helpers: Helpers, ws: Any,
                                                                      private: tuple[str, str]) -> None:
    reference, digest = private
    spec = ClusterSpec(**SPEC, docker_image={"url": f"{reference.rsplit(':', 1)[0]}@{digest}"})
    helpers.configure()
    item = doctor(ws, spec)["registry"]
    assert not item.ok and item.severity == "error" and "the spec has none" in item.detail

    helpers.add("good")
    helpers.configure(credsStore="good")
    report = doctor(ws, spec)
    item = report["registry"]
    assert item.severity == "warning" and report.ok  # 200 with the helper's login; the cluster has none
    assert "answers with this machine's Docker login (docker-credential-good, as dcs-test)" in item.detail
    assert "basic_auth" in item.fix

    helpers.add("good", FAILING)
    item = doctor(ws, spec)["registry"]
    assert not item.ok and "docker-credential-good" in item.detail
    _no_password(helpers, item.detail, item.fix, repr(report))


# -- identity tokens (`<token>`): the OAuth refresh-token grant at a Bearer realm ----------------


def test_an_identity_token_is_taken_by_the_refresh_token_grant(helpers: Helpers,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A Username of `<token>`: the Secret is traded at the Bearer realm (a form POST), as Docker
    does, never sent as a password."""
    store = Store(refresh_token="dcs-test-refresh-9f2c")
    store.image({"architecture": "amd64", "os": "linux"})
    store.tags["1"] = next(iter(store.manifests))
    with serving(store) as host:
        helpers.add("acr")
        helpers.configure(credHelpers={host: "acr"})
        monkeypatch.setenv("DCS_TEST_HELPER_SERVER", host)
        monkeypatch.setenv("DCS_TEST_HELPER_USER", "<token>")
        monkeypatch.setenv("DCS_TEST_HELPER_SECRET", "dcs-test-refresh-9f2c")
        login = docker_login(host)
        assert login is not None and login.identity_token
        assert registry_api.manifest_digest(f"{host}/team/base:1") == store.tags["1"]
        assert registry_api.probe(f"{host}/team/base:1", login.username, login.password).authenticated
    assert store.grants[0] == {"service": "t", "scope": "repository:team/base:pull", "grant_type": "refresh_token",
                               "client_id": "dcs-magic", "refresh_token": "dcs-test-refresh-9f2c"}
    assert not any(auth and auth.startswith("Basic") for _, _, auth in store.seen)
