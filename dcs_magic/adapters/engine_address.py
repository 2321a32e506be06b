"""Where the Docker engine is, read as the Docker CLI reads it, and how it is shown.

    DOCKER_HOST (+ DOCKER_TLS_VERIFY / DOCKER_TLS / DOCKER_CERT_PATH)
      else the docker context named by DOCKER_CONTEXT, else config.json's `currentContext`
      else the default socket

A context is `<docker config>/contexts/meta/<sha256(name)>/meta.json` (its `docker` endpoint's
`Host` and `SkipTLSVerify`) with its TLS material in `contexts/tls/<sha256(name)>/docker/`
(`ca.pem`, `cert.pem`, `key.pem`), as `docker context create` writes them.

`EngineAddress` is plain data (no docker-py here: `engine.py` turns it into a client): the host
URL, the TLS files, where the address came from (for error messages), and `label`, the short
text the widget, the terminal and `dcs doctor` show ("local", "tcp://10.0.0.5:2376 (TLS)",
"ssh://builder@big-box"): never a certificate, a key or a password. `cli_args()` gives the
same engine to the docker CLI (the BuildKit builder), so both builders use one engine.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import EngineError
from ..settings import (
    DOCKER_CERT_PATH,
    DOCKER_CONTEXT,
    DOCKER_HOST,
    DOCKER_TLS,
    DOCKER_TLS_VERIFY,
    docker_config_dir,
    env,
)

__all__ = ["DEFAULT_SOCKET", "EngineAddress", "TlsFiles", "resolve"]

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
_CONTEXT_HINT = "Run `docker context ls` and `docker context use NAME` (or unset DOCKER_CONTEXT)."


@dataclass(frozen=True)
class TlsFiles:
    """The TLS files for a tcp:// engine. `ca`: verify the engine's certificate against it
    (None with `verify`: the system's CAs); `cert` + `key`: this client's certificate."""

    verify: bool
    ca: str | None = None
    cert: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class EngineAddress:
    """One engine: `host` (unix://, tcp://, ssh://), its TLS files, and where it came from."""

    host: str
    source: str = "default socket"  # "DOCKER_HOST", "docker context 'x'", "host argument"
    tls: TlsFiles | None = None
    context: str | None = None
    cert_dir: str | None = None  # where the TLS files were looked for (DOCKER_CERT_PATH or the context's)

    @property
    def scheme(self) -> str:
        return self.host.split("://", 1)[0] if "://" in self.host else "tcp"

    @property
    def is_ssh(self) -> bool:
        return self.scheme == "ssh"

    @property
    def shown_host(self) -> str:
        """The host URL without any password (`ssh://user:pw@h` -> `ssh://user@h`)."""
        if self.scheme not in ("ssh", "tcp", "http", "https"):
            return self.host
        parts = urlsplit(self.host)
        if parts.password is None:
            return self.host
        netloc = f"{parts.username}@{parts.hostname}" if parts.username else str(parts.hostname)
        if parts.port:
            netloc += f":{parts.port}"
        return parts._replace(netloc=netloc).geturl()

    @property
    def label(self) -> str:
        """What the views show: `local`, `local unix:///x.sock`, `tcp://h:2376 (TLS)`,
        `tcp://h:2376 (TLS, not verified)`, `ssh://user@h`; `, context NAME` when a context
        chose it."""
        notes = []
        if self.tls is not None:
            notes.append("TLS" if self.tls.verify else "TLS, not verified")
        if self.context:
            notes.append(f"context {self.context}")
        if self.scheme == "unix":
            text = "local" if self.host == DEFAULT_SOCKET else f"local {self.host}"
        else:
            text = self.shown_host
        return f"{text} ({', '.join(notes)})" if notes else text

    @property
    def is_local(self) -> bool:
        return self.scheme in ("unix", "npipe")

    def cli_args(self) -> list[str]:
        """The docker CLI's global options for this same engine (`docker ARGS build ...`):
        `--host` and the TLS files; run it with the same environment otherwise."""
        args = ["--host", self.host]
        if self.tls is not None:
            args.append("--tlsverify" if self.tls.verify else "--tls")
            for flag, path in (("--tlscacert", self.tls.ca), ("--tlscert", self.tls.cert),
                               ("--tlskey", self.tls.key)):
                if path:
                    args += [flag, path]
        return args


def resolve(host: str | None = None) -> EngineAddress:
    """The engine the Docker CLI would use (or `host`); EngineError for a DOCKER_HOST or
    context that cannot be used as it is (TLS files missing, a context that does not exist)."""
    if host:
        return EngineAddress(_normal(host), "host argument")
    given = env(DOCKER_HOST)
    if given:
        return _from_environment(_normal(given))
    name = env(DOCKER_CONTEXT) or _current_context()
    if name and name != "default":
        return _from_context(name)
    return EngineAddress(DEFAULT_SOCKET, "default socket")


def _normal(host: str) -> str:
    host = host.strip()
    if host.startswith("/"):
        return f"unix://{host}"
    if "://" not in host:  # `host:port`, as `-H` takes it
        return f"tcp://{host}"
    return re.sub(r"^http\+unix://", "unix://", host)


def _from_environment(host: str) -> EngineAddress:
    verify = bool(env(DOCKER_TLS_VERIFY))
    if not (verify or env(DOCKER_TLS)) or not host.startswith(("tcp://", "https://")):
        return EngineAddress(host, DOCKER_HOST)
    folder = Path(env(DOCKER_CERT_PATH) or docker_config_dir()).expanduser()
    where = "DOCKER_CERT_PATH" if env(DOCKER_CERT_PATH) else "Docker's config folder (DOCKER_CERT_PATH is not set)"
    ca, cert, key = (folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    if verify and not ca.is_file():
        raise EngineError(
            f"DOCKER_TLS_VERIFY is set for DOCKER_HOST={host}, but {where} has no ca.pem ({ca}): the "
            "engine's certificate cannot be verified.", host=host,
            hint="Put the CA certificate that signed the engine's certificate in DOCKER_CERT_PATH/ca.pem, "
                 "with this client's cert.pem and key.pem beside it (`export DOCKER_CERT_PATH=~/.docker/NAME`).")
    if cert.is_file() != key.is_file():
        present, missing = (cert, key) if cert.is_file() else (key, cert)
        raise EngineError(
            f"DOCKER_HOST={host} uses TLS and {where} has {present.name} but no {missing.name} ({missing}).",
            host=host, hint="Put both cert.pem and key.pem (this client's certificate and its key) in "
                            "DOCKER_CERT_PATH, or neither.")
    tls = TlsFiles(verify=verify, ca=str(ca) if verify else None,
                   cert=str(cert) if cert.is_file() else None, key=str(key) if key.is_file() else None)
    return EngineAddress(host, DOCKER_HOST, tls, cert_dir=str(folder))


def _config_file() -> Path:
    return Path(docker_config_dir()).expanduser() / "config.json"


def _current_context() -> str | None:
    """config.json's `currentContext` (as `docker context use` writes it), else None."""
    try:
        data = json.loads(_config_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name = data.get("currentContext") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name else None


def _from_context(name: str) -> EngineAddress:
    source = f"docker context {name!r}"
    contexts = Path(docker_config_dir()).expanduser() / "contexts"
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
    meta_file = contexts / "meta" / digest / "meta.json"
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EngineError(f"docker context {name!r} does not exist (no {meta_file})", host=None,
                          hint=_CONTEXT_HINT) from None
    except (OSError, ValueError) as exc:
        raise EngineError(f"docker context {name!r} could not be loaded: {meta_file}: {exc}", host=None,
                          hint=_CONTEXT_HINT) from exc
    endpoint = ((meta.get("Endpoints") or {}).get("docker") or {}) if isinstance(meta, dict) else {}
    host = _normal(str(endpoint.get("Host") or DEFAULT_SOCKET))
    skip_verify = bool(endpoint.get("SkipTLSVerify"))
    folder = contexts / "tls" / digest / "docker"
    files = {f: str(folder / f) for f in ("ca.pem", "cert.pem", "key.pem") if (folder / f).is_file()}
    tls = None
    if host.startswith(("tcp://", "https://")) and (files or skip_verify):
        # As the CLI: the context's CA (else the system's), its client certificate when both
        # halves are there, and no verification when the context says SkipTLSVerify.
        both = "cert.pem" in files and "key.pem" in files
        tls = TlsFiles(verify=not skip_verify, ca=files.get("ca.pem"),
                       cert=files["cert.pem"] if both else None, key=files["key.pem"] if both else None)
    return EngineAddress(host, source, tls, context=name, cert_dir=str(folder) if tls else None)

