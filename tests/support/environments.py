"""A small copy of databricks/environments' layout, on disk or as GitHub's tarball, for tests.

`write_layout(root, keys)` writes `python/dbr/<key>/constraints.txt` and `pyproject.toml` the
way the repository does (`name~=version` pins, `requires-python = "==3.N.*"`); `tarball(root,
commit)` packs it as GitHub's archive does (one top folder, the commit in the pax header,
every member dated with the commit time).
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

# A made-up line 20 the code has never heard of, beside real keys (real pins, a few each).
KEYS: dict[str, tuple[str, dict[str, str]]] = {
    "15.4.x-scala2.12": ("3.11", {"pyarrow": "14.0.1", "numpy": "1.23.5", "pandas": "1.5.3", "ipykernel": "6.25.1"}),
    "17.3.x-gpu-ml-scala2.13": ("3.12", {"pyarrow": "19.0.1", "torch": "2.7.1", "numpy": "2.1.3"}),
    "18.x-scala2.13": ("3.12", {"pyarrow": "21.0.0", "numpy": "2.1.3", "pandas": "2.2.3", "ipykernel": "6.29.5",
                                "ipython": "8.30.0", "virtualenv": "20.29.3"}),
    "18.1.x-scala2.13": ("3.12", {"pyarrow": "21.0.0", "numpy": "2.1.3", "pandas": "2.2.3", "ipykernel": "6.29.5",
                                  "ipython": "8.30.0", "virtualenv": "20.29.4"}),
    "19.x-scala2.13": ("3.12", {"pyarrow": "21.0.0", "numpy": "2.3.4", "pandas": "2.3.3", "ipykernel": "6.30.1",
                                "ipython": "9.7.0", "virtualenv": "20.29.3"}),
    "20.x-scala2.13": ("3.13", {"pyarrow": "23.0.0", "numpy": "2.4.0", "pandas": "3.0.1", "ipykernel": "7.0.1",
                                "ipython": "9.9.0", "virtualenv": "20.35.0"}),
}
COMMIT = "0123456789abcdef0123456789abcdef01234567"
COMMIT_TIME = 1_780_000_000  # 2026-05-28


def write_layout(root: Path, keys: dict[str, tuple[str, dict[str, str]]] = KEYS) -> Path:
    for key, (python, pins) in keys.items():
        folder = root / "python" / "dbr" / key
        folder.mkdir(parents=True, exist_ok=True)
        lines = [f"# constraints.txt file for Databricks Runtime {key}", ""]
        lines += [f"{name}~={version}" for name, version in sorted(pins.items())]
        (folder / "constraints.txt").write_text("\n".join(lines) + "\n")
        (folder / "pyproject.toml").write_text(
            f'# pyproject.toml file for Databricks Runtime {key}\n\n[project]\nname = "env"\n'
            f'version = "0.1.0"\nrequires-python = "=={python}.*"\n')
    (root / "README.md").write_text("# databricks-environments (test copy)\n")
    return root


def tarball(root: Path, commit: str = COMMIT, mtime: int = COMMIT_TIME) -> bytes:
    buf = io.BytesIO()
    top = f"databricks-environments-{commit[:7]}"
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT, pax_headers={"comment": commit}) as tar:
        for path in sorted(root.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=f"{top}/{path.relative_to(root).as_posix()}")
            info.mtime = mtime
            if path.is_file():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    return buf.getvalue()
