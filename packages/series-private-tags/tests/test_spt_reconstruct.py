"""Backfill: POST/GET/DELETE /with-private-tags/reconstruct."""

from __future__ import annotations

import json

from spt_testing import PluginFactory, body, configuration, instance

from orthanc_fake.module import FakeOrthanc
from orthanc_series_private_tags.plugin import SeriesPrivateTagsPlugin, create
from orthanc_series_private_tags.reconstruct import Reconstruction

Pair = tuple[FakeOrthanc, SeriesPrivateTagsPlugin]
ALL_TAGS = {0x11: ("UT", "q"), 0x12: ("LO", "s"), 0x13: ("CS", "Y")}


def fill_without_plugin(fake: FakeOrthanc, count: int) -> list[str]:
    """Series stored while the plugin did not listen (changes dropped)."""
    for number in range(count):
        fake.store(instance(f"4.{number}", f"4.{number}.1", {0x12: ("LO", f"s{number}")}))
        fake.store(instance(f"4.{number}", f"4.{number}.2", {0x11: ("UT", f"q{number}")}))
    fake.archive.pending()  # delivered to nobody
    while fake.archive.take_pending() is not None:
        pass
    return list(json.loads(fake.RestApiGet("/series")))


def private_tags(fake: FakeOrthanc) -> dict[str, dict[str, str]]:
    listed = body(fake.call_route("GET", "/with-private-tags/series"))
    return {s["MainDicomTags"]["SeriesInstanceUID"]: s["MainPrivateDicomTags"] for s in listed}


def test_reconstruct_fills_series_stored_before_the_plugin(plugin_factory: PluginFactory) -> None:
    fake, plugin = plugin_factory()
    fill_without_plugin(fake, 3)
    assert all(tags == {} for tags in private_tags(fake).values())
    answer = fake.call_route("POST", "/with-private-tags/reconstruct")
    assert answer.status == 202
    assert body(answer)["Total"] == 3
    plugin.worker.run_pending()
    progress = body(fake.call_route("GET", "/with-private-tags/reconstruct"))
    assert (progress["State"], progress["Done"], progress["Total"], progress["ErrorCount"]) == (
        "Done",
        3,
        3,
        0,
    )
    assert private_tags(fake) == {
        f"4.{n}": {"QueueID": f"q{n}", "SourceSeries": f"s{n}"} for n in range(3)
    }


def test_reconstruct_is_idempotent(plugin_factory: PluginFactory) -> None:
    fake, plugin = plugin_factory()
    fill_without_plugin(fake, 2)
    for _ in range(2):
        fake.call_route("POST", "/with-private-tags/reconstruct")
        plugin.worker.run_pending()
        assert private_tags(fake) == {
            f"4.{n}": {"QueueID": f"q{n}", "SourceSeries": f"s{n}"} for n in range(2)
        }


def test_one_series(plugin_factory: PluginFactory) -> None:
    fake, plugin = plugin_factory()
    series = fill_without_plugin(fake, 2)
    answer = fake.call_route(
        "POST", "/with-private-tags/reconstruct", json.dumps({"Series": series[1]})
    )
    assert body(answer)["Total"] == 1
    plugin.worker.run_pending()
    filled = [tags for tags in private_tags(fake).values() if tags]
    assert len(filled) == 1


def test_stop_then_resume(plugin_factory: PluginFactory) -> None:
    fake, plugin = plugin_factory()
    fill_without_plugin(fake, 4)
    fake.call_route("POST", "/with-private-tags/reconstruct")
    plugin.worker.run_pending(max_items=1)
    stopped = body(fake.call_route("DELETE", "/with-private-tags/reconstruct"))
    assert (stopped["State"], stopped["Done"], stopped["Remaining"]) == ("Stopped", 1, 3)
    assert plugin.worker.run_pending() == 0  # nothing happens while stopped
    resumed = body(fake.call_route("POST", "/with-private-tags/reconstruct"))
    assert (resumed["State"], resumed["Done"], resumed["Total"]) == ("Running", 1, 4)
    plugin.worker.run_pending()
    assert body(fake.call_route("GET", "/with-private-tags/reconstruct"))["Done"] == 4
    assert all(private_tags(fake).values())


def test_a_tag_added_to_the_configuration_is_backfilled(plugin_factory: PluginFactory) -> None:
    fake, plugin = plugin_factory(configuration(["QueueID"]))
    fake.store(instance("5.1", "5.1.1", {0x11: ("UT", "q"), 0x12: ("LO", "s")}))
    fake.deliver_pending_changes()
    plugin.worker.run_pending()
    assert private_tags(fake) == {"5.1": {"QueueID": "q"}}
    # "Restart" with one more tag: a new plugin over the same archive.
    fake.configuration = configuration(["QueueID", "SourceSeries"])
    fake.routes.clear()
    restarted = create(fake, fake.configuration)
    assert private_tags(fake) == {"5.1": {"QueueID": "q"}}
    fake.call_route("POST", "/with-private-tags/reconstruct")
    restarted.worker.run_pending()
    assert private_tags(fake) == {"5.1": {"QueueID": "q", "SourceSeries": "s"}}


def test_bad_requests(orthanc_and_plugin: Pair) -> None:
    fake, _ = orthanc_and_plugin
    assert fake.call_route("POST", "/with-private-tags/reconstruct", "not json").status == 400
    assert fake.call_route("POST", "/with-private-tags/reconstruct", '{"Series": 3}').status == 400
    assert (
        fake.call_route("POST", "/with-private-tags/reconstruct", '{"Series": "x"}').status == 404
    )
    answer = fake.call_route("PUT", "/with-private-tags/reconstruct")
    assert (answer.status, answer.headers.get("Allow")) == (405, "GET,POST,DELETE")


def test_unreadable_instances_are_reported_and_the_run_goes_on(
    plugin_factory: PluginFactory,
) -> None:
    fake, plugin = plugin_factory()
    series = fill_without_plugin(fake, 2)
    first_instance = json.loads(fake.RestApiGet(f"/series/{series[0]}"))["Instances"][0]
    stored = fake.archive.instance_file(first_instance)
    truncated = instance("4.0", "4.0.1", {0x11: ("UT", "x" * 100)})[:-10]
    object.__setattr__(stored, "data", truncated)  # as if damaged on disk
    fake.call_route("POST", "/with-private-tags/reconstruct")
    plugin.worker.run_pending()
    progress = body(fake.call_route("GET", "/with-private-tags/reconstruct"))
    assert (progress["Done"], progress["ErrorCount"]) == (2, 1)
    assert progress["Errors"][0]["Series"] == series[0]


def test_progress_bookkeeping() -> None:
    run = Reconstruction()
    run.start([])
    assert run.progress()["State"] == "Done"
    run.start(["a", "b", "a"])
    assert run.progress()["Total"] == 2
    run.start(["c"])  # already running: kept as is
    assert run.progress()["Total"] == 2
    run.add("c")
    assert run.progress()["Total"] == 3
    assert [run.next_series(), run.next_series(), run.next_series(), run.next_series()] == [
        "a",
        "b",
        "c",
        None,
    ]
