"""Integration fixtures on top of tests/conftest.py.

dcs_base_image  (session) the realistic DCS base built by scripts/make-base-image.sh:
                debootstrap bookworm + JDK 17, bash, iproute2, procps, sudo and a
                /databricks/python3 virtualenv with the notebook packages. The script
                reuses an existing image, so only the first run on a machine takes minutes.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.examples import BASE_IMAGE, ensure_dcs_base


@pytest.fixture(scope="session")
def dcs_base_image(docker_client: Any, _protected_images: set[str]) -> str:
    """Reference of the from-scratch DCS base image (built once per machine)."""
    _protected_images.update({BASE_IMAGE, f"{BASE_IMAGE}-root"})
    try:
        return ensure_dcs_base(docker_client)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


# -- tiny images made without a builder (docker load of a hand-written image archive) -------


def aarch64_exit0_elf() -> bytes:
    """A minimal static aarch64 ELF executable that exits 0 (it cannot run on amd64)."""
    import struct

    code = struct.pack("<3I", 0xD2800000, 0xD2800BA8, 0xD4000001)  # mov x0,0; mov x8,93; svc 0
    base, header_size = 0x400000, 64 + 56
    size = header_size + len(code)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    elf = ident + struct.pack("<HHIQQQIHHHHHH", 2, 183, 1, base + header_size, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    program = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)
    return elf + program + code


def layer_tar(files: dict[str, bytes], mode: int = 0o755) -> bytes:
    """An image layer holding `files` (path -> content), parent directories included."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dirs = sorted({"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def load_image(client: Any, ref: str, layers: list[bytes], *, architecture: str = "amd64",
               config: dict | None = None) -> str:
    """`docker load` an image made of `layers` with the given architecture and config."""
    import hashlib
    import io
    import json
    import tarfile

    diff_ids = [f"sha256:{hashlib.sha256(layer).hexdigest()}" for layer in layers]
    image_config = json.dumps({
        "architecture": architecture, "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Labels": {"dcs-test": "1"}, **(config or {})},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "dcs-test"} for _ in layers],
    }).encode()
    config_name = f"{hashlib.sha256(image_config).hexdigest()}.json"
    members = {config_name: image_config}
    layer_names = [f"layer{i}/layer.tar" for i in range(len(layers))]
    members.update(zip(layer_names, layers, strict=True))
    members["manifest.json"] = json.dumps([{"Config": config_name, "RepoTags": [ref],
                                            "Layers": layer_names}]).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    client.images.load(buf.getvalue())
    return ref


@pytest.fixture(scope="session")
def tiny_images() -> Any:
    """The helpers above (`load`, `layer`, `aarch64_elf`), as a fixture: test modules cannot
    import this conftest by name reliably (tests/conftest.py is also a `conftest`)."""
    from types import SimpleNamespace

    return SimpleNamespace(load=load_image, layer=layer_tar, aarch64_elf=aarch64_exit0_elf)
