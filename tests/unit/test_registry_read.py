"""adapters/registry.py: `current_digest` and `read_image`, what `dcs outdated` asks a registry.

A real HTTP server on 127.0.0.1 speaks the distribution API the way Docker Hub, GHCR and ACR
do (every first answer a 401 with a Bearer challenge, a token from the realm, then the
manifest or blob), serving an OCI index with a linux/amd64 image, a linux/arm64 one and a
BuildKit attestation. The real `docker-registry` is asked in tests/integration/test_outdated.py.
"""

from __future__ import annotations

import hashlib
import http.server
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from support.registry import serve_http

from dcs_magic.adapters import registry
from dcs_magic.errors import RegistryError

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Store:
    """What the fake registry serves: manifests and blobs by digest, tags, and what was asked."""

    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)
    digest_header: bool = True
    tamper: set[str] = field(default_factory=set)

    def blob(self, data: bytes) -> str:
        self.blobs[_digest(data)] = data
        return _digest(data)

    def manifest(self, body: dict[str, Any], media: str, tag: str | None = None) -> str:
        data = json.dumps(body).encode()
        self.manifests[_digest(data)] = (data, media)
        if tag:
            self.tags[tag] = _digest(data)
        return _digest(data)

    def image(self, config: dict[str, Any], layer_sizes: tuple[int, ...] = (1000, 2000)) -> str:
        config_digest = self.blob(json.dumps(config).encode())
        layers = [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + f"{i}" * 64,
                   "size": size} for i, size in enumerate(layer_sizes)]
        return self.manifest({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                              "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": 1},
                              "layers": layers}, OCI_MANIFEST)


def _handler(store: Store) -> type[http.server.BaseHTTPRequestHandler]:
    class Registry(http.server.BaseHTTPRequestHandler):
        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _answer(self) -> None:
            store.seen.append((self.command, self.path, self.headers.get("Authorization")))
            if self.path.startswith("/token"):
                self._send(200, json.dumps({"token": "t0ken"}).encode())
                return
            if self.headers.get("Authorization") != "Bearer t0ken":
                host = self.headers["Host"]
                self._send(401, headers={"WWW-Authenticate": f'Bearer realm="http://{host}/token",service="t",'
                                                            'scope="repository:team/base:pull"'})
                return
            _, _, repo1, repo2, kind, which = self.path.split("/")
            if kind == "manifests":
                digest = store.tags.get(which, which)
                if digest not in store.manifests:
                    self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}')
                    return
                data, media = store.manifests[digest]
                headers = {"Content-Type": media}
                if store.digest_header:
                    headers["Docker-Content-Digest"] = digest
                self._send(200, data, headers)
            elif which in store.blobs:
                data = store.blobs[which]
                self._send(200, data + b" " if which in store.tamper else data)
            else:
                self._send(404)

        do_GET = do_HEAD = _answer

        def log_message(self, *args: object) -> None:
            pass

    return Registry


@contextmanager
def serving(store: Store) -> Iterator[str]:
    with serve_http(_handler(store)) as host:
        yield host


def multi_arch(store: Store) -> tuple[str, str, str]:
    """An index (tag `1`) of linux/amd64, linux/arm64/v8 and an attestation; returns the
    index's, the amd64 image's and the arm64 image's digests."""
    amd64 = store.image({"architecture": "amd64", "os": "linux", "config": {"Env": ["PYTHON_VERSION=3.11.9"]},
                         "history": [{"created_by": "RUN pip install numpy==1.23.5"}]})
    arm64 = store.image({"architecture": "arm64", "variant": "v8", "os": "linux", "config": {}})
    attestation = store.image({"architecture": "unknown", "os": "unknown"})
    index = store.manifest({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": arm64, "size": 1, "platform": {"os": "linux", "architecture": "arm64",
                                                                             "variant": "v8"}},
        {"mediaType": OCI_MANIFEST, "digest": amd64, "size": 1, "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": OCI_MANIFEST, "digest": attestation, "size": 1,
         "platform": {"os": "unknown", "architecture": "unknown"}}]}, OCI_INDEX, tag="1")
    return index, amd64, arm64


def test_read_image_resolves_an_index_to_linux_amd64_and_reads_its_config() -> None:
    store = Store()
    index, amd64, _ = multi_arch(store)
    with serving(store) as host:
        assert registry.current_digest(f"{host}/team/base:1") == index
        store.seen.clear()
        image = registry.read_image(f"{host}/team/base@{index}")
    assert (image.digest, image.manifest, image.platforms) == (index, amd64, ("linux/arm64/v8", "linux/amd64"))
    assert image.config is not None and image.config["config"]["Env"] == ["PYTHON_VERSION=3.11.9"]
    assert (image.size, image.layers) == (3000, 2)
    # One token for the whole conversation: index, image manifest and config blob reuse it.
    assert [path.split("?")[0] for _, path, _ in store.seen] == [
        f"/v2/team/base/manifests/{index}", "/token", f"/v2/team/base/manifests/{index}",
        f"/v2/team/base/manifests/{amd64}", f"/v2/team/base/blobs/{image.config and _config_digest(store, amd64)}"]


def _config_digest(store: Store, manifest: str) -> str:
    return str(json.loads(store.manifests[manifest][0])["config"]["digest"])


def test_an_index_without_the_platform_has_no_config() -> None:
    store = Store()
    index, _, arm64 = multi_arch(store)
    with serving(store) as host:
        image = registry.read_image(f"{host}/team/base@{index}", platform="linux/s390x")
        single = registry.read_image(f"{host}/team/base@{arm64}")
    assert image.manifest is None and image.config is None and image.platforms == ("linux/arm64/v8", "linux/amd64")
    # A single-platform image is read as it is, whatever its platform: the caller compares it.
    assert single.manifest == arm64 and single.platforms == () and single.config is not None
    assert single.config["architecture"] == "arm64"


def test_a_body_that_does_not_match_its_digest_is_refused() -> None:
    store = Store()
    _, amd64, _ = multi_arch(store)
    store.tamper.add(_config_digest(store, amd64))
    with serving(store) as host, pytest.raises(RegistryError, match="does not match its digest"):
        registry.read_image(f"{host}/team/base@{amd64}")


def test_current_digest_without_the_header_hashes_the_manifest() -> None:
    store = Store(digest_header=False)
    index, _, _ = multi_arch(store)
    with serving(store) as host:
        assert registry.current_digest(f"{host}/team/base:1") == index


def test_a_missing_tag_and_a_closed_port_are_registry_errors() -> None:
    store = Store()
    multi_arch(store)
    with serving(store) as host, pytest.raises(RegistryError) as missing:
        registry.current_digest(f"{host}/team/base:2")
    assert missing.value.status == 404 and "404" in missing.value.message and "deleted or renamed" in missing.value.hint
    with pytest.raises(RegistryError) as closed:
        registry.current_digest("127.0.0.1:9/team/base:1", timeout=2)
    assert closed.value.status is None
    assert closed.value.message == "127.0.0.1:9 did not answer for 127.0.0.1:9/team/base:1: cannot connect (Connection refused)"
    with pytest.raises(RegistryError, match="cannot connect"):
        registry.read_image("127.0.0.1:9/team/base@sha256:" + "a" * 64, timeout=2)


def test_a_manifest_that_is_no_container_image_is_refused() -> None:
    store = Store()
    digest = store.manifest({"schemaVersion": 1, "name": "team/base", "fsLayers": []},
                            "application/vnd.docker.distribution.manifest.v1+prettyjws")
    with serving(store) as host, pytest.raises(RegistryError, match="is not a container image"):
        registry.read_image(f"{host}/team/base@{digest}")
