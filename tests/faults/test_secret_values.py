"""Fault suite: credentials under neutral names are found by their value (issue 23, item 3).

`DATABASE_URL=postgres://u:pw@db/x`, `GH=ghp_...`, `dapi...` must not reach the lock file,
the launch form's widget state (its text boxes and the base64 download link) or a build-arg
warning; image digests, hex hashes, UUIDs and base64 of text in normal specs stay as they are.
Pure and engine-free: the real masking function, lock writer, form and widgets.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import ipywidgets
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from standins import refusing_engine

from dcs_magic.cli.commands import main
from dcs_magic.jupyter.launch import LaunchWidget
from dcs_magic.model.lint import looks_like_secret, secret_build_arg_warnings
from dcs_magic.model.secrets import MASK, mask_secrets, secret_kind
from dcs_magic.model.spec import ClusterSpec
from dcs_magic.ops.launch_form import LaunchForm
from dcs_magic.ops.lock import ImageLock, Lock, read_lock, write_lock

# Fixed, made-up values (random ones could fall under the rule's thresholds now and then).
SECRETS = [
    # (key, value, the part that must never show, what it looks like)
    ("DATABASE_URL", "postgres://app:Pw-dcs-test-4711@db.internal:5432/app", "Pw-dcs-test-4711", "a URL with a password"),
    ("GH", "ghp_Dcs7test9Q2w8E4r6T1y3U5i7O9p0A2s4D6f", "ghp_Dcs7test9Q2w8E4r6T1y3U5i7O9p0A2s4D6f", "a GitHub token"),
    ("GH2", "github_pat_11DCSTEST0abcdefghij_KLMNOPqrstuv0123456789", "github_pat_11DCSTEST0abcdefghij",
     "a GitHub token"),
    ("WS", "dapi0123456789abcdef0123456789abcd", "dapi0123456789abcdef0123456789abcd", "a Databricks token"),
    ("SLACK", "xoxb-123456789012-abcdefABCDEF", "xoxb-123456789012-abcdefABCDEF", "a Slack token"),
    ("AWS_ID", "AKIAQ3DCSTEST7EXAMPL", "AKIAQ3DCSTEST7EXAMPL", "an AWS access key id"),
    ("MAPS", "AIzaSyDcsTest0123456789abcdefghijklmnop", "AIzaSyDcsTest0123456789abcdefghijklmnop", "a Google API key"),
    ("LLM", "sk-proj-DcsTest0123456789abcdefXYZ", "sk-proj-DcsTest0123456789abcdefXYZ", "an API key (sk-)"),
    ("BLOB", "hX9kQ2mZ7vL4nR8tW1yB6cF3jD5gS0aP", "hX9kQ2mZ7vL4nR8tW1yB6cF3jD5gS0aP", "a long random string"),
]

NOT_SECRETS = [
    ("digest", "127.0.0.1:5000/team/app@sha256:" + "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
    ("sha256", "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ("git-sha", "4e08778cf3e1d11d6a938d25fb50618c316ae0a8"),
    ("uuid", "123e4567-e89b-12d3-a456-426614174000"),
    ("base64-text", base64.b64encode(b"spark.executor.memory=4g for the 2024 nightly job").decode()),
    ("runtime", "15.4.x-scala2.12"),
    ("class", "org.apache.spark.serializer.KryoSerializer"),
    ("camel", "MyVeryLongClassNameForTesting2"),
    ("path", "/Workspace/Users/dev@example.com/init2024/Setup123ABCxyzFoo.sh"),
    ("url-no-password", "https://user@pypi.example.com/simple/"),
    ("url-reference", "https://user:{{secrets/ci/pypi}}@pypi.example.com/simple/"),
    ("reference", "{{secrets/ci/token}}"),
    ("jdbc", "jdbc:postgresql://db.internal:5432/app?ssl=true"),
]


def _spec(env: dict[str, str]) -> ClusterSpec:
    return ClusterSpec.from_dict({"cluster_name": "dcs-test-values", "spark_version": "15.4.x-scala2.12",
                                  "node_type_id": "i3.xlarge", "num_workers": 0,
                                  "docker_image": {"url": "127.0.0.1:5000/team/app:1"}, "spark_env_vars": env})


@pytest.mark.parametrize(("key", "value", "hidden", "kind"), SECRETS, ids=[row[0] for row in SECRETS])
def test_a_credential_value_is_masked_in_the_lock(tmp_path: Path, key: str, value: str, hidden: str,
                                                  kind: str) -> None:
    assert secret_kind(value) == kind
    entry = ImageLock(dockerfile_sha256="0" * 64, cluster={"spark_env_vars": {key: value}, "custom_tags": {"t": value}})
    path = write_lock(tmp_path / "nb.dcs.lock.json", Lock({"app": entry.seal()}))
    text = path.read_text()
    assert hidden not in text and MASK in text
    assert read_lock(path) is not None  # still a lock that reads back
    if kind == "a URL with a password":
        assert "postgres://app:****@db.internal:5432/app" in text  # only the password goes


@pytest.mark.parametrize(("what", "value"), NOT_SECRETS, ids=[row[0] for row in NOT_SECRETS])
def test_normal_values_are_not_flagged(what: str, value: str) -> None:
    assert secret_kind(value) is None, what
    body = {"spark_env_vars": {"X": value}, "spark_conf": {"spark.x": value}, "docker_image": {"url": value}}
    assert mask_secrets(body) == body
    assert secret_build_arg_warnings({"X": value}) == []


def _widget_text(widget: LaunchWidget) -> str:
    """Every widget's state as a saved notebook keeps it, with the download link decoded."""
    states, stack = [], [widget]
    while stack:
        item = stack.pop()
        states.append(item.get_state())
        stack.extend(getattr(item, "children", ()) or ())
    text = json.dumps(states, default=str) + json.dumps(ipywidgets.Widget.get_manager_state(), default=str)
    for encoded in re.findall(r"base64,([A-Za-z0-9+/=]+)", text):
        text += base64.b64decode(encoded).decode("utf-8", "replace")
    return text


def test_launch_form_keeps_no_credential_value() -> None:
    env = {key: value for key, value, _hidden, _kind in SECRETS}
    # From a --spec file: the boxes show the values masked, the download link is withheld.
    widget = LaunchWidget(None, spec=_spec(env))
    shown = widget.controls["spark_env_vars"].value
    assert "DATABASE_URL=postgres://app:****@db.internal:5432/app" in shown and "GH=****" in shown
    assert "Download JSON" not in widget.download.value
    # The request still carries the real values (the masked box stands for the file's).
    assert widget.spec.spark_env_vars == env
    # Typed into a box: taken out at once, with the reason.
    widget.controls["spark_env_vars"].value = "\n".join(f"{k}={v}" for k, v in env.items())
    assert "looks like a secret" in widget.form.guards["spark_env_vars"]
    # Any other text box: the credential-looking part is cut out, and the form says why.
    widget.controls["cluster_name"].value = f"team {env['GH']}"
    assert widget.controls["cluster_name"].value == "team "
    assert "a GitHub token" in widget.form.guards["cluster_name"]
    assert any("cluster_name:" in p for p in widget.form.preview(widget.values).problems)
    widget.controls["cluster_name"].value = "team-a"
    assert "cluster_name" not in widget.form.guards
    text = _widget_text(widget)
    for _key, _value, hidden, _kind in SECRETS:
        assert hidden not in text
    widget.close()
    # A normal spec keeps its download link, and the link holds the values as they are.
    plain = LaunchWidget(None, spec=_spec({"SHA": NOT_SECRETS[1][1], "B64": NOT_SECRETS[4][1]}))
    assert "Download JSON" in plain.download.value and NOT_SECRETS[4][1] in _widget_text(plain)
    plain.close()


def test_form_guard_takes_out_a_value_secret() -> None:
    form = LaunchForm()
    kept = form.guard("spark_conf", "spark.a=1\nspark.hadoop.db.url=postgres://u:Pw-dcs-test-4711@db/x")
    assert "Pw-dcs-test-4711" not in kept and "spark.a=1" in kept
    assert "spark.hadoop.db.url" in form.guards["spark_conf"]


BUILD_ARG_ROWS = [
    # (name, value, flagged)
    ("npmToken", "x", True),
    ("GH_PAT", "x", True),
    ("dbPassword", "x", True),
    ("NPM_TOKEN", "x", True),
    ("DATABASE_URL", "postgres://u:Pw-dcs-test-4711@db/x", True),
    ("GH", "ghp_Dcs7test9Q2w8E4r6T1y3U5i7O9p0A2s4D6f", True),
    ("PUBLIC_KEY", "x", False),
    ("publicKey", "x", False),
    ("VERSION", "1.2.3", False),
    ("BASE_IMAGE", NOT_SECRETS[0][1], False),
    ("PATH_PREFIX", "/opt/app", False),
]


@pytest.mark.parametrize(("name", "value", "flagged"), BUILD_ARG_ROWS, ids=[row[0] for row in BUILD_ARG_ROWS])
def test_build_arg_warning_by_name_or_value(name: str, value: str, flagged: bool) -> None:
    warnings = secret_build_arg_warnings({name: value})
    assert bool(warnings) is flagged
    for warning in warnings:
        assert name in warning and "multi-stage" in warning
        assert value not in warning
    if value == "x":
        assert looks_like_secret(name) is flagged


@pytest.mark.parametrize("progress", ["none", "plain"])
def test_build_arg_warning_is_printed_without_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str], progress: str) -> None:
    nb = tmp_path / "nb.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("%%dockerfile app\nFROM busybox@sha256:" + "ef" * 32 + "\n")]), nb)
    token = "ghp_Dcs7test9Q2w8E4r6T1y3U5i7O9p0A2s4D6f"
    with refusing_engine(tmp_path / "engine.sock") as _received:
        monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'engine.sock'}")
        assert main(["build", str(nb), "-t", "127.0.0.1:5999/dcs-test-values/app:1", "--progress", progress,
                     "--build-arg", "npmToken=x", "--build-arg", f"GH={token}"]) == 1  # the stand-in refuses the build
    err = capsys.readouterr().err
    assert err.count("--build-arg npmToken looks like a secret") == 1  # once, with or without progress
    assert err.count("--build-arg GH holds what looks like a GitHub token") == 1
    assert token not in err
