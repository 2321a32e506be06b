"""A local Python package index for the cache-mount benchmark, served at a stated bandwidth.

PyPI is not reachable from containers here, so the `buildkit-cache-mount` case installs wheels
made up by `make_wheels` from this index instead. It answers as PyPI does where pip's cache
cares: `/simple/<name>/` pages (PEP 503) with `Cache-Control: max-age=600`, and files with
`Cache-Control: max-age=365000000, immutable, public`, so a pip with a warm cache reads a
wheel it has already downloaded from that cache instead of asking for it again.

Every file download is sent at `rate` bytes/s (per connection: pip downloads one at a time),
in 64 KiB chunks paced against the clock, so the figure the benchmark states is what a
container sees whatever the loopback could do.
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
import threading
import time
import zipfile
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["WheelIndex", "make_wheel", "make_wheels"]

CHUNK = 64 * 1024


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(folder: Path, name: str, version: str, payload: bytes) -> Path:
    """A pure-Python wheel NAME-VERSION whose package holds PAYLOAD (stored, not deflated:
    random bytes do not compress, and the download is what the case measures)."""
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": f'"""{name} {version}: benchmark filler."""\n'.encode(),
        f"{module}/payload.bin": payload,
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: dcs-bench\nRoot-Is-Purelib: true\n"
                              b"Tag: py3-none-any\n",
    }
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files.items())
    files[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    path = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as whl:
        for name_in_zip, data in files.items():
            whl.writestr(name_in_zip, data)
    return path


def make_wheels(folder: Path, names: list[str], size: int, versions: list[str] | None = None) -> list[Path]:
    """One wheel of SIZE random bytes for each name (version 1.0), or for each of VERSIONS."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names:
        for version in versions or ["1.0"]:
            out.append(make_wheel(folder, name, version, os.urandom(size)))
    return out


@dataclass
class _Stats:
    files: int = 0
    bytes: int = 0


class WheelIndex:
    """`/simple/` over the wheels in FOLDER, on HOST:free port, files at RATE bytes/s."""

    def __init__(self, folder: Path, host: str, rate: float) -> None:
        self.folder, self.rate = folder, rate
        self.stats = _Stats()
        index = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                parts = [p for p in self.path.split("?")[0].split("/") if p]
                if len(parts) == 2 and parts[0] == "simple":
                    self._page(parts[1])
                elif len(parts) == 2 and parts[0] == "files":
                    self._file(parts[1])
                else:
                    self._send(404, b"not found", "text/plain")

            def _page(self, project: str) -> None:
                key = project.lower().replace("_", "-")
                links = [p for p in sorted(index.folder.glob("*.whl"))
                         if p.name.split("-")[0].replace("_", "-") == key]
                if not links:
                    self._send(404, b"no such project", "text/plain")
                    return
                body = "".join(f'<a href="/files/{html.escape(p.name)}#sha256={_sha256(p)}">{html.escape(p.name)}</a>\n'
                               for p in links)
                self._send(200, f"<!DOCTYPE html><html><body>\n{body}</body></html>\n".encode(), "text/html",
                           cache="max-age=600, public")

            def _file(self, name: str) -> None:
                path = index.folder / name
                if "/" in name or not path.is_file():
                    self._send(404, b"no such file", "text/plain")
                    return
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "max-age=365000000, immutable, public")
                self.end_headers()
                started = time.perf_counter()
                for offset in range(0, len(data), CHUNK):
                    self.wfile.write(data[offset:offset + CHUNK])
                    ahead = started + (offset + CHUNK) / index.rate - time.perf_counter()
                    if ahead > 0:
                        time.sleep(ahead)
                index.stats.files += 1
                index.stats.bytes += len(data)

            def _send(self, status: int, body: bytes, kind: str, cache: str = "no-store") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", cache)
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}/simple/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


_HASHES: dict[Path, str] = {}


def _sha256(path: Path) -> str:
    if path not in _HASHES:
        _HASHES[path] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _HASHES[path]
