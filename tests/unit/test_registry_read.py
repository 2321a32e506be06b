"""adapters/registry.py: `current_digest` and `read_image`, what `dcs outdated` asks a registry.

A real HTTP server on 127.0.0.1 speaks the distribution API the way Docker Hub, GHCR and ACR
do (every first answer a 401 with a Bearer challenge, a token from the realm, then the
manifest or blob), serving an OCI index with a linux/amd64 image, a linux/arm64 one and a
BuildKit attestation. The real `docker-registry` is asked in tests/integration/test_base_drift.py.
"""

from __future__ import annotations

import pytest
from support.oci_registry import Store, config_digest, multi_arch, serving

from dcs_magic.adapters import registry
from dcs_magic.errors import RegistryError


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
        f"/v2/team/base/manifests/{amd64}", f"/v2/team/base/blobs/{config_digest(store, amd64)}"]


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
    store.tamper.add(config_digest(store, amd64))
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
