"""A tiny local base image: Debian's busybox-static imported with `docker import`.

Docker Hub is not reachable here, so tests that build need a base that exists locally.
The tar is assembled in memory (the same tree as `bin/busybox` + one symlink per applet
in a temp dir, tarred), which leaves nothing to clean up on disk.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import docker
from docker.errors import DockerException, ImageNotFound

__all__ = ["BUSYBOX_BINARY", "BUSYBOX_REF", "busybox_rootfs_tar", "ensure_busybox_image"]

BUSYBOX_BINARY = Path("/bin/busybox")  # busybox-static: no shared libraries in the image
BUSYBOX_REF = "dcs-test/busybox:1"


def _applets(binary: Path) -> list[str]:
    out = subprocess.run([str(binary), "--list"], capture_output=True, text=True, check=True)
    # A `busybox -> busybox` self-link would loop and break /bin/sh, so leave it out.
    return sorted({a for a in out.stdout.split() if a and a != "busybox"})


def _add_dir(tar: tarfile.TarFile, name: str, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, mode
    tar.addfile(info)


def busybox_rootfs_tar(binary: Path = BUSYBOX_BINARY) -> bytes:
    """A root filesystem tar: /bin/busybox, /bin/<applet> -> busybox, and a /tmp."""
    data = binary.read_bytes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add_dir(tar, "bin", 0o755)
        _add_dir(tar, "tmp", 0o1777)
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
        for applet in _applets(binary):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    return buf.getvalue()


def ensure_busybox_image(client: docker.DockerClient, ref: str = BUSYBOX_REF,
                         binary: Path = BUSYBOX_BINARY) -> str:
    """Import the busybox image as `ref` unless the engine already has it; return `ref`.

    A fresh import is run once (`sh -c 'echo ok'`) so a dynamically linked busybox fails
    here with a clear message instead of in some later build.
    """
    try:
        client.images.get(ref)
        return ref
    except ImageNotFound:
        pass
    if not binary.exists():
        raise FileNotFoundError(f"{binary} is missing: run `bash scripts/dev-env.sh deps` "
                                "(installs busybox-static).")
    repository, _, tag = ref.rpartition(":")
    client.api.import_image_from_data(busybox_rootfs_tar(binary), repository=repository,
                                      tag=tag, changes=['CMD ["sh"]', "LABEL dcs-test=busybox"])
    try:
        out = client.containers.run(ref, ["sh", "-c", "echo ok"], remove=True)
    except DockerException as exc:
        client.images.remove(ref, force=True)
        raise RuntimeError(f"The imported {ref} cannot run /bin/sh ({exc}). Is {binary} "
                           "from Debian's busybox-static (statically linked)?") from exc
    if out.strip() != b"ok":
        client.images.remove(ref, force=True)
        raise RuntimeError(f"{ref}: `sh -c 'echo ok'` printed {out!r}")
    return ref


def make_context(root: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    """A build context on disk: ROOT with DOCKERFILE and FILES (name -> text); returns ROOT."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        (root / name).write_text(text)
    return root


def build_image(client: docker.DockerClient, tag: str, dockerfile: str, files: dict[str, bytes]) -> None:
    """A classic-builder build of an in-memory context (Dockerfile + `files`), errors asserted."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in {"Dockerfile": dockerfile.encode(), **files}.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    events = list(client.api.build(fileobj=buf, custom_context=True, tag=tag, decode=True, rm=True))
    errors = [e for e in events if "error" in e]
    assert not errors, errors


def push_image(client: docker.DockerClient, ref: str, auth_config: dict | None = None) -> None:
    """Push `ref` with docker-py (not dcs-magic), errors asserted."""
    repo, tag = ref.rsplit(":", 1)
    events = list(client.api.push(repo, tag=tag, stream=True, decode=True, auth_config=auth_config))
    errors = [e for e in events if "error" in e]
    assert not errors, errors


def job_cluster_spec(client: docker.DockerClient, cleanup: Any, base: str, registry_host: str, name: str,
                     path: Path) -> Path:
    """A local job cluster spec written to PATH whose image is BASE, pushed to the registry as
    `<registry_host>/<cleanup.unique(name)>:1` (removed by CLEANUP)."""
    repository = f"{registry_host}/{cleanup.unique(name)}"
    client.api.tag(base, repository, "1")
    push_image(client, cleanup.add(f"{repository}:1"))
    path.write_text(json.dumps({"cluster_name": f"dcs-test-{name}", "spark_version": "15.4.x-scala2.12",
                                "node_type_id": "local", "num_workers": 0,
                                "docker_image": {"url": f"{repository}:1"}}))
    return path


def containers_of(client: docker.DockerClient, cluster_id: str) -> list[dict]:
    """The containers (any state) the local preflight workspace made for `cluster_id`."""
    from dcs_magic.preflight import LABEL

    return client.api.containers(all=True, filters={"label": f"{LABEL}={cluster_id}"})
