"""The harness itself, against real processes: what every end-to-end suite leans on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pika
import pytest
import requests

from integration.conftest import OrthancFactory
from integration.harness import HarnessError, RabbitMQ, SnsEmulator, consume, free_port
from integration.harness.processes import free_port_pair
from integration.harness.rabbitmq import amqp_ready
from integration.watch_events import format_event

pytestmark = pytest.mark.e2e
REPO_ROOT = Path(__file__).resolve().parents[2]


def publish(url: str, exchange: str, routing_key: str, body: Any, message_id: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            exchange,
            routing_key,
            json.dumps(body).encode(),
            pika.BasicProperties(
                content_type="application/json", delivery_mode=2, message_id=message_id
            ),
        )
    finally:
        connection.close()


# -- RabbitMQ ----------------------------------------------------------------------------------


def test_consume_collects_only_what_the_binding_routes(rabbitmq: RabbitMQ) -> None:
    exchange = f"harness-{uuid.uuid4().hex[:8]}"
    with consume(rabbitmq.url, exchange, "series.*") as collector:
        publish(rabbitmq.url, exchange, "instance.stored", {"n": 0}, "m0")
        publish(rabbitmq.url, exchange, "series.stable", {"n": 1}, "m1")
        [message] = collector.wait_for(1, timeout=10)
        assert message.body == {"n": 1}
        assert message.routing_key == "series.stable"
        assert message.exchange == exchange
        assert message.message_id == "m1"
        assert message.content_type == "application/json"
        assert message.delivery_mode == 2
        assert collector.wait_quiet(0.5) == [message]


def test_private_node_restarts_on_the_same_port(interruptible_rabbitmq: RabbitMQ) -> None:
    broker = interruptible_rabbitmq
    url_before = broker.url
    exchange = f"harness-{uuid.uuid4().hex[:8]}"
    queue = f"harness-durable-{uuid.uuid4().hex[:8]}"
    with consume(broker.url, exchange, "#", queue=queue) as collector:
        broker.stop()
        with pytest.raises((pika.exceptions.AMQPError, OSError)):
            amqp_ready(broker.url)
        broker.start()
        assert broker.url == url_before
        publish(broker.url, exchange, "after.outage", {"back": True}, "m2")
        # The collector reconnects to its durable queue by itself.
        [message] = collector.wait_for(1, timeout=20)
        assert message.body == {"back": True}


# -- SNS + SQS ---------------------------------------------------------------------------------


def test_sns_topic_to_sqs_queue_round_trip(sns: SnsEmulator) -> None:
    topic = sns.create_topic(f"harness-{uuid.uuid4().hex[:8]}")
    client = sns.client("sns")
    with (
        sns.subscribe_queue(topic, raw=True) as raw,
        sns.subscribe_queue(topic, raw=False) as enveloped,
        sns.subscribe_queue(topic, filter_policy={"EventType": ["StableSeries"]}) as filtered,
    ):
        for event_type in ("StoredInstance", "StableSeries"):
            client.publish(
                TopicArn=topic,
                Message=json.dumps({"EventType": event_type}),
                MessageAttributes={"EventType": {"DataType": "String", "StringValue": event_type}},
            )
        raw_messages = raw.receive(2, timeout=20)
        assert sorted(m.message["EventType"] for m in raw_messages) == [
            "StableSeries",
            "StoredInstance",
        ]
        assert {m.attributes["EventType"] for m in raw_messages} == {
            "StableSeries",
            "StoredInstance",
        }
        assert all(m.envelope is None for m in raw_messages)

        enveloped_messages = enveloped.receive(2, timeout=10)
        assert all(m.envelope is not None for m in enveloped_messages)
        assert {m.envelope["TopicArn"] for m in enveloped_messages if m.envelope} == {topic}
        assert {m.attributes["EventType"] for m in enveloped_messages} == {
            "StableSeries",
            "StoredInstance",
        }

        [only] = filtered.receive(1, timeout=10)
        assert only.message == {"EventType": "StableSeries"}
        assert filtered.receive_for(1.5) == []


def test_sns_fifo_topic_delivers_group_ids(sns: SnsEmulator) -> None:
    topic = sns.create_topic(f"harness-{uuid.uuid4().hex[:8]}", fifo=True)
    assert topic.endswith(".fifo")
    with sns.subscribe_queue(topic) as reader:
        sns.client("sns").publish(
            TopicArn=topic,
            Message='{"n": 1}',
            MessageGroupId="series-1",
            MessageDeduplicationId="d1",
        )
        [message] = reader.receive(1, timeout=20)
        assert message.message == {"n": 1}
        assert message.sqs_attributes["MessageGroupId"] == "series-1"


def test_sns_emulator_restarts_on_the_same_port(interruptible_sns: SnsEmulator) -> None:
    emulator = interruptible_sns
    name = f"harness-{uuid.uuid4().hex[:8]}"
    arn_before = emulator.create_topic(name)
    endpoint_before = emulator.endpoint_url
    emulator.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(emulator.endpoint_url, timeout=2)
    emulator.start()
    assert emulator.endpoint_url == endpoint_before
    # State is gone after an outage; the same name gives the same ARN again.
    assert emulator.create_topic(name) == arn_before


# -- Orthanc -----------------------------------------------------------------------------------

READY_SCRIPT = """
import orthanc

def ready(output, uri, **request):
    output.AnswerBuffer('{"ready": true}', "application/json")

orthanc.RegisterRestCallback("/harness/ready", ready)
"""


def test_orthanc_upload_cstore_stable_restart_and_crash(
    orthanc_factory: OrthancFactory, samples_dir: Path, tmp_path: Path
) -> None:
    script = tmp_path / "ready.py"
    script.write_text(READY_SCRIPT)
    orthanc = orthanc_factory(script=script, ready_routes=["/harness/ready"])

    stored = orthanc.upload_file(samples_dir / "SignedCT.dcm")
    assert stored["Status"] == "Success"
    assert orthanc.client.get(f"/instances/{stored['ID']}/metadata/Origin").text == "RestApi"
    orthanc.cstore([samples_dir / "ColorTestMalaterre.dcm"], calling_aet="HARNESS")
    instances = orthanc.client.get_json("/instances")
    assert len(instances) == 2
    [by_dicom] = [i for i in instances if i != stored["ID"]]
    remote_aet = orthanc.client.get(f"/instances/{by_dicom}/metadata/RemoteAET").text
    assert remote_aet == "HARNESS"

    started = time.monotonic()
    series = orthanc.wait_stable("series", stored["ParentSeries"], timeout=10)
    assert series["IsStable"] is True
    assert time.monotonic() - started < 6  # StableAge is 2 s by default

    orthanc.restart()
    assert sorted(orthanc.client.get_json("/instances")) == sorted(instances)

    orthanc.kill()
    assert not orthanc.is_running()
    orthanc.start()
    assert sorted(orthanc.client.get_json("/instances")) == sorted(instances)


def test_orthanc_that_exits_at_start_up_fails_with_its_log(
    orthanc_factory: OrthancFactory, tmp_path: Path
) -> None:
    script = tmp_path / "broken.py"
    script.write_text("raise RuntimeError('harness: refused on purpose')\n")
    with pytest.raises(HarnessError, match="refused on purpose"):
        orthanc_factory(script=script, ready_routes=["/never"])

    refused = orthanc_factory(script=script, start=False)
    returncode, log = refused.start_expecting_failure()
    assert returncode != 0
    assert "refused on purpose" in log


def test_orthanc_runs_a_plugin_from_its_standalone_entry(orthanc_factory: OrthancFactory) -> None:
    orthanc = orthanc_factory(
        ["series-thumbnail"],
        {"UserMetadata": {"ThumbnailInstanceID": 2001}},
        entry="standalone",
    )
    status = orthanc.client.get_json("/series-thumbnail/status")
    assert status["Plugin"] == "series-thumbnail"


def test_orthanc_runs_a_composed_entry(orthanc_factory: OrthancFactory) -> None:
    orthanc = orthanc_factory(
        ["series-thumbnail"], {"UserMetadata": {"ThumbnailInstanceID": 2001}}, entry="composed"
    )
    assert orthanc.client.get_json("/series-thumbnail/status")["Plugin"] == "series-thumbnail"
    assert 'Using Python script "__init__.py"' in orthanc.log_text()


# -- pytest plugins ----------------------------------------------------------------------------


def run_pytest(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (directory / "pytest.ini").write_text("[pytest]\n")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, str(directory)],
        capture_output=True,
        text=True,
        env=env,
        cwd=directory,
        timeout=120,
        check=False,
    )


def test_no_skips_fails_a_run_with_a_skipped_test(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(
        textwrap.dedent(
            """
            import pytest

            def test_passes():
                pass

            def test_skips():
                pytest.skip("no broker here")

            @pytest.mark.xfail(reason="known")
            def test_xfails():
                assert False
            """
        )
    )
    without_plugin = run_pytest(tmp_path)
    assert without_plugin.returncode == 0, without_plugin.stdout

    watched = run_pytest(tmp_path, "-p", "integration.no_skips", f"--no-skips-root={tmp_path}")
    assert watched.returncode == pytest.ExitCode.TESTS_FAILED, watched.stdout
    assert "SKIPPED test_sample.py::test_skips: no broker here" in watched.stdout
    assert "test_xfails" not in watched.stdout.split("end-to-end tests skipped")[-1]


def test_no_skips_lets_a_run_without_skips_pass(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text("def test_passes():\n    pass\n")
    result = run_pytest(tmp_path, "-p", "integration.no_skips", f"--no-skips-root={tmp_path}")
    assert result.returncode == 0, result.stdout


def test_no_skips_ignores_skips_outside_its_root(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n\ndef test_skips():\n    pytest.skip('unit test, not e2e')\n"
    )
    result = run_pytest(tmp_path, "-p", "integration.no_skips")
    assert result.returncode == 0, result.stdout


def test_a_failing_test_shows_the_orthanc_log(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(
        textwrap.dedent(
            """
            def test_fails(orthanc_factory):
                orthanc_factory()
                assert False, "failing on purpose"
            """
        )
    )
    result = run_pytest(tmp_path, "-p", "integration.conftest")
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout
    assert "Orthanc 0 log" in result.stdout
    assert "Orthanc has started" in result.stdout


# -- python -m integration.stack ---------------------------------------------------------------


def test_stack_starts_uploads_and_stops_what_it_started(tmp_path: Path, samples_dir: Path) -> None:
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "SignedCT.dcm").write_bytes((samples_dir / "SignedCT.dcm").read_bytes())
    (samples / "README.md").write_text("not DICOM")
    workdir = tmp_path / "stack"
    command = [sys.executable, "-m", "integration.stack", "--sns", "moto"]
    command += ["--http-port", str(free_port()), "--dicom-port", str(free_port())]
    command += ["--samples", str(samples), "--workdir", str(workdir)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
    env.pop("RABBITMQ_URL", None)
    env.pop("AWS_ENDPOINT_URL", None)
    stack = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output: list[str] = []
    try:
        assert stack.stdout is not None
        for line in stack.stdout:
            output.append(line)
            if "Ctrl-C stops everything" in line or "could not start" in line:
                break
        text = "".join(output)
        assert "Stack ready" in text, text
        assert "1 sample files uploaded" in text
        [orthanc_url] = [w for w in text.split() if w.startswith("http://127.0.0.1")][:1]
        assert requests.get(orthanc_url + "/dicom-events/status", timeout=5).ok
        stack.send_signal(signal.SIGTERM)
        rest, _ = stack.communicate(timeout=60)
    finally:
        if stack.poll() is None:
            stack.kill()
            stack.wait(10)
    assert stack.returncode == 0, "".join(output) + rest
    for server in ("Orthanc stopped", "moto stopped", "RabbitMQ stopped"):
        assert server in rest
    with pytest.raises(requests.ConnectionError):
        requests.get(orthanc_url + "/system", timeout=2)


def test_watch_events_prints_routing_key_and_json() -> None:
    properties = pika.BasicProperties(message_id="m-1")
    line = format_event("series.stable", properties, b'{"b": 1, "a": 2}', compact=True)
    assert line == '[series.stable] message_id=m-1 {"a": 2, "b": 1}'
    assert "not json" in format_event("x", properties, b"not json", compact=False)


def test_free_ports_are_never_handed_out_twice() -> None:
    # Nothing binds these ports here, as between picking a stack's ports and starting it.
    pair = free_port_pair()
    ports = [free_port() for _ in range(500)]
    assert len(set(ports)) == len(ports)
    assert pair not in ports and pair + 1 not in ports


def test_upload_tries_again_after_orthancs_storage_folder_race() -> None:
    import http.server
    import threading

    from integration.harness.orthanc import OrthancClient

    answers = [
        (500, {"OrthancStatus": 2001, "Message": "Unable to create a subdirectory"}),
        (200, {"ID": "stored", "Status": "Success"}),
        (500, {"OrthancStatus": 2007, "Message": "Bad file format"}),
    ]
    bodies: list[bytes] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            status, body = answers.pop(0)
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = OrthancClient(f"http://127.0.0.1:{server.server_address[1]}")
        assert client.upload_file(b"DICM")["ID"] == "stored"
        assert bodies == [b"DICM", b"DICM"]  # the lost race sent again, once
        with pytest.raises(HarnessError, match=r"HTTP 500.*2007"):
            client.upload_file(b"DICM")  # any other error is not tried again
        assert len(bodies) == 3
    finally:
        server.shutdown()
        server.server_close()
