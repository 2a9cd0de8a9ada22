"""The OpenAPI document shipped in the package describes exactly the routes the plugin serves."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import pytest
import yaml
from openapi_spec_validator import validate
from thumbnail_testing import Thumbnails

from orthanc_fake import FakeOrthanc
from orthanc_series_thumbnail.__about__ import __version__

# The methods Orthanc hands to a plugin's REST callback.
ORTHANC_METHODS = ("GET", "POST", "PUT", "DELETE")


def shipped_document() -> dict[str, Any]:
    text = resources.files("orthanc_series_thumbnail").joinpath("openapi.yaml").read_text()
    document: dict[str, Any] = yaml.safe_load(text)
    return document


def orthanc_pattern(path: str) -> str:
    """The regular expression a documented path template is registered with."""
    return re.sub(r"\{[^}/]+\}", "([!-.0-~]+)", path)  # the routes' ID segment


def request_path(path: str) -> str:
    """A documented path template with an unknown ID in it: checking methods needs no resource."""
    return re.sub(r"\{[^}/]+\}", "0123abcd-unknown", path)


def documented_methods(path_item: dict[str, Any]) -> set[str]:
    return {method.upper() for method in path_item if method.upper() in ORTHANC_METHODS}


@pytest.fixture
def fake(thumbnails: Thumbnails) -> FakeOrthanc:
    """Orthanc with the plugin's routes registered; its worker is not running."""
    return thumbnails.fake


def test_the_document_is_valid_openapi_for_this_version() -> None:
    document = shipped_document()
    validate(document)
    assert document["info"]["version"] == __version__


def test_every_route_is_documented_and_every_documented_path_is_a_route(
    fake: FakeOrthanc,
) -> None:
    registered = {route.pattern.pattern for route in fake.routes}
    documented = {orthanc_pattern(path) for path in shipped_document()["paths"]}
    assert registered == documented


def test_each_route_answers_the_documented_methods_and_405_to_the_others(
    fake: FakeOrthanc,
) -> None:
    for path, path_item in shipped_document()["paths"].items():
        allowed = documented_methods(path_item)
        for method in ORTHANC_METHODS:
            answer = fake.call_route(method, request_path(path))
            if method in allowed:
                assert answer.status != 405, (method, path)
            else:
                assert answer.status == 405, (method, path, answer.status)
                assert set(answer.headers["Allow"].split(",")) == allowed, (method, path)


def test_every_operation_documents_the_503_of_an_unexpected_error() -> None:
    for path, path_item in shipped_document()["paths"].items():
        for method in documented_methods(path_item):
            assert "503" in path_item[method.lower()]["responses"], (method, path)
