"""Routes registered by plugins, RestApi* calls and RestOutput."""

import json
from typing import Any

import pytest
from fake_samples import INSTANCE_ID, SERIES_ID, STUDY_ID, get_json, rich_instance

from orthanc_fake import FakeOrthanc, FakeRestOutput, OrthancException, make_instance
from orthanc_fake.enums import ErrorCode


def echo(output: FakeRestOutput, uri: str, **request: Any) -> None:
    request = {
        key: value.decode() if isinstance(value, bytes) else value for key, value in request.items()
    }
    output.AnswerBuffer(json.dumps({"uri": uri, **request}), "application/json")


def test_rest_api_get_does_not_reach_plugin_routes(orthanc: FakeOrthanc) -> None:
    orthanc.RegisterRestCallback("/echo/(.*)", echo)
    with pytest.raises(OrthancException) as raised:
        orthanc.RestApiGet("/echo/x")
    assert raised.value.args == (ErrorCode.UNKNOWN_RESOURCE, "Unknown resource")


def test_after_plugins_calls_reach_plugin_routes_like_orthanc(orthanc: FakeOrthanc) -> None:
    orthanc.RegisterRestCallback("/echo/(.*)/(.*)", echo)
    got = json.loads(orthanc.RestApiGetAfterPlugins("/echo/a/b?x=1"))
    assert got == {
        "uri": "/echo/a/b",
        "method": "GET",
        "groups": ["a", "b"],
        "get": {"x": "1"},
        "headers": {},
    }
    # Other methods keep the query string in the URI and the groups (measured).
    posted = json.loads(orthanc.RestApiPostAfterPlugins("/echo/a/b?x=1", b"data"))
    assert posted == {
        "uri": "/echo/a/b?x=1",
        "method": "POST",
        "groups": ["a", "b?x=1"],
        "headers": {},
        "body": "data",
    }
    assert orthanc.RestApiDeleteAfterPlugins("/echo/a/b") is None


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (lambda output: output.SendHttpStatusCode(404), ErrorCode.UNKNOWN_RESOURCE),
        (lambda output: output.SendHttpStatus(400, "bad", 3), ErrorCode.UNKNOWN_RESOURCE),
        (lambda output: None, ErrorCode.UNKNOWN_RESOURCE),
        (lambda output: 1 / 0, ErrorCode.PLUGIN),
    ],
)
def test_failing_plugin_routes_raise_like_orthanc(
    orthanc: FakeOrthanc, answer: Any, code: int
) -> None:
    orthanc.RegisterRestCallback("/route", lambda output, uri, **request: answer(output))
    with pytest.raises(OrthancException) as raised:
        orthanc.RestApiGetAfterPlugins("/route")
    assert raised.value.args[0] == code
    orthanc.callback_errors.clear()


def test_call_route_builds_an_http_request(orthanc: FakeOrthanc) -> None:
    orthanc.RegisterRestCallback("/echo/(.*)", echo)
    output = orthanc.call_route(
        "PUT", "/echo/z?ignored=1", body="payload", headers={"X-Token": "t"}
    )
    assert output.status == 200
    assert output.content_type == "application/json"
    assert output.json() == {
        "uri": "/echo/z",
        "method": "PUT",
        "groups": ["z"],
        "headers": {"x-token": "t"},
        "body": "payload",
    }
    assert orthanc.call_route("GET", "/echo/q?a=1", get={"b": "2"}).json()["get"] == {
        "a": "1",
        "b": "2",
    }


def test_call_route_needs_a_full_match(orthanc: FakeOrthanc) -> None:
    orthanc.RegisterRestCallback("/echo", echo)
    assert orthanc.call_route("GET", "/echo/more").status == 404


def test_rest_output_mirrors_the_real_arguments() -> None:
    output = FakeRestOutput()
    output.SetHttpHeader("Cache-Control", "no-cache")
    # Plugin 4.0 wants (status, str body, size) and refuses bytes.
    with pytest.raises(TypeError):
        output.SendHttpStatus(400, b"bad", 3)  # type: ignore[arg-type]
    output.SendHttpStatus(400, "bad request", 3)
    assert (output.status, output.body, output.headers) == (
        400,
        b"bad",
        {"Cache-Control": "no-cache"},
    )
    with pytest.raises(OrthancException):
        output.AnswerBuffer(b"twice", "text/plain")
    not_allowed = FakeRestOutput()
    not_allowed.SendMethodNotAllowed("GET")
    assert (not_allowed.status, not_allowed.headers) == (405, {"Allow": "GET"})


def test_resource_lists_and_relations(orthanc: FakeOrthanc) -> None:
    orthanc.store(rich_instance())
    other = orthanc.store(make_instance("P2"))
    assert get_json(orthanc, "/instances") == [INSTANCE_ID, other.instance_id]
    assert get_json(orthanc, "/instances?since=1&limit=5") == [other.instance_id]
    assert [s["ID"] for s in get_json(orthanc, "/series?expand")] == [SERIES_ID, other.series_id]
    assert [i["ID"] for i in get_json(orthanc, f"/series/{SERIES_ID}/instances")] == [INSTANCE_ID]
    assert [s["ID"] for s in get_json(orthanc, f"/studies/{STUDY_ID}/series")] == [SERIES_ID]
    assert get_json(orthanc, f"/instances/{INSTANCE_ID}/study")["ID"] == STUDY_ID
    with pytest.raises(OrthancException) as raised:
        orthanc.RestApiGet("/instances?limit=5")
    assert raised.value.args[0] == ErrorCode.BAD_REQUEST


def test_instance_file_and_upload(orthanc: FakeOrthanc) -> None:
    data = rich_instance()
    answer = json.loads(orthanc.RestApiPost("/instances", data))
    assert (answer["ID"], answer["Status"]) == (INSTANCE_ID, "Success")
    assert orthanc.RestApiGet(f"/instances/{INSTANCE_ID}/file") == data
    assert orthanc.GetDicomForInstance(INSTANCE_ID) == data
    with pytest.raises(OrthancException) as raised:
        orthanc.RestApiPost("/instances", b"not dicom")
    assert raised.value.args[0] == ErrorCode.BAD_FILE_FORMAT


def test_rendered_is_a_resized_png(orthanc: FakeOrthanc) -> None:
    pytest.importorskip("PIL", reason="rendering needs Pillow")
    import io

    from PIL import Image

    result = orthanc.store(make_instance(pixels=(20, 40)))
    png = orthanc.RestApiGet(f"/instances/{result.instance_id}/rendered?width=10")
    assert Image.open(io.BytesIO(png)).size == (10, 5)
