"""A real `docker-registry` (distribution 2.x) on 127.0.0.1, plain or behind htpasswd.

The engine treats 127.0.0.0/8 registries as insecure (plain HTTP) without any daemon
setting, so `docker push 127.0.0.1:PORT/repo:tag` works against these as they are.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import requests

__all__ = ["MANIFEST_ACCEPT", "DigestRewritingProxy", "Registry", "RegistryError", "StallingProxy",
           "digest_rewriting_proxy", "http_answer", "manifest_refusing_registry", "push_manifest", "rate_limited_registry",
           "serve_http", "stalling_proxy", "start_registry", "write_htpasswd"]

# Without these the registry may answer with a converted (schema 1) manifest, whose digest
# differs from the one the engine reported when it pushed.
MANIFEST_ACCEPT = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
])
_PORT_ATTEMPTS = 3
_MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


class RegistryError(RuntimeError):
    """The registry answered a helper's request with an error (`status`, `body`)."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class Registry:
    """A running registry process and helpers that read its HTTP API (authenticated).

    `host` is what image references use ("127.0.0.1:PORT"), `url` is the HTTP base.
    `username`/`password` are None for a plain registry. The password never appears in
    `repr()`, so a failing assertion that prints the fixture does not print it.
    """

    def __init__(self, proc: subprocess.Popen, port: int, root: Path, log_path: Path,
                 username: str | None = None, password: str | None = None) -> None:
        self.proc = proc
        self.port = port
        self.root = root
        self.log_path = log_path
        self.username = username
        self.password = password
        self.host = f"127.0.0.1:{port}"
        self.url = f"http://{self.host}"
        self._http = requests.Session()
        self._http.trust_env = False  # no proxies or ~/.netrc for a loopback registry
        if username is not None:
            self._http.auth = (username, password or "")

    def __repr__(self) -> str:
        auth = f", username={self.username!r}" if self.username else ""
        return f"Registry(url={self.url!r}{auth})"

    @property
    def auth_config(self) -> dict[str, str] | None:
        """docker-py `auth_config` for pushes to this registry (None when it needs none)."""
        if self.username is None:
            return None
        return {"username": self.username, "password": self.password or "",
                "serveraddress": self.host}

    def _get(self, path: str, *, method: str = "GET", headers: dict | None = None
             ) -> requests.Response:
        try:
            resp = self._http.request(method, self.url + path, headers=headers, timeout=10)
        except requests.RequestException as exc:
            raise RegistryError(f"{method} {self.url}{path} failed: {exc}") from exc
        if resp.status_code >= 400:
            body = resp.text[:500]
            raise RegistryError(f"{method} {self.url}{path} -> HTTP {resp.status_code}: {body}",
                                status=resp.status_code, body=body)
        return resp

    def manifest_digest(self, repo: str, tag: str) -> str:
        """The registry's own digest (Docker-Content-Digest) of repo:tag's manifest."""
        resp = self._get(f"/v2/{repo}/manifests/{tag}", method="HEAD",
                         headers={"Accept": MANIFEST_ACCEPT})
        digest = resp.headers.get("Docker-Content-Digest")
        if not digest:
            raise RegistryError(f"{self.url}: no Docker-Content-Digest for {repo}:{tag}",
                                status=resp.status_code)
        return digest

    def tags(self, repo: str) -> list[str]:
        """repo's tags, sorted; [] when the registry has never seen repo."""
        try:
            resp = self._get(f"/v2/{repo}/tags/list")
        except RegistryError as exc:
            if exc.status == 404:
                return []
            raise
        return sorted(resp.json().get("tags") or [])

    def catalog(self) -> list[str]:
        """Every repository the registry holds (its default page maximum, 1000), sorted."""
        return sorted(self._get("/v2/_catalog?n=1000").json().get("repositories") or [])

    def stop(self) -> None:
        """Terminate the registry process (kill it if it ignores SIGTERM)."""
        self._http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def write_htpasswd(path: Path, username: str, password: str) -> None:
    """A bcrypt htpasswd file (the registry rejects every other hash). The password goes
    through stdin, not argv, so it does not show in `ps`."""
    if shutil.which("htpasswd") is None:
        raise RegistryError("`htpasswd` is missing: run `bash scripts/dev-env.sh deps` "
                            "(installs apache2-utils).")
    out = subprocess.run(["htpasswd", "-niB", username], input=password, text=True,
                         capture_output=True, check=True).stdout
    path.write_text(out.strip() + "\n")


def _config(port: int, storage: Path, htpasswd: Path | None) -> dict:
    config: dict = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
    }
    if htpasswd is not None:
        config["auth"] = {"htpasswd": {"realm": "dcs-test", "path": str(htpasswd)}}
    return config


def _wait_ready(registry: Registry, timeout_s: float) -> bool:
    """True once /v2/ answers (200, or 401 behind auth); False if the process died."""
    deadline = time.monotonic() + timeout_s
    probe = requests.Session()
    probe.trust_env = False
    while time.monotonic() < deadline:
        if registry.proc.poll() is not None:
            return False
        try:
            if probe.get(registry.url + "/v2/", timeout=2).status_code in (200, 401):
                return True
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RegistryError(f"docker-registry on {registry.host} did not answer within "
                        f"{timeout_s:.0f} s\n--- {registry.log_path} ---\n{_tail(registry.log_path)}")


def start_registry(workdir: Path, *, username: str | None = None, password: str | None = None,
                   timeout_s: float = 30.0) -> Registry:
    """Start `docker-registry serve` with its storage under workdir; wait until it answers.

    With `username`, the registry requires HTTP basic auth against a bcrypt htpasswd file
    and the returned helpers authenticate. A port taken between choosing and binding it is
    retried on another port.
    """
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RegistryError("`docker-registry` is missing: run `bash scripts/dev-env.sh deps`.")
    htpasswd = None
    if username is not None:
        htpasswd = workdir / "htpasswd"
        write_htpasswd(htpasswd, username, password or "")
    log_path = workdir / "registry.log"
    for _ in range(_PORT_ATTEMPTS):
        port = _free_port()
        config_path = workdir / "config.yml"  # JSON is YAML; no quoting surprises in paths
        config_path.write_text(json.dumps(_config(port, workdir / "storage", htpasswd), indent=2))
        with log_path.open("ab") as log:
            proc = subprocess.Popen([binary, "serve", str(config_path)], stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT)
        registry = Registry(proc, port, workdir / "storage", log_path, username, password)
        try:
            if _wait_ready(registry, timeout_s):
                break
        except BaseException:
            registry.stop()
            raise
        if "address already in use" not in _tail(log_path):
            raise RegistryError(f"docker-registry exited with status {proc.returncode}\n"
                                f"--- {log_path} ---\n{_tail(log_path)}")
    else:
        raise RegistryError(f"docker-registry found no free port in {_PORT_ATTEMPTS} attempts")
    if username is not None:
        try:
            registry.catalog()  # a rejected htpasswd file fails here, not in the first push
        except RegistryError:
            registry.stop()
            raise
    return registry


def _upload_blob(base: str, repo: str, data: bytes, auth: tuple[str, str] | None = None) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = requests.post(f"{base}/v2/{repo}/blobs/uploads/", timeout=10, auth=auth)
    start.raise_for_status()
    location = start.headers["Location"]
    location = location if location.startswith("http") else base + location
    done = requests.put(location, params={"digest": digest}, data=data, auth=auth,
                        headers={"Content-Type": "application/octet-stream"}, timeout=10)
    done.raise_for_status()
    return digest


def push_manifest(registry: Any, repo: str, tag: str, marker: str) -> str:
    """Put a small image (one config, one layer) at repo:tag over HTTP; its manifest digest."""
    auth = (registry.username, registry.password) if registry.password else None
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"m": marker}},
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    layer = marker.encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": _MANIFEST_V2,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config),
                   "digest": _upload_blob(registry.url, repo, config, auth)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(layer),
                    "digest": _upload_blob(registry.url, repo, layer, auth)}],
    }).encode()
    answer = requests.put(f"{registry.url}/v2/{repo}/manifests/{tag}", data=manifest, auth=auth,
                          headers={"Content-Type": _MANIFEST_V2}, timeout=10)
    answer.raise_for_status()
    return str(answer.headers["Docker-Content-Digest"])


@contextmanager
def serve_http(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` on 127.0.0.1 (a free port) in a thread; yields "127.0.0.1:PORT"."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def http_answer(status: int, body: bytes, content_type: str,
                headers: dict[str, str] | None = None) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 answering every request (any method) STATUS with BODY
    (and HEADERS); yields its "127.0.0.1:PORT" and stops it on exit."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _answer

        def log_message(self, *args: object) -> None:
            pass

    with serve_http(Handler) as host:
        yield host


@contextmanager
def manifest_refusing_registry(status: int, body: bytes, content_type: str) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 that takes a push's blobs (the upload protocol: POST,
    PATCH, PUT ?digest=) and answers the manifest PUT with STATUS and BODY. The engine retries a
    failed layer upload (5 times, with back-off: about 50 s) but not the manifest, so the push
    fails at once with the registry's answer; yields its "127.0.0.1:PORT"."""
    uploaded: set[str] = set()
    sizes: dict[str, int] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _drain(self) -> int:
            """Read the request's body; its length."""
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                total = 0
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    self.rfile.read(size + 2)  # the chunk and its CRLF
                    total += size
                    if size == 0:
                        return total
            length = int(self.headers.get("Content-Length") or 0)
            return len(self.rfile.read(length)) if length else 0

        def _send(self, code: int, payload: bytes = b"", ctype: str = "application/json",
                  extra: dict[str, str] | None = None, *, drained: bool = False) -> None:
            if not drained:
                self._drain()
            self.send_response(code)
            self.send_header("Docker-Distribution-API-Version", "registry/2.0")
            self.send_header("Content-Type", ctype)
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _upload(self, received: int) -> dict[str, str]:
            """Headers of an upload's answer: where it goes on, and how much of it arrived."""
            base = self.path.split("?")[0]
            location = base if "/uploads/" in base and not base.endswith("/uploads/") \
                else base.rstrip("/") + "/" + secrets.token_hex(8)
            sizes[location] = sizes.get(location, 0) + received
            return {"Location": location, "Range": f"0-{max(sizes[location] - 1, 0)}",
                    "Docker-Upload-UUID": location.rsplit("/", 1)[-1]}

        def do_GET(self) -> None:
            self._send(200, b"{}") if self.path.rstrip("/") == "/v2" else self._send(404, b"{}")

        def do_HEAD(self) -> None:  # a blob exists once this server took it
            digest = self.path.rsplit("/", 1)[-1]
            if digest in uploaded:
                self._send(200, extra={"Docker-Content-Digest": digest})
            else:
                self._send(404)

        def do_POST(self) -> None:
            self._send(202, extra=self._upload(self._drain()), drained=True)

        def do_PATCH(self) -> None:
            self._send(202, extra=self._upload(self._drain()), drained=True)

        def do_PUT(self) -> None:
            if "/manifests/" in self.path:
                self._send(status, body, content_type)
            else:  # the blob upload's end: PUT .../uploads/<id>?digest=sha256:...
                digest = self.path.split("digest=", 1)[-1].split("&")[0].replace("%3A", ":")
                uploaded.add(digest)
                self._send(201, extra={"Docker-Content-Digest": digest,
                                       "Location": f"/v2/blobs/{digest}"})

        def log_message(self, *args: object) -> None:
            pass

    with serve_http(Handler) as host:
        yield host


def rate_limited_registry() -> AbstractContextManager[str]:
    """A real HTTP server on 127.0.0.1 answering every request 429, like a rate-limited registry
    (`with rate_limited_registry() as host:`)."""
    body = json.dumps({"errors": [{"code": "TOOMANYREQUESTS", "message": "pull rate limit"}]}).encode()
    return http_answer(429, body, "application/json", {"Retry-After": "60"})


class _TcpProxy:
    """A TCP proxy on 127.0.0.1 in front of a local registry: bytes go through both ways (the
    Host header is kept, so upload `Location`s point back at the proxy), each chunk handed to
    `_passing(data, to_registry, connection)` first; `connection` is `_new_connection()`'s, one
    per client connection. `host` is "127.0.0.1:PORT"; `close()` ends it all."""

    def __init__(self, upstream_port: int, name: str) -> None:
        self.upstream_port = upstream_port
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self._server.getsockname()[1]}"
        threading.Thread(target=self._accept, name=name, daemon=True).start()

    def _new_connection(self) -> Any:
        return None

    def _passing(self, data: bytes, to_registry: bool, connection: Any) -> bytes:
        return data

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            connection = self._new_connection()
            threading.Thread(target=self._pipe, args=(client, upstream, True, connection), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False, connection), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, to_registry: bool, connection: Any) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(self._passing(data, to_registry, connection))
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        """Stop accepting, release held requests, close every connection."""
        self._closing.set()
        self._server.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


class StallingProxy(_TcpProxy):
    """A TCP proxy on 127.0.0.1 in front of a real registry that holds back matching requests.

    Bytes go through unchanged both ways (the Host header is kept, so the registry's upload
    `Location`s point back at the proxy). When a client->registry chunk contains a request
    line starting with `stall_on` (by default a blob upload's final `PUT ...?digest=`),
    the proxy waits `stall_s` seconds before passing it on: a registry slow to accept a
    layer, with the engine's push stream silent meanwhile. `host` is "127.0.0.1:PORT";
    `stalled` counts the requests held back; `stalling` is set while one is held.
    """

    def __init__(self, upstream_port: int, *, stall_s: float, stall_on: bytes = b"PUT /v2/",
                 stall_if: bytes = b"digest=", times: int = 1) -> None:
        self.stall_s = stall_s
        self.stall_on = stall_on
        self.stall_if = stall_if
        self.times = times
        self.stalled = 0
        self.stalling = threading.Event()
        super().__init__(upstream_port, "stalling-proxy")

    def _should_stall(self, data: bytes) -> bool:
        for line in data.split(b"\r\n"):
            if line.startswith(self.stall_on) and self.stall_if in line:
                with self._lock:
                    if self.stalled < self.times:
                        self.stalled += 1
                        return True
        return False

    def _passing(self, data: bytes, to_registry: bool, connection: Any) -> bytes:
        if to_registry and self._should_stall(data):
            self.stalling.set()
            self._closing.wait(self.stall_s)
            self.stalling.clear()
        return data


@contextmanager
def stalling_proxy(registry: Registry, *, stall_s: float, **options: object) -> Iterator[StallingProxy]:
    """A StallingProxy in front of `registry` (see its docstring); closed on exit."""
    proxy = StallingProxy(registry.port, stall_s=stall_s, **options)  # type: ignore[arg-type]
    try:
        yield proxy
    finally:
        proxy.close()


class DigestRewritingProxy(_TcpProxy):
    """A TCP proxy on 127.0.0.1 in front of a real registry that lies about one thing: the
    `Docker-Content-Digest` of its answers to `HEAD /v2/.../manifests/...` becomes `digest`
    (same length, so nothing else in the answer changes). Pushes through it work as they
    would directly (the Host header is kept, so upload `Location`s point back at it); a
    client that checks the pushed tag's digest with a HEAD is told another one. `host` is
    "127.0.0.1:PORT"; `rewritten` counts the answers changed.
    """

    _DIGEST = re.compile(rb"(?im)^(Docker-Content-Digest:\s*)sha256:[0-9a-f]{64}")
    _HEAD_MANIFEST = re.compile(rb"(?m)^HEAD /v2/\S+/manifests/")

    def __init__(self, upstream_port: int, digest: str) -> None:
        assert len(digest) == len("sha256:") + 64, "a sha256 digest keeps the answer's length"
        self.digest = digest.encode("ascii")
        self.rewritten = 0
        super().__init__(upstream_port, "digest-proxy")

    def _new_connection(self) -> list[int]:
        return [0]  # HEAD manifest requests whose answers are still to come

    def _passing(self, data: bytes, to_registry: bool, connection: Any) -> bytes:
        heads: list[int] = connection
        if to_registry:
            heads[0] += len(self._HEAD_MANIFEST.findall(data))
        elif heads[0] and self._DIGEST.search(data):
            heads[0] -= 1
            data = self._DIGEST.sub(lambda m: m[1] + self.digest, data, count=1)
            with self._lock:
                self.rewritten += 1
        return data


@contextmanager
def digest_rewriting_proxy(registry: Registry, digest: str) -> Iterator[DigestRewritingProxy]:
    """A DigestRewritingProxy in front of `registry` (see its docstring); closed on exit."""
    proxy = DigestRewritingProxy(registry.port, digest)
    try:
        yield proxy
    finally:
        proxy.close()
