from __future__ import annotations

from types import SimpleNamespace
from urllib.parse import parse_qsl, urlencode

import pytest

from orthanc_dicom_events.publishers.form_body import encode_before_signing, encode_form

MESSAGE = '{"data": {"PatientName": "MÜLLER^Zoë 李", "pad": "a+b&c=d%e ~_.-"}}'


@pytest.mark.parametrize(
    "fields",
    [
        [("Action", "PublishBatch"), ("Message", MESSAGE)],
        [("Key With Space", "value/with?reserved#chars;,:@")],
        [(b"bytes-key", b"\x00\xff raw")],
        [("Empty", "")],
    ],
)
def test_encodes_as_urlencode_does(fields: list[tuple[object, object]]) -> None:
    expected = urlencode([(_bytes(k), _bytes(v)) for k, v in fields], doseq=True)
    assert encode_form(fields) == expected.encode()


def test_every_byte_round_trips() -> None:
    value = bytes(range(256)).decode("latin-1")
    decoded = parse_qsl(encode_form([("v", value)]).decode(), keep_blank_values=True)
    assert decoded == [("v", value)]


def test_the_handler_encodes_a_field_body_and_leaves_bytes_alone() -> None:
    request = SimpleNamespace(data={"Action": "Publish", "Message": MESSAGE})
    encode_before_signing(request)
    assert dict(parse_qsl(request.data.decode())) == {"Action": "Publish", "Message": MESSAGE}
    already = SimpleNamespace(data=b"Action=Publish")
    encode_before_signing(already)
    assert already.data == b"Action=Publish"


def _bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()
