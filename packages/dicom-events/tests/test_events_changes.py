from __future__ import annotations

import json

from orthanc_dicom_events import changes as ch


def test_parse_page_maps_names_to_orthanc_values() -> None:
    body = json.dumps(
        {
            "Changes": [
                {
                    "ChangeType": "NewInstance",
                    "Date": "20260101T000000",
                    "ID": "i",
                    "Path": "/instances/i",
                    "ResourceType": "Instance",
                    "Seq": 4,
                },
                {
                    "ChangeType": "StableSeries",
                    "Date": "20260101T000003",
                    "ID": "s",
                    "Path": "/series/s",
                    "ResourceType": "Series",
                    "Seq": 9,
                },
                {
                    "ChangeType": "NewStudy",
                    "Date": "20260101T000000",
                    "ID": "s",
                    "Path": "/studies/s",
                    "ResourceType": "Study",
                    "Seq": 5,
                },
            ],
            "Done": False,
            "Last": 9,
        }
    )
    page = ch.parse_page(body)
    assert [c.change_type for c in page.changes] == [ch.NEW_INSTANCE, ch.STABLE_SERIES, None]
    assert [c.level for c in page.changes] == [ch.INSTANCE, ch.SERIES, ch.STUDY]
    assert page.last == 9 and not page.done


def test_changes_uri() -> None:
    assert ch.changes_uri(10, 500) == "/changes?since=10&limit=500"
