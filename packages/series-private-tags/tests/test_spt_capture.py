"""Capture of private tags as instances arrive (fake Orthanc, worker run in the test's thread)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from spt_testing import CREATOR, OTHER_CREATOR, PluginFactory, body, configuration, instance

from orthanc_fake.enums import ChangeType, ResourceType
from orthanc_fake.module import FakeOrthanc
from orthanc_series_private_tags.plugin import SeriesPrivateTagsPlugin

Pair = tuple[FakeOrthanc, SeriesPrivateTagsPlugin]


def ingest(fake: FakeOrthanc, plugin: SeriesPrivateTagsPlugin, *files: bytes) -> list[str]:
    """Store files, deliver the changes and let the worker catch up; returns instance IDs."""
    ids = [fake.store(data).instance_id for data in files]
    fake.deliver_pending_changes()
    plugin.worker.run_pending()
    return ids


def record_gets(fake: FakeOrthanc, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URIs of the RestApiGet calls made from now on."""
    uris: list[str] = []
    real_get = fake.RestApiGet

    def get(uri: str) -> bytes:
        uris.append(uri)
        return real_get(uri)

    monkeypatch.setattr(fake, "RestApiGet", get)
    return uris


def metadata(fake: FakeOrthanc, series_id: str) -> dict[str, str]:
    result: dict[str, str] = json.loads(
        fake.RestApiGet(f"/series/{series_id}/metadata/SeriesPrivateTags")
    )
    return result


def series_of(fake: FakeOrthanc, instance_id: str) -> str:
    return str(json.loads(fake.RestApiGet(f"/instances/{instance_id}"))["ParentSeries"])


def test_values_are_merged_into_series_metadata(orthanc_and_plugin: Pair) -> None:
    fake, plugin = orthanc_and_plugin
    (first,) = ingest(
        fake, plugin, instance("1.9.1", "1.9.1.1", {0x11: ("UT", "q1"), 0x13: ("CS", "Y")})
    )
    series = series_of(fake, first)
    assert metadata(fake, series) == {"QueueID": "q1", "OutputFlag": "EXISTS"}


def test_a_tag_only_in_the_third_instance_is_captured(orthanc_and_plugin: Pair) -> None:
    fake, plugin = orthanc_and_plugin
    ids = ingest(
        fake,
        plugin,
        instance("1.9.2", "1.9.2.1", {0x11: ("UT", "first")}),
        instance("1.9.2", "1.9.2.2", {0x11: ("UT", "second wins not")}),
        instance("1.9.2", "1.9.2.3", {0x12: ("LO", "only here"), 0x13: ("CS", "")}),
    )
    assert metadata(fake, series_of(fake, ids[0])) == {
        "QueueID": "first",
        "SourceSeries": "only here",
        "OutputFlag": "EXISTS",
    }


def test_instances_of_a_complete_series_cost_no_dicom_read(orthanc_and_plugin: Pair) -> None:
    fake, plugin = orthanc_and_plugin
    complete = {0x11: ("UT", "q"), 0x12: ("LO", "s"), 0x13: ("CS", "Y")}
    ingest(fake, plugin, *(instance("1.9.3", f"1.9.3.{i}", complete) for i in range(1, 5)))
    assert (plugin.worker.captured_instances, plugin.worker.skipped_instances) == (1, 3)


def test_completeness_is_derived_from_metadata_after_a_restart(
    plugin_factory: PluginFactory,
) -> None:
    fake, plugin = plugin_factory()
    complete = {0x11: ("UT", "q"), 0x12: ("LO", "s"), 0x13: ("CS", "Y")}
    ingest(fake, plugin, instance("1.9.4", "1.9.4.1", complete))
    # A new plugin over the same archive: nothing in memory, only the stored metadata.
    restarted = SeriesPrivateTagsPlugin(fake, plugin.config)
    fake.store(instance("1.9.4", "1.9.4.2", complete))
    for change in fake.pending_changes:
        restarted.on_change(change.change_type, change.level, change.resource_id)
    restarted.worker.run_pending()
    assert (restarted.worker.captured_instances, restarted.worker.skipped_instances) == (0, 1)


def test_another_creators_tag_is_not_captured(orthanc_and_plugin: Pair) -> None:
    fake, plugin = orthanc_and_plugin
    (first,) = ingest(
        fake, plugin, instance("1.9.5", "1.9.5.1", {0x11: ("UT", "x")}, creator=OTHER_CREATOR)
    )
    answer = fake.call_route("GET", f"/with-private-tags/series/{series_of(fake, first)}")
    assert body(answer)["MainPrivateDicomTags"] == {}


def test_creator_at_another_block_is_captured(orthanc_and_plugin: Pair) -> None:
    fake, plugin = orthanc_and_plugin
    (first,) = ingest(
        fake, plugin, instance("1.9.6", "1.9.6.1", {0x11: ("UT", "x")}, creator=CREATOR, block=0x42)
    )
    assert metadata(fake, series_of(fake, first)) == {"QueueID": "x"}


def test_deleted_series_leaves_no_trace(orthanc_and_plugin: Pair) -> None:
    fake, plugin = orthanc_and_plugin
    (first,) = ingest(fake, plugin, instance("1.9.7", "1.9.7.1", {0x11: ("UT", "x")}))
    series = series_of(fake, first)
    fake.RestApiDelete(f"/series/{series}")
    fake.deliver_pending_changes()
    plugin.worker.run_pending()
    assert body(fake.call_route("GET", "/with-private-tags/series")) == []
    assert fake.call_route("GET", f"/with-private-tags/series/{series}").status == 404
    # The same series stored again starts from nothing.
    ingest(fake, plugin, instance("1.9.7", "1.9.7.2", {0x12: ("LO", "new")}))
    assert body(fake.call_route("GET", f"/with-private-tags/series/{series}"))[
        "MainPrivateDicomTags"
    ] == {"SourceSeries": "new"}


def test_metadata_edited_by_someone_else_is_what_listings_show(orthanc_and_plugin: Pair) -> None:
    fake, plugin = orthanc_and_plugin
    (first,) = ingest(fake, plugin, instance("1.9.8", "1.9.8.1", {0x11: ("UT", "x")}))
    series = series_of(fake, first)
    fake.RestApiPut(f"/series/{series}/metadata/SeriesPrivateTags", '{"QueueID": "edited"}')
    fake.deliver_pending_changes()
    plugin.worker.run_pending()
    listed = body(fake.call_route("GET", "/with-private-tags/series"))
    assert listed[0]["MainPrivateDicomTags"] == {"QueueID": "edited"}


def test_an_instance_deleted_before_the_worker_reads_it_is_skipped(
    orthanc_and_plugin: Pair,
) -> None:
    fake, plugin = orthanc_and_plugin
    instance_id = fake.store(instance("1.9.9", "1.9.9.1", {0x11: ("UT", "x")})).instance_id
    fake.deliver_pending_changes()
    fake.RestApiDelete(f"/instances/{instance_id}")
    fake.deliver_pending_changes()
    plugin.worker.run_pending()
    assert fake.log_messages("warning") == []


def test_worker_thread_starts_on_orthanc_started_and_stops_on_stopped(
    plugin_factory: PluginFactory,
) -> None:
    fake, plugin = plugin_factory(configuration())
    fake.start()
    try:
        (first,) = [fake.store(instance("1.9.10", "1.9.10.1", {0x11: ("UT", "live")})).instance_id]
        fake.deliver_pending_changes()
        deadline = time.monotonic() + 5
        while plugin.worker.pending_changes() or plugin.worker.captured_instances == 0:
            assert time.monotonic() < deadline, "the worker thread did not catch up"
            time.sleep(0.01)
        assert metadata(fake, series_of(fake, first)) == {"QueueID": "live"}
    finally:
        started = time.monotonic()
        fake.stop()
        assert time.monotonic() - started < 5
    assert not plugin.worker._thread.running
    fake.fire_change(ChangeType.ORTHANC_STOPPED, ResourceType.NONE, "")  # a second stop is harmless


def test_echoes_of_our_own_writes_cost_no_read(
    orthanc_and_plugin: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, plugin = orthanc_and_plugin
    fake.store(instance("1.9.11", "1.9.11.1", {0x11: ("UT", "x")}))
    fake.deliver_pending_changes()
    plugin.worker.run_pending()  # writes the metadata: Orthanc queues UPDATED_METADATA
    uris = record_gets(fake, monkeypatch)
    assert fake.deliver_pending_changes() >= 1
    plugin.worker.run_pending()
    assert uris == []


def test_a_new_series_needs_no_metadata_read(
    orthanc_and_plugin: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, plugin = orthanc_and_plugin
    uris = record_gets(fake, monkeypatch)
    (first,) = ingest(fake, plugin, instance("1.9.12", "1.9.12.1", {0x11: ("UT", "x")}))
    assert not [uri for uri in uris if "/metadata" in uri]
    # A late NEW_SERIES does not hide what was captured meanwhile.
    series = series_of(fake, first)
    plugin.on_change(ChangeType.NEW_SERIES, ResourceType.SERIES, series)
    assert plugin.store.get(series).values == {"QueueID": "x"}


def test_a_burst_costs_at_most_two_lookups_and_one_write_per_series(
    orthanc_and_plugin: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, plugin = orthanc_and_plugin
    posts: list[str] = []
    puts: list[str] = []
    real_post, real_put = fake.RestApiPost, fake.RestApiPut
    monkeypatch.setattr(fake, "RestApiPost", lambda u, b: posts.append(u) or real_post(u, b))
    monkeypatch.setattr(fake, "RestApiPut", lambda u, b: puts.append(u) or real_put(u, b))
    gets = record_gets(fake, monkeypatch)
    complete = {0x12: ("LO", "s"), 0x13: ("CS", "Y")}
    files = [
        instance("1.9.40", f"1.9.40.{n}", {0x11: ("UT", f"q{n}"), **complete} if n >= 3 else {})
        for n in range(1, 7)
    ]
    ids = ingest(fake, plugin, *files)
    # The first instance is looked up alone; it lacks the tag, so the rest of the burst is
    # looked up in one more call.
    assert posts == ["/tools/bulk-content"] * 2
    assert not [uri for uri in gets if uri.startswith("/instances/") and uri.count("/") == 2]
    # Read until the value is known (the third instance), then no more DICOM reads.
    assert len([uri for uri in gets if uri.endswith("/file")]) == 3
    assert len(puts) == 1
    assert metadata(fake, series_of(fake, ids[0]))["QueueID"] == "q3"


def test_without_bulk_content_instances_are_looked_up_one_by_one(
    orthanc_and_plugin: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Orthanc before 1.9.4 has no /tools/bulk-content: it answers "unknown resource"."""
    fake, plugin = orthanc_and_plugin
    real_post = fake.RestApiPost

    def post(uri: str, body: bytes | str) -> bytes:
        if uri == "/tools/bulk-content":
            raise fake.OrthancException(17, "Unknown resource")
        return real_post(uri, body)

    monkeypatch.setattr(fake, "RestApiPost", post)
    ids = ingest(
        fake,
        plugin,
        instance("1.9.41", "1.9.41.1", {}),
        instance("1.9.41", "1.9.41.2", {0x11: ("UT", "late")}),
    )
    assert metadata(fake, series_of(fake, ids[0])) == {"QueueID": "late"}


def test_files_are_read_from_the_storage_folder_when_it_is_the_built_in_one(
    plugin_factory: PluginFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, plugin = plugin_factory(configuration(StorageDirectory=str(tmp_path)))
    plugin.worker.open_storage()
    gets = record_gets(fake, monkeypatch)
    data = instance("1.9.50", "1.9.50.1", {0x11: ("UT", "from disk")})
    stored = fake.store(data)
    uuid = json.loads(fake.RestApiGet(f"/instances/{stored.instance_id}"))["FileUuid"]
    folder = tmp_path / uuid[0:2] / uuid[2:4]
    folder.mkdir(parents=True)
    (folder / uuid).write_bytes(data)
    fake.deliver_pending_changes()
    plugin.worker.run_pending()
    assert not [uri for uri in gets if uri.endswith("/file")]
    assert plugin.status()["DirectFileReads"] == 1
    assert metadata(fake, stored.series_id) == {"QueueID": "from disk"}


def test_one_failing_read_costs_only_its_instance_which_is_captured_later(
    orthanc_and_plugin: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, plugin = orthanc_and_plugin
    monkeypatch.setattr("orthanc_series_private_tags.worker.RETRY_FIRST_SECONDS", 0.0)
    files = [
        instance(f"1.9.{30 + n}", f"1.9.{30 + n}.1", {0x11: ("UT", f"queue-{n}")}) for n in range(3)
    ]
    ids = [fake.store(data).instance_id for data in files]
    broken = {f"/instances/{ids[1]}/file": 2}  # the second instance fails twice, then reads
    real_get = fake.RestApiGet

    def get(uri: str) -> bytes:
        if broken.get(uri):
            broken[uri] -= 1
            raise fake.OrthancException(11, "Database is locked")
        return real_get(uri)

    monkeypatch.setattr(fake, "RestApiGet", get)
    plugin.worker.files = None  # through Orthanc's REST API only
    fake.deliver_pending_changes()
    plugin.worker.run_pending()  # one batch of three: the failure stays with its instance
    assert metadata(fake, series_of(fake, ids[0])) == {"QueueID": "queue-0"}
    assert metadata(fake, series_of(fake, ids[2])) == {"QueueID": "queue-2"}
    for _ in range(3):  # the retries come due at once here
        plugin.worker.run_pending()
    assert metadata(fake, series_of(fake, ids[1])) == {"QueueID": "queue-1"}
    assert broken[f"/instances/{ids[1]}/file"] == 0
    assert any("to capture again" in message for message in fake.log_messages("warning"))


def test_an_instance_that_never_reads_is_given_up_with_a_pointer_to_reconstruct(
    orthanc_and_plugin: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, plugin = orthanc_and_plugin
    monkeypatch.setattr("orthanc_series_private_tags.worker.RETRY_FIRST_SECONDS", 0.0)
    stored = fake.store(instance("1.9.40", "1.9.40.1", {0x11: ("UT", "never")})).instance_id
    real_get = fake.RestApiGet

    def get(uri: str) -> bytes:
        if uri == f"/instances/{stored}/file":
            raise fake.OrthancException(13, "Inexistent file")
        return real_get(uri)

    monkeypatch.setattr(fake, "RestApiGet", get)
    plugin.worker.files = None
    fake.deliver_pending_changes()
    for _ in range(10):
        plugin.worker.run_pending()
    errors = fake.log_messages("error")
    assert any("not captured after 5 attempts" in e and "reconstruct" in e for e in errors)
    assert plugin.worker.pending_changes() == 0


def test_later_instances_of_a_complete_series_cost_no_call_at_all(
    orthanc_and_plugin: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, plugin = orthanc_and_plugin
    tags = {0x11: ("UT", "q"), 0x12: ("LO", "s"), 0x13: ("CS", "Y")}
    ingest(fake, plugin, *[instance("1.9.50", f"1.9.50.{n}", tags) for n in range(1, 3)])
    posts: list[str] = []
    real_post = fake.RestApiPost
    monkeypatch.setattr(fake, "RestApiPost", lambda u, b: posts.append(u) or real_post(u, b))
    gets = record_gets(fake, monkeypatch)
    skipped = plugin.worker.skipped_instances
    # Orthanc signals each instance's series right after it: that is enough to skip them.
    ingest(fake, plugin, *[instance("1.9.50", f"1.9.50.{n}", tags) for n in range(3, 9)])
    assert posts == [] and gets == []
    assert plugin.worker.skipped_instances == skipped + 6
    # An instance of another series is still looked up and read.
    ingest(fake, plugin, instance("1.9.51", "1.9.51.1", tags))
    assert posts == ["/tools/bulk-content"]


def test_a_new_series_batch_looks_up_only_its_first_instance(
    orthanc_and_plugin: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, plugin = orthanc_and_plugin
    bodies: list[dict[str, object]] = []
    real_post = fake.RestApiPost

    def post(uri: str, body: bytes) -> bytes:
        bodies.append(json.loads(body))
        return real_post(uri, body)

    monkeypatch.setattr(fake, "RestApiPost", post)
    tags = {0x11: ("UT", "q"), 0x12: ("LO", "s"), 0x13: ("CS", "Y")}
    ids = ingest(fake, plugin, *[instance("1.9.60", f"1.9.60.{n}", tags) for n in range(1, 7)])
    # One batch: the first instance is looked up and read; it completes the series, so the
    # five others of the batch are skipped without a lookup.
    assert [b["Resources"] for b in bodies] == [[ids[0]]]
    assert (plugin.worker.captured_instances, plugin.worker.skipped_instances) == (1, 5)
    assert metadata(fake, series_of(fake, ids[0])) == {
        "QueueID": "q",
        "SourceSeries": "s",
        "OutputFlag": "EXISTS",
    }


def test_followers_are_read_when_the_first_instance_lacks_a_tag(
    orthanc_and_plugin: Pair,
) -> None:
    fake, plugin = orthanc_and_plugin
    ids = ingest(
        fake,
        plugin,
        instance("1.9.61", "1.9.61.1", {0x11: ("UT", "q")}),
        instance("1.9.61", "1.9.61.2", {0x11: ("UT", "q")}),
        instance("1.9.61", "1.9.61.3", {0x12: ("LO", "late"), 0x13: ("CS", "Y")}),
    )
    assert metadata(fake, series_of(fake, ids[0])) == {
        "QueueID": "q",
        "SourceSeries": "late",
        "OutputFlag": "EXISTS",
    }
    assert plugin.worker.captured_instances == 3
