"""Parity against the exact runtime key's published pins (18.x, 19.x, a point release), on a
real image whose /databricks/python3 reports the shipped pins for a few packages, then one pin
changed.

PyPI is not reachable from containers, and what parity reads is `pip list`: the image gets
the packages' metadata (`<name>-<version>.dist-info`, as an installed wheel leaves it), which
pip lists exactly as an installed package.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.cleanup import DockerCleanup
from support.images import build_image

from dcs_magic import check
from dcs_magic.model import runtime
from dcs_magic.model.parity import ParityItem

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SPARK = ("pyarrow", "numpy", "pandas", "ipykernel", "ipython")

FAKE = r'''
import pathlib, shutil, sys, sysconfig
site = pathlib.Path(sysconfig.get_paths()["purelib"])
for spec in sys.argv[1:]:
    name, version = spec.split("==")
    for old in site.glob(name.replace("-", "_") + "-*.dist-info"):
        shutil.rmtree(old)
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "INSTALLER").write_text("pip\n")
'''


def image_with(client: Any, base: str, cleanup: DockerCleanup, pins: dict[str, str]) -> str:
    tag = cleanup.add(f"dcs-test-parity-{cleanup.unique('keys')}:1")
    specs = " ".join(f"{name}=={version}" for name, version in pins.items())
    build_image(client, tag, f"FROM {base}\nCOPY fake.py /tmp/fake.py\n"
                f"RUN /databricks/python3/bin/python3 /tmp/fake.py {specs} && rm /tmp/fake.py\n",
                {"fake.py": FAKE.encode()})
    return tag


def rows(report: Any) -> dict[str, ParityItem]:
    return {item.package: item for item in report.checks if isinstance(item, ParityItem)}


@pytest.mark.parametrize("key", ["18.x-scala2.13", "19.x-scala2.13"])
def test_parity_uses_the_keys_own_pins_and_finds_the_one_changed(
        docker_client: Any, dcs_base_image: str, docker_cleanup: DockerCleanup, key: str) -> None:
    published = runtime.pins_for(key)
    assert published is not None and published.key == key and published.python == "3.12"
    shipped = {name: published.pins[name] for name in SPARK}
    matching = image_with(docker_client, dcs_base_image, docker_cleanup, shipped)
    report = check(matching, runtime=key, parity=True)
    found = rows(report)
    assert found["data"].ok and key in found["data"].detail  # the data row names the key and origin
    assert "databricks/environments" in found["data"].detail
    assert all(name not in found for name in SPARK), [found[n].detail for n in SPARK if n in found]
    same = next(i for i in report.checks if i.name == "parity same")
    assert all(f"{name} {shipped[name]}" in same.detail for name in SPARK)

    # One pin a major off: the row that breaks the REPL / Arrow, first among the packages.
    major = str(int(shipped["pandas"].split(".")[0]) - 1) + ".5.3"
    changed = image_with(docker_client, dcs_base_image, docker_cleanup, {**shipped, "pandas": major})
    report = check(changed, runtime=key, parity=True)
    pandas = rows(report)["pandas"]
    assert (pandas.ok, pandas.rank, pandas.severity) == (False, 0, "error")
    assert (pandas.image_version, pandas.runtime_version) == (major, shipped["pandas"])
    assert f"than {runtime.line_of(key).name} ({key})'s {shipped['pandas']}" in pandas.detail
    packages = [i.package for i in report.checks if isinstance(i, ParityItem) and i.rank == 0
                and i.package not in ("python", "pip")]
    assert packages[0] == "pandas"


def test_a_point_release_uses_its_own_file_else_its_lines(docker_client: Any, dcs_base_image: str,
                                                          docker_cleanup: DockerCleanup) -> None:
    line = runtime.pins_for("18.x-scala2.13")
    assert line is not None
    tag = image_with(docker_client, dcs_base_image, docker_cleanup, {"numpy": line.pins["numpy"]})
    # 18.1.x has its own published file; 18.3.x has none (yet): the line's 18.x set.
    for asked, used in (("18.1.x-scala2.13", "18.1.x-scala2.13"), ("18.3.x-scala2.13", "18.x-scala2.13")):
        data = rows(check(tag, runtime=asked, parity=True))["data"]
        assert data.detail.startswith(f"pins of {used} from "), (asked, data.detail)
