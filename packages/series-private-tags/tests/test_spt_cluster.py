"""On an index shared by several Orthanc nodes (PostgreSQL, `Lock: false`): what another node
writes reaches this one only through the shared change log, which the worker follows."""

from __future__ import annotations

import json

from spt_testing import PluginFactory, configuration, instance

from orthanc_series_private_tags.config import parse

SHARED = {"PostgreSQL": {"EnableIndex": True, "Lock": False, "Database": "orthanc"}}


def test_the_shared_index_is_recognised_from_orthancs_postgresql_section() -> None:
    assert parse(configuration(**SHARED)).shared_index
    assert not parse(configuration()).shared_index
    locked = {"PostgreSQL": {"EnableIndex": True, "Database": "orthanc"}}  # Lock defaults to on
    assert not parse(configuration(**locked)).shared_index


def test_metadata_another_node_wrote_replaces_the_mirrored_copy(
    plugin_factory: PluginFactory,
) -> None:
    fake, plugin = plugin_factory(configuration(**SHARED))
    series_id = fake.store(instance("1.2.3.1", "1.2.3.1.1", {0x11: ("UT", "q-1")})).instance_id
    series_id = json.loads(fake.RestApiGet(f"/instances/{series_id}"))["ParentSeries"]
    fake.deliver_pending_changes()
    plugin.worker.run_pending()
    assert plugin.worker.follow_shared_log() == 0  # the first look only takes the position
    assert plugin.store.get(series_id).values == {"QueueID": "q-1"}

    # Another node captured a later instance: Orthanc calls back only that node.
    fake.RestApiPut(
        f"/series/{series_id}/metadata/SeriesPrivateTags",
        json.dumps({"QueueID": "q-1", "SourceSeries": "src"}),
    )
    fake.archive.take_pending()  # this node gets no callback of it
    assert plugin.store.get(series_id).values == {"QueueID": "q-1"}  # the mirror, still old
    assert plugin.worker.follow_shared_log() == 1
    plugin.worker.run_pending()
    assert plugin.store.get(series_id).values == {"QueueID": "q-1", "SourceSeries": "src"}
    assert plugin.worker.follow_shared_log() == 0  # nothing new since
