"""Adding MainPrivateDicomTags to Orthanc's series JSON, spliced or re-encoded."""

from __future__ import annotations

import json
from typing import Any

from orthanc_series_private_tags.enrich import enrich_series, enrich_series_list

# Orthanc 1.10's own formatting (jsoncpp styled writer), as GET /series?expand answers.
ORTHANC_LIST = b"""[
   {
      "ExpectedNumberOfInstances" : null,
      "ID" : "7d5b0c04-60a325fe-c776ca8e-0a01b911-24cd5b06",
      "Instances" :
      [
         "1c72e1a7-b7ad6324-eebb7289-15dd16bf-b295ffe0"
      ],
      "IsStable" : true,
      "LastUpdate" : "20261128T080241",
      "MainDicomTags" :
      {
         "Modality" : "OT",
         "SeriesDescription" : "quoted \\"ID\\" : \\"x\\", inside",
         "SeriesInstanceUID" : "1.2.3"
      },
      "ParentStudy" : "537e61f0-eb2d3f23-ca28e56d-c2af51b4-706d3939",
      "Status" : "Unknown",
      "Type" : "Series"
   },
   {
      "ExpectedNumberOfInstances" : null,
      "ID" : "9d5ce9ef-62660e28-f84641eb-05af60a8-115ddd94",
      "Instances" : [],
      "IsStable" : false,
      "LastUpdate" : "20261128T080241",
      "MainDicomTags" :
      {
         "SeriesInstanceUID" : "1.2.4"
      },
      "ParentStudy" : "05d20d2f-2e19cc00-5a724c03-166c7f55-95328927",
      "Status" : "Unknown",
      "Type" : "Series"
   }
]
"""
FIRST, SECOND = (
    "7d5b0c04-60a325fe-c776ca8e-0a01b911-24cd5b06",
    "9d5ce9ef-62660e28-f84641eb-05af60a8-115ddd94",
)
TAGS = {FIRST: {"QueueID": 'q\u00e9\\"', "OutputFlag": "EXISTS"}, SECOND: {}}


def tags_json(series_id: str) -> bytes:
    return json.dumps(TAGS[series_id]).encode()


def expected_list() -> list[dict[str, Any]]:
    series_list: list[dict[str, Any]] = json.loads(ORTHANC_LIST)
    for series in series_list:
        series["MainPrivateDicomTags"] = TAGS[series["ID"]]
    return series_list


def test_orthanc_formatted_list_is_spliced_in_place() -> None:
    enriched = enrich_series_list(ORTHANC_LIST, tags_json)
    assert json.loads(enriched) == expected_list()
    # Spliced, not re-encoded: Orthanc's own layout is kept.
    assert enriched.startswith(b'[\n   {\n      "ExpectedNumberOfInstances" : null,')


def test_any_other_layout_is_decoded_and_re_encoded_to_the_same_json() -> None:
    compact = json.dumps(json.loads(ORTHANC_LIST)).encode()
    assert json.loads(enrich_series_list(compact, tags_json)) == expected_list()


def test_an_unexpected_nested_id_key_falls_back_to_decoding() -> None:
    nested = ORTHANC_LIST.replace(b'"Modality" : "OT",', b'"ID" : "nested",')
    enriched = json.loads(enrich_series_list(nested, tags_json))
    assert enriched[0]["MainDicomTags"]["ID"] == "nested"
    assert [series["MainPrivateDicomTags"] for series in enriched] == [TAGS[FIRST], {}]


def test_empty_list() -> None:
    assert json.loads(enrich_series_list(b"[]", tags_json)) == []
    assert json.loads(enrich_series_list(b"[ ]\n", tags_json)) == []


def test_one_series_object() -> None:
    single = json.dumps(json.loads(ORTHANC_LIST)[0], indent=3, separators=(",", " : "))
    spliced = enrich_series(single.encode(), tags_json)
    assert spliced.startswith(b'{\n   "ExpectedNumberOfInstances" : null,')
    assert json.loads(spliced) == expected_list()[0]
    assert (
        json.loads(enrich_series(json.dumps(json.loads(single)).encode(), tags_json))
        == (expected_list()[0])
    )
