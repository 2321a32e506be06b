"""Registry kinds: how `docker_image.basic_auth` is filled in for each kind of registry.

`--registry-auth dockerhub|acr|ecr|gar|basic|none` (on `dcs launch` and `%dcs_launch`) and the
launch form's "Registry" dropdown name one of `KINDS`; `auto` (the default) takes the kind from
the image's registry host (`detect`). Each `Preset` says which username the registry expects
(`_json_key` for GAR, `AWS` for ECR; the user's own for Docker Hub, ACR and basic), where the
password comes from, and whether `basic_auth` is sent at all (`none`: a public image, or ECR
pulled through an instance profile).

`notes(kind, spec)` are the warnings a kind and an image give together: a kind that does not
match the host, ECR with `basic_auth` (a `get-login-password` token lasts 12 hours: a node that
starts later cannot pull), an ACR Entra token (3 hours), and an image on Databricks' Artifact
Registry host, whose documented consumers do not include classic DCS clusters. Facts:
`../shared/dcs-facts.md`, "Registry credentials, by registry" and "Where DCS does not work".

Pure: no I/O. `apply(spec, kind)` returns the spec with the kind's username convention (or
without `basic_auth` for `none`) and the notes to show.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from .imageref import parse_or_none
from .spec import BasicAuth, ClusterSpec, DockerImage

__all__ = ["AUTO", "ENTRA_TOKEN_USERNAME", "KINDS", "PRESETS", "Preset", "apply", "artifact_registry_note",
           "choices", "detect", "explain", "notes", "resolve", "username_for"]

AUTO = "auto"
KINDS = ("dockerhub", "acr", "ecr", "gar", "basic", "none")
"""What `--registry-auth` takes (and `auto`, the default: the kind the image's host says)."""

ENTRA_TOKEN_USERNAME = "00000000-0000-0000-0000-000000000000"
"""The username of an ACR Entra (AAD) access token, which lasts 3 hours."""


@dataclass(frozen=True)
class Preset:
    """One registry kind: its label, the username it expects (None: the user's own, `placeholder`
    says which), where the password comes from, and whether basic_auth is sent at all."""

    kind: str
    label: str
    username: str | None
    placeholder: str
    password_source: str
    basic_auth: bool = True


PRESETS: dict[str, Preset] = {p.kind: p for p in (
    Preset("dockerhub", "Docker Hub", None, "your Docker Hub username",
           "Docker Hub: the username is your Docker Hub user; the password is a read-only personal access "
           "token, not your account password. Store it in a secret scope and send it as "
           "{{secrets/<scope>/<key>}}."),
    Preset("acr", "Azure Container Registry", None, "the service principal's application (client) id",
           "Azure Container Registry: the username is a service principal's application (client) id and the "
           "password its client secret (long-lived); a repository-scoped token's name and password, or the "
           "registry's admin user, work the same way. An Entra access token (username "
           f"{ENTRA_TOKEN_USERNAME}) lasts only 3 hours. Store the password in a secret scope and send it "
           "as {{secrets/<scope>/<key>}}."),
    Preset("ecr", "Amazon ECR", "AWS", "AWS",
           "Amazon ECR: the username is AWS and the password the output of `aws ecr get-login-password`, a "
           "token that lasts 12 hours: a cluster that adds or restarts nodes after that cannot pull. The "
           "durable way is an instance profile allowed to read from ECR and no basic_auth (Registry: none)."),
    Preset("gar", "Google Artifact Registry", "_json_key", "_json_key",
           "Google Artifact Registry: the username is _json_key and the password the whole JSON key of a "
           "service account that may read the repository. Store the key JSON in a secret scope and send it "
           "as {{secrets/<scope>/<key>}}."),
    Preset("basic", "Other registry (username and password)", None, "the registry's username",
           "Any registry that takes a username and password: both as the registry gives them. Store the "
           "password in a secret scope and send it as {{secrets/<scope>/<key>}}."),
    Preset("none", "None (public image, or ECR through an instance profile)", None, "",
           "No basic_auth: for a public image, or ECR pulled through the cluster's instance profile "
           "(aws_attributes.instance_profile_arn, a role allowed to read from ECR).", basic_auth=False),
)}

_ECR_HOST = re.compile(r"^\d{12}\.dkr\.ecr(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
_ACR_HOST = re.compile(r"^[a-z0-9]+\.azurecr\.(io|cn|us)$")
_GAR_HOST = re.compile(r"^([a-z0-9-]+-docker\.pkg\.dev|([a-z]+\.)?gcr\.io)$")
_DOCKER_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io")
_ARTIFACT_REGISTRY_HOST = re.compile(r"^\d+\.containers\.[a-z0-9-]+\.cloud\.databricks\.com$")


def _host(url: str | None) -> str | None:
    """The registry host of an image reference (None when it is not one)."""
    ref = parse_or_none("".join((url or "").split()))
    return ref.registry.lower() if ref is not None else None


def _host_kind(host: str | None) -> str | None:
    if not host:
        return None
    if _ECR_HOST.match(host) or ".dkr.ecr." in host:
        return "ecr"
    if _ACR_HOST.match(host) or host.endswith((".azurecr.io", ".azurecr.cn")):
        return "acr"
    if _GAR_HOST.match(host):
        return "gar"
    if host in _DOCKER_HUB_HOSTS:
        return "dockerhub"
    return None


def detect(url: str | None) -> str | None:
    """The registry kind an image's host says (None: a host of no known kind, or no image)."""
    return _host_kind(_host(url))


def resolve(kind: str | None, url: str | None, *, has_auth: bool = False) -> str:
    """The kind in effect: `kind` itself, or for `auto`/None the host's (else `basic` when the
    spec has basic_auth, `none` when not). ValueError for an unknown kind."""
    if kind not in (None, AUTO) and kind not in PRESETS:
        raise ValueError(f"unknown registry kind {kind!r}: expected one of {', '.join((AUTO, *KINDS))}")
    if kind in (None, AUTO):
        return detect(url) or ("basic" if has_auth else "none")
    return str(kind)


def username_for(kind: str) -> str | None:
    """The username a kind fixes (`_json_key`, `AWS`), None when it is the user's own."""
    preset = PRESETS.get(kind)
    return preset.username if preset is not None else None


def choices() -> list[tuple[str, str]]:
    """(label, kind) for a dropdown: auto first, then the kinds."""
    return [("Auto (from the image's registry)", AUTO)] + [(PRESETS[k].label, k) for k in KINDS]


def explain(kind: str | None, url: str | None, *, has_auth: bool = False) -> str:
    """Where the password comes from for `kind` (auto: the kind the host says, named)."""
    effective = resolve(kind, url, has_auth=has_auth)
    text = PRESETS[effective].password_source
    if kind in (None, AUTO):
        found = detect(url)
        lead = f"Detected {PRESETS[found].label} from the image's host. " if found else ""
        return lead + text
    return text


def artifact_registry_note(url: str | None) -> str | None:
    """The note for an image on Databricks' Artifact Registry host (None for any other)."""
    host = _host(url)
    if host is None or not _ARTIFACT_REGISTRY_HOST.match(host):
        return None
    return (f"{host} is Databricks' Artifact Registry (Beta): it hands out 1-hour OAuth tokens through "
            "docker-credential-databricks (U2M OAuth profiles only), and its documented consumers are "
            "Sandbox custom images, AI Runtime and jobs' ai_runtime_task.docker_image_url; classic DCS "
            "clusters are not among them. Push the image to a registry the cluster can pull from with "
            "basic_auth or an instance profile.")


def notes(kind: str | None, spec: ClusterSpec) -> list[str]:
    """What `kind` (auto/None: the host's) and the spec's docker_image say together: a kind that
    does not fit the host, a username other than the kind's, ECR with basic_auth (12-hour
    token), ECR without basic_auth and without an instance profile, ACR with an Entra token
    (3 hours), an image on the Artifact Registry host."""
    image = spec.docker_image if isinstance(spec.docker_image, DockerImage) else None
    url = image.url if image is not None and isinstance(image.url, str) else None
    if not url:
        return []
    auth = image.basic_auth if image is not None and isinstance(image.basic_auth, BasicAuth) else None
    username = auth.username if auth is not None and isinstance(auth.username, str) else None
    host, found = _host(url), detect(url)
    effective = resolve(kind, url, has_auth=auth is not None)
    said: list[str] = []
    if (note := artifact_registry_note(url)) is not None:
        said.append(note)
    if kind not in (None, AUTO) and effective in ("dockerhub", "acr", "ecr", "gar") and found != effective:
        expected = {"dockerhub": "docker.io", "acr": "<name>.azurecr.io (or .azurecr.cn)",
                    "ecr": "<account>.dkr.ecr.<region>.amazonaws.com",
                    "gar": "<region>-docker.pkg.dev"}[effective]
        said.append(f"Registry auth is {PRESETS[effective].label}, but the image's host {host} is not "
                    f"{expected}" + (f" (it looks like {PRESETS[found].label})" if found else "")
                    + ": check the image or the registry kind.")
    if kind not in (None, AUTO) and PRESETS[effective].basic_auth and auth is None:
        said.append(f"Registry auth is {PRESETS[effective].label}, but docker_image has no basic_auth: give the "
                    "password as a {{secrets/<scope>/<key>}} reference (or --password-env VAR), or the pull "
                    "goes without credentials.")
    fixed = username_for(effective)
    if fixed and auth is not None and username and username != fixed \
            and not (effective == "gar" and username == "oauth2accesstoken"):
        said.append(f"{PRESETS[effective].label} expects the username {fixed}, not {username}.")
    if effective == "ecr" and auth is not None:
        said.append("ECR with basic_auth: a password from `aws ecr get-login-password` lasts 12 hours, so a node "
                    "that starts later (autoscaling, a restart, a replaced instance) cannot pull the image. Use "
                    "an instance profile allowed to read from ECR and no basic_auth (Registry: none).")
    if found == "ecr" and auth is None and not _instance_profile(spec):
        said.append("ECR without basic_auth pulls through the cluster's instance profile: set "
                    "aws_attributes.instance_profile_arn to a profile allowed to read from ECR; without it the "
                    "cluster has no credentials to pull with.")
    if effective == "acr" and username == ENTRA_TOKEN_USERNAME:
        said.append(f"ACR with the username {ENTRA_TOKEN_USERNAME} is an Entra access token, which lasts 3 "
                    "hours: a node that starts later cannot pull. Use a service principal's id and secret, or "
                    "a repository-scoped token.")
    return said


def _instance_profile(spec: ClusterSpec) -> bool:
    attributes = spec.aws_attributes
    return isinstance(attributes, Mapping) and bool(attributes.get("instance_profile_arn"))


def apply(spec: ClusterSpec, kind: str | None) -> tuple[ClusterSpec, list[str]]:
    """The spec with `kind`'s convention, and the notes (`notes`) to show with it.

    `none` takes basic_auth out; a kind that fixes the username (`gar`: `_json_key`, `ecr`:
    `AWS`) fills it in where basic_auth has none; auto and the other kinds leave basic_auth as
    it is. ValueError for an unknown kind."""
    image = spec.docker_image if isinstance(spec.docker_image, DockerImage) else None
    url = image.url if image is not None and isinstance(image.url, str) else None
    if image is None or not url:
        resolve(kind, None)  # an unknown kind is refused all the same
        return spec, []
    auth = image.basic_auth if isinstance(image.basic_auth, BasicAuth) else None
    effective = resolve(kind, url, has_auth=image.basic_auth is not None)
    if kind == "none":
        spec = spec.replace(docker_image=DockerImage(url, None, extra=dict(image.extra)))
    elif kind not in (None, AUTO) and (fixed := username_for(effective)) and auth is not None and not auth.username:
        spec = spec.replace(docker_image=DockerImage(url, BasicAuth(fixed, password=auth.password,
                                                                    password_env=auth.password_env,
                                                                    extra=dict(auth.extra)),
                                                     extra=dict(image.extra)))
    return spec, notes(kind, spec)

