from typing import Any

import pytest

from orthanc_series_thumbnail import ConfigurationError
from orthanc_series_thumbnail.config import SeriesThumbnailConfig, parse

METADATA: dict[str, Any] = {"UserMetadata": {"ThumbnailInstanceID": 2001}}


def test_defaults_and_every_key() -> None:
    assert parse(METADATA) == SeriesThumbnailConfig()
    section = {
        "Size": 128,
        "JpegQuality": 70,
        "CacheSizeMB": 0,
        "MaxAgeSeconds": 60,
        "PrerenderOnStable": False,
    }
    config = parse(
        {**METADATA, "SeriesThumbnail": section, "UserMetadata": {"ThumbnailInstanceID": 3000}}
    )
    assert config == SeriesThumbnailConfig(128, 70, 0, 60, False, metadata_index=3000)


@pytest.mark.parametrize(
    ("section", "path"),
    [
        ({"Size": 8}, "SeriesThumbnail.Size"),
        ({"Size": "256"}, "SeriesThumbnail.Size"),
        ({"JpegQuality": True}, "SeriesThumbnail.JpegQuality"),
        ({"CacheSizeMB": -1}, "SeriesThumbnail.CacheSizeMB"),
        ({"MaxAgeSeconds": 1.5}, "SeriesThumbnail.MaxAgeSeconds"),
        ({"PrerenderOnStable": "yes"}, "SeriesThumbnail.PrerenderOnStable"),
        ({"Colour": 1}, "SeriesThumbnail.Colour"),
    ],
)
def test_invalid_values_name_the_key_path(section: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        parse({**METADATA, "SeriesThumbnail": section})
    assert error.value.path == path
    assert path in str(error.value) and "value seen" in str(error.value)


@pytest.mark.parametrize("user_metadata", [None, {}, {"ThumbnailInstanceID": 10}])
def test_metadata_declaration_is_required(user_metadata: Any) -> None:
    with pytest.raises(ConfigurationError) as error:
        parse({"UserMetadata": user_metadata} if user_metadata is not None else {})
    assert error.value.path == "UserMetadata.ThumbnailInstanceID"


def test_section_must_be_an_object() -> None:
    with pytest.raises(ConfigurationError, match="SeriesThumbnail"):
        parse({**METADATA, "SeriesThumbnail": [1]})


def test_the_attachment_is_used_once_declared() -> None:
    assert parse(METADATA).attachment_name is None  # earlier configurations keep working
    declared = {**METADATA, "UserContentType": {"SeriesThumbnail": [2001, "image/jpeg"]}}
    config = parse(declared)
    assert (config.attachment_name, config.attachment_index) == ("SeriesThumbnail", 2001)
    renamed = {
        **METADATA,
        "UserContentType": {"Thumbs": 1500},
        "SeriesThumbnail": {"AttachmentName": "Thumbs"},
    }
    assert (parse(renamed).attachment_name, parse(renamed).attachment_index) == ("Thumbs", 1500)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"SeriesThumbnail": {"AttachmentName": "Thumbs"}},
            r"UserContentType\.Thumbs: declare the attachment 'Thumbs' that "
            r"SeriesThumbnail\.AttachmentName names",
        ),
        (
            {"SeriesThumbnail": {"AttachmentName": "a/b"}},
            r"SeriesThumbnail\.AttachmentName: expected 1 to 64 .* \(value seen: 'a/b'\)",
        ),
        (
            {"SeriesThumbnail": {"AttachmentName": 7}},
            r"SeriesThumbnail\.AttachmentName: .*\(value seen: 7\)",
        ),
        (
            {"UserContentType": {"SeriesThumbnail": 12}},
            r"UserContentType\.SeriesThumbnail: expected an integer from 1024 to 65535 "
            r"\(value seen: 12\)",
        ),
    ],
)
def test_attachment_errors_name_the_key_path_and_value(
    config: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse({**METADATA, **config})
