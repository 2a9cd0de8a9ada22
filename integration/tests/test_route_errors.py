"""Every route family of the three plugins answers bad requests with a JSON error, never a 500."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from integration.conftest import OrthancFactory
from integration.tests.test_smoke import ALL_PLUGINS, VALID_CONFIG
from orthanc_fake.dicom import make_instance

pytestmark = pytest.mark.e2e

UNKNOWN = "0123abcd-00000000-00000000-00000000-00000000"
# (method, path, body, the statuses a correct plugin may answer)
HOSTILE_REQUESTS: list[tuple[str, str, bytes, set[int]]] = [
    ("GET", f"/series/{UNKNOWN}/thumbnail", b"", {404}),
    ("GET", "/series/abc%3Fexpand/thumbnail", b"", {404}),
    ("GET", "/series/%2E%2E%2Fsystem/thumbnail", b"", {404}),
    ("GET", "/series/{series}/thumbnail?size=abc", b"", {400}),
    ("GET", "/series/{series}/thumbnail?size=100000", b"", {400}),
    ("GET", "/series/{series}/thumbnail?format=gif", b"", {400}),
    ("POST", "/series/{series}/thumbnail", b"{}", {405}),
    ("GET", "/with-private-tags/series?since=x&limit=1", b"", {400}),
    ("GET", "/with-private-tags/series?since=1", b"", {400}),
    ("GET", f"/with-private-tags/series/{UNKNOWN}", b"", {404}),
    ("GET", "/with-private-tags/series/abc%3Fexpand", b"", {404}),
    ("GET", f"/with-private-tags/studies/{UNKNOWN}/series", b"", {404}),
    ("GET", f"/with-private-tags/patients/{UNKNOWN}/series", b"", {404}),
    ("DELETE", "/with-private-tags/series", b"", {405}),
    ("POST", "/with-private-tags/reconstruct", b"[1", {400}),
    ("POST", "/with-private-tags/reconstruct", b'{"Series": 5}', {400}),
    ("POST", "/with-private-tags/reconstruct", b'{"Series": "nope"}', {404}),
    ("PUT", "/with-private-tags/reconstruct", b"", {405}),
    ("POST", "/series-private-tags/status", b"", {405}),
    ("PUT", "/series-thumbnail/status", b"", {405}),
    ("POST", "/dicom-events/status", b"", {405}),
]


def test_hostile_requests_get_json_errors_never_500(orthanc_factory: OrthancFactory) -> None:
    server = orthanc_factory(list(ALL_PLUGINS), VALID_CONFIG)
    series = server.upload_file(make_instance(pixels=(16, 16)))["ParentSeries"]
    answers = []
    for method, path, body, expected in HOSTILE_REQUESTS:
        response = server.client.request(method, path.format(series=series), data=body)
        answers.append((method, path, response.status_code))
        assert response.status_code in expected, (method, path, response.status_code, response.text)
        if response.status_code != 405:
            error = response.json()  # a JSON body, shaped like Orthanc's own errors
            assert error["HttpStatus"] == response.status_code, (method, path, error)
            assert "Traceback" not in response.text and "/tmp/" not in response.text
    assert len(answers) == len(HOSTILE_REQUESTS)


def test_dicom_events_status_is_503_with_its_json_while_the_publisher_cannot_start(
    orthanc_factory: OrthancFactory, tmp_path: Path
) -> None:
    config = copy.deepcopy(VALID_CONFIG)
    config["DicomEvents"]["Events"]["DeletedSeries"] = True
    state = tmp_path / "state"
    state.mkdir()
    (state / "dicom-events.sqlite").write_bytes(b"not a database" * 100)  # never opens
    config["DicomEvents"]["StateDirectory"] = str(state)
    server = orthanc_factory(["dicom-events"], config, start=False)
    server.ready_statuses = {200, 503}
    server.start()
    response = server.client.get("/dicom-events/status")
    assert response.status_code == 503, response.text
    status = json.loads(response.text)
    assert status["Plugin"] == "dicom-events"
    assert status["Broker"]["State"] == "failed"
    assert status["Broker"]["LastError"]


def test_an_unwritable_state_directory_refuses_to_start_naming_the_key(
    orthanc_factory: OrthancFactory,
) -> None:
    config = copy.deepcopy(VALID_CONFIG)
    config["DicomEvents"]["StateDirectory"] = "/proc/version/dicom-events"  # under a file
    server = orthanc_factory(["dicom-events"], config, start=False)
    returncode, log = server.start_expecting_failure()
    assert returncode != 0
    assert "DicomEvents.StateDirectory" in log and "/proc/version/dicom-events" in log
