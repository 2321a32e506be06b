"""spec.py: the clusters/create body, its validation rules, DCS refusals, masking."""

from __future__ import annotations

import json

import pytest
from databricks.sdk.service import compute

from dcs_magic import ClusterSpec, SpecError
from dcs_magic.model.secrets import MASK, is_secret_reference, mask_secrets, secret_reference
from dcs_magic.model.spec import (
    BasicAuth,
    DockerImage,
    InitScript,
    NamedInitScript,
    dcs_node_types,
    dcs_runtimes,
    init_script_info,
    node_type_refusal,
    runtime_refusal,
)

PINNED = "registry.example.com/team/app@sha256:" + "a" * 64
FULL_BODY = {
    "cluster_name": "dcs-demo",
    "spark_version": "15.4.x-scala2.12",
    "node_type_id": "i3.xlarge",
    "driver_node_type_id": "i3.2xlarge",
    "autoscale": {"min_workers": 1, "max_workers": 4},
    "docker_image": {"url": PINNED, "basic_auth": {"username": "robot", "password": "{{secrets/ci/registry}}"}},
    "init_scripts": [
        {"workspace": {"destination": "/Workspace/Shared/init/setup.sh"}},
        {"volumes": {"destination": "/Volumes/main/default/scripts/setup.sh"}},
        {"dbfs": {"destination": "dbfs:/databricks/init/setup.sh"}},
        {"file": {"destination": "file:/databricks/scripts/setup.sh"}},
        {"s3": {"destination": "s3://bucket/init/setup.sh", "region": "us-west-2"}},
        {"abfss": {"destination": "abfss://init@account.dfs.core.windows.net/setup.sh"}},
        {"gcs": {"destination": "gs://bucket/init/setup.sh"}},
    ],
    "spark_conf": {"spark.databricks.unityCatalog.volumes.enabled": "true"},
    "spark_env_vars": {"PYSPARK_PYTHON": "/databricks/python3/bin/python3"},
    "custom_tags": {"team": "data"},
    "autotermination_minutes": 30,
    "data_security_mode": "DATA_SECURITY_MODE_DEDICATED",
    "single_user_name": "me@example.com",
    "policy_id": "ABC123",
    "apply_policy_default_values": False,
    "runtime_engine": "STANDARD",
    "aws_attributes": {"availability": "SPOT_WITH_FALLBACK", "zone_id": "auto", "first_on_demand": 1},
    "instance_pool_id": None,
    "cluster_log_conf": {"dbfs": {"destination": "dbfs:/cluster-logs"}},
    "ssh_public_keys": ["ssh-ed25519 AAAA test"],
    "enable_elastic_disk": True,
}
FULL_BODY = {k: v for k, v in FULL_BODY.items() if v is not None}


def minimal(**changes) -> ClusterSpec:
    values = {"spark_version": "15.4.x-scala2.12", "num_workers": 0, **changes}
    return ClusterSpec(**values)


def sdk_round_trip(body: dict) -> dict:
    return compute.ClusterSpec.from_dict(body).as_dict()


def error_of(spec: ClusterSpec) -> SpecError:
    with pytest.raises(SpecError) as info:
        spec.validate()
    return info.value


# -- bodies and round trips ------------------------------------------------------------------


def test_keyword_fields_give_the_body_back_and_the_sdk_reads_it_unchanged():
    spec = ClusterSpec(**FULL_BODY)
    body = spec.to_dict()
    assert body == FULL_BODY
    assert sdk_round_trip(body) == body


def test_from_dict_keeps_unknown_fields_in_extra_and_sends_them_back():
    body = {**FULL_BODY, "workload_type": {"clients": {"notebooks": True, "jobs": False}},
            "future_field": {"x": 1}}
    spec = ClusterSpec.from_dict(body)
    assert spec.extra == {"future_field": {"x": 1}}
    assert spec.to_dict() == body
    body["docker_image"]["url"] = "changed/later:1"
    assert spec.docker_image.url == PINNED  # from_dict copied, the caller's dict stays theirs


def test_api_dict_shapes_become_the_dataclasses_and_give_the_same_body_back():
    body = json.loads(json.dumps(FULL_BODY))
    for spec in (ClusterSpec.from_dict(body), ClusterSpec(**json.loads(json.dumps(body)))):
        assert isinstance(spec.docker_image, DockerImage)
        assert spec.docker_image.basic_auth == BasicAuth("robot", "{{secrets/ci/registry}}")
        assert spec.init_scripts and all(isinstance(item, InitScript) for item in spec.init_scripts)
        assert spec.to_dict() == body
        assert json.loads(spec.to_json(mask=False)) == body
    spec = minimal(init_scripts=["/Workspace/Shared/a.sh", NamedInitScript("n", "echo n")])
    assert spec.init_scripts == [InitScript("workspace", "/Workspace/Shared/a.sh"), NamedInitScript("n", "echo n")]
    assert spec.replace(num_workers=1).init_scripts == spec.init_scripts


def test_shapes_that_cannot_be_typed_are_kept_for_validate_to_refuse():
    body = {"url": "app:1", "auth": {}, "basic_auth": {"username": "robot", "password": "p", "note": "x"}}
    spec = minimal(docker_image=body, init_scripts=["/nowhere.sh", {"workspace": {}, "dbfs": {}}])
    assert spec.docker_image == DockerImage("app:1", BasicAuth("robot", "p", extra={"note": "x"}),
                                            extra={"auth": {}})
    assert spec.masked()["docker_image"] == {**body, "basic_auth": {**body["basic_auth"], "password": MASK}}
    assert spec.errors()[0].message.startswith("docker_image has unknown key(s) auth")
    assert spec.init_scripts == ["/nowhere.sh", {"workspace": {}, "dbfs": {}}]
    assert minimal(docker_image="app:1").docker_image == "app:1"
    assert minimal(docker_image={"url": "app:1", "basic_auth": "robot:pw"}).docker_image.basic_auth == "robot:pw"


def test_image_url_and_with_image_keep_the_credentials():
    spec = minimal(docker_image={"url": PINNED, "basic_auth": {"username": "robot", "password": "p"}})
    assert spec.image_url == PINNED
    moved = spec.with_image("registry.example.com/team/app:2")
    assert moved.image_url == "registry.example.com/team/app:2"
    assert moved.docker_image.basic_auth == spec.docker_image.basic_auth and spec.image_url == PINNED
    assert minimal().image_url is None and minimal().with_image("app:1").to_dict()["docker_image"] == {"url": "app:1"}


def test_none_fields_are_left_out_and_minimal_body_matches_sdk():
    body = minimal().to_dict()
    assert body == {"spark_version": "15.4.x-scala2.12", "num_workers": 0}
    assert sdk_round_trip(body) == body


def test_dataclass_parts_give_the_api_shapes_the_sdk_types_read(monkeypatch):
    monkeypatch.setenv("DCS_TEST_REGISTRY_PASSWORD", "s3cr3t-from-env")
    image = DockerImage(PINNED, BasicAuth("robot", password_env="DCS_TEST_REGISTRY_PASSWORD"))
    scripts = [InitScript("s3", "s3://bucket/a.sh", {"region": "eu-west-1"}), "dbfs:/init/b.sh",
               NamedInitScript("c", "echo c", "/Volumes/c/s/v/c.sh")]
    body = minimal(docker_image=image, init_scripts=scripts).to_dict()
    assert body["docker_image"] == {"url": PINNED, "basic_auth": {"username": "robot", "password": "s3cr3t-from-env"}}
    assert compute.DockerImage.from_dict(body["docker_image"]).as_dict() == body["docker_image"]
    assert body["init_scripts"] == [{"s3": {"destination": "s3://bucket/a.sh", "region": "eu-west-1"}},
                                    {"dbfs": {"destination": "dbfs:/init/b.sh"}},
                                    {"volumes": {"destination": "/Volumes/c/s/v/c.sh"}}]
    for item in body["init_scripts"]:
        assert compute.InitScriptInfo.from_dict(item).as_dict() == item
    assert sdk_round_trip(body) == body


def test_json_file_round_trip_and_clear_errors(tmp_path):
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(FULL_BODY))
    assert ClusterSpec.load(path).to_dict() == FULL_BODY
    path.write_text('{"spark_version": "15.4.x-scala2.12",\n "num_workers": }')
    with pytest.raises(SpecError, match=r"not valid JSON.*line 2"):
        ClusterSpec.load(path)
    with pytest.raises(SpecError, match="cannot read the cluster spec file"):
        ClusterSpec.load(tmp_path / "missing.json")
    with pytest.raises(SpecError, match="JSON object"):
        ClusterSpec.from_json("[1, 2]")


def test_replace_copies():
    spec = minimal(custom_tags={"a": "1"})
    other = spec.replace(cluster_name="x")
    other.custom_tags["b"] = "2"
    assert spec.custom_tags == {"a": "1"} and other.cluster_name == "x" and spec.cluster_name is None


# -- validation rules ------------------------------------------------------------------------


@pytest.mark.parametrize("version", [None, "", "  "])
def test_spark_version_is_required(version):
    error = error_of(minimal(spark_version=version))
    assert error.field == "spark_version" and "required" in error.message


def test_num_workers_xor_autoscale():
    both = error_of(minimal(autoscale={"min_workers": 1, "max_workers": 2}))
    assert both.field == "num_workers" and "not both" in both.message
    neither = error_of(ClusterSpec(spark_version="15.4.x-scala2.12"))
    assert neither.field == "num_workers" and "size is missing" in neither.message
    # A policy may supply the size, and so may a single-node `kind` cluster.
    assert ClusterSpec(spark_version="15.4.x-scala2.12", policy_id="P").ok
    assert ClusterSpec(spark_version="15.4.x-scala2.12", is_single_node=True, kind="CLASSIC_PREVIEW").ok


@pytest.mark.parametrize("workers", [-1, 1.5, "2", True])
def test_num_workers_must_be_a_whole_number(workers):
    assert error_of(minimal(num_workers=workers)).field == "num_workers"


@pytest.mark.parametrize("autoscale, words", [
    ({"min_workers": 2, "max_workers": 2}, "max_workers > min_workers"),
    ({"min_workers": 3, "max_workers": 1}, "max_workers > min_workers"),
    ({"min_workers": -1, "max_workers": 1}, "min_workers >= 0"),
    ({"min_workers": 1}, "whole numbers"),
    ({"min_workers": 1, "max_workers": 3, "max": 4}, "unknown key"),
    ([1, 3], "must be a dict"),
])
def test_autoscale_rules(autoscale, words):
    error = error_of(ClusterSpec(spark_version="15.4.x-scala2.12", autoscale=autoscale))
    assert error.field == "autoscale" and words in error.message


def test_autoscale_valid_from_zero():
    assert ClusterSpec(spark_version="15.4.x-scala2.12", autoscale={"min_workers": 0, "max_workers": 1}).ok


@pytest.mark.parametrize("minutes, ok", [(0, True), (10, True), (10000, True), (9, False), (10001, False),
                                         (-5, False), (30.0, False)])
def test_autotermination_minutes(minutes, ok):
    spec = minimal(autotermination_minutes=minutes)
    assert spec.ok is ok
    if not ok:
        error = error_of(spec)
        assert error.field == "autotermination_minutes" and "between 10 and 10000" in error.message


def test_at_most_45_custom_tags():
    assert minimal(custom_tags={f"k{i}": "v" for i in range(45)}).ok
    error = error_of(minimal(custom_tags={f"k{i}": "v" for i in range(46)}))
    assert error.field == "custom_tags" and "at most 45" in error.message


@pytest.mark.parametrize("name", ["spark_conf", "spark_env_vars", "custom_tags"])
def test_key_value_fields_take_strings(name):
    error = error_of(minimal(**{name: {"spark.x": True}}))
    assert error.field == name and "quote" in error.hint


def test_at_most_10_init_scripts():
    scripts = [f"/Workspace/Shared/s{i}.sh" for i in range(11)]
    assert minimal(init_scripts=scripts[:10]).ok
    error = error_of(minimal(init_scripts=scripts))
    assert error.field == "init_scripts" and "at most 10" in error.message


@pytest.mark.parametrize("item, words", [
    ({}, "exactly one destination type"),
    ({"workspace": {"destination": "/Workspace/a.sh"}, "dbfs": {"destination": "dbfs:/a.sh"}},
     "exactly one destination type"),
    ({"ftp": {"destination": "ftp://x/a.sh"}}, "unknown destination type"),
    ({"workspace": {"destination": "Workspace/a.sh"}}, "well-formed workspace"),
    ({"workspace": {"destination": "/tmp/a.sh"}}, "well-formed workspace"),
    ({"volumes": {"destination": "/Volumes/main/default/a.sh"}}, "well-formed volumes"),
    ({"dbfs": {"destination": "/databricks/init/a.sh"}}, "well-formed dbfs"),
    ({"file": {"destination": "/databricks/a.sh"}}, "well-formed file"),
    ({"s3": {"destination": "s3://bucket/a.sh"}}, "region or an endpoint"),
    ({"s3": {"destination": "https://bucket/a.sh", "region": "us-east-1"}}, "well-formed s3"),
    ({"abfss": {"destination": "abfss://account.dfs.core.windows.net/a.sh"}}, "well-formed abfss"),
    ({"gcs": {"destination": "gcs://bucket/a.sh"}}, "well-formed gcs"),
    ({"workspace": {"destination": "/Workspace/dir/"}}, "well-formed workspace"),
    ({"workspace": "/Workspace/a.sh"}, "well-formed workspace"),
    ("a.sh", "not a known type"),
])
def test_init_script_destination_rules(item, words):
    error = error_of(minimal(init_scripts=[item]))
    assert words in error.message
    assert error.field.startswith("init_scripts")


def test_s3_with_endpoint_instead_of_region_is_valid():
    assert minimal(init_scripts=[{"s3": {"destination": "s3://b/a.sh", "endpoint": "https://s3.example"}}]).ok


@pytest.mark.parametrize("url", ["", "https://registry.example.com/app:1", "Team/App:1", "app:bad tag"])
def test_docker_image_url_must_be_a_reference(url):
    error = error_of(minimal(docker_image={"url": url}))
    assert error.field == "docker_image.url"


def test_docker_image_shape_rules():
    assert error_of(minimal(docker_image="app:1")).field == "docker_image"
    assert "unknown key" in error_of(minimal(docker_image={"url": "app:1", "auth": {}})).message


@pytest.mark.parametrize("auth, field", [
    ({"username": "robot"}, "docker_image.basic_auth.password"),
    ({"password": "{{secrets/s/k}}"}, "docker_image.basic_auth.username"),
    ({"username": "", "password": "x"}, "docker_image.basic_auth.username"),
    ("robot:pw", "docker_image.basic_auth"),
])
def test_basic_auth_needs_username_and_password(auth, field):
    assert error_of(minimal(docker_image={"url": "app:1", "basic_auth": auth})).field == field


def test_password_env_must_be_set_when_validating(monkeypatch):
    monkeypatch.delenv("DCS_TEST_UNSET_PASSWORD", raising=False)
    spec = minimal(docker_image=DockerImage("app:1", BasicAuth("robot", password_env="DCS_TEST_UNSET_PASSWORD")))
    error = error_of(spec)
    assert error.field == "docker_image.basic_auth.password" and "DCS_TEST_UNSET_PASSWORD" in error.message
    assert spec.masked()["docker_image"]["basic_auth"]["password"] == MASK  # preview still works


@pytest.mark.parametrize("version", ["15.4.x-cpu-ml-scala2.12", "16.4.x-gpu-ml-scala2.12"])
def test_ml_runtimes_are_refused_with_the_reason(version):
    error = error_of(minimal(spark_version=version))
    assert error.field == "spark_version" and "for ML" in error.message and "custom containers" in error.message


def test_use_ml_runtime_is_refused():
    assert error_of(minimal(use_ml_runtime=True)).field == "use_ml_runtime"


def test_aarch64_runtime_is_refused():
    error = error_of(minimal(spark_version="15.4.x-aarch64-scala2.12"))
    assert error.field == "spark_version" and "aarch64" in error.message


@pytest.mark.parametrize("node", ["m6gd.large", "r6gd.xlarge", "c6gd.2xlarge", "m7g.large", "c6gn.large",
                                  "x2gd.xlarge", "t4g.medium", "im4gn.large", "is4gen.xlarge", "g5g.xlarge",
                                  "hpc7g.4xlarge"])
def test_graviton_node_types_are_refused(node):
    error = error_of(minimal(node_type_id=node))
    assert error.field == "node_type_id" and "Graviton" in error.message
    assert error_of(minimal(driver_node_type_id=node)).field == "driver_node_type_id"


@pytest.mark.parametrize("node", ["m5d.large", "i3.xlarge", "g4dn.xlarge", "p3.2xlarge", "r5.large", "m7i.large",
                                  "Standard_DS3_v2", "n2-highmem-4", "x2iedn.xlarge"])
def test_x86_node_types_pass(node):
    assert node_type_refusal(node) is None
    assert minimal(node_type_id=node).ok


@pytest.mark.parametrize("mode", ["USER_ISOLATION", "DATA_SECURITY_MODE_STANDARD", "LEGACY_TABLE_ACL",
                                  "DATA_SECURITY_MODE_AUTO", "LEGACY_PASSTHROUGH", "LEGACY_SINGLE_USER"])
def test_shared_access_modes_are_refused(mode):
    error = error_of(minimal(data_security_mode=mode))
    assert error.field == "data_security_mode" and "does not support" in error.message
    assert "DATA_SECURITY_MODE_DEDICATED" in error.hint


@pytest.mark.parametrize("mode", ["SINGLE_USER", "DATA_SECURITY_MODE_DEDICATED", "NONE"])
def test_dedicated_access_modes_pass(mode):
    assert minimal(data_security_mode=mode, single_user_name="me@example.com").ok


def test_unknown_access_mode_is_named():
    assert "not a known access mode" in error_of(minimal(data_security_mode="PRIVATE")).message


def test_extra_cannot_shadow_named_fields_and_ssh_key_limits():
    assert error_of(minimal(extra={"num_workers": 3})).field == "extra"
    assert error_of(minimal(ssh_public_keys=[f"ssh-ed25519 K{i}" for i in range(11)])).field == "ssh_public_keys"
    assert error_of(minimal(ssh_public_keys="ssh-ed25519 K")).field == "ssh_public_keys"


def test_errors_lists_every_problem_and_to_dict_validates_first():
    spec = ClusterSpec(spark_version="15.4.x-cpu-ml-scala2.12", num_workers=-1, autotermination_minutes=5,
                       data_security_mode="USER_ISOLATION")
    assert [e.field for e in spec.errors()] == ["spark_version", "num_workers", "autotermination_minutes",
                                                 "data_security_mode"]
    with pytest.raises(SpecError):
        spec.to_dict()
    assert spec.to_dict(validate=False)["num_workers"] == -1


def test_spec_error_message_carries_the_hint():
    error = error_of(minimal(docker_image={"url": "app:1", "basic_auth": {"username": "robot"}}))
    assert "Hint:" in str(error) and "secrets/scope/key" in str(error)


# -- masking -----------------------------------------------------------------------------------


def test_literal_password_never_in_repr_json_or_masked():
    spec = minimal(docker_image={"url": "app:1", "basic_auth": {"username": "robot", "password": "hunter2-literal"}})
    for text in (repr(spec), spec.to_json(), json.dumps(spec.masked()), str(spec.masked()),
                 repr(DockerImage("app:1", BasicAuth("robot", "hunter2-literal"))),
                 repr(BasicAuth("robot", "hunter2-literal"))):
        assert "hunter2-literal" not in text
        assert MASK in text
    assert spec.to_dict()["docker_image"]["basic_auth"]["password"] == "hunter2-literal"
    assert spec.to_json(mask=False).count("hunter2-literal") == 1


def test_secret_references_are_shown():
    ref = "{{secrets/ci/registry-password}}"
    spec = minimal(docker_image={"url": "app:1", "basic_auth": {"username": "robot", "password": ref}})
    assert ref in repr(spec) and ref in spec.to_json()
    assert is_secret_reference(ref) and is_secret_reference("{{ secrets/a/b }}")
    assert not is_secret_reference("{{secrets/a}}") and not is_secret_reference("pw {{secrets/a/b}}")


def test_secret_ref_scope_key_becomes_a_reference():
    """`%dcs_push --secret-ref SCOPE/KEY`: the name, checked where it is typed."""
    assert secret_reference("ci/registry-password") == "{{secrets/ci/registry-password}}"
    assert secret_reference(" {{secrets/ci/pw}} ") == "{{secrets/ci/pw}}"  # a whole reference is fine too
    for bad in ("ci", "ci/", "/pw", "a/b/c", "ci/my pw", ""):
        with pytest.raises(ValueError, match="is not SCOPE/KEY"):
            secret_reference(bad)


def test_env_password_is_read_only_when_the_body_is_built(monkeypatch):
    auth = BasicAuth("robot", password_env="DCS_TEST_PW")
    spec = minimal(docker_image=DockerImage("app:1", auth))
    monkeypatch.delenv("DCS_TEST_PW", raising=False)
    assert spec.masked()["docker_image"]["basic_auth"] == {"username": "robot", "password": MASK}
    assert "DCS_TEST_PW" in repr(auth)
    monkeypatch.setenv("DCS_TEST_PW", "from-the-env")
    assert "from-the-env" not in repr(spec) + spec.to_json()
    assert spec.to_dict()["docker_image"]["basic_auth"]["password"] == "from-the-env"


def test_mask_secrets_copies_and_keeps_absent_passwords():
    body = {"docker_image": {"url": "a:1", "basic_auth": {"username": "u", "password": "p"}}}
    masked = mask_secrets(body)
    assert masked["docker_image"]["basic_auth"]["password"] == MASK
    assert body["docker_image"]["basic_auth"]["password"] == "p"
    assert mask_secrets({"docker_image": {"url": "a:1", "basic_auth": {"username": "u"}}}) == \
        {"docker_image": {"url": "a:1", "basic_auth": {"username": "u"}}}


# -- init_script_info, NamedInitScript -----------------------------------------------------------


@pytest.mark.parametrize("dest, kind", [
    ("/Workspace/Users/me@example.com/init.sh", "workspace"),
    ("/Users/me@example.com/init.sh", "workspace"),
    ("/Shared/init.sh", "workspace"),
    ("/Volumes/main/default/scripts/init.sh", "volumes"),
    ("dbfs:/databricks/init/init.sh", "dbfs"),
    ("file:/databricks/scripts/init.sh", "file"),
    ("abfss://c@a.dfs.core.windows.net/init.sh", "abfss"),
    ("gs://bucket/init.sh", "gcs"),
])
def test_init_script_info_picks_the_type(dest, kind):
    item = init_script_info(dest)
    assert item == {kind: {"destination": dest}}
    assert compute.InitScriptInfo.from_dict(item).as_dict() == item


def test_init_script_info_s3_needs_a_region():
    assert init_script_info("s3://b/init.sh", region="us-west-2") == \
        {"s3": {"destination": "s3://b/init.sh", "region": "us-west-2"}}
    with pytest.raises(SpecError, match="region"):
        init_script_info("s3://b/init.sh")


@pytest.mark.parametrize("dest, field, hint", [
    ("init.sh", "init_scripts", "write one of: /Workspace/"),
    ("/tmp/init.sh", "init_scripts", "write one of: /Workspace/"),
    ("https://x/init.sh", "init_scripts", "write one of: /Workspace/"),
    ("", "init_scripts", "write one of: /Workspace/"),
    ("/Volumes/a/b/init.sh", "init_scripts.volumes.destination", "write it like /Volumes/catalog/schema/volume/"),
])
def test_init_script_info_refuses_unknown_or_malformed(dest, field, hint):
    with pytest.raises(SpecError) as info:
        init_script_info(dest)
    assert info.value.field == field
    assert info.value.hint.startswith(hint)


def test_named_init_script_without_destination_says_how_to_upload():
    script = NamedInitScript("setup", "#!/bin/bash\necho hi\n")
    assert script.info() is None
    error = error_of(minimal(init_scripts=[script]))
    assert "no destination" in error.message and "--upload" in error.hint
    assert "not uploaded" in json.dumps(minimal(init_scripts=[script]).masked())  # previews do not raise
    assert "2 lines" in repr(script)


# -- runtime and node type lists ----------------------------------------------------------------


def test_runtime_refusal_reasons():
    assert runtime_refusal("15.4.x-scala2.12") is None
    assert runtime_refusal("15.4.x-photon-scala2.12") is None
    assert "ML" in runtime_refusal("14.3.x-cpu-ml-scala2.12")
    assert "aarch64" in runtime_refusal("15.4.x-aarch64-photon-scala2.12")


def test_dcs_runtimes_leave_out_ml_and_aarch64_newest_first():
    versions = [
        {"key": "13.3.x-scala2.12", "name": "13.3 LTS (Spark 3.4.1)"},
        {"key": "16.2.x-scala2.12", "name": "16.2 (Spark 3.5.2)"},
        {"key": "15.4.x-cpu-ml-scala2.12", "name": "15.4 LTS ML"},
        {"key": "15.4.x-aarch64-scala2.12", "name": "15.4 LTS aarch64"},
        {"key": "16.4.x-scala2.12", "name": "16.4 LTS (Spark 3.5.2)"},
        {"key": "9.1.x-scala2.12", "name": "9.1 LTS"},
        {"key": "17.0.x-scala2.13", "name": "17.0 (Beta)"},
        {"key": "19.x-scala2.13", "name": "19 Beta"},
        {"key": "18.x-scala2.13", "name": "18 LTS"},  # from 18 on the key has no minor version
    ]
    assert [v["key"] for v in dcs_runtimes(versions)] == [
        "19.x-scala2.13", "18.x-scala2.13", "17.0.x-scala2.13", "16.4.x-scala2.12", "16.2.x-scala2.12",
        "13.3.x-scala2.12", "9.1.x-scala2.12"]


def test_dcs_node_types_leave_out_graviton_deprecated_hidden():
    nodes = [
        {"node_type_id": "i3.xlarge", "num_cores": 4, "memory_mb": 31232},
        {"node_type_id": "m6gd.large", "num_cores": 2, "memory_mb": 8192},
        {"node_type_id": "c7g.large", "num_cores": 2, "memory_mb": 4096, "is_graviton": False},
        {"node_type_id": "odd.large", "num_cores": 2, "memory_mb": 4096, "is_graviton": True},
        {"node_type_id": "m4.large", "num_cores": 2, "memory_mb": 8192, "is_deprecated": True},
        {"node_type_id": "h1.large", "num_cores": 2, "memory_mb": 8192, "is_hidden": True},
        {"node_type_id": "m5d.large", "num_cores": 2, "memory_mb": 8192},
    ]
    assert [n["node_type_id"] for n in dcs_node_types(nodes)] == ["m5d.large", "i3.xlarge"]


# -- runtime keys against runtime.py -------------------------------------------------------------


def test_unknown_runtime_key_names_the_closest_known_lines():
    error = error_of(minimal(spark_version="16.2.x-scala2.12"))
    assert error.field == "spark_version"
    assert "16.2 is not a line dcs-magic knows; the closest known lines are 16.4 LTS, 15.4 LTS" in error.message
    assert "dcs runtimes" in error.hint


def test_runtime_out_of_support_says_since_when():
    error = error_of(minimal(spark_version="11.3.x-scala2.12"))
    assert error.field == "spark_version" and "out of support since 2025-10-19" in error.message


@pytest.mark.parametrize("key", ["18.x-scala2.13", "17.3.x-scala2.13", "16.4.x-photon-scala2.12",
                                 "19.x-scala2.13"])
def test_current_runtime_keys_are_accepted(key):
    assert minimal(spark_version=key).ok


def test_shared_access_mode_hint_offers_single_user_and_the_volumes_conf():
    error = error_of(minimal(data_security_mode="USER_ISOLATION",
                             docker_image={"url": "registry.example.com/team/img:1"}))
    assert error.field == "data_security_mode" and "standard (shared) access mode" in error.message
    assert "SINGLE_USER" in error.hint and "spark.databricks.unityCatalog.volumes.enabled" in error.hint


# -- credential-like keys and unknown fields (issue 13, items 4 and 14) ------------------------------


@pytest.mark.parametrize(("key", "secret"), [
    ("OPENAI_API_KEY", True), ("DB_PASSWD", True), ("AWS_ACCESS_KEY_ID", True), ("MY_PASS", True),
    ("spark.hadoop.fs.s3a.secret.key", True), ("privateKey", True), ("X_AUTH", True), ("GH_TOKEN", True),
    ("AZURE_CREDENTIALS", True), ("monkey", False), ("passenger", False), ("author", False),
    ("keytab", False), ("spark.sql.shuffle.partitions", False),
])
def test_is_secret_key(key: str, secret: bool) -> None:
    from dcs_magic.model.secrets import is_secret_key

    assert is_secret_key(key) is secret


def test_secret_warnings_name_the_reference_and_skip_references() -> None:
    from dcs_magic.model.secrets import secret_warnings

    body = {"spark_env_vars": {"DB_PASSWD": "x", "KEEP_TOKEN": "{{secrets/s/k}}", "PLAIN": "y"}}
    assert secret_warnings(body) == [
        ("spark_env_vars.DB_PASSWD holds a literal credential: store it in a Databricks secret scope and "
         "write {{secrets/<scope>/db_passwd}} instead")]


def test_unknown_fields_use_the_sdk_names() -> None:
    from dcs_magic.model.spec import known_field_names, unknown_fields

    assert {"remote_disk_throughput", "autotermination_minutes", "docker_image"} <= known_field_names()
    assert unknown_fields({"autotermination_minute": 1, "num_workers": 0, "zzz_qqq": 1}) == [
        ("autotermination_minute", "autotermination_minutes"), ("zzz_qqq", None)]
