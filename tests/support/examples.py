"""What the tests of examples/*.ipynb share: the list, their environment, the secret scan.

Every example reads its settings from the environment in its first code cell
(`DCS_EXAMPLE_BASE`, `DCS_EXAMPLE_REGISTRY`, `DCS_EXAMPLE_REGISTRY_USER`; the password only by
name through `--password-env DCS_EXAMPLE_REGISTRY_PASSWORD`), and its cluster JSON names the
secret `{{secrets/dcs-examples/registry-password}}`. The notebook itself stores the password
there (`%dcs_push ... --secret-ref dcs-examples/registry-password --store-secret --local`, or
`dcs secrets put --local`), in the local preflight workspace's secret store, which its launch
resolves the reference from: the `DCS_SECRET_<SCOPE>_<KEY>` fallback variable is not set, so a
launch proves the store path. `scripts/demo.sh` sets the same variables for people;
`example_environment` sets them for tests.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
OS_BASE = "dcs-magic/dcs-base:bookworm-root"  # scripts/make-base-image.sh's debootstrap root


@dataclass(frozen=True)
class Example:
    """An example notebook and the repositories:tags it pushes (the first is launched)."""

    name: str
    pushes: tuple[tuple[str, str], ...]

    @property
    def file(self) -> str:
        return f"{self.name}.ipynb"


EXAMPLE_LIST = (
    Example("quickstart", (("dcs-quickstart", "0.1.0"),)),
    Example("from_scratch", (("dcs-from-scratch", "bookworm"),)),
    Example("private_registry", (("dcs-private", "1"),)),
    Example("init_scripts", (("dcs-init-scripts", "1"),)),
    Example("gpu", ()),  # no GPU engine here: render + lint + JSON only
    Example("parameters", (("dcs-params-etl", "1"), ("dcs-params-ml", "1"))),
)


BASE_SCRIPT = EXAMPLES.parent / "scripts" / "make-base-image.sh"


BASE_IMAGE = os.environ.get("DCS_TEST_BASE_IMAGE", "dcs-magic/dcs-base:bookworm")


def ensure_dcs_base(client: Any) -> str:
    """The realistic DCS base (and its debootstrap root, OS_BASE) that scripts/make-base-image.sh
    builds once per machine (the script reuses them; its lock makes a concurrent caller wait):
    tests/integration's `dcs_base_image` fixture and every other user of the base."""
    proc = subprocess.run(["bash", str(BASE_SCRIPT), BASE_IMAGE], capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise RuntimeError(f"{BASE_SCRIPT.name} {BASE_IMAGE} failed ({proc.returncode}):\n{tail}")
    client.images.get(BASE_IMAGE)
    client.images.get(OS_BASE)
    return BASE_IMAGE


def example_environment(registry: Any, base_image: str) -> dict[str, str]:
    """The variables the examples read, pointed at a local base and an htpasswd registry."""
    return {
        "DCS_EXAMPLE_BASE": base_image,
        "DCS_EXAMPLE_OS_BASE": OS_BASE,
        "DCS_EXAMPLE_REGISTRY": registry.host,
        "DCS_EXAMPLE_REGISTRY_USER": registry.username,
        "DCS_EXAMPLE_REGISTRY_PASSWORD": registry.password,
    }


def copy_examples(dest: Path) -> Path:
    """examples/ as a user gets it (no build contexts or lock files left from a run)."""
    shutil.copytree(EXAMPLES, dest, ignore=shutil.ignore_patterns(
        "dcs-build", "*.dcs.lock.json", ".ipynb_checkpoints"))
    return dest


def decoded_data_uris(text: str) -> str:
    """The decoded payloads of `;base64,` data URIs in text (the launch form's download
    link), so a secret encoded there is found too."""
    found = []
    for payload in re.findall(r";base64,([A-Za-z0-9+/=]+)", text):
        try:
            found.append(base64.b64decode(payload).decode("utf-8", "replace"))
        except (binascii.Error, ValueError):
            continue
    return "\n".join(found)


def secrets_found(text: str, secrets: dict[str, str]) -> list[str]:
    """Names of the secrets (name -> value) that appear in text, plainly or base64-encoded."""
    decoded = decoded_data_uris(text)
    return [name for name, value in secrets.items() if value in text or value in decoded]


def widget_states(nb: Any) -> list[dict[str, Any]]:
    """The widget models' states saved in a notebook's metadata."""
    saved = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    return [model["state"] for model in saved.get("state", {}).values()]


LAUNCH_LINE = re.compile(r"cluster (\S+): RUNNING with (\S+)")
