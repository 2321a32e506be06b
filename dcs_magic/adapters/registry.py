"""The registry HTTP API (distribution v2): the one client of a registry's own API.

    manifest_digest("127.0.0.1:5000/team/app:1")    -> "sha256:..." (what the tag serves now)
    current_digest("127.0.0.1:5000/base:1")           -> the same, or a RegistryError saying why not
    read_image("127.0.0.1:5000/base@sha256:...")      -> RemoteImage (linux/amd64 manifest + config JSON)
    fetch_manifest(ref, user, pw)                     -> ManifestAnswer (a fresh VM's pull, asked first)
    probe("myreg.example:5000/team/app:1", user, pw) -> RegistryProbe (does /v2/ answer, and to whom)
    requires_auth("127.0.0.1:5000/team/app@sha256:...") -> True / False / None (private image?)

Pushes and pulls go through the Docker engine (adapters/engine.py); this module asks the
registry directly only what the engine cannot say: the digest a tag serves (so a lock never
records a digest the registry does not hold), whether the registry answers from here with
a spec's credentials (`dcs doctor`), whether it serves an image to anyone (the launch form),
and what a base tag serves now and what that image is (`dcs outdated`: the manifest and the
config blob, no layer).

One scheme rule (`scheme`): plain http for a loopback registry (`localhost`, 127.0.0.0/8,
`[::1]`, with or without a port: `model.net.is_loopback`), https for every other. Docker Hub
names (`docker.io`) are asked at registry-1.docker.io, official images as `library/NAME`.

Credentials: the caller's username and password, else this machine's `docker login` as Docker
finds it (adapters/docker_login.py: `credHelpers`, `credsStore`, `auths` of config.json), looked
up at the registry's first 401, so a credential helper runs only for a registry that wants
credentials. A Bearer challenge (Docker Hub, ACR, GHCR, ...) is answered with a token from its
realm (an identity token from a helper: by the OAuth refresh-token grant, as Docker asks); a
Basic challenge gets them as basic auth.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import requests

from ..errors import RegistryError
from ..model.credentials import Secret, reveal
from ..model.imageref import DOCKER_HUB, ImageRef, parse_reference
from ..model.net import is_loopback
from .docker_login import TOKEN_USERNAME, DockerLogin, docker_login

__all__ = ["MANIFEST_TYPES", "ManifestAnswer", "RegistryProbe", "RemoteImage", "api_url", "current_digest",
           "docker_login_reads", "fetch_manifest", "manifest_digest", "network_reason", "probe", "read_image",
           "repository_path", "requires_auth", "scheme"]

DOCKER_HUB_API = "registry-1.docker.io"
# Without these a registry may answer with a converted (schema 1) manifest, whose digest
# differs from the one the engine reported when it pushed.
MANIFEST_TYPES = ("application/vnd.docker.distribution.manifest.v2+json, "
                  "application/vnd.docker.distribution.manifest.list.v2+json, "
                  "application/vnd.oci.image.manifest.v1+json, "
                  "application/vnd.oci.image.index.v1+json")
DIGEST_TIMEOUT_S = 30.0
PROBE_TIMEOUT_S = 10.0
ANONYMOUS_TIMEOUT_S = 3.0


@dataclass
class RegistryProbe:
    """What `GET <registry>/v2/` answered: HTTP status (None: no answer) and a reason."""

    url: str
    status: int | None
    reason: str = ""
    authenticated: bool = False


# -- where to ask ------------------------------------------------------------------------------


def scheme(registry: str) -> str:
    """`http` for a loopback registry (`localhost:5000`, `127.0.0.2:5000`, `[::1]:5000`),
    `https` for any other (`myreg.example:5000`, `docker.io`): the one rule."""
    return "http" if is_loopback(registry) else "https"


def api_url(image: str | ImageRef) -> str:
    """`https://<registry>/v2/` for an image reference (`http://` for a loopback registry;
    Docker Hub names go to registry-1.docker.io)."""
    ref = image if isinstance(image, ImageRef) else parse_reference(image)
    host = DOCKER_HUB_API if ref.registry == DOCKER_HUB else ref.registry
    return f"{scheme(ref.registry)}://{host}/v2/"


def repository_path(ref: ImageRef) -> str:
    """The repository as the registry API names it: Docker Hub's official images are
    `library/NAME`."""
    return f"library/{ref.path}" if ref.registry == DOCKER_HUB and "/" not in ref.path else ref.path


class _Login:
    """The credentials of one question: USERNAME/PASSWORD when both are given, else (with
    DOCKER) this machine's `docker login`, looked up at the first 401 (a credential helper runs
    only when the registry wants credentials, and once), then kept. Calling it gives them;
    RegistryError when the helper cannot answer."""

    def __init__(self, ref: ImageRef, username: str | None, password: Secret | None, *, docker: bool = True,
                 login: DockerLogin | None = None) -> None:
        self._login = login or (DockerLogin(username, password, "given") if username and password is not None
                                else None)
        self._registry = ref.registry if docker and self._login is None else None

    def __call__(self) -> DockerLogin | None:
        if self._registry is not None:
            self._login, self._registry = docker_login(self._registry), None
        return self._login


# -- what to ask -------------------------------------------------------------------------------


@dataclass
class ManifestAnswer:
    """What the registry answered for one manifest: HTTP status (None: no answer), the
    digest it serves (Docker-Content-Digest) and its own words (the `errors[].message`s of a
    distribution error body, else the reason phrase, or the network error)."""

    url: str
    status: int | None
    digest: str | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200


def manifest_digest(reference: str | ImageRef, username: str | None = None, password: Secret | None = None,
                    *, timeout: float = DIGEST_TIMEOUT_S) -> str | None:
    """The digest the registry serves for REFERENCE's tag (HEAD /v2/<repo>/manifests/<tag>
    with the docker v2 / OCI Accept headers); None when the registry does not say.

    Credentials: `username`/`password`, else this machine's `docker login` (credential
    helpers included). Basic and bearer-token registries are both handled. Raises
    requests.RequestException (an HTTPError for an error status), ValueError (a token answer
    that is not JSON) and RegistryError (a credential helper that cannot answer).
    """
    ref = reference if isinstance(reference, ImageRef) else parse_reference(reference)
    auth = _Login(ref, username, password)
    with requests.Session() as session:
        answer = _ask_manifest(session, "HEAD", ref, ref.tag or "latest", auth, timeout)
        answer.raise_for_status()
        digest = answer.headers.get("Docker-Content-Digest")
        return str(digest) if digest is not None else None


def fetch_manifest(reference: str | ImageRef, username: str | None = None, password: Secret | None = None,
                   *, timeout: float = DIGEST_TIMEOUT_S) -> ManifestAnswer:
    """Ask for REFERENCE's manifest (its digest when pinned, else its tag) as a fresh
    cluster VM does: with exactly `username`/`password` (both None: anonymously), never with
    this machine's `docker login`. Never raises for the registry's or the network's answer:
    that is the answer."""
    ref = reference if isinstance(reference, ImageRef) else parse_reference(reference)
    auth = _Login(ref, username, password, docker=False)
    url = _url(ref, "manifests", ref.digest or ref.tag or "latest")
    try:
        with requests.Session() as session:
            answer = _ask_manifest(session, "GET", ref, ref.digest or ref.tag or "latest", auth, timeout)
            digest = answer.headers.get("Docker-Content-Digest")
            return ManifestAnswer(url, answer.status_code, str(digest) if digest else None, _registry_words(answer))
    except (requests.RequestException, ValueError) as exc:
        return ManifestAnswer(url, None, None, network_reason(exc))


def docker_login_reads(reference: str | ImageRef, *, timeout: float = DIGEST_TIMEOUT_S) -> str | None:
    """Where this machine's `docker login` for REFERENCE's registry lives (`docker-credential-NAME`
    or `config.json auths`) when it is allowed to read REFERENCE's manifest; None when there is
    no login, its helper cannot answer, or the registry refuses it too. For a diagnosis only:
    a cluster never has this login (`fetch_manifest` asks as the cluster does)."""
    ref = reference if isinstance(reference, ImageRef) else parse_reference(reference)
    try:
        login = docker_login(ref.registry, timeout=timeout)
        if login is None:
            return None
        with requests.Session() as session:
            answer = _ask_manifest(session, "HEAD", ref, ref.digest or ref.tag or "latest",
                                   _Login(ref, None, None, login=login), timeout)
    except (RegistryError, requests.RequestException, ValueError):
        return None
    return login.source if answer.status_code == 200 else None


def _ask_manifest(session: requests.Session, method: str, ref: ImageRef, which: str,
                  auth: _Login, timeout: float) -> requests.Response:
    """One manifest request, answering a 401's challenge (see `_ask`)."""
    url = _url(ref, "manifests", which)
    return _ask(session, method, url, auth, timeout, {"Accept": MANIFEST_TYPES})


def _ask(session: requests.Session, method: str, url: str, auth: _Login, timeout: float,
         headers: dict[str, str], *, stream: bool = False) -> requests.Response:
    """One request, answering a 401's challenge: a Bearer one by fetching a token at its realm
    with `auth()` (`_grant`; anonymously without), a Basic one by sending `auth()`. What was won
    stays on SESSION for the next request of the same conversation, so a manifest, its
    platform's manifest and the config blob cost one token (requests drops it on a redirect to
    another host, such as a blob store's signed URL)."""
    answer = session.request(method, url, headers=headers, timeout=timeout, stream=stream)
    challenge = answer.headers.get("WWW-Authenticate", "")
    if answer.status_code == 401 and challenge.lower().startswith("bearer"):
        answer.close()
        params = _challenge(challenge)
        realm = params.pop("realm", "")
        granted = _grant(session, realm, params, auth(), timeout)
        if granted.status_code != 200:
            return granted  # the token service refused these credentials: that is the answer
        token = granted.json()
        session.headers["Authorization"] = f"Bearer {token.get('token') or token.get('access_token')}"
        answer = session.request(method, url, headers=headers, timeout=timeout, stream=stream)
    elif answer.status_code == 401 and _basic(auth()):
        answer.close()
        session.auth = _basic(auth())
        answer = session.request(method, url, headers=headers, timeout=timeout, stream=stream)
    return answer


def _basic(auth: DockerLogin | None) -> tuple[str, str] | None:
    """AUTH as basic auth, revealed for the request being built; None for none or an identity
    token (which is no password)."""
    return (auth.username, auth.password.reveal()) if auth is not None and not auth.identity_token else None


def _grant(session: requests.Session, realm: str, params: dict[str, str], auth: DockerLogin | None,
           timeout: float) -> requests.Response:
    """A token request at a Bearer challenge's REALM, as Docker makes it: a GET with a password
    as basic auth (anonymous without); an identity token by the OAuth refresh-token grant (a
    form POST)."""
    no_token = {"Authorization": None}  # not the token of an earlier answer
    if auth is not None and auth.identity_token:
        form = {**params, "grant_type": "refresh_token", "client_id": "dcs-magic",
                "refresh_token": auth.password.reveal()}
        return session.post(realm, data=form, timeout=timeout, headers=no_token)
    return session.get(realm, params=params, auth=_basic(auth), timeout=timeout,
                       headers=no_token)


def _registry_words(answer: requests.Response) -> str:
    """The registry's own explanation: `errors[].message` (with code) of a distribution error
    body, else `<status> <reason>`."""
    if answer.status_code == 200:
        return "OK"
    try:
        errors = answer.json().get("errors") or []
        said = "; ".join(f"{e.get('code', '').lower()}: {e.get('message', '')}".strip(": ") for e in errors
                         if isinstance(e, dict))
    except (ValueError, AttributeError):
        said = ""
    return f"{answer.status_code} {answer.reason or ''}".strip() + (f" ({said})" if said else "")


def requires_auth(reference: str | ImageRef, *, timeout: float = ANONYMOUS_TIMEOUT_S) -> bool | None:
    """Whether REFERENCE's registry refuses its manifest to a client without credentials, as a
    cluster pulling with no `basic_auth` would be: True for 401/403 (after an anonymous token
    from a Bearer challenge's realm, as `docker pull` asks), False when it serves it, None
    when it cannot tell (no answer within `timeout`, 404, any other status).

    Why: the launch form warns before Create that a private image without registry auth fails
    its start (a paid failure on Databricks), also when the push used Docker's own login and
    so left no username behind. `fetch_manifest` asked anonymously: one or two short requests;
    never raises.
    """
    try:
        answer = fetch_manifest(reference, timeout=timeout)
    except ValueError:  # no image reference: nothing to ask
        return None
    if answer.status in (401, 403):
        return True
    return False if answer.ok else None


# -- a base image's record, for `dcs outdated` (nothing pulled into an engine, nothing run) -------

INDEX_TYPES = ("application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.oci.image.index.v1+json")
IMAGE_MANIFEST_TYPES = ("application/vnd.docker.distribution.manifest.v2+json",
                        "application/vnd.oci.image.manifest.v1+json")
CONFIG_TYPES = ("application/vnd.docker.container.image.v1+json", "application/vnd.oci.image.config.v1+json")
MANIFEST_MAX_BYTES = 4 << 20  # what registries accept for a manifest
CONFIG_MAX_BYTES = 16 << 20


@dataclass(frozen=True)
class RemoteImage:
    """One image as its registry records it: `digest` is what the reference served (an index
    or an image manifest), `manifest` the image manifest of the platform asked for (the same
    digest for a single-platform image; None when an index has no image for it), `platforms`
    an index's platforms (`linux/amd64`, ...; attestations left out), `config` the image config
    JSON (Env, Labels, User, history, os/architecture), `size` the layers' compressed bytes."""

    reference: str
    digest: str
    platforms: tuple[str, ...] = ()
    manifest: str | None = None
    config: dict[str, Any] | None = None
    size: int | None = None
    layers: int | None = None


def current_digest(reference: str | ImageRef, username: str | None = None, password: Secret | None = None,
                   *, timeout: float = DIGEST_TIMEOUT_S) -> str:
    """The digest REFERENCE's tag serves now (HEAD /v2/<repo>/manifests/<tag>, a GET when the
    registry leaves Docker-Content-Digest out), asked as `manifest_digest` asks: the caller's
    credentials, else this machine's `docker login` (credential helpers included).

    Raises RegistryError when the registry cannot say: `status` its HTTP status (404: it has
    no such tag), None when nothing answered (the reason in a few words)."""
    ref = reference if isinstance(reference, ImageRef) else parse_reference(reference)
    auth = _Login(ref, username, password)
    url = _url(ref, "manifests", ref.tag or "latest")
    with _conversation(ref, url) as session:
        answer = _ask_manifest(session, "HEAD", ref, ref.tag or "latest", auth, timeout)
        _raise_for(answer, ref, url)
        digest = answer.headers.get("Docker-Content-Digest")
        if digest:
            return str(digest)
        _, digest, _ = _manifest(session, ref, ref.tag or "latest", auth, timeout)
        return digest


def read_image(reference: str | ImageRef, *, platform: str = "linux/amd64", username: str | None = None,
               password: Secret | None = None, timeout: float = DIGEST_TIMEOUT_S) -> RemoteImage:
    """REFERENCE's manifest (by its digest, else its tag), PLATFORM's image manifest when it is
    an index, and that image's config blob (`GET /v2/<repo>/blobs/<config digest>`): what
    `docker image inspect` would say of it, read without pulling a layer. Each body is checked
    against its digest. Credentials as `current_digest`.

    Raises RegistryError (status None: no answer) for any failure, and for a manifest that is
    no container image (an artifact, a schema 1 manifest)."""
    ref = reference if isinstance(reference, ImageRef) else parse_reference(reference)
    auth = _Login(ref, username, password)
    which = ref.digest or ref.tag or "latest"
    want_os, _, want_arch = platform.partition("/")
    with _conversation(ref, _url(ref, "manifests", which)) as session:
        body, digest, media = _manifest(session, ref, which, auth, timeout)
        platforms: tuple[str, ...] = ()
        manifest = digest
        if media in INDEX_TYPES:
            entries = [m for m in body.get("manifests") or [] if isinstance(m, dict)]
            platforms = tuple(p for p in (_platform_of(m) for m in entries) if p and not p.startswith("unknown"))
            chosen = next((m for m in entries if isinstance(m.get("platform"), dict)
                           and m["platform"].get("os") == want_os
                           and m["platform"].get("architecture") == want_arch), None)
            if chosen is None:
                return RemoteImage(str(ref), digest, platforms)
            body, manifest, media = _manifest(session, ref, str(chosen.get("digest")), auth, timeout)
        if media not in IMAGE_MANIFEST_TYPES:
            raise RegistryError(f"{ref} is not a container image (its manifest is {media or 'of no known type'})",
                                url=_url(ref, "manifests", manifest))
        config_digest = str((body.get("config") or {}).get("digest") or "")
        config_url = _url(ref, "blobs", config_digest)
        data, _ = _get(session, ref, config_url, auth, timeout, {}, CONFIG_MAX_BYTES, config_digest)
        config = _json_object(data, f"the config blob of {ref}", config_url)
        layers = [layer for layer in body.get("layers") or [] if isinstance(layer, dict)]
        size = sum(int(layer.get("size") or 0) for layer in layers)
        return RemoteImage(str(ref), digest, platforms, manifest, config, size, len(layers))


def _url(ref: ImageRef, kind: str, which: str) -> str:
    """`<api>/<repo>/manifests/<tag or digest>` or `<api>/<repo>/blobs/<digest>`."""
    return f"{api_url(ref)}{repository_path(ref)}/{kind}/{which}"


def _json_object(data: bytes, what: str, url: str) -> dict[str, Any]:
    """DATA as a JSON object, or RegistryError saying WHAT is not one."""
    try:
        found = json.loads(data)
    except ValueError:
        found = None
    if not isinstance(found, dict):
        raise RegistryError(f"{what} is not a JSON object", url=url)
    return found


def _platform_of(entry: dict[str, Any]) -> str | None:
    found = entry.get("platform")
    if not isinstance(found, dict) or not found.get("os") or not found.get("architecture"):
        return None
    return "/".join(str(found[k]) for k in ("os", "architecture", "variant") if found.get(k))


class _conversation:
    """A requests.Session whose network failures become RegistryError (status None)."""

    def __init__(self, ref: ImageRef, url: str) -> None:
        self.ref, self.url = ref, url
        self.session = requests.Session()

    def __enter__(self) -> requests.Session:
        return self.session

    def __exit__(self, etype: type[BaseException] | None, value: BaseException | None, tb: object) -> None:
        self.session.close()
        if isinstance(value, (requests.RequestException, ValueError)):
            raise RegistryError(f"{self.ref.registry} did not answer for {self.ref}: {network_reason(value)}",
                                url=self.url, hint="check that the registry is up and reachable from here") from None


def _raise_for(answer: requests.Response, ref: ImageRef, url: str) -> None:
    if answer.status_code == 200:
        return
    status = answer.status_code
    hint = {401: f"log in with `docker login {ref.registry}` (dcs asks Docker's config.json and its "
                 "credential helpers, as Docker does)",
            404: "the registry has no such tag or repository (deleted or renamed?)",
            429: "the registry limits requests: try again later"}.get(status if status != 403 else 401, "")
    raise RegistryError(f"{ref.registry} answered {_registry_words(answer)} for {ref}", status=status, url=url,
                        hint=hint)


def _get(session: requests.Session, ref: ImageRef, url: str, auth: _Login, timeout: float,
         headers: dict[str, str], cap: int, digest: str | None) -> tuple[bytes, requests.Response]:
    """GET URL's body (at most CAP bytes), checked against DIGEST when it is a sha256 one."""
    answer = _ask(session, "GET", url, auth, timeout, headers, stream=True)
    with answer:
        _raise_for(answer, ref, url)
        body = b""
        for chunk in answer.iter_content(64 << 10):
            body += chunk
            if len(body) > cap:
                raise RegistryError(f"{url} answered more than {cap >> 20} MiB; that is no manifest or config",
                                    status=answer.status_code, url=url)
    if digest and digest.startswith("sha256:") and hashlib.sha256(body).hexdigest() != digest[len("sha256:"):]:
        raise RegistryError(f"{url} answered content that does not match its digest {digest}", url=url)
    return body, answer


def _manifest(session: requests.Session, ref: ImageRef, which: str, auth: _Login,
              timeout: float) -> tuple[dict[str, Any], str, str]:
    """(manifest JSON, its digest, its media type) for a tag or digest WHICH."""
    url = _url(ref, "manifests", which)
    pinned = which if which.startswith("sha256:") else None
    headers = {"Accept": MANIFEST_TYPES}
    data, answer = _get(session, ref, url, auth, timeout, headers, MANIFEST_MAX_BYTES, pinned)
    body = _json_object(data, f"the manifest of {ref} ({which})", url)
    digest = pinned or answer.headers.get("Docker-Content-Digest") or f"sha256:{hashlib.sha256(data).hexdigest()}"
    media = answer.headers.get("Content-Type", "").split(";")[0].strip()
    if media not in (*INDEX_TYPES, *IMAGE_MANIFEST_TYPES):
        media = str(body.get("mediaType") or ("application/vnd.oci.image.index.v1+json" if "manifests" in body
                                              else "application/vnd.oci.image.manifest.v1+json" if "config" in body
                                              else media))
    return body, str(digest), media


def probe(image: str | ImageRef, username: str | None = None, password: Secret | str | None = None, *,
          timeout: float = PROBE_TIMEOUT_S) -> RegistryProbe:
    """`GET /v2/` on the image's registry with basic auth; for a registry that answers 401
    with a Bearer challenge (Docker Hub, ACR, ...) the credentials are tried on its token
    endpoint (a USERNAME of `<token>`: PASSWORD is an identity token, as a credential helper
    says). Never raises for network errors: they are the answer."""
    ref = image if isinstance(image, ImageRef) else parse_reference(image)
    url = api_url(ref)
    given = reveal(password)
    auth = DockerLogin(username, Secret(given), "given", username == TOKEN_USERNAME) if username and given else None
    try:
        response = requests.get(url, auth=_basic(auth), timeout=timeout)
        if response.status_code == 401 and auth:
            challenge = response.headers.get("WWW-Authenticate", "")
            if challenge.lower().startswith("bearer"):
                return _token_probe(url, challenge, auth, ref, timeout)
        return RegistryProbe(url, response.status_code, response.reason or "", authenticated=bool(auth)
                             and response.status_code == 200)
    except requests.RequestException as exc:
        return RegistryProbe(url, None, network_reason(exc))


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


def network_reason(exc: BaseException) -> str:
    """Why a request got no answer, in a few words: `cannot connect (Connection refused)`,
    `timed out`, `TLS failed (...)`, rather than urllib3's nested repr of the pool."""
    text = str(exc)
    if isinstance(exc, requests.Timeout):
        return "timed out"
    found = _ERRNO.search(text) or re.search(r"(Name or service not known|Temporary failure in name resolution"
                                              r"|nodename nor servname provided)", text)
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS failed ({text.splitlines()[0][-160:]})"
    if isinstance(exc, requests.ConnectionError):
        return f"cannot connect ({found[1].strip() if found else 'no answer'})"
    return f"{type(exc).__name__}: {text[:200]}"


def _challenge(header: str) -> dict[str, str]:
    """The fields of a `WWW-Authenticate: Bearer realm="...",service="...",scope="..."` header
    (a scope may hold commas: `repository:team/app:pull,push`)."""
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


def _token_probe(url: str, challenge: str, auth: DockerLogin, ref: ImageRef, timeout: float) -> RegistryProbe:
    fields = _challenge(challenge)
    realm = fields.get("realm")
    if not realm:
        return RegistryProbe(url, 401, "Bearer challenge without a realm")
    params = {"service": fields.get("service", ""), "scope": f"repository:{repository_path(ref)}:pull"}
    with requests.Session() as session:
        response = _grant(session, realm, params, auth, timeout)
    return RegistryProbe(url, response.status_code, response.reason or "",
                         authenticated=response.status_code == 200)
