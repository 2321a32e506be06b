"""A second Docker engine on 127.0.0.1 for the remote-engine tests: TLS, ssh, contexts.

- `make_certs(folder)`: a CA, a server certificate for IP:127.0.0.1 and a client certificate,
  made with `openssl` (EC P-256: milliseconds), plus a second, unrelated CA (the "wrong CA").
- `start_second_engine(folder, certs)`: `dockerd` with its own data root, exec root, pidfile
  and unix socket in FOLDER, a TLS port on 127.0.0.1 (`--tlsverify`: client certificates
  required), and networking that leaves the main engine alone: a bridge of its own made here
  (`--bridge=dcs-tb<hex>`; `--bridge=none` would make dockerd delete the main engine's
  docker0 as it starts) and `--iptables=false --ip-masq=false` (no NAT rules); builds and probes
  from busybox need no network, and the engine itself pushes to 127.0.0.1 registries from the host.
- `start_sshd(folder, docker_host)`: `sshd` on 127.0.0.1:<free port> with a generated host key,
  root allowed with one generated key, its sessions' DOCKER_HOST set to the second engine's
  socket (`SetEnv`), so `ssh://root@127.0.0.1:PORT` reaches the second engine through
  `docker system dial-stdio`. The client side is a test-made ssh config (the test's
  known_hosts with that host key, StrictHostKeyChecking yes, the test's key) used through an
  `ssh` wrapper put first on PATH: root's own ~/.ssh is neither read nor written.

Both are children of this process, stopped (SIGTERM, then SIGKILL of their process group)
by `.stop()`; nothing outlives the session.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.errors import DockerException

__all__ = ["Certs", "SecondEngine", "Sshd", "free_port", "make_certs", "start_second_engine", "start_sshd"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(*argv: str | Path, cwd: Path | None = None) -> None:
    subprocess.run([str(a) for a in argv], cwd=cwd, check=True, capture_output=True)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass(frozen=True)
class Certs:
    server_dir: Path  # ca.pem, server-cert.pem, server-key.pem (what dockerd is given)
    client_dir: Path  # ca.pem, cert.pem, key.pem: a DOCKER_CERT_PATH that works
    wrong_ca_dir: Path  # the same client cert and key, but another CA's ca.pem
    no_client_dir: Path  # ca.pem only: no client certificate


def _ca(folder: Path, name: str) -> tuple[Path, Path]:
    key, cert = folder / f"{name}-key.pem", folder / f"{name}.pem"
    _run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={name}")
    return cert, key


def _signed(folder: Path, name: str, subject: str, ca: tuple[Path, Path], extensions: str) -> tuple[Path, Path]:
    key, csr, cert, ext = (folder / f"{name}-key.pem", folder / f"{name}.csr", folder / f"{name}-cert.pem",
                           folder / f"{name}.ext")
    ext.write_text(extensions)
    _run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", key, "-out", csr, "-subj", f"/CN={subject}")
    _run("openssl", "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
         "-out", cert, "-days", "2", "-extfile", ext)
    return cert, key


def make_certs(folder: Path) -> Certs:
    """Certificates as `docker --tlsverify` expects them (see the module docstring)."""
    work = folder / "openssl"
    work.mkdir(parents=True)
    ca = _ca(work, "dcs-test-ca")
    other_ca = _ca(work, "dcs-test-other-ca")
    server = _signed(work, "server", "127.0.0.1", ca, "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    client = _signed(work, "client", "dcs-test-client", ca, "extendedKeyUsage=clientAuth\n")
    dirs = Certs(folder / "server", folder / "client", folder / "wrong-ca", folder / "no-client")
    for path in (dirs.server_dir, dirs.client_dir, dirs.wrong_ca_dir, dirs.no_client_dir):
        path.mkdir()
    shutil.copy(ca[0], dirs.server_dir / "ca.pem")
    shutil.copy(server[0], dirs.server_dir / "server-cert.pem")
    shutil.copy(server[1], dirs.server_dir / "server-key.pem")
    for target, ca_file in ((dirs.client_dir, ca[0]), (dirs.wrong_ca_dir, other_ca[0])):
        shutil.copy(ca_file, target / "ca.pem")
        shutil.copy(client[0], target / "cert.pem")
        shutil.copy(client[1], target / "key.pem")
    shutil.copy(ca[0], dirs.no_client_dir / "ca.pem")
    return dirs


def _stop(proc: subprocess.Popen, timeout_s: float = 20.0) -> None:
    """SIGTERM the process (the leader of its own process group), wait, then SIGKILL the group
    (dockerd's containerd included) if it did not end."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever of the group is left (nothing, normally)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        proc.wait(5)


@dataclass
class SecondEngine:
    folder: Path
    socket: str  # unix:///.../docker.sock
    tcp_host: str  # tcp://127.0.0.1:PORT (TLS, client certificate required)
    certs: Certs
    proc: subprocess.Popen
    log_path: Path
    bridge: str = ""  # its own bridge interface (removed by stop())

    def client(self) -> docker.DockerClient:
        """docker-py on the engine's own unix socket (the tests' view of it, not dcs-magic's)."""
        return docker.DockerClient(base_url=self.socket, version="auto", timeout=60)

    def stop(self) -> None:
        _stop(self.proc)
        shutil.rmtree(self.folder / "data", ignore_errors=True)
        if self.bridge:
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)


def _own_bridge() -> str:
    """A bridge for the second engine (its default network), with a free-looking /24 of
    172.30.0.0/16; the main engine's docker0 is never touched."""
    import secrets

    name = f"dcs-tb{secrets.token_hex(3)}"  # at most 15 characters
    subnet = 1 + secrets.randbelow(250)
    for argv in (["ip", "link", "add", name, "type", "bridge"],
                 ["ip", "addr", "add", f"172.30.{subnet}.1/24", "dev", name],
                 ["ip", "link", "set", name, "up"]):
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return name


DOCKER_VARIABLES = ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_TLS", "DOCKER_CERT_PATH", "DOCKER_CONTEXT")


def isolated_docker_config(monkeypatch: Any, folder: Path) -> Path:
    """No DOCKER_* from the machine, and FOLDER (made here, with an empty config.json) as
    DOCKER_CONFIG, where contexts live; returns FOLDER."""
    for name in DOCKER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text("{}")
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    return folder


def start_second_engine(folder: Path, certs: Certs, timeout_s: float = 30.0,
                        namespace: str = "dcs-test-remote") -> SecondEngine:
    """NAMESPACE: its containerd namespaces (the benchmark uses its own, apart from the tests')."""
    binary = shutil.which("dockerd")
    if binary is None:
        raise RuntimeError("dockerd is not installed: run `bash scripts/dev-env.sh deps`")
    port = free_port()
    sock = folder / "docker.sock"
    log_path = folder / "dockerd.log"
    server = certs.server_dir
    bridge = _own_bridge()
    argv = [binary, "--data-root", str(folder / "data"), "--exec-root", str(folder / "exec"),
            "--pidfile", str(folder / "dockerd.pid"), "-H", f"unix://{sock}", "-H", f"tcp://127.0.0.1:{port}",
            "--tlsverify", "--tlscacert", str(server / "ca.pem"), "--tlscert", str(server / "server-cert.pem"),
            "--tlskey", str(server / "server-key.pem"),
            f"--bridge={bridge}", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
            "--containerd-namespace", namespace, "--containerd-plugins-namespace", f"{namespace}-plugins"]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    engine = SecondEngine(folder, f"unix://{sock}", f"tcp://127.0.0.1:{port}", certs, proc, log_path, bridge)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client = engine.client()
            client.ping()
            client.close()
            return engine
        except DockerException as exc:
            error = exc
        if proc.poll() is not None or time.monotonic() > deadline:
            engine.stop()
            raise RuntimeError(f"the second dockerd did not answer ({error}):\n{_tail(log_path)}")
        time.sleep(0.1)


@dataclass
class Sshd:
    folder: Path
    port: int
    proc: subprocess.Popen
    bin_dir: Path  # holds the `ssh` wrapper: put it first on PATH
    known_hosts: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"ssh://root@127.0.0.1:{self.port}"

    def stop(self) -> None:
        # Let the sessions of closed connections end first: a child left when its listener
        # goes would be reparented to PID 1, which may not reap it.
        deadline = time.monotonic() + 3.0
        while _children(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        _stop(self.proc, 5.0)


def _children(pid: int) -> list[int]:
    """Processes whose parent is PID or that are in its process group (PID excluded)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        other = int(stat.parent.name)
        if other != pid and pid in (int(fields[1]), int(fields[2])):
            found.append(other)
    return found


def start_sshd(folder: Path, docker_host: str, timeout_s: float = 10.0) -> Sshd:
    """sshd for `ssh://root@127.0.0.1:PORT`, its sessions' DOCKER_HOST being `docker_host`."""
    sshd = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)
    if sshd is None:
        raise RuntimeError("sshd is not installed: run `bash scripts/dev-env.sh deps` (openssh-server)")
    folder.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    for name in ("host_key", "client_key"):
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"dcs-test-{name}", "-f", folder / name)
    shutil.copy(folder / "client_key.pub", folder / "authorized_keys")
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {folder}/host_key
PidFile {folder}/sshd.pid
AuthorizedKeysFile {folder}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
SetEnv DOCKER_HOST={docker_host}
""")
    known_hosts = folder / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {(folder / 'host_key.pub').read_text().split(' dcs-test')[0]}\n")
    client_config = folder / "ssh_config"
    client_config.write_text(f"""Host *
  UserKnownHostsFile {known_hosts}
  GlobalKnownHostsFile /dev/null
  IdentityFile {folder}/client_key
  IdentitiesOnly yes
  StrictHostKeyChecking yes
""")
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "ssh"
    wrapper.write_text(f"#!/bin/sh\nexec {shutil.which('ssh')} -F {client_config} \"$@\"\n")
    wrapper.chmod(0o755)
    log_path = folder / "sshd.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    server = Sshd(folder, port, proc, bin_dir, known_hosts, log_path)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"sshd did not listen on 127.0.0.1:{port}:\n{_tail(log_path)}")
        time.sleep(0.05)
