"""Registry kinds (issue 26, item 4): `model.registry_auth`, the presets behind `--registry-auth`
and the launch form's Registry choice. Pure: each kind's username convention and text, the host
it is detected from, and the warnings a kind and an image give together."""

from __future__ import annotations

import pytest

from dcs_magic import ClusterSpec
from dcs_magic.cli import commands as cli
from dcs_magic.model import registry_auth as kinds

ECR = "123456789012.dkr.ecr.us-west-2.amazonaws.com/team/app@sha256:" + "a" * 64
ACR = "myteam.azurecr.io/team/app:1"
GAR = "europe-west1-docker.pkg.dev/project/repo/app:1"
HUB = "myteam/app:1"
ARTIFACT = "1234567890123456.containers.us-west-2.cloud.databricks.com/main.default.app:1"
REF = "{{secrets/dcs/registry}}"


def spec(url: str, username: str | None = None, **fields: object) -> ClusterSpec:
    image: dict[str, object] = {"url": url}
    if username is not None:
        image["basic_auth"] = {"username": username, "password": REF}
    return ClusterSpec(spark_version="15.4.x-scala2.12", num_workers=0, docker_image=image, **fields)


def test_the_kinds_are_the_contracts_and_the_cli_offers_them():
    assert kinds.KINDS == ("dockerhub", "acr", "ecr", "gar", "basic", "none")
    assert (kinds.AUTO, *kinds.KINDS) == cli.REGISTRY_KINDS
    # %dcs_launch writes its choices out too (its module imports no model at %load_ext)
    from dcs_magic.jupyter.magics import DcsMagics

    (magic,) = [a for a in DcsMagics.dcs_launch.parser._actions if a.dest == "registry_auth"]
    assert tuple(magic.choices) == cli.REGISTRY_KINDS and magic.default == kinds.AUTO
    assert [k for _, k in kinds.choices()] == [kinds.AUTO, *kinds.KINDS]


def test_each_kind_says_its_username_and_where_the_password_comes_from():
    assert kinds.username_for("gar") == "_json_key"
    assert kinds.username_for("ecr") == "AWS"
    assert [kinds.username_for(k) for k in ("dockerhub", "acr", "basic", "none")] == [None] * 4
    text = {k: kinds.PRESETS[k].password_source for k in kinds.KINDS}
    assert "read-only" in text["dockerhub"] and "access token" in text["dockerhub"]
    assert "service principal's application (client) id" in text["acr"] and "3 hours" in text["acr"]
    assert kinds.ENTRA_TOKEN_USERNAME in text["acr"]
    assert "aws ecr get-login-password" in text["ecr"] and "12 hours" in text["ecr"]
    assert "instance profile" in text["ecr"]
    assert "_json_key" in text["gar"] and "JSON key" in text["gar"]
    assert "No basic_auth" in text["none"]
    assert not kinds.PRESETS["none"].basic_auth and all(kinds.PRESETS[k].basic_auth for k in kinds.KINDS[:-1])


@pytest.mark.parametrize(("url", "kind"), [
    (ECR, "ecr"), ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/app:1", "ecr"),
    (ACR, "acr"), ("myteam.azurecr.cn/app:1", "acr"),
    (GAR, "gar"), ("gcr.io/project/app:1", "gar"),
    (HUB, "dockerhub"), ("docker.io/library/ubuntu:22.04", "dockerhub"), ("ubuntu", "dockerhub"),
    ("127.0.0.1:5000/app:1", None), ("ghcr.io/org/app:1", None), (ARTIFACT, None), ("", None),
    ("bad@@ref", None),
])
def test_the_kind_is_detected_from_the_host(url, kind):
    assert kinds.detect(url) == kind


def test_auto_resolves_to_the_hosts_kind_else_basic_or_none():
    assert kinds.resolve("auto", GAR) == "gar"
    assert kinds.resolve(None, "127.0.0.1:5000/app:1", has_auth=True) == "basic"
    assert kinds.resolve("auto", "127.0.0.1:5000/app:1") == "none"
    assert kinds.resolve("acr", GAR) == "acr"  # a given kind stands
    with pytest.raises(ValueError, match="unknown registry kind 'quay'.*auto, dockerhub, acr, ecr, gar, basic, none"):
        kinds.resolve("quay", GAR)
    assert kinds.explain("auto", GAR).startswith("Detected Google Artifact Registry from the image's host. ")
    assert kinds.explain("ecr", ECR) == kinds.PRESETS["ecr"].password_source


def test_ecr_with_basic_auth_warns_that_the_token_lasts_12_hours():
    notes = kinds.notes("ecr", spec(ECR, "AWS"))
    assert len(notes) == 1
    assert "12 hours" in notes[0] and "instance profile" in notes[0] and "no basic_auth" in notes[0]
    assert kinds.notes("auto", spec(ECR, "AWS")) == notes  # detected from the host too
    assert kinds.notes("ecr", spec(ECR, "someone"))[0] == "Amazon ECR expects the username AWS, not someone."


def test_ecr_without_basic_auth_needs_an_instance_profile():
    (note,) = kinds.notes("none", spec(ECR))
    assert "aws_attributes.instance_profile_arn" in note
    profile = {"instance_profile_arn": "arn:aws:iam::123456789012:instance-profile/ecr-pull"}
    assert kinds.notes("none", spec(ECR, aws_attributes=profile)) == []
    assert kinds.notes("auto", spec(ECR, aws_attributes=profile)) == []


def test_a_kind_that_does_not_fit_the_host_is_said():
    (note,) = kinds.notes("acr", spec("ghcr.io/org/app:1", "sp-app-id"))
    assert "Azure Container Registry" in note and "ghcr.io is not <name>.azurecr.io" in note
    (note,) = kinds.notes("ecr", spec(ACR, "AWS"))[:1]
    assert "myteam.azurecr.io is not <account>.dkr.ecr.<region>.amazonaws.com" in note
    assert "(it looks like Azure Container Registry)" in note
    assert kinds.notes("acr", spec(ACR, "sp-app-id")) == []
    assert kinds.notes("basic", spec("ghcr.io/org/app:1", "bot")) == []  # basic fits any host


def test_acr_entra_tokens_last_3_hours():
    (note,) = kinds.notes("auto", spec(ACR, kinds.ENTRA_TOKEN_USERNAME))
    assert "Entra access token" in note and "3 hours" in note


def test_gar_expects_json_key():
    assert kinds.notes("gar", spec(GAR, "_json_key")) == []
    assert kinds.notes("gar", spec(GAR, "robot")) == ["Google Artifact Registry expects the username _json_key, "
                                                      "not robot."]
    (note,) = kinds.notes("gar", spec(GAR))
    assert "has no basic_auth" in note


def test_an_artifact_registry_image_says_classic_dcs_clusters_are_not_its_consumers():
    (note,) = kinds.notes("auto", spec(ARTIFACT))
    assert "Artifact Registry (Beta)" in note and "1-hour" in note and "U2M" in note
    assert "classic DCS clusters are not among them" in note
    assert kinds.artifact_registry_note(HUB) is None
    assert kinds.artifact_registry_note("1234.containers.us-west-2.cloud.databricks.com.evil.io/a:1") is None


def test_apply_fills_the_username_convention_or_takes_basic_auth_out():
    blank = ClusterSpec(spark_version="15.4.x-scala2.12", num_workers=0,
                        docker_image={"url": GAR, "basic_auth": {"username": "", "password": REF}})
    applied, notes = kinds.apply(blank, "gar")
    assert applied.to_dict()["docker_image"] == {"url": GAR, "basic_auth": {"username": "_json_key", "password": REF}}
    assert notes == []
    applied, notes = kinds.apply(spec(HUB, "me"), "none")
    assert applied.to_dict()["docker_image"] == {"url": HUB}
    unchanged, _ = kinds.apply(spec(HUB, "me"), "auto")
    assert unchanged.to_dict() == spec(HUB, "me").to_dict()
    with pytest.raises(ValueError, match="unknown registry kind"):
        kinds.apply(spec(HUB), "quay")
