"""The plugin kit's source against the orthanc fake, in the dialects of plugin 4.0 and 4.2+."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import generate
import orthanc_plugin_kit as kit
import pytest

from orthanc_fake import FakeOrthanc
from orthanc_fake.dicom import make_instance

ROUTE = "/kit-test/([^/]+)"


def serve(fake: FakeOrthanc, handler: kit.Handler) -> kit.OrthancHost:
    host = kit.OrthancHost(fake)
    host.register_route(ROUTE, handler, "kit-test")
    return host


@pytest.fixture(params=[True, False], ids=["plugin-4.0", "plugin-4.2+"])
def fake(request: pytest.FixtureRequest) -> FakeOrthanc:
    return FakeOrthanc({}, send_http_status_takes_size=request.param)


# ---------------------------------------------------------------------------- answers


@pytest.mark.parametrize("status", [202, 400, 404, 409, 502, 503])
def test_a_status_with_a_json_body_reaches_the_client(fake: FakeOrthanc, status: int) -> None:
    serve(fake, lambda request: kit.error_response(status, "why", Id=request.group))
    output = fake.call_route("GET", "/kit-test/abc")
    assert output.status == status
    assert output.json()["Message"] == "why"
    assert output.json()["Id"] == "abc"
    assert output.json()["HttpStatus"] == status
    assert output.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("version", "label"), [("1.12.1", "application/json"), ("1.12.2", "text/plain")]
)
def test_an_error_answer_carries_one_content_type(version: str, label: str) -> None:
    # Orthanc 1.12.2+ labels every status body itself: a second label of ours would be a duplicate.
    fake = FakeOrthanc({}, send_http_status_takes_size=False, orthanc_version=version)
    serve(fake, lambda request: kit.error_response(404, "none"))
    output = fake.call_route("GET", "/kit-test/x")
    assert (output.status, output.content_types()) == (404, [label])
    assert output.json()["Message"] == "none"


def test_every_answer_in_a_row_uses_the_form_this_plugin_accepts(fake: FakeOrthanc) -> None:
    serve(fake, lambda request: kit.error_response(400, "bad"))
    for _ in range(3):
        assert fake.call_route("GET", "/kit-test/x").status == 400


def test_200_304_and_405(fake: FakeOrthanc) -> None:
    answers = {
        "a": kit.json_response(200, {"ok": True}, {"ETag": '"1"'}),
        "b": kit.Response(304, headers={"ETag": '"1"'}),
        "c": kit.method_not_allowed("GET,POST"),
    }
    serve(fake, lambda request: answers[request.group])
    ok = fake.call_route("GET", "/kit-test/a")
    assert (ok.status, ok.json(), ok.headers["ETag"]) == (200, {"ok": True}, '"1"')
    not_modified = fake.call_route("GET", "/kit-test/b")
    assert (not_modified.status, not_modified.body) == (304, b"")
    assert not_modified.headers["ETag"] == '"1"'
    refused = fake.call_route("PUT", "/kit-test/c")
    assert (refused.status, refused.headers["Allow"]) == (405, "GET,POST")


def test_request_carries_method_groups_query_headers_and_body(fake: FakeOrthanc) -> None:
    seen: list[kit.Request] = []

    def handler(request: kit.Request) -> kit.Response:
        seen.append(request)
        return kit.json_response(200, {})

    serve(fake, handler)
    fake.call_route("GET", "/kit-test/id1?since=3", headers={"Accept": "x/y"})
    fake.call_route("POST", "/kit-test/id2", body=b'{"a": 1}')
    get, post = seen
    assert (get.method, get.group, dict(get.get), get.headers["accept"]) == (
        "GET",
        "id1",
        {"since": "3"},
        "x/y",
    )
    assert (post.method, post.group, post.body) == ("POST", "id2", b'{"a": 1}')


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (kit.NotFound("GET /x: Unknown resource", 17), 404),
        (kit.HostError("GET /x: /var/lib/orthanc/secret-path", 9), 502),
        (RuntimeError("boom in /var/lib/orthanc/secret-path"), 503),
    ],
)
def test_a_handler_failure_is_json_never_500_and_never_leaks_details(
    fake: FakeOrthanc, failure: Exception, status: int
) -> None:
    def handler(request: kit.Request) -> kit.Response:
        raise failure

    serve(fake, handler)
    output = fake.call_route("GET", "/kit-test/x")
    assert output.status == status
    assert output.json()["HttpStatus"] == status
    assert b"secret-path" not in output.body
    if status != 404:
        assert any("secret-path" in message for message in fake.log_messages())


def test_status_handler_answers_503_with_its_json_until_ready(fake: FakeOrthanc) -> None:
    ready = threading.Event()
    serve(fake, kit.status_handler(lambda: {"State": "starting"}, ready=ready.is_set))
    waiting = fake.call_route("GET", "/kit-test/status")
    assert (waiting.status, waiting.json()) == (503, {"State": "starting"})
    ready.set()
    assert fake.call_route("GET", "/kit-test/status").status == 200
    assert fake.call_route("POST", "/kit-test/status").status == 405


def test_a_refused_signature_that_is_not_one_of_orthancs_still_raises() -> None:
    class Output:
        headers: dict[str, str] = {}

        def SetHttpHeader(self, key: str, value: str) -> None:
            self.headers[key] = value

        def SendHttpStatus(self, *args: Any) -> None:
            raise TypeError("Bad types for the arguments (9 arguments expected)")

    with pytest.raises(TypeError, match="9 arguments"):
        kit.send(Output(), kit.error_response(400, "x"))


# ------------------------------------------------------------------------------- host


def test_host_maps_unknown_resources_to_not_found_and_quotes_ids(fake: FakeOrthanc) -> None:
    host = kit.OrthancHost(fake)
    with pytest.raises(kit.NotFound) as caught:
        host.get(f"/series/{kit.quote_id('nope?expand')}")
    assert caught.value.code == 17
    assert kit.quote_id("a/b?c=d#e") == "a%2Fb%3Fc%3Dd%23e"


def test_host_reads_writes_and_deletes(fake: FakeOrthanc) -> None:
    fake.configuration["UserMetadata"] = {"Note": 2042}
    fake = FakeOrthanc(fake.configuration)
    stored = fake.store(make_instance())
    host = kit.OrthancHost(fake)
    uri = f"/series/{quote(stored.series_id)}/metadata/Note"
    host.put(uri, b"hello")
    assert host.get(uri) == b"hello"
    host.delete(uri)
    with pytest.raises(kit.NotFound):
        host.get(uri)
    assert host.get_json(f"/instances/{quote(stored.instance_id)}")["ID"] == stored.instance_id


def quote(resource_id: str) -> str:
    return kit.quote_id(resource_id)


def test_other_failures_are_host_errors_with_the_code(fake: FakeOrthanc) -> None:
    host = kit.OrthancHost(fake)
    with pytest.raises(kit.HostError) as caught:
        host.get("/series?since=1")  # `since` without `limit`: a bad request, not a missing item
    assert not isinstance(caught.value, kit.NotFound)


def test_a_closed_host_refuses_calls_but_still_logs(fake: FakeOrthanc) -> None:
    host = kit.OrthancHost(fake)
    host.close()
    with pytest.raises(kit.HostError, match="stopping"):
        host.get("/system")
    with pytest.raises(kit.HostError):
        host.set_global_property(5000, "x")
    host.set_metric("ignored", 1)  # silently dropped
    assert "ignored" not in fake.metrics
    host.log_warning("still heard")
    assert "still heard" in fake.log_messages("warning")


def test_redaction_covers_logs_and_error_messages(fake: FakeOrthanc) -> None:
    host = kit.OrthancHost(fake, redact=lambda text: text.replace("s3cret", "***"))
    host.log_error("amqp://user:s3cret@broker")
    assert fake.log_messages("error") == ["amqp://user:***@broker"]
    with pytest.raises(kit.NotFound) as caught:
        host.get("/series/s3cret")
    assert "s3cret" not in str(caught.value)


def test_constants_come_from_the_module(fake: FakeOrthanc) -> None:
    constants = kit.OrthancConstants.from_module(fake)
    assert constants.stable_series == int(fake.ChangeType.STABLE_SERIES)
    assert constants.orthanc_stopped == int(fake.ChangeType.ORTHANC_STOPPED)
    assert constants.level_name(int(fake.ResourceType.SERIES)) == "Series"
    assert constants.level_name(99) is None


# --------------------------------------------------------------------------- threads


def test_background_thread_runs_niced_named_and_stops_within_bound(fake: FakeOrthanc) -> None:
    names: list[str] = []
    fake.SetCurrentThreadName = names.append  # type: ignore[attr-defined]  # plugin 7 has it
    host = kit.OrthancHost(fake)
    seen: dict[str, int] = {}

    def run() -> None:
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        worker.stopping.wait()

    worker = kit.BackgroundThread(host, "kit-worker-with-a-long-name", run)
    worker.start()
    worker.start()  # once only
    deadline = time.monotonic() + 5
    while "nice" not in seen:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert worker.stop(timeout=5)
    assert not worker.running
    assert names == ["kit-worker-with"]  # Orthanc takes 15 characters at most
    assert seen["nice"] >= min(kit.WORKER_NICENESS, 19)


def test_background_thread_stop_is_bounded_when_the_work_ignores_it(fake: FakeOrthanc) -> None:
    release = threading.Event()

    def run() -> None:
        release.wait(10)

    worker = kit.BackgroundThread(kit.OrthancHost(fake), "stubborn", run)
    worker.start()
    started = time.monotonic()
    assert worker.stop(timeout=0.2) is False
    assert time.monotonic() - started < 2
    release.set()


def test_a_crashing_worker_is_logged(fake: FakeOrthanc) -> None:
    def run() -> None:
        raise RuntimeError("bad day")

    worker = kit.BackgroundThread(kit.OrthancHost(fake), "crashy", run)
    worker.start()
    assert worker.stop(timeout=5)
    assert any("bad day" in message for message in fake.log_messages("error"))


# --------------------------------------------------------------------------- configuration


def test_configuration_errors_name_the_key_path_and_value() -> None:
    with pytest.raises(kit.ConfigurationError, match=r"A\.B: expected an integer from 1 to 5"):
        kit.config_int(9, "A.B", 1, 5)
    with pytest.raises(kit.ConfigurationError, match="value seen: True"):
        kit.config_int(True, "A.B", 0, 5)
    with pytest.raises(kit.ConfigurationError, match=r"A\.C: expected true or false"):
        kit.config_bool("yes", "A.C")
    with pytest.raises(kit.ConfigurationError, match=r"A: expected a JSON object"):
        kit.config_object([], "A")
    assert kit.config_object(None, "A") == {}
    with pytest.raises(kit.ConfigurationError, match=r"A\.Zzz: unknown key"):
        kit.reject_unknown_keys({"Zzz": 1}, "A", frozenset({"Size"}))
    with pytest.raises(kit.ConfigurationError, match=r"list of non-empty strings"):
        kit.config_strings(["a", ""], "A.L")


def test_user_metadata_index() -> None:
    assert kit.user_metadata_index({"UserMetadata": {"Mine": 2000}}, "Mine", 2000) == 2000
    with pytest.raises(kit.ConfigurationError, match=r"UserMetadata\.Mine: declare"):
        kit.user_metadata_index({}, "Mine", 2000)
    with pytest.raises(kit.ConfigurationError, match="1024 to 65535"):
        kit.user_metadata_index({"UserMetadata": {"Mine": 12}}, "Mine", 2000)


def test_user_content_type_index() -> None:
    declared = {"UserContentType": {"Mine": 2001, "Typed": [2002, "image/jpeg"], "Bad": [1, 2]}}
    assert kit.user_content_type_index(declared, "Mine") == 2001
    assert kit.user_content_type_index(declared, "Typed") == 2002
    assert kit.user_content_type_index(declared, "Other") is None
    assert kit.user_content_type_index({}, "Mine") is None
    with pytest.raises(kit.ConfigurationError, match=r"UserContentType\.Bad: expected an index"):
        kit.user_content_type_index(declared, "Bad")
    with pytest.raises(kit.ConfigurationError, match=r"UserContentType\.Low: .*1024 to 65535"):
        kit.user_content_type_index({"UserContentType": {"Low": [3, "a/b"]}}, "Low")


# --------------------------------------------------------------------------- generated copies


def test_every_plugin_package_gets_the_kit_and_an_entry() -> None:
    plugins = {plugin.distribution for plugin in generate.discover()}
    assert plugins == {
        "orthanc-dicom-events",
        "orthanc-series-private-tags",
        "orthanc-series-thumbnail",
    }
    for path, text in generate.expected_files(generate.discover()).items():
        assert text.startswith("# DO NOT EDIT: generated from tools/plugin-kit/")
        assert path.read_text() == text, f"{path} is stale: run {generate.COMMAND}"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("amqp://guest:pw@host:5672/", "amqp://guest:***@host:5672/"),
        ("amqps:/user:pw@host", "amqps:/user:***@host"),
        ("amqp://u:p@ss@host/v", "amqp://u:***@host/v"),
        ("a amqps://a:b@c and amqp://d:e@f/", "a amqps://a:***@c and amqp://d:***@f/"),
        ("amqp://host/ has no password", "amqp://host/ has no password"),
    ],
)
def test_url_passwords_are_masked_in_any_form(text: str, masked: str) -> None:
    assert kit.mask_url_credentials(text) == masked


def test_configuration_errors_never_show_a_secret() -> None:
    assert "hunter2" not in str(kit.ConfigurationError("A.Password", "hunter2", "unknown key"))
    assert "hunter2" not in str(kit.ConfigurationError("A.ApiToken", "hunter2", "unknown key"))
    error = kit.ConfigurationError("A.URL", "amqps:/u:hunter2@h", "expected an amqp:// URL")
    assert "hunter2" not in str(error)
    assert "amqps:/u:***@h" in str(error)


def test_configured_directories_resolve_like_orthanc_and_must_be_writable(
    tmp_path: Any,
) -> None:
    class Module:
        @staticmethod
        def GetConfigurationPath() -> str:
            return str(tmp_path / "etc" / "orthanc.json")

    resolved = kit.configured_directory(Module, "state", "A.StateDirectory")
    assert resolved == str(tmp_path / "etc" / "state")
    assert os.path.isdir(resolved)
    absolute = kit.configured_directory(Module, str(tmp_path / "abs"), "A.StateDirectory")
    assert absolute == str(tmp_path / "abs")
    (tmp_path / "file").write_text("x")
    with pytest.raises(kit.ConfigurationError, match=r"A\.StateDirectory: cannot create"):
        kit.configured_directory(Module, str(tmp_path / "file" / "below"), "A.StateDirectory")


def test_a_route_callback_outlives_everything_but_the_interpreter() -> None:
    # Plugin 7.1 drops its reference after finalization: the kit must keep one until then.
    import gc
    import weakref

    class ForgetfulOrthanc(FakeOrthanc):
        def RegisterRestCallback(self, uri: str, callback: Any) -> None:
            self.registered = weakref.ref(callback)

    fake = ForgetfulOrthanc({})
    serve(fake, lambda request: kit.json_response(200, {}))
    gc.collect()
    assert fake.registered() is not None


def test_orthanc_at_least_asks_the_core_and_falls_back_to_no() -> None:
    newer = FakeOrthanc({}, started=False, orthanc_version="1.13.0")
    assert kit.orthanc_at_least(newer, 1, 12, 5)
    assert not kit.orthanc_at_least(FakeOrthanc({}, started=False), 1, 12, 5)  # 1.10.1

    class Unanswering:
        def CheckVersionAdvanced(self, *version: int) -> bool:
            raise RuntimeError("no answer")

    assert not kit.orthanc_at_least(Unanswering(), 1, 0, 0)
    assert not kit.orthanc_at_least(object(), 1, 0, 0)
