"""`dcs runtimes --update` against a copy of databricks/environments served on 127.0.0.1.

The copy has real keys and a made-up line 20 that this code has never heard of: after the
update it is a runtime line (Python 3.13 from its pyproject, its pins, JDK/Ubuntu/Spark
assumed from the newest known line, said so), with no code change. Every command runs as a
user runs it: `dcs` in a subprocess, its data file under a temporary XDG_DATA_HOME.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.environments import COMMIT, KEYS, tarball, write_layout
from support.registry import serve_http

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """The environment of a user whose data folder is empty (no earlier update)."""
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "PYTHONPATH": str(ROOT)}
    env.pop("DCS_RUNTIME_PINS", None)
    return env


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[str]:
    body = tarball(write_layout(tmp_path / "copy"))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            if self.path != "/databricks/environments/tar.gz/refs/heads/main":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with serve_http(Handler) as host:
        yield f"http://{host}/databricks/environments/tar.gz/refs/heads/main"


def dcs(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dcs_magic.cli", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_update_from_the_tarball_adds_a_new_line_with_no_code_change(home: dict[str, str], archive: str,
                                                                      tmp_path: Path) -> None:
    before = json.loads(dcs(home, "runtimes", "--json").stdout)
    assert "20" not in {row["line"] for row in before}
    assert dcs(home, "check", "x", "--runtime", "20").stderr.count("dcs runtimes --update") == 1

    updated = dcs(home, "runtimes", "--update", "--from", archive)
    assert updated.returncode == 0, updated.stderr
    written = tmp_path / "data" / "dcs-magic" / "runtime-pins.json"
    assert f"Wrote {written}" in updated.stderr and "Databricks Runtime 20 is new" in updated.stderr
    data = json.loads(written.read_text())
    assert data["commit"] == COMMIT and data["date"] == "2026-05-28"  # the pax header, the members' time
    assert set(KEYS) <= set(data["keys"])
    assert data["keys"]["20.x-scala2.13"]["python"] == "3.13"
    assert data["keys"]["18.x-scala2.13"]["pins"]["pyarrow"] == "21.0.0"
    # The lines databricks/environments does not cover keep their databricks/containers pins.
    assert "databricks/containers" in data["keys"]["9.1.x-scala2.12"]["origin"]

    rows = {row["line"]: row for row in json.loads(dcs(home, "runtimes", "--json").stdout)}
    assert rows["20"]["python"] == "3.13" and rows["20"]["inferred_from"] == "19" and rows["20"]["pins"] == 6
    assert rows["20"]["commit"] == COMMIT and rows["18"]["date"] == "2026-05-28"
    table = dcs(home, "runtimes")
    assert f"@{COMMIT[:12]}" in table.stdout and "20 Beta" in table.stdout
    assert "Warning: 20 Beta: not known to this dcs-magic" in table.stderr
    constraints = dcs(home, "runtimes", "--constraints", "20.x-scala2.13").stdout
    assert "pandas==3.0.1" in constraints.splitlines()


def test_update_from_a_checkout_and_what_it_refuses(home: dict[str, str], tmp_path: Path) -> None:
    checkout = write_layout(tmp_path / "checkout")
    (checkout / ".git").mkdir()
    (checkout / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (checkout / ".git" / "refs" / "heads").mkdir(parents=True)
    (checkout / ".git" / "refs" / "heads" / "main").write_text(COMMIT + "\n")
    out = tmp_path / "pins.json"
    done = dcs(home, "runtimes", "--update", "--from", str(checkout), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["commit"] == COMMIT

    empty = tmp_path / "empty"
    empty.mkdir()
    refused = dcs(home, "runtimes", "--update", "--from", str(empty), "--out", str(out))
    assert refused.returncode == 1 and "has no python/dbr/ folder" in refused.stderr
    assert "Traceback" not in refused.stderr
    unreachable = dcs(home, "runtimes", "--update", "--from", "http://127.0.0.1:9/archive.tar.gz")
    assert unreachable.returncode == 1 and "could not download" in unreachable.stderr
    assert dcs(home, "runtimes", "--out", str(out)).returncode == 2  # --out without --update: usage


def test_stale_data_is_called_out(home: dict[str, str], tmp_path: Path) -> None:
    old = tmp_path / "old.json"
    shipped = json.loads(dcs(home, "runtimes", "--json").stdout)
    assert shipped  # the shipped data works without an update
    data = {"source": "test", "commit": None, "date": "2020-01-01", "read": "2020-01-02",
            "keys": {"15.4.x-scala2.12": {"python": "3.11", "origin": "test", "pins": {"numpy": "1.23.5"}}}}
    old.write_text(json.dumps(data))
    # Named by DCS_RUNTIME_PINS it is used whatever its age, and its age is said.
    table = dcs({**home, "DCS_RUNTIME_PINS": str(old)}, "runtimes")
    assert "Package pins: test (commit of 2020-01-01)" in table.stdout
    assert "days old; refresh it with: dcs runtimes --update" in table.stderr
    # In the default place an update read before the shipped data was is not used: the shipped data is.
    default = tmp_path / "data" / "dcs-magic" / "runtime-pins.json"
    default.parent.mkdir(parents=True)
    default.write_text(json.dumps(data))
    assert "Package pins: test" not in dcs(home, "runtimes").stdout


def test_update_from_a_downloaded_tarball_file(home: dict[str, str], tmp_path: Path) -> None:
    archive = tmp_path / "environments.tar.gz"
    archive.write_bytes(tarball(write_layout(tmp_path / "copy")))
    done = dcs(home, "runtimes", "--update", "--from", str(archive))
    assert done.returncode == 0, done.stderr
    written = tmp_path / "data" / "dcs-magic" / "runtime-pins.json"
    assert json.loads(written.read_text())["commit"] == COMMIT
    # Keys the copy lacks are reported, with the way back to the shipped pins.
    assert "no longer published: " in done.stderr and f"remove {written}" in done.stderr
    not_a_tarball = tmp_path / "notes.txt"
    not_a_tarball.write_text("hello\n")
    refused = dcs(home, "runtimes", "--update", "--from", str(not_a_tarball))
    assert refused.returncode == 1 and "is not a readable tarball" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 2  # the error and its hint, no traceback
