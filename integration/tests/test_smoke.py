"""Smoke suite: every plugin loads alone and composed; bad configuration stops Orthanc."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from integration.conftest import OrthancFactory
from integration.harness.interfaces import Orthanc
from integration.harness.orthanc import Entry

pytestmark = pytest.mark.e2e

ALL_PLUGINS = ("dicom-events", "series-private-tags", "series-thumbnail")
STATUS_ROUTES = {
    "dicom-events": "/dicom-events/status",
    "series-private-tags": "/series-private-tags/status",
    "series-thumbnail": "/series-thumbnail/status",
}

# Valid sections for all three plugins. The broker is never contacted by these tests' assertions,
# so a closed loopback port is enough.
VALID_CONFIG: dict[str, Any] = {
    "DicomEvents": {
        "Events": {"StableSeries": True, "StableSeriesPublishTags": ["Modality"]},
        "Broker": {
            "Type": "rabbitmq",
            "RabbitConfig": {"URL": "amqp://guest:s3cret@127.0.0.1:9/", "Exchange": "smoke"},
        },
    },
    "Dictionary": {"0055,1011": ["UT", "QueueID", 1, 1, "MATTERHORN_Prvt_Tags"]},
    "SeriesMainPrivateDicomTags": ["QueueID"],
    "UserMetadata": {"SeriesPrivateTags": 2000, "ThumbnailInstanceID": 2001},
}


def _assert_loaded(server: Orthanc, plugins: tuple[str, ...]) -> None:
    for plugin in ALL_PLUGINS:
        response = server.client.get(STATUS_ROUTES[plugin])
        if plugin in plugins:
            assert response.status_code == 200, (plugin, response.text)
            assert response.json()["Plugin"] == plugin
        else:
            assert response.status_code == 404, (plugin, response.status_code)


def _assert_stops_cleanly(server: Orthanc) -> None:
    # Plugin 7.1 once made every shutdown a SIGSEGV (a REST callback freed after finalization).
    status = server.stop()
    assert status == 0, f"Orthanc exited with status {status}:\n{server.log_tail(20)}"


@pytest.mark.parametrize("plugin", ALL_PLUGINS)
def test_each_plugin_loads_alone_from_its_entry_module_and_stops_cleanly(
    orthanc_factory: OrthancFactory, plugin: str
) -> None:
    server = orthanc_factory([plugin], VALID_CONFIG, entry="standalone")
    _assert_loaded(server, (plugin,))
    _assert_stops_cleanly(server)


def test_all_three_compose_and_stop_cleanly(orthanc_factory: OrthancFactory) -> None:
    server = orthanc_factory(list(ALL_PLUGINS), VALID_CONFIG)
    _assert_loaded(server, ALL_PLUGINS)
    assert "Composed Python plugins loaded: " + ", ".join(ALL_PLUGINS) in server.log_text()
    _assert_stops_cleanly(server)


def test_two_of_three_compose(orthanc_factory: OrthancFactory) -> None:
    server = orthanc_factory(["series-thumbnail", "dicom-events"], VALID_CONFIG)
    _assert_loaded(server, ("dicom-events", "series-thumbnail"))
    _assert_stops_cleanly(server)


def test_password_of_the_broker_url_is_masked_in_the_status(
    orthanc_factory: OrthancFactory,
) -> None:
    server = orthanc_factory(["dicom-events"], VALID_CONFIG)
    status = server.client.get_json("/dicom-events/status")
    assert status["Broker"]["URL"] == "amqp://guest:***@127.0.0.1:9/"
    assert "s3cret" not in server.log_text()


def _with(path: str, value: Any) -> dict[str, Any]:
    """VALID_CONFIG with the value at a dotted key path replaced."""
    config = copy.deepcopy(VALID_CONFIG)
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[key]
    node[last] = value
    return config


BAD_CONFIGURATIONS = [
    ("dicom-events", "DicomEvents.Broker.Type", "kafka", "'kafka'"),
    ("dicom-events", "DicomEvents.Events.StoredInstanceThrottleMs", -5, "-5"),
    ("dicom-events", "DicomEvents.Events.StoredInstanceSkipOrigin", ["CLOUD"], "'CLOUD'"),
    ("series-private-tags", "SeriesMainPrivateDicomTags", ["NoSuchTag"], "'NoSuchTag'"),
    ("series-thumbnail", "SeriesThumbnail", {"Size": 4096}, "4096"),
]


@pytest.mark.parametrize(("plugin", "path", "value", "shown"), BAD_CONFIGURATIONS)
@pytest.mark.parametrize("entry", ["composed", "standalone"])
def test_invalid_configuration_stops_orthanc_naming_key_and_value(
    orthanc_factory: OrthancFactory, plugin: str, path: str, value: Any, shown: str, entry: Entry
) -> None:
    plugins = list(ALL_PLUGINS) if entry == "composed" else [plugin]
    server = orthanc_factory(plugins, _with(path, value), entry, start=False)
    returncode, log = server.start_expecting_failure()
    assert returncode != 0
    key_path = path if path != "SeriesThumbnail" else "SeriesThumbnail.Size"
    lines = [line for line in log.splitlines() if key_path in line and shown in line]
    assert lines, f"no log line names {key_path} and {shown}:\n{log[-3000:]}"
    if entry == "composed":
        assert any(f"Plugin {plugin} refused to start" in line for line in lines)
