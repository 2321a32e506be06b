"""The error tree: fields as attributes, readable text, no secret in either."""

from __future__ import annotations

import pytest

from dcs_magic import errors
from dcs_magic.errors import ApiError, ClusterError, DcsError, SpecError


def test_api_error_keeps_the_servers_message_and_shows_status_and_code() -> None:
    error = ApiError.from_response(400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "bad node type"},
                                   what="clusters/create", hint="pick a node type from node_types()")
    assert (error.status, error.error_code) == (400, "INVALID_PARAMETER_VALUE")
    assert error.message == "clusters/create: bad node type"
    assert str(error) == ("400 INVALID_PARAMETER_VALUE: clusters/create: bad node type\n"
                          "Hint: pick a node type from node_types()")
    assert error.short().startswith("BadRequest: 400 INVALID_PARAMETER_VALUE")


@pytest.mark.parametrize(("body", "expected"), [
    (b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
    (None, "HTTP 502"),
    ({"detail": "no message key"}, "no message key"),
])
def test_api_error_falls_back_to_the_body_text(body: object, expected: str) -> None:
    error = ApiError.from_response(502, body)
    assert error.message == expected and error.error_code is None


def test_cluster_error_fields() -> None:
    error = ClusterError("image pull failed", cluster_id="c1", state="TERMINATED",
                         termination_code="DOCKER_IMAGE_PULL_FAILURE", hint="check docker_image.url")
    assert (error.state, error.termination_code, error.message) == (
        "TERMINATED", "DOCKER_IMAGE_PULL_FAILURE", "image pull failed")
    assert isinstance(error, DcsError) and "Hint: check docker_image.url" in str(error)


def test_value_errors_are_catchable_as_value_error() -> None:
    with pytest.raises(ValueError):
        raise SpecError("spark_version is required", field="spark_version")


@pytest.mark.parametrize("status, klass", [
    (400, errors.BadRequest), (401, errors.Unauthenticated), (403, errors.PermissionDenied),
    (404, errors.NotFound), (409, errors.ResourceConflict), (429, errors.TooManyRequests),
    (500, errors.InternalError), (503, errors.TemporarilyUnavailable), (418, errors.ApiError),
])
def test_from_response_picks_the_subclass_for_the_status(status: int, klass: type) -> None:
    error = errors.ApiError.from_response(status, {"error_code": "X", "message": "m"})
    assert type(error) is klass
    assert isinstance(error, errors.ApiError) and error.status == status and error.message == "m"


def test_image_not_found_is_an_engine_error() -> None:
    error = errors.ImageNotFoundError("no image x", image="x", host="unix:///s")
    assert isinstance(error, errors.EngineError) and error.image == "x" and error.host == "unix:///s"
