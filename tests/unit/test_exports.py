"""Exports (dcs_magic.model.exports): parsed back with PyYAML, python-hcl2 and json, compared with
the Clusters / Jobs / Policies / Pools API fields, and round-tripped through databricks-sdk types."""

from __future__ import annotations

import json
import re

import hcl2
import pytest
import yaml
from databricks.sdk.service import compute, jobs

from dcs_magic import ClusterSpec, SpecError
from dcs_magic.model.exports import (
    UC_VOLUMES_CONF,
    dump_yaml,
    evaluate_policy,
    export,
    export_spec,
    policy_definition,
    to_bundle,
    to_policy,
    to_pool,
    to_terraform,
)
from dcs_magic.model.spec import BasicAuth, DockerImage

PINNED = "registry.example.com/team/app@sha256:" + "b" * 64
REFERENCE = "{{secrets/dcs/registry}}"


def make_spec(**changes) -> ClusterSpec:
    base = {"cluster_name": "Team ETL", "spark_version": "15.4.x-scala2.12", "node_type_id": "i3.xlarge",
            "num_workers": 0, "autotermination_minutes": 30, "data_security_mode": "SINGLE_USER",
            "single_user_name": "me@example.com",
            "docker_image": {"url": PINNED, "basic_auth": {"username": "svc", "password": REFERENCE}},
            "init_scripts": ["/Workspace/Shared/init.sh"],
            "spark_conf": {UC_VOLUMES_CONF: "true", "spark.master": "local[*, 4]"},
            "custom_tags": {"ResourceClass": "SingleNode", "yes": "no", "n": "1.0"}}
    base.update(changes)
    return ClusterSpec(**base)


def sdk_round_trip(body: dict) -> dict:
    return compute.ClusterSpec.from_dict(body).as_dict()


# -- bundle -------------------------------------------------------------------------------------


def test_bundle_yaml_parses_to_the_cluster_body_and_a_job_on_it():
    spec = make_spec()
    data = yaml.safe_load(to_bundle(spec))
    body = spec.to_dict()
    [(key, cluster)] = data["resources"]["clusters"].items()
    assert cluster == body  # every string read back as a string ("yes", "1.0", "true" included)
    assert sdk_round_trip(cluster) == cluster
    [(job_key, job)] = data["resources"]["jobs"].items()
    assert job_key == f"{key}_job"
    settings = jobs.JobSettings.from_dict(job)
    assert settings.as_dict() == job  # the job is a JobSettings the SDK reads unchanged
    [job_cluster] = job["job_clusters"]
    expected = {k: v for k, v in body.items() if k != "autotermination_minutes"}
    assert job_cluster["new_cluster"] == expected
    assert sdk_round_trip(job_cluster["new_cluster"]) == expected
    [task] = job["tasks"]
    assert task["job_cluster_key"] == job_cluster["job_cluster_key"] == key
    assert task["spark_python_task"] == {"python_file": "main.py"}


def test_bundle_with_a_notebook_task_and_parameters():
    data = yaml.safe_load(to_bundle(make_spec(), notebook="/Workspace/Shared/etl", parameters=["day=1"]))
    [task] = next(iter(data["resources"]["jobs"].values()))["tasks"]
    assert task["notebook_task"] == {"notebook_path": "/Workspace/Shared/etl", "base_parameters": {"day": "1"}}
    assert jobs.Task.from_dict(task).as_dict() == task


def test_bundle_keeps_the_secret_reference():
    text = to_bundle(make_spec())
    assert REFERENCE in text
    cluster = next(iter(yaml.safe_load(text)["resources"]["clusters"].values()))
    assert cluster["docker_image"]["basic_auth"]["password"] == REFERENCE


@pytest.mark.parametrize("value", ["yes", "No", "on", "null", "~", "1.0", "0x1f", "12", "1e3", "", " lead",
                                   "a: b", "# c", "- d", "{e}", "[f]", "*g", "&h", "!i", "%j", "@k", "`l",
                                   "x #y", "tab\there", "new\nline", "quote\"d", "ü", "2024-01-01", ".inf",
                                   "{{secrets/a/b}}", "${var.x}", "true", "False", "<<"])
def test_yaml_emitter_strings_read_back_as_the_same_strings(value):
    data = {"k": value, value or "empty": [value, {"n": value}], "list": [[value], []], "e": {}}
    assert yaml.safe_load(dump_yaml(data)) == data


def test_yaml_emitter_numbers_booleans_and_null():
    data = {"i": 3, "f": 1.5, "t": True, "b": False, "none": None, "neg": -2}
    assert yaml.safe_load(dump_yaml(data)) == data


# -- terraform ----------------------------------------------------------------------------------


def _unquote(value):
    if isinstance(value, str) and value.startswith('"') and value.endswith('"'):
        return json.loads(value)
    if isinstance(value, dict):
        return {_unquote(k): _unquote(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    return value


def test_terraform_parses_as_a_databricks_cluster_with_docker_image_blocks():
    spec = make_spec()
    parsed = hcl2.loads(to_terraform(spec))
    [resource] = parsed["resource"]
    cluster = _unquote(resource['"databricks_cluster"'])
    [(name, attrs)] = cluster.items()
    assert name == "team_etl"
    body = spec.to_dict()
    for field in ("cluster_name", "spark_version", "node_type_id", "num_workers", "autotermination_minutes",
                  "data_security_mode", "single_user_name", "spark_conf", "custom_tags"):
        assert attrs[field] == body[field], field
    [docker] = attrs["docker_image"]
    [auth] = docker["basic_auth"]
    assert docker["url"] == PINNED
    assert auth == {"username": "svc", "password": REFERENCE}
    [init] = attrs["init_scripts"]
    assert init["workspace"] == [{"destination": "/Workspace/Shared/init.sh"}]


def _provider_read_back(body: dict) -> dict:
    """What `databricks_cluster` reads back after the apply: `clusters/get` answers SINGLE_USER for
    a cluster created DATA_SECURITY_MODE_DEDICATED (terraform-provider-databricks#4909)."""
    answered = {"DATA_SECURITY_MODE_DEDICATED": "SINGLE_USER"}
    mode = body.get("data_security_mode")
    return {**body, "data_security_mode": answered.get(mode, mode)} if mode else dict(body)


@pytest.mark.parametrize("mode", ["DATA_SECURITY_MODE_DEDICATED", "SINGLE_USER", "NONE"])
def test_terraform_writes_the_access_mode_the_provider_reads_back(mode):
    spec = make_spec(data_security_mode=mode, single_user_name=None if mode == "NONE" else "me@example.com")
    text = to_terraform(spec)
    parsed = hcl2.loads(text)["resource"][0]['"databricks_cluster"']['"team_etl"']
    attrs = _unquote(parsed)
    read_back = _provider_read_back(spec.to_dict())
    # the plan after the apply compares the configuration with the read-back: no field differs
    planned = {field: attrs[field] for field in read_back if field not in ("docker_image", "init_scripts")}
    assert planned == {field: read_back[field] for field in planned}
    assert attrs["data_security_mode"] == ("NONE" if mode == "NONE" else "SINGLE_USER")
    [line] = [ln for ln in text.splitlines() if ln.strip().startswith("data_security_mode")]
    if mode == "DATA_SECURITY_MODE_DEDICATED":
        # the comment on that line says what the spec said and why
        assert line.split("#", 1)[0].split() == ["data_security_mode", "=", '"SINGLE_USER"']
        comment = line.split("#", 1)[1]
        assert "DATA_SECURITY_MODE_DEDICATED" in comment and "terraform-provider-databricks#4909" in comment
        assert [c["value"] for c in parsed["__comments__"]] == [comment.strip()]
        assert compute.DataSecurityMode(attrs["data_security_mode"]) is compute.DataSecurityMode.SINGLE_USER
    else:
        assert "#" not in line and "__comments__" not in parsed and "4909" not in text


def test_terraform_export_leaves_the_spec_alone():
    spec = make_spec(data_security_mode="DATA_SECURITY_MODE_DEDICATED")
    to_terraform(spec)
    assert spec.to_dict()["data_security_mode"] == "DATA_SECURITY_MODE_DEDICATED"
    # the bundle keeps the spec's own value (job clusters store it verbatim)
    cluster = next(iter(yaml.safe_load(to_bundle(spec))["resources"]["clusters"].values()))
    assert cluster["data_security_mode"] == "DATA_SECURITY_MODE_DEDICATED"


def test_terraform_escapes_template_sequences_and_quotes():
    spec = make_spec(spark_env_vars={"A": 'say "hi" ${not_a_var} %{x}', "B": "back\\slash"})
    attrs = _unquote(hcl2.loads(to_terraform(spec))["resource"][0]['"databricks_cluster"'])["team_etl"]
    text = to_terraform(spec)
    assert "$${not_a_var}" in text and "%%{x}" in text  # HCL would interpolate them otherwise
    assert attrs["spark_env_vars"]["B"] == "back\\slash"


# -- policy -------------------------------------------------------------------------------------


def test_policy_pins_the_digest_and_allows_its_own_spec():
    spec = make_spec()
    definition = json.loads(to_policy(spec))
    assert definition["docker_image.url"] == {"type": "fixed", "value": PINNED}
    assert definition[f"spark_conf.{UC_VOLUMES_CONF}"] == {"type": "fixed", "value": "true"}
    assert set(definition["data_security_mode"]["values"]) >= {"SINGLE_USER", "NONE"}
    assert "USER_ISOLATION" not in definition["data_security_mode"]["values"]
    assert evaluate_policy(definition, spec.to_dict()) == []
    # the API takes the definition as a JSON string
    policy = compute.Policy.from_dict({"name": "dcs", "definition": json.dumps(definition)})
    assert json.loads(policy.as_dict()["definition"]) == definition


@pytest.mark.parametrize("mode", ["DATA_SECURITY_MODE_DEDICATED", "SINGLE_USER"])
def test_policy_allows_dedicated_under_both_names(mode):
    """A cluster made from the Terraform export says SINGLE_USER, one made from the spec may say
    DATA_SECURITY_MODE_DEDICATED: the policy lets both through, whichever the spec used."""
    spec = make_spec(data_security_mode=mode)
    definition = json.loads(to_policy(spec))
    rule = definition["data_security_mode"]
    assert rule["type"] == "allowlist" and rule["defaultValue"] == mode
    assert {"SINGLE_USER", "DATA_SECURITY_MODE_DEDICATED"} <= set(rule["values"])
    assert len(rule["values"]) == len(set(rule["values"]))
    body = spec.to_dict()
    for name in ("SINGLE_USER", "DATA_SECURITY_MODE_DEDICATED", "NONE"):
        assert evaluate_policy(definition, {**body, "data_security_mode": name}) == [], name
    assert evaluate_policy(definition, _provider_read_back(body)) == []
    for name in ("USER_ISOLATION", "DATA_SECURITY_MODE_STANDARD", "DATA_SECURITY_MODE_AUTO"):
        assert evaluate_policy(definition, {**body, "data_security_mode": name}), name


def test_policy_rules_forbid_what_dcs_cannot_run():
    spec = make_spec()
    definition = policy_definition(spec)
    body = spec.to_dict()

    def refused(**changes):
        return evaluate_policy(definition, {**body, **changes})

    assert refused(spark_version="15.4.x-cpu-ml-scala2.12")
    assert refused(spark_version="15.4.x-aarch64-scala2.12")
    assert refused(spark_version="16.4.x-scala2.12")  # another runtime line than the image's
    assert not refused(spark_version="15.4.x-photon-scala2.12")
    assert refused(docker_image={"url": "registry.example.com/team/app:latest",
                                 "basic_auth": body["docker_image"]["basic_auth"]})
    assert refused(docker_image={"url": PINNED, "basic_auth": {"username": "svc", "password": "hunter2"}})
    assert refused(data_security_mode="USER_ISOLATION")
    assert refused(spark_conf={UC_VOLUMES_CONF: "false"})
    # the policy's regexes are the ones a Databricks policy runs (Java syntax, same semantics here)
    pattern = definition["docker_image.basic_auth.password"]["pattern"]
    assert re.search(pattern, REFERENCE) and not re.search(pattern, "plain")


def test_policy_that_would_forbid_its_own_spec_is_an_error():
    spec = make_spec(spark_conf={UC_VOLUMES_CONF: "false"})
    with pytest.raises(SpecError) as info:
        to_policy(spec)
    assert "would forbid the spec it is exported from" in str(info.value)
    assert UC_VOLUMES_CONF in str(info.value)
    with pytest.raises(SpecError, match="would forbid"):
        to_policy(make_spec(), rules={"autotermination_minutes": {"type": "range", "maxValue": 20}})


def test_policy_needs_a_pinned_image():
    with pytest.raises(SpecError) as info:
        to_policy(make_spec(docker_image={"url": "registry.example.com/team/app:1.0"}))
    assert info.value.field == "docker_image.url"
    assert "digest" in str(info.value)


def test_policy_without_basic_auth_keeps_the_password_rule_optional():
    spec = make_spec(docker_image={"url": PINNED}, data_security_mode=None, single_user_name=None)
    definition = json.loads(to_policy(spec))
    assert definition["docker_image.basic_auth.password"]["isOptional"] is True
    assert evaluate_policy(definition, spec.to_dict()) == []


# -- pool ---------------------------------------------------------------------------------------


def test_pool_preloads_the_image_and_round_trips_through_the_sdk():
    spec = make_spec()
    pool = json.loads(to_pool(spec))
    assert pool["preloaded_docker_images"] == [spec.to_dict()["docker_image"]]
    assert pool["node_type_id"] == "i3.xlarge"
    assert pool["preloaded_spark_versions"] == ["15.4.x-scala2.12"]
    assert compute.GetInstancePool.from_dict(pool).as_dict() == pool


def test_pool_needs_a_node_type():
    with pytest.raises(SpecError, match="node_type_id"):
        to_pool(make_spec(node_type_id=None, instance_pool_id="pool-1"))


# -- secrets ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["bundle", "terraform", "policy", "pool"])
def test_a_literal_password_is_refused_with_the_way_to_use_a_reference(kind):
    spec = make_spec(docker_image={"url": PINNED, "basic_auth": {"username": "svc", "password": "hunter2-literal"}})
    with pytest.raises(SpecError) as info:
        export(kind, spec)
    text = str(info.value)
    assert "hunter2-literal" not in text
    assert "docker_image.basic_auth.password" in text
    assert "{{secrets/SCOPE/KEY}}" in text


def test_password_from_the_environment_is_refused_too(monkeypatch):
    monkeypatch.setenv("DCS_TEST_REGISTRY_PASSWORD", "from-env-secret")
    spec = make_spec(docker_image=DockerImage(PINNED, BasicAuth("svc", password_env="DCS_TEST_REGISTRY_PASSWORD")))
    with pytest.raises(SpecError) as info:
        to_terraform(spec)
    assert "from-env-secret" not in str(info.value)


def test_a_literal_secret_in_spark_env_vars_is_refused():
    with pytest.raises(SpecError) as info:
        to_bundle(make_spec(spark_env_vars={"API_TOKEN": "abc123"}))
    assert info.value.field == "spark_env_vars.API_TOKEN"
    assert "abc123" not in str(info.value)


def test_an_invalid_spec_is_refused_before_export():
    with pytest.raises(SpecError) as info:
        to_bundle(make_spec(spark_version="15.4.x-cpu-ml-scala2.12"))
    assert info.value.field == "spark_version"


# -- from a lock entry ----------------------------------------------------------------------------


def test_export_spec_takes_the_lock_s_pinned_image():
    spec = export_spec(make_spec(docker_image={"url": "registry.example.com/team/app:1.0",
                                               "basic_auth": {"username": "svc", "password": REFERENCE}}),
                       image=PINNED)
    assert spec.to_dict()["docker_image"] == {"url": PINNED, "basic_auth": {"username": "svc", "password": REFERENCE}}
    recorded = make_spec().masked()
    from_lock = export_spec(lock_cluster=recorded, image=PINNED.replace("b" * 64, "c" * 64))
    assert from_lock.to_dict()["docker_image"]["url"].endswith("c" * 64)
    with pytest.raises(SpecError, match="nothing to export"):
        export_spec()


def test_a_lock_cluster_with_a_masked_password_is_refused():
    masked = make_spec(docker_image={"url": PINNED, "basic_auth": {"username": "svc", "password": "lit"}}).masked()
    with pytest.raises(SpecError, match="literal secret"):
        export("bundle", export_spec(lock_cluster=masked))


def test_unknown_kind():
    with pytest.raises(SpecError, match="unknown export kind"):
        export("cloudformation", make_spec())


def test_policy_accepts_every_reference_form_the_spec_accepts():
    spec = make_spec(docker_image={"url": PINNED, "basic_auth": {"username": "svc",
                                                                 "password": "{{ secrets/dcs/registry }}"}})
    definition = json.loads(to_policy(spec))
    assert evaluate_policy(definition, spec.to_dict()) == []
