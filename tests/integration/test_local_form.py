"""The launch form on the real local preflight workspace (issue 20.5, the form's half): a form
opened later lists the clusters still running there and terminates them; the DCS base's real
Python picks the runtime without `%dcs_check` (issue 20.4)."""

from __future__ import annotations

from typing import Any

import pytest
from support.images import containers_of, push_image

from dcs_magic import Workspace

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.usefixtures("no_databricks_config")]


def test_a_form_opened_later_lists_the_running_local_cluster_and_terminates_it(
        shell: Any, dcs_base_image: str, registry: Any, docker_client: Any, docker_cleanup: Any) -> None:
    repository = f"{registry.host}/{docker_cleanup.unique('later')}"
    docker_client.api.tag(dcs_base_image, repository, "1")
    image = docker_cleanup.add(f"{repository}:1")
    push_image(docker_client, image)
    pinned = f"{repository}@{registry.manifest_digest(repository.split('/', 1)[1], '1')}"
    first = shell.run_line_magic("dcs_launch", f"--local --image {pinned}")
    assert first.image_python is not None and first.image_python.startswith("3.11.")  # the image's own Python
    assert first.controls["spark_version"].value == "15.4.x-scala2.12"
    first.controls["cluster_name"].value = "dcs-test-later"
    first.controls["node_type_id"].value = "local"
    assert first.problems.value == ""
    first.create_button.click()
    cluster_id = first.wait(300)
    assert cluster_id is not None and first.cluster_info["state"] == "RUNNING", first.state.value
    first.close()  # its output is gone (a cleared cell): the cluster runs on

    later = shell.run_line_magic("dcs_launch", "--local")
    assert cluster_id in later.listed  # other sessions' clusters on this engine may be listed too
    later.listed[cluster_id].click()
    assert later.wait_listed(120)
    with Workspace.local() as workspace:
        assert workspace.get_cluster(cluster_id)["state"] == "TERMINATED"
    assert containers_of(docker_client, cluster_id) == []
