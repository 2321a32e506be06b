"""The node types the local preflight workspace lists: `local`, and the real cloud names.

A `cluster.json` written for Databricks names a cloud node type (`i3.xlarge`,
`Standard_DS3_v2`, `n2-standard-4`). The local workspace accepts those names, so the same
file is checked locally and sent to Databricks unchanged; every one of them runs on this
machine's Docker engine (`local` says so plainly). Graviton (arm64) types are listed too,
marked `is_graviton` as Databricks lists them, so that a container cluster on one is refused
here as it is there (`model.spec.node_type_problem`, the one rule of create, doctor and the
form). A name that is in no cloud's list is refused by create with the names that exist.

Figures (cores, memory, GPUs, local disk) are the clouds' published instance sizes; the
local workspace uses them only to answer `list-node-types` and, for local disk, to refuse an
image that cannot fit (DOCKER_IMAGE_TOO_LARGE_FOR_INSTANCE_EXCEPTION).
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["LOCAL", "node_types"]

LOCAL = "local"

# (node_type_id, cloud, cores, memory GiB, GPUs, local disk GB (0: none), Graviton)
_CLOUD: tuple[tuple[str, str, int, float, int, int, bool], ...] = (
    ("m5d.large", "AWS", 2, 8, 0, 75, False),
    ("m5d.xlarge", "AWS", 4, 16, 0, 150, False),
    ("i3.xlarge", "AWS", 4, 30.5, 0, 950, False),
    ("i3.2xlarge", "AWS", 8, 61, 0, 1900, False),
    ("r5d.xlarge", "AWS", 4, 32, 0, 150, False),
    ("c5d.xlarge", "AWS", 4, 8, 0, 100, False),
    ("g4dn.xlarge", "AWS", 4, 16, 1, 125, False),
    ("m6gd.large", "AWS", 2, 8, 0, 118, True),
    ("m6gd.xlarge", "AWS", 4, 16, 0, 237, True),
    ("m7gd.xlarge", "AWS", 4, 16, 0, 237, True),
    ("Standard_DS3_v2", "Azure", 4, 14, 0, 28, False),
    ("Standard_DS4_v2", "Azure", 8, 28, 0, 56, False),
    ("Standard_D4ds_v5", "Azure", 4, 16, 0, 150, False),
    ("Standard_E8ds_v4", "Azure", 8, 64, 0, 300, False),
    ("Standard_NC4as_T4_v3", "Azure", 4, 28, 1, 180, False),
    ("n2-standard-4", "GCP", 4, 16, 0, 0, False),
    ("n2-highmem-4", "GCP", 4, 32, 0, 0, False),
    ("n2-standard-8", "GCP", 8, 32, 0, 0, False),
    ("a2-highgpu-1g", "GCP", 12, 85, 1, 0, False),
)


def node_types() -> list[dict[str, Any]]:
    """The `list-node-types` items: `local` (this machine's cores and memory) first."""
    try:
        memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    except (ValueError, OSError, AttributeError):
        memory_mb = 0
    items = [_item(LOCAL, "This machine's Docker engine (local preflight, no Spark)", "Local",
                   float(os.cpu_count() or 1), memory_mb, 0, 0, False)]
    for node_id, cloud, cores, memory_gib, gpus, disk_gb, graviton in _CLOUD:
        items.append(_item(node_id, f"{cloud} {node_id} (runs on this machine's Docker engine locally)",
                           "GPU Accelerated" if gpus else "General Purpose", float(cores),
                           int(memory_gib * 1024), gpus, disk_gb, graviton))
    return items


def _item(node_id: str, description: str, category: str, cores: float, memory_mb: int, gpus: int,
          disk_gb: int, graviton: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "node_type_id": node_id, "instance_type_id": node_id, "description": description,
        "category": category, "num_cores": cores, "memory_mb": memory_mb, "num_gpus": gpus,
        "is_graviton": graviton, "is_deprecated": False, "is_hidden": False,
    }
    if disk_gb:
        item["node_instance_type"] = {"instance_type_id": node_id, "local_disks": 1,
                                      "local_disk_size_gb": disk_gb}
    return item
