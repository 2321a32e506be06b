"""`dcs outdated NOTEBOOK`: a base tag moved in a real `docker-registry`, found from the lock a
real `dcs build NOTEBOOK --push` wrote, told in Databricks terms, and brought up to date by
the line it prints; 2 once the registry is gone. Real Docker engine, real registries.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from support.registry import start_registry

from dcs_magic.adapters import registry as registry_api
from dcs_magic.errors import RegistryError
from dcs_magic.ops.lock import lock_path, read_lock

pytestmark = pytest.mark.docker

CLI = [sys.executable, "-m", "dcs_magic.cli"]


def dcs(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DCS_VAR_", "DATABRICKS_"))}
    environ.update(env or {})
    return subprocess.run([*CLI, *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=600,
                          check=False)


def base_dockerfile(busybox: str, *, java: int, python: str, ubuntu: str, numpy: str) -> str:
    """A small base whose config says what a Databricks base's would: JAVA_HOME, PYTHON_VERSION,
    LANG, the distribution labels, and a pip pin in its build history."""
    return (f"FROM {busybox}\n"
            f"ENV JAVA_HOME=/usr/lib/jvm/java-{java}-openjdk-amd64 PYTHON_VERSION={python} "
            "PYSPARK_PYTHON=/databricks/python3/bin/python3\n"
            + ("ENV LANG=C.UTF-8\n" if ubuntu == "22.04" else "")
            + f"LABEL org.opencontainers.image.ref.name=ubuntu org.opencontainers.image.version={ubuntu}\n"
            f"RUN echo pip install numpy=={numpy} > /pinned\n")


def build_base(client: Any, tmp_path: Path, tag: str, text: str) -> str:
    context = tmp_path / f"base-{abs(hash(text))}"
    context.mkdir()
    (context / "Dockerfile").write_text(text)
    image, _ = client.images.build(path=str(context), tag=tag, rm=True)
    return str(image.id)


def push(client: Any, reference: str, auth_config: dict[str, str] | None = None) -> None:
    repository, tag = reference.rsplit(":", 1)
    events = list(client.api.push(repository, tag=tag, stream=True, decode=True, auth_config=auth_config))
    assert not [e for e in events if "error" in e], events


def containers(client: Any) -> set[str]:
    return {c.id for c in client.containers.list(all=True)}


def test_a_moved_base_tag_is_found_explained_and_updated(tmp_path: Path, docker_client: Any, busybox_image: str,
                                                         docker_cleanup: Any) -> None:
    (tmp_path / "registry").mkdir()
    own = start_registry(tmp_path / "registry")  # this test stops it at the end
    try:
        base = docker_cleanup.add(f"{own.host}/{docker_cleanup.unique('base')}:1")
        app = docker_cleanup.add(f"{own.host}/{docker_cleanup.unique('app')}:1")
        old_id = build_base(docker_client, tmp_path, base,
                            base_dockerfile(busybox_image, java=17, python="3.11.9", ubuntu="22.04", numpy="1.26.4"))
        push(docker_client, base)
        old = own.manifest_digest(base.split("/", 1)[1].rsplit(":", 1)[0], "1")
        nb = tmp_path / "app.ipynb"
        nbformat.write(new_notebook(cells=[
            new_code_cell(f"base_image = {base!r}", metadata={"tags": ["parameters"]}),
            new_code_cell("%%dockerfile app\nFROM {{ base_image }}\nRUN echo derived > /derived\n")]), nb)
        built = dcs("build", str(nb), "-t", app, "--push", cwd=tmp_path)
        assert built.returncode == 0, built.stderr
        assert read_lock(lock_path(nb)).images["app"].base_digest == old  # recorded by the real build

        before = containers(docker_client)
        fresh = dcs("outdated", str(nb), cwd=tmp_path)
        assert (fresh.returncode, fresh.stdout) == (0, f"app: base {base} up to date ({old})\n"), fresh.stderr

        # Someone rebuilds the base and pushes it under the same tag; this engine keeps the old
        # image as `base` (as a machine that pulled it before would).
        build_base(docker_client, tmp_path, base,
                   base_dockerfile(busybox_image, java=21, python="3.12.3", ubuntu="24.04", numpy="2.1.3"))
        push(docker_client, base)
        new = own.manifest_digest(base.split("/", 1)[1].rsplit(":", 1)[0], "1")
        assert new != old
        docker_client.images.get(old_id).tag(base)

        moved = dcs("outdated", str(nb), cwd=tmp_path)
        assert moved.returncode == 1, moved.stdout + moved.stderr
        lines = moved.stdout.splitlines()
        assert lines[0] == f"app: base {base} moved: {old} -> {new}"
        assert lines[1].startswith("  Python: 3.11.9 -> 3.12.3 [ENV PYTHON_VERSION] (Python 3.12 is the Python of 16.4 LTS")
        assert lines[2].startswith("  JDK: 17 -> 21 [ENV JAVA_HOME=/usr/lib/jvm/java-21-openjdk-amd64] (")
        assert lines[3].startswith("  OS: ubuntu 22.04 -> ubuntu 24.04 [labels ")
        assert "  ENV LANG: 'C.UTF-8' -> unset (Unity Catalog expects C.UTF-8" in moved.stdout
        assert "  pin numpy: 1.26.4 -> 2.1.3 (parity: " in moved.stdout
        update = f"dcs build {nb} -t {app} --push --pull"
        assert lines[-1] == f"  update: {update}"
        # Nothing was run and nothing pulled: the engine's `base` is still the old image.
        assert containers(docker_client) == before
        assert docker_client.images.get(base).id == old_id

        as_json = json.loads(dcs("outdated", str(nb), "--json", cwd=tmp_path).stdout)
        image = as_json["images"][0]
        assert (as_json["exit_code"], image["recorded"], image["current"]) == (1, old, new)
        assert image["new"]["platform"] == "linux/amd64" and image["new"]["jdk"]["value"] == "21"

        # A rebuild without --pull builds from the engine's old copy: still outdated.
        assert dcs("build", str(nb), "-t", app, "--push", cwd=tmp_path).returncode == 0
        assert dcs("outdated", str(nb), cwd=tmp_path).returncode == 1
        # The printed line brings the lock up to date.
        rebuilt = dcs(*shlex.split(update)[1:], cwd=tmp_path)  # the line without its `dcs`
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert read_lock(lock_path(nb)).images["app"].base_digest == new
        again = dcs("outdated", str(nb), cwd=tmp_path)
        assert (again.returncode, again.stdout) == (0, f"app: base {base} up to date ({new})\n")
    finally:
        own.stop()
    gone = dcs("outdated", str(nb), cwd=tmp_path)
    assert gone.returncode == 2, gone.stdout + gone.stderr
    assert f"app: base {base}: the registry could not be asked" in gone.stdout
    assert "cannot connect (Connection refused)" in gone.stdout and "Traceback" not in gone.stderr


def test_a_private_base_is_read_with_docker_s_login(tmp_path: Path, docker_client: Any, busybox_image: str,
                                                    auth_registry: Any, docker_cleanup: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """An htpasswd registry: the tag and the image config are read with the plain `auths` entry
    `docker login` writes; without it the registry could not be asked."""
    path = f"{docker_cleanup.unique('private')}"
    base = docker_cleanup.add(f"{auth_registry.host}/{path}:1")
    image_id = build_base(docker_client, tmp_path, base,
                          base_dockerfile(busybox_image, java=17, python="3.11.9", ubuntu="22.04", numpy="1.26.4"))
    push(docker_client, base, auth_registry.auth_config)
    digest = auth_registry.manifest_digest(path, "1")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    with pytest.raises(RegistryError) as refused:
        registry_api.current_digest(base, timeout=10)
    assert refused.value.status == 401 and "docker login" in refused.value.hint
    login = base64.b64encode(f"{auth_registry.username}:{auth_registry.password}".encode()).decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {auth_registry.host: {"auth": login}}}))
    assert registry_api.current_digest(base, timeout=10) == digest
    remote = registry_api.read_image(f"{auth_registry.host}/{path}@{digest}", timeout=10)
    assert (remote.digest, remote.manifest, remote.platforms) == (digest, digest, ())
    assert remote.config is not None and "PYTHON_VERSION=3.11.9" in remote.config["config"]["Env"]
    # The config the registry serves is the very image the engine built (its id is the config's digest).
    assert docker_client.images.get(image_id).attrs["Config"]["Env"] == remote.config["config"]["Env"]
    assert remote.size and remote.layers and remote.layers >= 2
