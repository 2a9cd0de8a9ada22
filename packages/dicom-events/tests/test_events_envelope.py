from __future__ import annotations

import json

from orthanc_dicom_events.envelope import (
    CONTENT_TYPE,
    log_event_id,
    make_event,
    orthanc_date_to_rfc3339,
    serialise,
    spool_event_id,
)


def test_orthanc_date_becomes_rfc3339_utc() -> None:
    assert orthanc_date_to_rfc3339("20261128T080145") == "2026-11-28T08:01:45Z"


def test_unparseable_date_falls_back_to_now() -> None:
    assert orthanc_date_to_rfc3339("garbage").endswith("Z")


def test_ids_are_stable_and_distinct() -> None:
    assert log_event_id("abc", 7) == log_event_id("abc", 7)
    assert log_event_id("abc", 7) != log_event_id("abc", 8)
    assert spool_event_id("abc", 7) != log_event_id("abc", 7)


def test_structured_envelope_has_every_required_attribute() -> None:
    event = make_event(
        event_id="x-1",
        source="orthanc://A",
        event_type="dicom.series.stable",
        subject="s1",
        time="2026-01-01T00:00:00Z",
        data={"resourceId": "s1"},
        group="st1",
        sequence=1,
    )
    envelope = json.loads(event.body)
    assert envelope["specversion"] == "1.0"
    assert {"id", "source", "type", "subject", "time", "data"} <= envelope.keys()
    assert envelope["orthancsequence"] == 1
    assert event.envelope == envelope
    assert CONTENT_TYPE == "application/cloudevents+json"


def test_serialised_bodies_are_compact_utf8_whatever_the_characters() -> None:
    samples: list[dict[str, object]] = [
        {"a": "plain", "n": 1, "t": None, "l": [1.5, True]},
        {"name": "Ren\u00e9e^\u5c71\u7530", "emoji": "\U0001f600"},
        {"controls": "tab\there\nnew\x01one\x7fdel", "quote": 'say "hi" \\ back'},
        {"looks escaped": "a\\u00e9b"},
    ]
    for envelope in samples:
        expected = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()
        assert serialise(envelope) == expected
