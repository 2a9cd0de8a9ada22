"""The page of publish frames written in one piece is, byte for byte, what pika would send."""

from __future__ import annotations

import pika
from pika import frame, spec

from orthanc_dicom_events.envelope import CONTENT_TYPE, OutgoingEvent
from orthanc_dicom_events.publishers.amqp_frames import PERSISTENT, PublishFrames


def _pika_frames(channel: int, exchange: str, event: OutgoingEvent, body_max: int) -> bytes:
    """What pika's Channel.basic_publish hands its transport, frame after frame."""
    properties = pika.BasicProperties(
        content_type=CONTENT_TYPE, delivery_mode=PERSISTENT, message_id=event.id, type=event.type
    )
    publish = spec.Basic.Publish(exchange=exchange, routing_key=event.type, mandatory=True)
    pieces = [
        frame.Method(channel, publish).marshal(),
        frame.Header(channel, len(event.body), properties).marshal(),
    ]
    for start in range(0, len(event.body), body_max):
        pieces.append(frame.Body(channel, event.body[start : start + body_max]).marshal())
    return b"".join(pieces)


def _event(index: int, event_type: str, body: bytes) -> OutgoingEvent:
    return OutgoingEvent(id=f"3f0c2a8e5d0b-{index}", type=event_type, group="g", body=body)


def test_a_page_is_what_pika_would_send_message_after_message() -> None:
    events = [
        _event(1, "dicom.instance.stored", b'{"a":1}'),
        _event(2, "dicom.series.stable", '{"name":"Ren\u00e9e \u5c71\u7530"}'.encode()),
        _event(3, "dicom.instance.stored", b"x" * 300),  # three body frames of 128 bytes at most
        _event(4, "dicom.study.deleted", b""),  # no body frame at all
    ]
    body_max = 128
    expected = b"".join(_pika_frames(7, "dicom-events", e, body_max) for e in events)
    assert PublishFrames(7, "dicom-events", body_max).page(events) == expected


def test_method_frames_are_reused_per_routing_key_and_stay_right() -> None:
    frames = PublishFrames(1, "x", 131_064)
    events = [_event(i, "dicom.instance.stored", b"{}") for i in range(3)]
    first = frames.page(events)
    assert frames.page(events) == first
    assert first == b"".join(_pika_frames(1, "x", e, 131_064) for e in events)
