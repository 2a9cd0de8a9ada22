"""On an index shared by several Orthanc nodes (PostgreSQL, `Lock: false`): what another node
writes reaches this one only through the shared change log, which the worker follows."""

from __future__ import annotations

import json
import os
from pathlib import Path

from spt_testing import PluginFactory, body, configuration, instance

from orthanc_series_private_tags.config import parse
from orthanc_series_private_tags.shared_run import SharedRun

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


def test_one_run_at_a_time_in_the_shared_folder(tmp_path: Path) -> None:
    here, there = SharedRun(str(tmp_path), "node0"), SharedRun(str(tmp_path), "node1")
    assert here.claim() and here.claimed
    assert not there.claim()
    assert there.running_elsewhere() and not here.running_elsewhere()
    here.publish({"State": "Running", "Done": 1, "Total": 3}, force=True)
    seen = there.read()
    assert seen is not None
    assert (seen["State"], seen["Done"], seen["Node"]) == ("Running", 1, "node0")
    there.request_stop()
    assert here.stop_requested() and not here.stop_requested()  # seen once
    here.release()  # as when node0's process ends: the kernel drops the lock
    interrupted = there.read()
    assert interrupted is not None
    assert (interrupted["State"], interrupted["Interrupted"]) == ("Stopped", True)
    assert there.claim()


def test_the_routes_refuse_a_second_run_and_show_the_running_one(
    plugin_factory: PluginFactory, tmp_path: Path
) -> None:
    config = configuration(**SHARED, StorageDirectory=str(tmp_path), Name="node2")
    fake, plugin = plugin_factory(config)
    for number in range(3):
        fake.store(instance(f"5.{number}", f"5.{number}.1", {0x11: ("UT", f"q{number}")}))
    other = SharedRun(os.path.join(str(tmp_path), "series-private-tags"), "node0")
    assert other.claim()
    other.publish({"State": "Running", "Done": 7, "Total": 9}, force=True)

    refused = fake.call_route("POST", "/with-private-tags/reconstruct")
    assert refused.status == 409
    assert body(refused)["Progress"]["Node"] == "node0"
    progress = body(fake.call_route("GET", "/with-private-tags/reconstruct"))
    assert (progress["Node"], progress["Done"], progress["State"]) == ("node0", 7, "Running")
    asked = fake.call_route("DELETE", "/with-private-tags/reconstruct")
    assert (asked.status, body(asked)["StopRequested"]) == (202, True)
    assert other.stop_requested()

    other.release()
    started = fake.call_route("POST", "/with-private-tags/reconstruct")
    assert started.status == 202
    assert (body(started)["Node"], body(started)["Total"]) == ("node2", 3)
    plugin.worker.run_pending()
    seen = other.read()
    assert seen is not None
    assert (seen["Node"], seen["State"], seen["Done"]) == ("node2", "Done", 3)
    assert other.claim()  # the finished run let the lock go
