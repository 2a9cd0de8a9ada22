"""series-thumbnail and series-private-tags on several Orthanc nodes sharing one PostgreSQL index:
every node serves what any node stored."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pydicom.uid import generate_uid

from integration.conftest import ClusterFactory
from integration.harness.orthanc import OrthancServer
from integration.harness.processes import wait_until
from integration.tests.test_series_private_tags import SYNTHETIC, new_series_uid, synthetic
from integration.tests.test_series_thumbnail import CONFIG as THUMBNAIL_CONFIG
from integration.tests.test_series_thumbnail import ct_slices, slice_shown

pytestmark = pytest.mark.e2e


def thumbnail_of(node: OrthancServer, series_id: str) -> int:
    answer = node.client.get(f"/series/{series_id}/thumbnail", params={"format": "png"})
    assert answer.status_code == 200, answer.text
    return slice_shown(answer.content)


def upload_all(node: OrthancServer, files: list[bytes]) -> str:
    series = {str(node.upload_file(data)["ParentSeries"]) for data in files}
    assert len(series) == 1
    return series.pop()


# The default thumbnail stored as an attachment of its series, shared through the index.
STORING_CONFIG: dict[str, Any] = {
    **THUMBNAIL_CONFIG,
    "UserContentType": {"SeriesThumbnail": 2001},
}


@pytest.mark.parametrize("config", [THUMBNAIL_CONFIG, STORING_CONFIG], ids=["memory", "stored"])
def test_every_node_serves_the_new_middle_slice_after_the_series_changed_elsewhere(
    cluster_factory: ClusterFactory, config: dict[str, Any]
) -> None:
    cluster = cluster_factory(nodes=3, plugins=["series-thumbnail"], config=config)
    a, b, c = cluster.nodes
    study, series = generate_uid(), generate_uid()
    first = ct_slices(11, study_uid=study, series_uid=series)
    series_id = upload_all(a, first)
    a.wait_stable("series", series_id)
    assert [thumbnail_of(node, series_id) for node in cluster.nodes] == [5, 5, 5]

    # Ten more slices through node b. Meanwhile node a, which received none of them, sees the
    # series as stable (stability is tracked per node) and its request stores a choice made
    # for a series still growing.
    rest = ct_slices(10, study_uid=study, series_uid=series, first_index=11)
    for index, data in enumerate(rest):
        b.upload_file(data)
        if index == 2:
            assert thumbnail_of(a, series_id) == 7  # 14 slices so far
            assert thumbnail_of(c, series_id) == 7
    # A node restarted now (nothing in memory, the series stable as far as it knows) must not
    # read back the choice stored for 14 slices.
    c.restart()
    # Before b calls it stable, every node already serves the new middle (slice 10 of 21):
    # each request compares the series' instance list with the one its choice was made for.
    assert [thumbnail_of(node, series_id) for node in cluster.nodes] == [10, 10, 10]
    b.wait_stable("series", series_id)
    time.sleep(1.0)  # b's stable-series work (choice stored, default size rendered)
    assert [thumbnail_of(node, series_id) for node in cluster.nodes] == [10, 10, 10]
    a.restart()
    assert thumbnail_of(a, series_id) == 10


def stored_key(node: OrthancServer, series_id: str) -> bytes | None:
    """The header line of the series' stored thumbnail (what it was rendered for), if any."""
    answer = node.client.get(f"/series/{series_id}/attachments/SeriesThumbnail/data")
    return answer.content.split(b"\n", 2)[1] if answer.status_code == 200 else None


def test_a_thumbnail_stored_by_one_node_is_served_by_another_without_rendering(
    cluster_factory: ClusterFactory,
) -> None:
    cluster = cluster_factory(nodes=2, plugins=["series-thumbnail"], config=STORING_CONFIG)
    a, b = cluster.nodes
    study, series = generate_uid(), generate_uid()
    series_id = upload_all(a, ct_slices(5, study_uid=study, series_uid=series))
    a.wait_stable("series", series_id)
    first_key = wait_until(
        lambda: stored_key(b, series_id), timeout=15, what="node a's thumbnail stored"
    )
    answer = b.client.get(f"/series/{series_id}/thumbnail")
    assert answer.status_code == 200 and slice_shown(answer.content) == 2
    status = b.client.get_json("/series-thumbnail/status")
    assert (status["Renderings"], status["Attachment"]["Loaded"]) == (0, 1), status

    # Two more slices through b: b removes the stored thumbnail (writes checked against the
    # revision: the cluster runs with CheckRevisions) and, once the series is stable, stores
    # the new middle (slice 3 of 7), which a then serves from storage.
    more = ct_slices(2, study_uid=study, series_uid=series, first_index=5)
    assert upload_all(b, more) == series_id
    b.wait_stable("series", series_id)
    wait_until(
        lambda: stored_key(b, series_id) not in (None, first_key),
        timeout=15,
        what="node b's new thumbnail stored",
    )
    a.restart()
    shown = a.client.get(f"/series/{series_id}/thumbnail")
    assert shown.status_code == 200 and slice_shown(shown.content) == 3
    status = a.client.get_json("/series-thumbnail/status")
    assert (status["Renderings"], status["Attachment"]["Loaded"]) == (0, 1), status


PRIVATE_TAGS_CONFIG: dict[str, Any] = {
    "Dictionary": SYNTHETIC,
    "SeriesMainPrivateDicomTags": ["QueueID", "SourceSeriesUID"],
    "UserMetadata": {"SeriesPrivateTags": 2000},
    "StableAge": 1,
}
# The longest a listing on one node may lag behind a capture made by another: the worker reads
# the shared change log once a second, then the series' metadata (measured: under 0.5 s; the
# margin is for a loaded machine).
LISTING_DELAY_SECONDS = 3.0


def wait_for_listing(
    node: OrthancServer, series_id: str, expected: dict[str, Any], timeout: float
) -> float:
    """Seconds until `node` lists the series with `expected` private tags."""
    started = time.monotonic()

    def listed() -> bool:
        answer = node.client.get_json(f"/with-private-tags/series/{series_id}")
        return bool(answer.get("MainPrivateDicomTags") == expected)

    wait_until(listed, timeout=timeout, what=f"{node.url} to list {expected}", interval=0.05)
    return time.monotonic() - started


def test_listings_on_every_node_show_captures_made_by_any_node(
    cluster_factory: ClusterFactory,
) -> None:
    cluster = cluster_factory(nodes=3, plugins=["series-private-tags"], config=PRIVATE_TAGS_CONFIG)
    a, b, c = cluster.nodes
    series_uid = new_series_uid()
    # The first instance lacks SourceSeriesUID: b and c list (and so mirror) the series with
    # QueueID only; a later instance through c fills SourceSeriesUID.
    series_id = a.upload_file(synthetic(series_uid, {0x11: ("UT", "q-1")}))["ParentSeries"]
    delays = [wait_for_listing(node, series_id, {"QueueID": "q-1"}, 20) for node in (a, b, c)]
    c.upload_file(synthetic(series_uid, {0x11: ("UT", "q-1"), 0x12: ("LO", "src-9")}))
    expected = {"QueueID": "q-1", "SourceSeriesUID": "src-9"}
    captured = wait_for_listing(c, series_id, expected, 20)
    lags = [wait_for_listing(node, series_id, expected, 10) for node in (a, b)]
    print(f"capture on c {captured:.2f} s; listed on a and b {lags} s later; first {delays}")
    assert max(lags) <= LISTING_DELAY_SECONDS
    # The whole listing, not only the series' own route.
    for node in cluster.nodes:
        listing = node.client.get_json("/with-private-tags/series", params={"expand": ""})
        found = [entry for entry in listing if entry["ID"] == series_id]
        assert [entry["MainPrivateDicomTags"] for entry in found] == [expected]


def reconstruct_progress(node: OrthancServer) -> dict[str, Any]:
    progress: dict[str, Any] = node.client.get_json("/with-private-tags/reconstruct")
    return progress


def test_reconstruct_runs_on_one_node_at_a_time_with_its_progress_on_every_node(
    cluster_factory: ClusterFactory,
) -> None:
    cluster = cluster_factory(nodes=3, plugins=["series-private-tags"], config=PRIVATE_TAGS_CONFIG)
    a, b, c = cluster.nodes
    count = 600
    for n in range(count):
        cluster.nodes[n % 3].upload_file(synthetic(new_series_uid(), {0x11: ("UT", f"q{n}")}))

    started = a.client.post("/with-private-tags/reconstruct")
    assert started.status_code == 202, started.text
    assert (started.json()["Total"], started.json()["Node"]) == (count, "node0")
    refused = b.client.post("/with-private-tags/reconstruct")
    seen_from_c = reconstruct_progress(c)
    assert refused.status_code == 409, refused.text
    assert refused.json()["Progress"]["Node"] == "node0"
    assert (seen_from_c["Node"], seen_from_c["Total"]) == ("node0", count)
    assert seen_from_c["State"] in ("Running", "Done")

    def done_everywhere() -> bool:
        return all(
            (p["State"], p["Done"], p["Node"]) == ("Done", count, "node0")
            for p in map(reconstruct_progress, cluster.nodes)
        )

    wait_until(done_everywhere, timeout=60, what="the reconstruct done, seen from every node")

    # Finished, the lock is free: another node may run the next one, and a stop asked through a
    # third node reaches it.
    again = b.client.post("/with-private-tags/reconstruct")
    assert again.status_code == 202, again.text
    stop = c.client.delete("/with-private-tags/reconstruct")
    assert stop.status_code == 202, stop.text  # asked while b runs: passed on to b
    assert stop.json()["StopRequested"] is True

    def ended_on_b() -> dict[str, Any] | None:
        progress = reconstruct_progress(a)
        return progress if progress["Node"] == "node1" and progress["State"] != "Running" else None

    ended = wait_until(ended_on_b, timeout=60, what="b's reconstruct to end, seen from a")
    print(f"second run: {ended['State']} after {ended['Done']} of {ended['Total']} series")
    assert ended["State"] == "Stopped" and ended["Done"] < count
