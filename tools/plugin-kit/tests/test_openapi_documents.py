"""Each plugin's shipped OpenAPI document describes exactly the routes the plugin serves."""

from __future__ import annotations

import copy
import importlib
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import generate
import pytest
import yaml
from openapi_spec_validator import validate

from orthanc_fake import FakeOrthanc

# The methods Orthanc hands to a plugin's REST callback.
ORTHANC_METHODS = ("GET", "POST", "PUT", "DELETE")
# Enough configuration for every plugin of the repository to start.
CONFIGURATION: dict[str, Any] = {
    "DicomEvents": {
        "Events": {"StableSeries": True},
        "Broker": {
            "Type": "rabbitmq",
            "RabbitConfig": {"URL": "amqp://guest:guest@127.0.0.1:1/", "Exchange": "x"},
        },
    },
    "Dictionary": {"0055,1011": ["UT", "QueueID", 1, 1, "MATTERHORN_Prvt_Tags"]},
    "SeriesMainPrivateDicomTags": ["QueueID"],
    "UserMetadata": {"SeriesPrivateTags": 2000, "ThumbnailInstanceID": 2001},
}
PLUGINS = generate.discover()


def shipped_document(package: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(
        resources.files(package).joinpath("openapi.yaml").read_text()
    )
    return document


def orthanc_pattern(path: str) -> str:
    """The regular expression a documented path template is registered with."""
    return re.sub(r"\{[^}/]+\}", "([!-.0-~]+)", path)  # the kit's ID_SEGMENT


def request_path(path: str) -> str:
    """A documented path template with an unknown ID in it: checking methods needs no resource."""
    return re.sub(r"\{[^}/]+\}", "0123abcd-unknown", path)


def documented_methods(path_item: dict[str, Any]) -> set[str]:
    return {method.upper() for method in path_item if method.upper() in ORTHANC_METHODS}


@pytest.fixture(params=PLUGINS, ids=[plugin.distribution for plugin in PLUGINS])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, FakeOrthanc]]:
    """(import package, an orthanc fake with that plugin's routes); no worker is started."""
    package: str = request.param.package
    configuration = copy.deepcopy(CONFIGURATION)
    configuration["DicomEvents"]["StateDirectory"] = str(tmp_path / "state")
    fake = FakeOrthanc(configuration)
    plugin = importlib.import_module(f"{package}.plugin").create(fake, configuration)
    yield package, fake
    plugin.on_change(int(fake.ChangeType.ORTHANC_STOPPED), 0, "")


def test_the_document_is_valid_openapi_for_this_version(served: tuple[str, FakeOrthanc]) -> None:
    package, _ = served
    document = shipped_document(package)
    validate(document)
    assert (
        document["info"]["version"] == importlib.import_module(f"{package}.__about__").__version__
    )


def test_every_route_is_documented_and_every_documented_path_is_a_route(
    served: tuple[str, FakeOrthanc],
) -> None:
    package, fake = served
    registered = {route.pattern.pattern for route in fake.routes}
    assert registered == {orthanc_pattern(path) for path in shipped_document(package)["paths"]}


def test_each_route_answers_the_documented_methods_and_405_to_the_others(
    served: tuple[str, FakeOrthanc],
) -> None:
    package, fake = served
    for path, path_item in shipped_document(package)["paths"].items():
        allowed = documented_methods(path_item)
        for method in ORTHANC_METHODS:
            answer = fake.call_route(method, request_path(path))
            if method in allowed:
                assert answer.status != 405, (method, path)
            else:
                assert answer.status == 405, (method, path, answer.status)
                assert set(answer.headers["Allow"].split(",")) == allowed, (method, path)


def test_every_operation_documents_the_503_of_an_unexpected_error(
    served: tuple[str, FakeOrthanc],
) -> None:
    package, _ = served
    for path, path_item in shipped_document(package)["paths"].items():
        for method in documented_methods(path_item):
            assert "503" in path_item[method.lower()]["responses"], (method, path)
