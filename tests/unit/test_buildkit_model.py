"""BuildKit builds, engine-free: when a Dockerfile needs BuildKit, `--secret` specs, the choice
of builder and docker CLI (fake CLIs in tmp_path), and the progress parsers on streams
recorded from this machine's engine (tests/unit/fixtures/buildkit_*):

- `buildkit_plain_*.txt`: the docker 20.10 CLI's `--progress=plain` output, byte for byte
  (`_record_buildkit.py`);
- `buildkit_rawjson_*.txt`: the SolveStatus messages the engine sent during real builds,
  written as `docker buildx build --progress=rawjson` prints them (Go's json.Encoder of
  `client.SolveStatus`; no buildx here, see `_record_buildkit_rawjson.py`), the CLI's final
  error line after them.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from dcs_magic.adapters import buildkit as adapter
from dcs_magic.errors import BuildError, UsageError
from dcs_magic.model.buildkit import BuildKitState, SecretSpec, buildkit_reasons, parse_secret, secret_specs
from dcs_magic.model.lint import SECRET_ARG_FIX, secret_build_arg_warnings
from dcs_magic.model.progress import BuildState, format_line
from dcs_magic.model.results import ProgressRecord
from dcs_magic.ops.builder import choose_builder
from dcs_magic.ops.lock import ImageLock

FIXTURES = Path(__file__).parent / "fixtures"
STAGES = ("FROM dcs-test/busybox:1 AS Tools\nRUN echo tools-b6a09240 > /t && sleep 1\n"
          "FROM dcs-test/busybox:1\nRUN echo main-b6a09240 > /m\nCOPY --from=tools /t /t\n")


def plain(name: str, dockerfile: str | None = None) -> tuple[BuildKitState, list[str]]:
    state = BuildKitState("app", dockerfile=dockerfile, clock=lambda: 0.0)
    lines: list[str] = []
    for raw in (FIXTURES / f"buildkit_plain_{name}.txt").read_text(encoding="utf-8").splitlines():
        lines += state.apply({"line": raw})
    return state, lines


def rawjson(name: str) -> tuple[BuildKitState, list[str]]:
    state = BuildKitState("app", clock=lambda: 0.0)
    lines: list[str] = []
    for raw in (FIXTURES / f"buildkit_rawjson_{name}.txt").read_text(encoding="utf-8").splitlines():
        lines += state.apply({"solve": json.loads(raw)} if raw.startswith("{") else {"line": raw})
    return state, lines


def steps(state: BuildKitState) -> list[tuple[int, str, bool, float | None]]:
    return [(s["n"], s["instruction"], s["cached"], s["duration_s"]) for s in state.steps]


# -- when BuildKit is needed ---------------------------------------------------------------------


@pytest.mark.parametrize(("text", "secrets", "expected"), [
    ("FROM a\nRUN echo hi\n", False, []),
    ("FROM a\nRUN --mount=type=cache,target=/root/.cache/pip pip install x\n", False, ["RUN --mount (line 2)"]),
    ("FROM a\nRUN <<EOF\necho hi\nEOF\n", False, ["a heredoc (line 2)"]),
    ("# syntax=docker/dockerfile:1\nFROM a\n", False, ["a `# syntax=` directive"]),
    ("FROM a\nCOPY --link . /x\n", False, ["COPY --link (line 2)"]),
    ("FROM a\nRUN echo hi\n", True, ["--secret"]),
    ("FROM a\n# not a directive: syntax=x\nRUN echo\n", False, []),
])
def test_buildkit_reasons(text: str, secrets: bool, expected: list[str]) -> None:
    assert buildkit_reasons(text, secrets=secrets) == expected


@pytest.mark.parametrize(("spec", "expected"), [
    ("id=pip,env=PIP_INDEX_URL", SecretSpec("pip", env="PIP_INDEX_URL")),
    ("id=npmrc,src=/home/me/.npmrc", SecretSpec("npmrc", src="/home/me/.npmrc")),
    ("id=npmrc,source=.npmrc", SecretSpec("npmrc", src=".npmrc")),
    ("type=env,id=TOKEN", SecretSpec("TOKEN", env="TOKEN")),
    ("type=file,id=a,src=f", SecretSpec("a", src="f")),
])
def test_parse_secret(spec: str, expected: SecretSpec) -> None:
    assert parse_secret(spec) == expected
    assert parse_secret(str(expected)) == expected  # str() is the CLI's form again


@pytest.mark.parametrize(("spec", "message"), [
    ("pip", "expects id=NAME"),
    ("id=pip", "exactly one of env=VAR or src=FILE"),
    ("id=pip,env=A,src=b", "exactly one of"),
    ("env=A", "needs id=NAME"),
    ("id=a b,env=A", "needs id=NAME"),
    ("id=pip,env=1A", "not an environment variable name"),
    ("id=pip,value=hunter2", "unknown key 'value'"),
])
def test_parse_secret_refuses(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_secret(spec)
    assert "hunter2" not in str(caught.value).replace(spec, "")


def test_secret_ids_are_unique() -> None:
    with pytest.raises(ValueError, match="given twice"):
        secret_specs(["id=a,env=A", "id=a,src=f"])


def test_build_arg_secret_warning_suggests_the_secret_form() -> None:
    [warning] = secret_build_arg_warnings({"PIP_TOKEN": "x"})
    assert "--secret id=NAME,env=VAR" in warning and "RUN --mount=type=secret" in warning
    assert "planned" not in SECRET_ARG_FIX


# -- plain progress (the docker 20.10 CLI) ---------------------------------------------------------


def test_plain_first_build() -> None:
    state, lines = plain("first")
    assert state.finish() == []
    assert steps(state) == [
        (1, "FROM docker.io/dcs-test/busybox:1", True, 0.0),
        (2, "RUN --mount=type=cache,target=/cache echo hello > /cache/x && ls /cache && echo to-stderr >&2",
         False, 0.4),
        (3, "COPY a.txt /a.txt", False, 0.0),
        (4, "RUN echo step three && sleep 1", False, 1.4),
    ]  # BuildKit's own times; LABEL makes no vertex (dcs-magic's labels go as --label)
    assert state.total_steps == 4 and state.status == "done"
    assert state.image_id == "sha256:9ef0ee5571e16335944ba8e3c2b383360898eb2eded7b27c86f91ee0df364de6"
    assert "#5 0.285 x" in lines and "#5 0.287 to-stderr" in lines  # the log file reads like --progress=plain
    assert "" not in lines
    snap = state.snapshot()
    assert snap["builder"] == "buildkit" and snap["total_steps"] == 4 and len(snap["steps"]) == 4
    assert snap["log_tail"][-1] == "#8 DONE 0.0s"


def test_plain_rebuild_is_cached() -> None:
    state, _ = plain("cached")
    state.finish()
    assert [s[2] for s in steps(state)] == [False, True, True, True]  # FROM: DONE 0.0s this time
    assert state.total_steps == 4


def test_plain_failing_step() -> None:
    state, lines = plain("fail")
    assert state.failed_step == 3
    assert state.failed_instruction == "RUN echo about to fail && echo oops >&2 && exit 3"
    assert state.error == ("executor failed running [/bin/sh -c echo about to fail && echo oops >&2 && exit 3]: "
                           "exit code: 3")
    assert state.last_lines == ["oops", "about to fail"]  # the step's own output, as BuildKit printed it
    assert state.total_steps == 4 and [s[0] for s in steps(state)] == [1, 2, 3]  # step 4 never ran
    assert state.summary_error() == state.error  # the CLI's summary after the vertices
    assert lines[-1] == state.error and " > [3/4] RUN echo about to fail && echo oops >&2 && exit 3:" in lines


def test_plain_parallel_stages_named_as_written() -> None:
    state, lines = plain("stages", STAGES)
    state.finish()
    assert steps(state) == [
        (1, "FROM dcs-test/busybox:1 AS Tools", True, 0.0),  # as written, not docker.io/...
        (2, "RUN echo tools-b6a09240 > /t && sleep 1", False, 1.3),  # interrupted by #5 ("#6 ..."), then back
        (3, "RUN echo main-b6a09240 > /m", False, 0.3),
        (4, "COPY --from=tools /t /t", False, 0.0),
    ]
    # Both stages' FROM is one vertex (same image): BuildKit shows it once; the total is the file's.
    assert state.total_steps == 5
    assert "#6 ..." in lines


def test_plain_cancel_and_interrupted_lines() -> None:
    state = BuildKitState("app", clock=lambda: 5.0)
    for line in ["#1 [internal] load remote build context", "#1 DONE 0.0s",
                 "#4 [stage-0 2/2] RUN sleep 300", "#4 0.2 start", "#4 CANCELED"]:
        state.apply({"line": line})
    assert state.failed_step is None and state.error is None  # a cancel is not a failure
    state.cancel()
    assert state.status == "cancelled" and state.steps[0]["duration_s"] == 0.0


# -- rawjson progress (docker buildx) ---------------------------------------------------------------


def test_rawjson_first_build() -> None:
    state, lines = rawjson("first")
    state.finish()
    names = [s[1] for s in steps(state)]
    assert names[0] == "FROM docker.io/dcs-test/busybox:1" and names[2] == "COPY a.txt /a.txt"
    assert names[1].startswith("RUN --mount=type=cache,target=/cache echo ") and names[1].endswith(
        " > /cache/x && ls /cache && echo to-stderr >&2")  # Go's \u003e etc. decoded
    assert names[3] == "RUN printf 'step ' && sleep 1 && echo three"
    assert [s[2] for s in steps(state)] == [True, False, False, False]  # the base: CACHED
    durations = [s[3] for s in steps(state)]
    assert all(d is not None for d in durations) and 1.0 <= durations[3] < 3.0  # completed - started
    assert state.total_steps == 4
    assert state.image_id and state.image_id.startswith("sha256:")
    assert any(line.endswith(" x") for line in lines) and any(line.endswith(" to-stderr") for line in lines)
    assert any(line.endswith(" step three") for line in lines)  # "step " and "three\n": two log messages
    assert not any(line.endswith(" step ") for line in lines)
    assert lines[0] == "#1 [internal] load remote build context"  # announced, then started: shown once


def test_rawjson_rebuild_is_cached() -> None:
    state, _ = rawjson("cached")
    state.finish()
    assert [s[2] for s in steps(state)][1:] == [True, True, True]


def test_rawjson_failing_step() -> None:
    state, lines = rawjson("fail")
    assert state.failed_step == 3
    assert state.failed_instruction == "RUN echo about to fail && echo oops >&2 && exit 3"
    assert state.error is not None and state.error.endswith("exit code: 3")
    assert state.last_lines == ["about to fail", "oops"]
    assert state.steps[2]["duration_s"] is not None and state.steps[2]["duration_s"] > 0
    assert state.summary_error() == state.error  # the text line after the objects


def test_rawjson_warnings_and_unknown_vertices() -> None:
    state = BuildKitState("app")
    short = "SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data"
    import base64

    state.apply({"solve": {"warnings": [{"vertex": "sha256:x", "level": 1,
                                         "short": base64.b64encode(short.encode()).decode()}],
                           "logs": [{"vertex": "sha256:unknown", "data": "aGkK"}]}})
    assert state.warnings == [short]


# -- the choice of builder and CLI (fake CLIs) -------------------------------------------------------


BUILDX_OK = "echo github.com/docker/buildx v0.12.1; exit 0"


def fake_cli(tmp_path: Path, version: str, buildx: bool) -> Path:
    """A docker CLI of VERSION that logs its arguments to calls.log; with BUILDX its
    `buildx version` works and a `docker-buildx` plugin file is in its config folder's
    cli-plugins (DOCKER_CONFIG is set by the `_fresh_probe` fixture)."""
    path = tmp_path / f"docker-{version}-{buildx}"
    if buildx:
        plugin = Path(os.environ["DOCKER_CONFIG"]) / "cli-plugins" / "docker-buildx"
        plugin.parent.mkdir(parents=True, exist_ok=True)
        plugin.write_text("#!/bin/sh\nexit 0\n")
        plugin.chmod(0o755)
    path.write_text("#!/bin/sh\n"
                    f'echo "$*" >> {tmp_path / "calls.log"}\n'
                    f'if [ "$1" = "--version" ]; then echo "Docker version {version}, build abc"; exit 0; fi\n'
                    f'if [ "$1" = "buildx" ]; then {BUILDX_OK if buildx else "exit 1"}; fi\n'
                    "exit 2\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def dockerfile(tmp_path: Path) -> Path:
    path = tmp_path / "Dockerfile"
    path.write_text("FROM a\nRUN --mount=type=cache,target=/c echo hi\n")
    return path


@pytest.fixture(autouse=True)
def _fresh_probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    adapter.forget_cli()


@pytest.mark.parametrize(("version", "buildx", "progress"), [
    ("20.10.24+dfsg1", False, "plain"), ("28.2.2", True, "rawjson"), ("24.0.7", True, "rawjson")])
def test_find_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str, buildx: bool, progress: str) -> None:
    monkeypatch.setenv("DCS_DOCKER_CLI", str(fake_cli(tmp_path, version, buildx)))
    cli = adapter.find_cli()
    assert cli is not None and cli.progress == progress and cli.version == version


def test_buildx_is_asked_only_when_its_plugin_file_is_where_the_cli_looks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A CLI whose `buildx version` would answer, but no docker-buildx plugin file anywhere the
    # CLI looks: not asked (one process start saved), and the 20.10 client's BuildKit is used.
    cli = fake_cli(tmp_path, "20.10.24", buildx=False)
    cli.write_text(cli.read_text().replace('"buildx" ]; then exit 1', '"buildx" ]; then exit 0'))
    monkeypatch.setattr(adapter, "_SYSTEM_PLUGIN_DIRS", (str(tmp_path / "system-plugins"),))
    monkeypatch.setenv("DCS_DOCKER_CLI", str(cli))
    found = adapter.find_cli()
    assert found is not None and found.progress == "plain"
    assert (tmp_path / "calls.log").read_text().splitlines() == ["--version"]
    # The same plugin in a folder config.json's cliPluginsExtraDirs names (or a system folder): asked.
    extra = tmp_path / "extra-plugins"
    extra.mkdir()
    (extra / "docker-buildx").write_text("#!/bin/sh\n")
    (extra / "docker-buildx").chmod(0o755)
    config = tmp_path / "docker-config"
    config.mkdir()
    (config / "config.json").write_text(json.dumps({"cliPluginsExtraDirs": [str(extra)]}))
    adapter.forget_cli()
    found = adapter.find_cli()
    assert found is not None and found.progress == "rawjson"
    (config / "config.json").write_text("{}")
    monkeypatch.setattr(adapter, "_SYSTEM_PLUGIN_DIRS", (str(extra),))
    adapter.forget_cli()
    assert adapter.find_cli().progress == "rawjson"  # type: ignore[union-attr]


def test_no_buildkit_cli_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            dockerfile: Path) -> None:
    cli = fake_cli(tmp_path, "28.2.2", buildx=False)
    monkeypatch.setenv("DCS_DOCKER_CLI", str(cli))
    assert adapter.find_cli() is None
    with pytest.raises(BuildError) as caught:
        choose_builder("auto", dockerfile, [])
    message = str(caught.value)
    assert "needs BuildKit (it uses RUN --mount (line 2))" in message
    assert f"{cli}: docker 28.2.2 without buildx" in message
    assert "buildx" in caught.value.hint and "docker.io" in caught.value.hint and "DCS_DOCKER_CLI" in caught.value.hint
    with pytest.raises(BuildError, match="--builder buildkit was asked for"):
        choose_builder("buildkit", dockerfile, [])
    assert choose_builder("classic", dockerfile, []).builder == "classic"  # asked for: the build says the rest


def test_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dockerfile: Path) -> None:
    monkeypatch.setenv("DCS_DOCKER_CLI", str(fake_cli(tmp_path, "20.10.24", buildx=False)))
    chosen = choose_builder("auto", dockerfile, [])
    assert chosen.builder == "buildkit" and chosen.cli is not None and chosen.reasons == ("RUN --mount (line 2)",)
    plain_file = tmp_path / "plain" / "Dockerfile"
    plain_file.parent.mkdir()
    plain_file.write_text("FROM a\nRUN echo hi\n")
    assert choose_builder("auto", plain_file, []).builder == "classic"
    assert choose_builder("auto", plain_file, [SecretSpec("a", env="A")]).builder == "buildkit"
    assert choose_builder("auto", tmp_path / "missing" / "Dockerfile", []).builder == "classic"
    with pytest.raises(UsageError, match="--secret needs BuildKit"):
        choose_builder("classic", plain_file, [SecretSpec("a", env="A")])
    with pytest.raises(UsageError, match="--builder must be one of"):
        choose_builder("kaniko", plain_file, [])


def test_probe_is_cached_and_searches_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").symlink_to(fake_cli(tmp_path, "28.2.2", buildx=False))
    monkeypatch.delenv("DCS_DOCKER_CLI", raising=False)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(adapter, "DOCKER_CLI_CANDIDATES", ("docker", str(fake_cli(tmp_path, "20.10.5", False))))
    cli = adapter.find_cli()
    assert cli is not None and cli.version == "20.10.5"
    report = adapter.probe_report()
    assert report[0] == f"{bin_dir / 'docker'}: docker 28.2.2 without buildx (since 23.0 the client builds " \
                        "with BuildKit only through buildx)"
    assert adapter.find_cli() is cli  # asked once


# -- what shows the builder -----------------------------------------------------------------------------


def test_terminal_line_and_record_name_buildkit() -> None:
    state, _ = plain("first")
    assert format_line(state.snapshot(), elapsed=False).startswith("[build app (BuildKit)] Step ")
    state.finish()
    record = ProgressRecord.from_snapshot(dict(state.snapshot()))
    assert "  Builder: BuildKit" in repr(record) and 'data-row="builder"' in record._repr_html_()
    classic = BuildState("app")
    classic.builder = "classic"
    assert "Builder" not in repr(ProgressRecord.from_snapshot(dict(classic.snapshot())))


def test_lock_entry_records_the_builder() -> None:
    entry = ImageLock(dockerfile_sha256="a" * 64, builder="buildkit").seal()
    data = entry.to_dict()
    assert data["builder"] == "buildkit"
    again = ImageLock.from_dict(data)
    assert again.builder == "buildkit" and not again.problems()
    old = ImageLock(dockerfile_sha256="a" * 64).seal()
    assert "builder" not in old.to_dict() and not ImageLock.from_dict(old.to_dict()).problems()
