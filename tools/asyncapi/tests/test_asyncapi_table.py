"""tools/asyncapi/render_events_table.py: the events table between the README's markers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tools.asyncapi import render_events_table as render

DOCUMENT: dict[str, Any] = {
    "servers": {"rabbit": {"protocol": "amqp"}, "aws": {"protocol": "sns"}},
    "channels": {
        "stableRabbit": {
            "address": "dicom.series.stable",
            "servers": [{"$ref": "#/servers/rabbit"}],
            "messages": {"seriesStable": {"$ref": "#/components/messages/seriesStable"}},
        },
        "topic": {
            "address": "{topicArn}",
            "servers": [{"$ref": "#/servers/aws"}],
            "messages": {
                "seriesStable": {"$ref": "#/components/messages/seriesStable"},
                "patientDeleted": {"$ref": "#/components/messages/patientDeleted"},
            },
        },
    },
    "components": {
        "messages": {
            "seriesStable": {
                "name": "dicom.series.stable",
                "x-orthanc-change": "StableSeries",
                "x-enabled-by": "Events.StableSeries",
                "x-data": "`tags` | more",
                "payload": {"schema": {"$ref": "./schemas/dicom.series.stable.json"}},
            },
            "patientDeleted": {"name": "dicom.patient.deleted"},
        }
    },
}
README = "# Title\n\nintro\n\n<!-- events-table:start -->\nold\n<!-- events-table:end -->\n\nend\n"


def test_one_row_per_message_with_its_routes() -> None:
    rows = render.render_table(DOCUMENT).splitlines()
    assert len(rows) == 4
    stable = rows[2]
    assert "`dicom.series.stable` | StableSeries | `DicomEvents.Events.StableSeries`" in stable
    assert stable.count("`dicom.series.stable`") == 3  # type, routing key, SNS attribute
    assert "[dicom.series.stable.json](schemas/dicom.series.stable.json)" in stable
    assert "`tags` \\| more" in stable  # a pipe in a cell is escaped
    deleted = rows[3].split(" | ")
    assert deleted[3] == ""  # no RabbitMQ channel carries it
    assert deleted[4] == "`dicom.patient.deleted`"


def test_only_the_text_between_the_markers_changes() -> None:
    updated = render.replace_table(README, "| t |")
    assert updated.startswith("# Title\n\nintro\n\n<!-- events-table:start -->\n")
    assert updated.endswith("<!-- events-table:end -->\n\nend\n")
    assert "old" not in updated and "| t |" in updated
    assert render.replace_table(updated, "| t |") == updated


def test_missing_markers_are_an_error() -> None:
    with pytest.raises(render.RenderError, match="events-table:start"):
        render.replace_table("# no markers\n", "| t |")


def test_check_mode_reports_a_stale_readme_and_writes_nothing(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(README)
    document = render.DEFAULT_DOCUMENT
    assert render.main(["--document", str(document), "--readme", str(readme), "--check"]) == 1
    assert readme.read_text() == README
    assert render.main(["--document", str(document), "--readme", str(readme)]) == 0
    assert "dicom.instance.stored" in readme.read_text()
    assert render.main(["--document", str(document), "--readme", str(readme), "--check"]) == 0


def test_a_readme_without_markers_exits_2(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# nothing\n")
    assert render.main(["--readme", str(readme), "--check"]) == 2
