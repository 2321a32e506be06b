"""`%dcs_build` / `%dcs_push` in a real InteractiveShell, against the real engine and registries."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from support.registry import digest_rewriting_proxy

from dcs_magic import BuildResult, ContextError, PushError, PushResult
from dcs_magic.adapters.secret_store import SecretStore
from dcs_magic.errors import UsageError as DcsUsageError
from dcs_magic.jupyter.widgets import ProgressWidget, TextProgress, progress_sink
from dcs_magic.ops.build import SHA_LABEL
from dcs_magic.ops.push import DIGEST_MISMATCH
from dcs_magic.ops.runner import Job

pytestmark = pytest.mark.docker


@pytest.fixture
def tag(docker_cleanup: Any) -> str:
    return docker_cleanup.add(f"{docker_cleanup.unique('magic')}:1")


def dockerfile(shell: Any, name: str, base: str, *steps: str) -> Any:
    body = "\n".join(["FROM {{ base }}", *steps]) + "\n"
    return shell.run_cell_magic("dockerfile", f"{name} --base {base} --quiet", body)


def test_dcs_build_after_dockerfile(shell: Any, dcs_magics: Any, busybox_image: str, docker_client: Any,
                                    tag: str, capsys: pytest.CaptureFixture) -> None:
    rendered = dockerfile(shell, "app", busybox_image, "ARG GREETING", "RUN echo $GREETING > /greeting")
    result = shell.run_line_magic("dcs_build", f"app -t {tag} --build-arg GREETING=hi --label team=data")
    assert isinstance(result, BuildResult) and dcs_magics.last_build is result
    assert result.name == "app" and result.tags == [tag]
    image = docker_client.images.get(tag)
    assert image.labels[SHA_LABEL] == rendered.sha256 == result.dockerfile_sha256
    assert image.labels["team"] == "data"
    assert Path(result.log_path).parent == (Path.cwd() / "dcs-build" / "app" / ".dcs").resolve()
    # a terminal shell has no widget front-end: throttled text lines, ending with the result
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith(f"[build app] done {result.image_id}")
    assert 2 <= len(out) <= 20


def test_dcs_build_options_reach_the_engine(shell: Any, busybox_image: str, docker_client: Any,
                                            tag: str, capsys: pytest.CaptureFixture) -> None:
    dockerfile(shell, "multi", busybox_image, "RUN echo one > /one", "FROM {{ base }} AS second",
               "RUN echo two > /two")
    shell.run_line_magic("config", "DcsMagics.progress = 'none'")
    result = shell.run_line_magic("dcs_build", f"multi -t {tag} --target second --no-cache --platform linux/amd64")
    assert capsys.readouterr().out == ""
    assert result.platform == "linux/amd64"
    log = Path(result.log_path).read_text()
    assert "Step 3/" in log and "RUN echo two > /two" in log and "Using cache" not in log


def test_dcs_build_bad_input(shell: Any, busybox_image: str) -> None:
    with pytest.raises(ContextError, match="Build context 'nope' has no Dockerfile") as info:
        shell.run_line_magic("dcs_build", "nope -t dcs-test-x:1")
    assert "%%dockerfile nope" in info.value.hint
    dockerfile(shell, "app", busybox_image)
    with pytest.raises(UsageError, match="--build-arg expects KEY=VALUE, got 'oops'"):
        shell.run_line_magic("dcs_build", "app -t dcs-test-x:1 --build-arg oops")
    with pytest.raises(UsageError, match="--label expects KEY=VALUE"):
        shell.run_line_magic("dcs_build", "app -t dcs-test-x:1 --label =v")
    with pytest.raises(UsageError, match="at least one -t TAG"):
        shell.run_line_magic("dcs_build", "app")


def test_dcs_build_in_background(shell: Any, dcs_magics: Any, busybox_image: str, tag: str) -> None:
    dockerfile(shell, "bg", busybox_image, "RUN sleep 1 && echo slept")
    shell.run_line_magic("config", "DcsMagics.progress = 'none'")
    job = shell.run_line_magic("dcs_build", f"bg -t {tag} --bg")
    assert isinstance(job, Job) and dcs_magics.jobs == [job]
    result = job.result(timeout=120)
    assert isinstance(result, BuildResult) and dcs_magics.last_build is result


def test_dcs_push_plain_registry(shell: Any, dcs_magics: Any, busybox_image: str, registry: Any,
                                 docker_client: Any, docker_cleanup: Any) -> None:
    path = docker_cleanup.unique("magic-push")
    reference = docker_cleanup.add(f"{registry.host}/{path}:v1")
    docker_client.images.get(busybox_image).tag(f"{registry.host}/{path}", "v1")
    result = shell.run_line_magic("dcs_push", reference)
    assert isinstance(result, PushResult) and dcs_magics.last_push is result
    assert result.digest == registry.manifest_digest(path, "v1")
    assert result.pinned == f"{registry.host}/{path}@{result.digest}"

    shell.run_line_magic("config", "DcsMagics.progress = 'none'")
    job = shell.run_line_magic("dcs_push", f"{reference} --bg")
    assert job.result(timeout=120).digest == result.digest and job in dcs_magics.jobs


def test_dcs_push_fails_when_the_registry_serves_another_digest(
        shell: Any, dcs_magics: Any, busybox_image: str, registry: Any, docker_client: Any,
        docker_cleanup: Any) -> None:
    """Before reporting success the push asks the registry (HEAD of the manifest) which digest
    the tag serves; a proxy that answers another one makes it a PushError, nothing recorded."""
    other = "sha256:" + "e" * 64
    with digest_rewriting_proxy(registry, other) as proxy:
        path = docker_cleanup.unique("magic-push-lie")
        reference = docker_cleanup.add(f"{proxy.host}/{path}:v1")
        docker_client.images.get(busybox_image).tag(f"{proxy.host}/{path}", "v1")
        with pytest.raises(PushError) as info:
            shell.run_line_magic("dcs_push", reference)
        assert proxy.rewritten >= 1
    error = info.value
    served = registry.manifest_digest(path, "v1")  # what the push really wrote, behind the proxy
    assert error.reason == DIGEST_MISMATCH and error.reference == reference
    assert f"the registry serves {other} for {reference}, but the push reported {served}" in error.message
    assert "unique tag" in error.hint
    assert dcs_magics.last_push is None


@pytest.fixture
def auth_image(busybox_image: str, auth_registry: Any, docker_client: Any, docker_cleanup: Any) -> tuple[str, str]:
    path = docker_cleanup.unique("magic-auth")
    docker_client.images.get(busybox_image).tag(f"{auth_registry.host}/{path}", "v1")
    return docker_cleanup.add(f"{auth_registry.host}/{path}:v1"), path


def _leaks(shell: Any, magics: Any, secret: str) -> list[str]:
    places = {"magics": repr(vars(magics)), "last_push": repr(magics.last_push),
              "user_ns": repr({k: v for k, v in shell.user_ns.items() if not k.startswith("_")})}
    return [name for name, text in places.items() if secret in text]


def test_dcs_push_password_from_environment(shell: Any, dcs_magics: Any, auth_image: tuple[str, str],
                                            auth_registry: Any, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture) -> None:
    reference, path = auth_image
    monkeypatch.setenv("DCS_TEST_REGISTRY_PASSWORD", auth_registry.password)
    login = f"--username {auth_registry.username} --password-env DCS_TEST_REGISTRY_PASSWORD"
    with pytest.raises(UsageError, match="--store-secret needs --secret-ref"):
        shell.run_line_magic("dcs_push", f"{reference} {login} --store-secret --local")
    # Pushed, verified, and the password it used stored as the secret (its scope created).
    result = shell.run_line_magic(
        "dcs_push", f"{reference} {login} --secret-ref dcs-test-push/registry-password --store-secret --local")
    assert result.digest == auth_registry.manifest_digest(path, "v1")
    assert result.secret_ref == "{{secrets/dcs-test-push/registry-password}}"
    out = capsys.readouterr().out
    assert "Stored dcs-test-push/registry-password on http://127.0.0.1:" in out
    assert auth_registry.password not in out
    assert SecretStore().resolve("dcs-test-push", "registry-password") == auth_registry.password.encode()
    assert _leaks(shell, dcs_magics, auth_registry.password) == []


def test_dcs_push_password_prompt(shell: Any, dcs_magics: Any, auth_image: tuple[str, str],
                                  auth_registry: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    reference, path = auth_image
    prompts: list[str] = []

    def answer(prompt: str = "Password: ", stream: Any = None) -> str:  # the user typing, hidden
        prompts.append(prompt)
        return auth_registry.password

    monkeypatch.setattr(getpass, "getpass", answer)
    result = shell.run_line_magic("dcs_push", f"{reference} --username {auth_registry.username}")
    assert prompts == [f"Password for {auth_registry.username}: "]
    assert result.digest == auth_registry.manifest_digest(path, "v1")
    assert _leaks(shell, dcs_magics, auth_registry.password) == []


def test_dcs_push_bad_input(shell: Any, auth_image: tuple[str, str], auth_registry: Any,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    reference, _ = auth_image
    monkeypatch.delenv("DCS_TEST_UNSET_VAR", raising=False)
    with pytest.raises(DcsUsageError, match="DCS_TEST_UNSET_VAR is not set"):
        shell.run_line_magic("dcs_push", f"{reference} --username u --password-env DCS_TEST_UNSET_VAR")
    monkeypatch.setenv("DCS_TEST_SET_VAR", "value-of-the-variable")
    with pytest.raises(DcsUsageError, match="--password-env DCS_TEST_SET_VAR needs --username") as usage:
        shell.run_line_magic("dcs_push", f"{reference} --password-env DCS_TEST_SET_VAR")
    assert "value-of-the-variable" not in str(usage.value)
    monkeypatch.setenv("DCS_TEST_WRONG", "wrong-password-value")
    with pytest.raises(PushError) as info:
        shell.run_line_magic("dcs_push", f"{reference} --username {auth_registry.username} "
                                         "--password-env DCS_TEST_WRONG")
    assert "did not accept the credentials" in str(info.value)
    assert "wrong-password-value" not in str(info.value) + repr(info.value)


def test_progress_sink_modes(shell: Any) -> None:
    assert progress_sink("build", "none") is None
    assert isinstance(progress_sink("build", "text"), TextProgress)
    assert isinstance(progress_sink("build", "auto"), TextProgress)  # no kernel here
    widget = progress_sink("push", "widget", title="r/x:1", display=False)
    assert isinstance(widget, ProgressWidget) and widget.kind == "push" and widget.title == "r/x:1"
    with pytest.raises(ValueError, match="progress mode"):
        progress_sink("build", "fancy")


def test_verbose_traceback_of_a_failed_push_never_shows_the_password(
        shell: Any, auth_image: tuple[str, str], auth_registry: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    """`%xmode Verbose` prints every frame's locals: the password is a masked Secret in all
    of them, up to the engine call (the registry refuses it, so the push fails)."""
    reference, _ = auth_image
    monkeypatch.setenv("DCS_TEST_WRONG", "wrong-password-value")
    shell.run_line_magic("config", "DcsMagics.short_errors = False")
    shell.run_line_magic("xmode", "Verbose")
    try:
        capsys.readouterr()
        result = shell.run_cell(f"%dcs_push {reference} --username {auth_registry.username} "
                                "--password-env DCS_TEST_WRONG")
        shown = capsys.readouterr()
    finally:
        shell.run_line_magic("xmode", "Context")
    assert isinstance(result.error_in_exec, PushError)
    text = shown.out + shown.err
    assert "Secret('****')" in text  # the frames' locals were printed
    assert "wrong-password-value" not in text


def test_dcs_build_builder_and_secret(shell: Any, busybox_image: str, tag: str, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture) -> None:
    from dcs_magic.adapters.buildkit import find_cli, forget_cli

    monkeypatch.delenv("DCS_DOCKER_CLI", raising=False)
    forget_cli()
    dockerfile(shell, "kit", busybox_image, "RUN --mount=type=secret,id=tok test -s /run/secrets/tok")
    with pytest.raises(UsageError, match="invalid choice: 'kaniko'"):
        shell.run_line_magic("dcs_build", f"kit -t {tag} --builder kaniko")
    with pytest.raises(UsageError, match="exactly one of env=VAR or src=FILE"):
        shell.run_line_magic("dcs_build", f"kit -t {tag} --secret id=tok")
    with pytest.raises(DcsUsageError, match="--secret needs BuildKit"):
        shell.run_line_magic("dcs_build", f"kit -t {tag} --builder classic --secret id=tok,env=DCS_TEST_TOK")
    if find_cli() is None:
        pytest.skip("no BuildKit-capable docker CLI")
    value = "v4lue-" + "9" * 12
    monkeypatch.setenv("DCS_TEST_TOK", value)
    result = shell.run_line_magic("dcs_build", f"kit -t {tag} --secret id=tok,env=DCS_TEST_TOK")
    assert result.builder == "buildkit"
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith(f"[build kit (BuildKit)] done {result.image_id}")
    assert value not in out and value not in Path(result.log_path).read_text()
