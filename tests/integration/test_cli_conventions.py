"""`dcs` follows command-line conventions, run as a user runs it, from a clean shell.

Each row is one command: `python -m dcs_magic.cli ARGS` in a subprocess whose environment is
this one minus every `DATABRICKS_*`, `DCS_*` and XDG base directory variable, with HOME a
fresh temporary folder (no ~/.databrickscfg, no Docker login, no local workspace records).
The row gives the exit status and what stderr (or stdout) must and must not say. Every row
also holds: no traceback, and no `%config` (a notebook setting) in anything printed.

- Usage errors exit 2: argparse's own ("dcs CMD: error: ...") and the UsageErrors found after
  parsing ("dcs: UsageError: ..."): `dcs export` without --spec/--lock, `--var novalue`, a
  `--var` name the notebook never uses (with the closest one it does), `--from`/`--out`
  without `--update`, a bad `--runtime`, an unset `--password-env` variable.
- A `--var` the notebook does use (in a template, or set by its parameters cell) passes.
- Not usage (exit 1): no workspace configured (the hint says --profile, never %config), an id
  the local preflight workspace does not know (it says so, not Databricks' "30 days"), a local
  launch that fails (and prints no URL of the local workspace, whose pages end with the command).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

CLI = [sys.executable, "-m", "dcs_magic.cli"]
DROPPED = ("DATABRICKS_", "DCS_", "XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")
UNREACHABLE_IMAGE = "127.0.0.1:1/dcs-test-conventions/none:1"  # port 1: nothing answers

NOTEBOOK = [
    new_code_cell('base_image = "dcs-test/base:1"\nflavour = "etl"\nunused_param = 1\n',
                  metadata={"tags": ["parameters"]}),
    new_code_cell("%%dockerfile app  # the app image\nFROM {{ base_image }}\nLABEL flavour={{ flavour }}\n"),
]
SPEC = {"cluster_name": "dcs-test-conventions", "spark_version": "15.4.x-scala2.12", "node_type_id": "local",
        "num_workers": 0, "docker_image": {"url": UNREACHABLE_IMAGE}}

# (id, arguments, exit status, what the output says, what it never says)
ROWS = [
    # -- usage: exit 2 ------------------------------------------------------------------------------
    ("export without --spec or --lock", ["export", "bundle"], 2,
     ["dcs: UsageError: dcs export needs --spec FILE or --lock NOTEBOOK", "Hint: --spec cluster.json"], []),
    ("export of an unknown kind", ["export", "nope", "--spec", "spec.json"], 2,
     ["dcs export: error: argument kind: invalid choice: 'nope'"], []),
    ("build without a tag", ["build", "nb.ipynb"], 2,
     ["dcs build: error: the following arguments are required: -t/--tag"], []),
    ("render --var without a value", ["render", "nb.ipynb", "--var", "novalue"], 2,
     ["dcs: UsageError: --var 'novalue' is not NAME=VALUE"], []),
    ("build --var without a value", ["build", "nb.ipynb", "-t", "dcs-test-never:1", "--var", "novalue"], 2,
     ["--var 'novalue' is not NAME=VALUE"], []),
    ("render --var of a name the notebook never uses", ["render", "nb.ipynb", "--var", "flavor=ml"], 2,
     ["dcs: UsageError: --var flavor:", "never uses a variable 'flavor'", "did you mean 'flavour'?",
      "Hint: --var flavour=VALUE"], []),
    ("build --push --var of a name the notebook never uses",
     ["build", "nb.ipynb", "-t", "dcs-test-never:1", "--push", "--var", "flavor=ml"], 2,
     ["did you mean 'flavour'?"], ["Step 1"]),
    ("runtimes --out without --update", ["runtimes", "--out", "pins.json"], 2,
     ["dcs: UsageError: --from and --out go with --update"], []),
    ("check --runtime that is no runtime line", ["check", "dcs-test-never:1", "--runtime", "banana"], 2,
     ["dcs: UsageError: 'banana' is not a Databricks Runtime line"], []),
    ("launch --timeout nan", ["launch", "--spec", "spec.json", "--timeout", "nan"], 2,
     ["dcs launch: error: argument --timeout", "'nan' is not a usable number of seconds"], []),
    ("why without a cluster or --from", ["why"], 2, ["dcs why: error: give a CLUSTER_ID or --from PATH"], []),
    ("build --push --password-env naming an unset variable",
     ["build", "nb.ipynb", "-t", "dcs-test-never:1", "--push", "--username", "u", "--password-env",
      "DCS_TEST_UNSET_PASSWORD"], 2, ["dcs: UsageError: --password-env DCS_TEST_UNSET_PASSWORD"], []),
    # -- a --var the notebook uses passes --------------------------------------------------------------
    ("render --var read by a template", ["render", "nb.ipynb", "--var", "flavour=ml"], 0, ["dcs-build/app"], []),
    ("render --var set by the parameters cell only", ["render", "nb.ipynb", "--var", "unused_param=2"], 0,
     ["dcs-build/app"], []),
    # -- not usage: exit 1, with command-line hints ---------------------------------------------------------
    ("terminate with no workspace configured", ["terminate", "0101-000000-nothere"], 1,
     ["dcs: ConfigError: No usable Databricks workspace credentials", "select it with --profile NAME"], []),
    ("why with no workspace configured", ["why", "0101-000000-nothere"], 1, ["--profile NAME"], []),
    ("doctor with no workspace configured", ["doctor"], 1, ["[FAIL] credentials", "--profile NAME"], []),
    pytest.param("terminate --local of an id the local workspace does not know",
                 ["terminate", "0101-000000-nothere", "--local"], 1,
                 ["404 RESOURCE_DOES_NOT_EXIST", "not known to the local preflight workspace"], ["30 days"],
                 marks=pytest.mark.docker),
    pytest.param("why --local of an id the local workspace does not know",
                 ["why", "0101-000000-nothere", "--local"], 1,
                 ["not known to the local preflight workspace"], ["30 days"], marks=pytest.mark.docker),
    pytest.param("launch --local that fails prints no URL of the workspace that ends with it",
                 ["launch", "--spec", "spec.json", "--local"], 1,
                 ["on the local preflight workspace (driver container dcs-local-", "TERMINATED",
                  "ClusterError", "dcs why "], ["/compute/clusters/", "cluster page"],
                 marks=pytest.mark.docker),
]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A notebook whose template reads `flavour` (its parameters cell also sets `unused_param`),
    and a cluster spec whose image no registry serves."""
    work = tmp_path / "work"
    work.mkdir()
    nbformat.write(new_notebook(cells=NOTEBOOK), work / "nb.ipynb")
    (work / "spec.json").write_text(json.dumps(SPEC))
    return work


def clean_environment(home: Path) -> dict[str, str]:
    """This environment without DATABRICKS_*, DCS_* and the XDG base folders; HOME is HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(DROPPED)}
    env["HOME"] = str(home)
    if env.get("PYTHONPATH"):  # a checkout run as `PYTHONPATH=. pytest`: the commands run elsewhere
        env["PYTHONPATH"] = os.pathsep.join(str(Path(p).resolve()) for p in env["PYTHONPATH"].split(os.pathsep) if p)
    return env


@pytest.mark.parametrize("case, args, status, says, never", ROWS, ids=[
    row.values[0] if hasattr(row, "values") else row[0] for row in ROWS])
def test_cli_convention(case: str, args: list[str], status: int, says: list[str], never: list[str],
                        workdir: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    proc = subprocess.run([*CLI, *args], cwd=workdir, env=clean_environment(home), capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL, check=False)
    printed = proc.stdout + proc.stderr
    assert proc.returncode == status, f"{case}: exit {proc.returncode}\n{printed}"
    for text in says:
        assert text in printed, f"{case}: {text!r} missing from\n{printed}"
    for text in [*never, "%config", "Traceback"]:
        assert text not in printed, f"{case}: {text!r} in\n{printed}"
    if status == 2 and "render" in args:
        assert not (workdir / "dcs-build").exists()  # refused before anything was written
