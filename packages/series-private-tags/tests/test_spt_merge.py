"""Merging instance values into a series, and the stored JSON."""

from __future__ import annotations

from orthanc_series_private_tags.config import PrivateTag
from orthanc_series_private_tags.merge import is_complete, merge, parse_metadata, to_metadata

TAGS = (
    PrivateTag("A", 0x55, 0x1011, "LO", "C", False),
    PrivateTag("B", 0x55, 0x1012, "LO", "C", True),
)


def test_the_first_non_empty_value_wins() -> None:
    assert merge({"A": "first"}, {"A": "second", "B": "EXISTS"}, TAGS) == {
        "A": "first",
        "B": "EXISTS",
    }
    assert merge({"A": ""}, {"A": "later"}, TAGS) == {"A": "later"}


def test_unconfigured_keys_are_dropped() -> None:
    assert merge({"Gone": "x"}, {"A": "a"}, TAGS) == {"A": "a"}


def test_complete_once_every_tag_has_a_value() -> None:
    assert not is_complete({"A": "a"}, TAGS)
    assert is_complete({"A": "a", "B": "EXISTS"}, TAGS)


def test_metadata_round_trip_and_garbage() -> None:
    values = {"A": "é" * 3, "B": "EXISTS"}
    assert parse_metadata(to_metadata(values)) == values
    assert parse_metadata(None) == {}
    assert parse_metadata("not json") == {}
    assert parse_metadata("[1, 2]") == {}
    assert parse_metadata('{"A": 3, "B": "", "C": "c"}') == {"C": "c"}
