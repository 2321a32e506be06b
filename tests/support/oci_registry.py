"""An in-memory distribution registry on 127.0.0.1 that answers as Docker Hub, GHCR and ACR do.

Every first answer is a 401 with a Bearer challenge; the realm gives a token; then manifests
(with Content-Type and, unless `digest_header=False`, Docker-Content-Digest) and blobs are
served from a `Store`. `Store.image(config)` adds an OCI image (config blob + manifest),
`multi_arch(store)` an OCI index of linux/amd64, linux/arm64/v8 and a BuildKit attestation.
`Store.seen` records (method, path, Authorization) of every request; `Store.tamper` names blobs
served with one byte too many. With `Store.refresh_token` set, the realm gives a token only for
that identity token, sent as Docker sends one (a form POST, `grant_type=refresh_token`); each
form it got is in `Store.grants`. The real `docker-registry` (support/registry.py) stores only what
the engine pushes; this one serves indexes and bodies the tests write by hand.
"""

from __future__ import annotations

import hashlib
import http.server
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from support.registry import serve_http

__all__ = ["OCI_CONFIG", "OCI_INDEX", "OCI_MANIFEST", "Store", "config_digest", "index", "multi_arch", "serving"]

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
    refresh_token: str | None = None
    grants: list[dict[str, str]] = field(default_factory=list)

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
                self._token()
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

        def _token(self) -> None:
            if store.refresh_token is None:
                self._send(200, json.dumps({"token": "t0ken"}).encode())
                return
            form = dict(parse_qsl(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()))
            store.grants.append(form)
            if self.command == "POST" and form.get("grant_type") == "refresh_token" \
                    and form.get("refresh_token") == store.refresh_token:
                self._send(200, json.dumps({"access_token": "t0ken"}).encode())
            else:
                self._send(401)

        do_GET = do_HEAD = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    return Registry


@contextmanager
def serving(store: Store) -> Iterator[str]:
    with serve_http(_handler(store)) as host:
        yield host


def index(store: Store, platforms: dict[str, str], tag: str | None = None) -> str:
    """An OCI index of PLATFORMS (`"linux/arm64/v8"` -> image digest), tagged TAG; its digest."""
    entries = []
    for platform, digest in platforms.items():
        os_name, arch, *variant = platform.split("/")
        entries.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": 1,
                        "platform": {"os": os_name, "architecture": arch, **({"variant": variant[0]} if variant else {})}})
    return store.manifest({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}, OCI_INDEX, tag=tag)


def multi_arch(store: Store, python: str = "3.11.9", tag: str = "1") -> tuple[str, str, str]:
    """An index (tagged TAG) of linux/arm64/v8, linux/amd64 (PYTHON_VERSION=PYTHON) and a
    BuildKit attestation; returns the index's, the amd64 image's and the arm64 image's digests."""
    amd64 = store.image({"architecture": "amd64", "os": "linux", "config": {"Env": [f"PYTHON_VERSION={python}"]},
                         "history": [{"created_by": "RUN pip install numpy==1.23.5"}]})
    arm64 = store.image({"architecture": "arm64", "variant": "v8", "os": "linux", "config": {}})
    attestation = store.image({"architecture": "unknown", "os": "unknown"})
    digest = index(store, {"linux/arm64/v8": arm64, "linux/amd64": amd64, "unknown/unknown": attestation}, tag=tag)
    return digest, amd64, arm64


def config_digest(store: Store, manifest: str) -> str:
    """The config blob digest of the image manifest MANIFEST."""
    return str(json.loads(store.manifests[manifest][0])["config"]["digest"])
