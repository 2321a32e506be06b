"""`%dcs_run` in a real JupyterLab + Chromium (issue 24, item 4), against the local preflight
workspace: the cell's output shows the run's state changes while the cell still runs, each
with its time, and the run page as a link; once saved, the notebook holds that output as
plain display data (HTML + text/plain) that needs no widget state to be read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyterlab_driver import open_notebook, run_all_cells, save_notebook, wait_until_done, write_notebook
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.docker]

RUN_OUTPUT = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell >> nth=1 >> .dcs-run"
_SEEN_JS = """() => { const el = document.querySelector('.dcs-run');
    return el ? [el.dataset.status, [...el.querySelectorAll('li b')].map(b => b.textContent)] : null; }"""


@pytest.fixture
def pushed_base(dcs_base_image: str, registry: Any, docker_client: Any, docker_cleanup: Any) -> Iterator[str]:
    repository = f"{registry.host}/{docker_cleanup.unique('run-in-lab')}"
    docker_client.api.tag(dcs_base_image, repository, "1")
    ref = docker_cleanup.add(f"{repository}:1")
    events = list(docker_client.api.push(repository, tag="1", stream=True, decode=True))
    assert not [e for e in events if "error" in e], events
    yield ref


@pytest.mark.timeout(600)
def test_run_states_show_as_they_come_and_stay_in_the_saved_notebook(
        page: Any, jupyter_lab: Any, notebook_dir: Path, pushed_base: str, screenshot: Any) -> None:
    (notebook_dir / "cluster.json").write_text(json.dumps({
        "cluster_name": "dcs-test-run-in-lab", "spark_version": "15.4.x-scala2.12", "node_type_id": "local",
        "num_workers": 0, "docker_image": {"url": pushed_base}}))
    # The task lasts long enough for the page's 0.1 s samples to see RUNNING (a task that ends
    # between two of the workspace's polls goes from PENDING to TERMINATING).
    (notebook_dir / "lab_job.py").write_text("import time\ntime.sleep(1.5)\nprint('the job ran in the image')\n")
    cells = ["%load_ext dcs_magic", "%dcs_run --local --spec cluster.json --python-file lab_job.py"]
    name = f"{notebook_dir.name}/test.ipynb"
    write_notebook(jupyter_lab.root / name, cells)
    open_notebook(page, jupyter_lab, name, len(cells))
    run_all_cells(page)

    # While the cell runs, sample what the output shows: it is updated in place.
    output = page.locator(RUN_OUTPUT)
    expect(output).to_be_visible(timeout=120_000)
    samples: list[tuple[str, tuple[str, ...]]] = []
    shot = False
    while not samples or samples[-1][0] == "running":
        seen = page.evaluate(_SEEN_JS)
        if seen is not None and (not samples or samples[-1] != (seen[0], tuple(seen[1]))):
            samples.append((seen[0], tuple(seen[1])))
            if not shot and seen[0] == "running" and "RUNNING" in seen[1]:
                screenshot("run-states-running")  # (no scrolling: each update replaces the element)
                shot = True
        page.wait_for_timeout(100)
    assert samples[0][0] == "running" and samples[-1][0] == "done", samples
    assert any("RUNNING" in states and status == "running" for status, states in samples), samples
    for (_, before), (_, after) in zip(samples, samples[1:]):  # lines only ever added, in order
        assert after[:len(before)] == before, samples
    final = [s for s in samples[-1][1] if not s.startswith("TERMINATING")]
    folded = [s for i, s in enumerate(final) if i == 0 or final[i - 1] != s]
    assert folded == ["PENDING", "RUNNING", "TERMINATED/SUCCESS"], samples

    prompts = wait_until_done(page, 120_000)
    assert prompts[1] == "[2]:", prompts
    link = output.get_by_role("link")
    href = link.get_attribute("href")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/runs/\d+", href or ""), href
    expect(link).to_have_text(href)
    expect(output).to_contain_text("State: TERMINATED/SUCCESS (exit code 0)")
    times = output.locator("li time")
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d", t) for t in times.all_inner_texts())
    cell = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell >> nth=1")
    expect(cell.locator(".jp-OutputArea")).to_contain_text("the job ran in the image")
    expect(cell.locator(".jp-OutputArea")).to_contain_text(re.compile(r"Uploaded lab_job\.py to /Workspace/Users/"))
    output.scroll_into_view_if_needed()
    screenshot("run-states-done")

    save_notebook(page)
    saved = json.loads((jupyter_lab.root / name).read_text())
    outputs = saved["cells"][1]["outputs"]
    [record] = [o for o in outputs if o["output_type"] == "display_data"]
    assert set(record["data"]) == {"text/plain", "text/html"}  # no widget view: readable as it is
    html = "".join(record["data"]["text/html"])
    text = "".join(record["data"]["text/plain"])
    assert f'<a href="{href}"' in html and 'data-status="done"' in html
    assert text.splitlines()[0].endswith(href) and text.splitlines()[-1] == "State: TERMINATED/SUCCESS (exit code 0)"
    assert "widgets" not in saved["metadata"] or not any(
        "dcs-run" in json.dumps(m) for m in saved["metadata"]["widgets"].values())
