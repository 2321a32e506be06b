"""The launch form's Registry choice and "store this password as a secret" (issue 26, items 2
and 4), driven through its Python objects; the secret goes to a real local workspace's Secrets
API (its server on 127.0.0.1, no engine). The typed password must end up in the secret store
and nowhere else: not in widget state, the preview, the record or any message. The password box
is a `SecretInput`: these tests send it what its page sends (`_handle_custom_msg`, ipywidgets'
dispatch of a custom message) or call `submit(Secret)`."""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from pathlib import Path

import ipywidgets
import pytest
from IPython.core.error import UsageError
from ipywidgets.embed import embed_data
from support.comms import record_comms

from dcs_magic import Workspace
from dcs_magic.jupyter.launch import LaunchWidget
from dcs_magic.jupyter.secret_input import SecretInput
from dcs_magic.model.credentials import Secret
from dcs_magic.preflight import LocalWorkspaceServer
from dcs_magic.settings import local_state_dir

pytestmark = pytest.mark.usefixtures("no_databricks_config")

NO_ENGINE = "unix:///nonexistent/dcs-test-registry-form.sock"
PASSWORD = "Pw-registry-form-4711-zQ8"  # made up; looked for everywhere it must not be
GAR = "europe-west1-docker.pkg.dev/project/repo/app@sha256:" + "b" * 64
ECR = "123456789012.dkr.ecr.us-west-2.amazonaws.com/team/app@sha256:" + "c" * 64
ARTIFACT = "1234567890123456.containers.us-west-2.cloud.databricks.com/main.default.app:1"
PRIVATE = "127.0.0.1:5999/team/app@sha256:" + "d" * 64


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalWorkspaceServer]:
    started = LocalWorkspaceServer(docker_host=NO_ENGINE, records=None,
                                   secrets_file=tmp_path / "state" / "secrets" / "scopes.json").start()
    yield started
    started.stop()


@pytest.fixture
def secrets_ws(server: LocalWorkspaceServer) -> Iterator[Workspace]:
    with Workspace(host=server.host, token=server.token) as workspace:
        yield workspace


def all_widgets(widget: ipywidgets.Widget) -> list[ipywidgets.Widget]:
    found, stack = [], [widget]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(getattr(current, "children", ()) or ())
    return found


def everything_shown(widget: LaunchWidget) -> str:
    """Every widget's state (as the front-end and a saved notebook get it), the manager's
    state, the embed data, and the record under the form."""
    states = [w.get_state() for w in all_widgets(widget)]
    return "\n".join([json.dumps(states, default=str),
                      json.dumps(ipywidgets.Widget.get_manager_state(), default=str),
                      json.dumps(embed_data(views=[widget]), default=str),
                      json.dumps(widget.record()._repr_mimebundle_(), default=str)])


def typed(box: SecretInput, text: str) -> None:
    """What the page sends when TEXT was typed and Store clicked (or Enter pressed)."""
    box._handle_custom_msg({"type": "submit", "value": text}, [])


def problems(widget: LaunchWidget) -> str:
    return html.unescape(widget.problems.value)


def docker_image(widget: LaunchWidget) -> dict:
    return widget.spec.to_dict(validate=False)["docker_image"]


# -- the Registry choice --------------------------------------------------------------------------


def test_registry_choice_fills_the_username_convention_and_explains_the_password():
    widget = LaunchWidget(image=GAR)
    kind, auth, user = (widget.controls[n] for n in ("registry_kind", "auth_mode", "username"))
    assert kind.value == "auto" and auth.value == "none"
    assert "Detected Google Artifact Registry" in html.unescape(widget.kind_help.value)

    kind.value = "gar"
    assert (auth.value, user.value) == ("secret", "_json_key")
    assert "_json_key" in html.unescape(widget.kind_help.value)
    assert widget.store_row.layout.display is None  # the password can be stored from here

    kind.value = "acr"  # GAR's username is not ACR's: cleared, the box says what to type
    assert user.value == "" and user.placeholder == "the service principal's application (client) id"
    assert "is not <name>.azurecr.io" in problems(widget)

    user.value = "my-user"
    kind.value = "ecr"  # a username the user typed stays (and is flagged)
    assert user.value == "my-user" and "expects the username AWS, not my-user" in problems(widget)

    kind.value = "none"
    assert auth.value == "none" and "basic_auth" not in docker_image(widget)
    assert widget.store_row.layout.display == "none"
    widget.close()


def test_ecr_with_a_password_warns_about_the_12_hour_token():
    widget = LaunchWidget(image=ECR, registry_auth="ecr")
    assert widget.controls["username"].value == "AWS"
    widget.controls["password_secret"].value = "{{secrets/aws/ecr-token}}"
    assert docker_image(widget)["basic_auth"] == {"username": "AWS", "password": "{{secrets/aws/ecr-token}}"}
    shown = problems(widget)
    assert "12 hours" in shown and "instance profile" in shown
    widget.controls["registry_kind"].value = "none"
    assert "12 hours" not in problems(widget)
    assert "aws_attributes.instance_profile_arn" in problems(widget)
    widget.close()


def test_an_artifact_registry_image_is_flagged():
    widget = LaunchWidget(image=ARTIFACT)
    assert "classic DCS clusters are not among them" in problems(widget)
    widget.close()


def test_magic_takes_registry_auth(shell):
    widget = shell.run_line_magic("dcs_launch", f"--image {GAR} --registry-auth gar")
    assert widget.controls["registry_kind"].value == "gar" and widget.controls["username"].value == "_json_key"
    widget.close()
    with pytest.raises(UsageError, match="invalid choice: 'quay'"):
        shell.run_line_magic("dcs_launch", f"--image {GAR} --registry-auth quay")


# -- store this password as a secret ----------------------------------------------------------------


def test_store_as_secret_puts_the_password_in_the_scope_and_the_reference_in_the_spec(
        secrets_ws: Workspace, server: LocalWorkspaceServer, monkeypatch: pytest.MonkeyPatch):
    record_comms(monkeypatch)  # every message the form's widgets send to the page is kept
    widget = LaunchWidget(secrets_ws, image=PRIVATE, registry_auth="basic")
    widget.controls["username"].value = "robot"
    assert (widget.store_scope.value, widget.store_key.value) == ("dcs-registry", "app-password")
    box = widget.store_password
    assert not box.disabled and "value" not in box.keys  # no trait could hold what is typed
    message = {"type": "submit", "value": PASSWORD}
    box._handle_custom_msg(message, [])  # as the page sends it (Store clicked, or Enter)
    assert message == {"type": "submit"}  # taken out of the message, not copied
    assert box.comm.messages[-1] == ("comm_msg", {"method": "custom", "content": {"type": "done"}})

    reference = "{{secrets/dcs-registry/app-password}}"
    assert widget.controls["auth_mode"].value == "secret"
    assert widget.controls["password_secret"].value == reference
    assert docker_image(widget) == {"url": PRIVATE, "basic_auth": {"username": "robot", "password": reference}}
    assert server.secrets.resolve("dcs-registry", "app-password") == PASSWORD.encode()
    assert "Stored dcs-registry/app-password" in html.unescape(widget.store_status.value)
    assert PASSWORD not in everything_shown(widget)
    assert PASSWORD not in widget.preview.value + widget.copy_box.value + widget.download.value
    sent = [data for w in all_widgets(widget) for _, data in w.comm.messages]
    assert len(sent) > 30 and PASSWORD not in json.dumps(sent, default=str)
    with pytest.raises(TypeError, match="takes a Secret"):
        box.submit(PASSWORD)  # type: ignore[arg-type]
    widget.close()


def test_store_errors_are_said_in_the_form_without_the_password(secrets_ws: Workspace, server: LocalWorkspaceServer):
    widget = LaunchWidget(secrets_ws, image=PRIVATE, registry_auth="basic")

    typed(widget.store_password, "")  # nothing typed
    assert "Type the registry password in Password to store first" in html.unescape(widget.store_status.value)

    widget.store_scope.value = "bad scope!"
    typed(widget.store_password, PASSWORD)
    status = html.unescape(widget.store_status.value)
    assert 'role="alert"' in status and "Not stored: secret scope: use letters, digits" in status
    assert widget.controls["password_secret"].value == ""
    assert server.secrets.path is None or not server.secrets.path.exists() or \
        "bad scope" not in server.secrets.path.read_text()
    assert PASSWORD not in everything_shown(widget)
    widget.close()

    with Workspace(host=server.host, token="not-the-token") as refusing:  # the workspace refuses
        widget = LaunchWidget(refusing, image=PRIVATE, registry_auth="basic")
        typed(widget.store_password, PASSWORD)
        status = html.unescape(widget.store_status.value)
        assert "Not stored:" in status and 'role="alert"' in status
        assert PASSWORD not in everything_shown(widget)
        widget.close()

    preview_only = LaunchWidget(image=PRIVATE, registry_auth="basic")
    assert preview_only.store_password.disabled  # the page sends nothing; Python still gets an answer
    preview_only.store_password.submit(Secret(PASSWORD))
    assert "no workspace to store the password in" in html.unescape(preview_only.store_status.value)
    assert PASSWORD not in everything_shown(preview_only)
    preview_only.close()


def test_the_local_forms_secret_note_goes_once_the_password_is_stored(tmp_path: Path):
    """On the local workspace the form says a reference its store lacks ends in
    SECRET_RESOLUTION_ERROR; storing from the form (into that store) settles it."""
    store = local_state_dir() / "secrets" / "scopes.json"
    server = LocalWorkspaceServer(docker_host=NO_ENGINE, records=None, secrets_file=store).start()
    try:
        with Workspace(host=server.host, token=server.token) as ws:
            widget = LaunchWidget(ws, image=PRIVATE, registry_auth="basic", local=True)
            widget.controls["username"].value = "robot"
            widget.store_key.value = f"app-{tmp_path.name}"[:100]
            reference = f"{{{{secrets/dcs-registry/{widget.store_key.value}}}}}"
            widget.controls["password_secret"].value = reference
            assert "SECRET_RESOLUTION_ERROR" in problems(widget)
            assert widget.store_secret(Secret(PASSWORD)) == reference
            assert "SECRET_RESOLUTION_ERROR" not in problems(widget)
            assert PASSWORD not in everything_shown(widget)
            widget.close()
    finally:
        server.stop()
