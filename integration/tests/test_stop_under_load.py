"""The three plugins composed stop within a container runtime's grace period (10 s) while the
broker is unreachable, a reconstruct runs over 2,000 series and a large listing is served."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from pydicom.uid import generate_uid

from integration.conftest import OrthancFactory
from integration.harness.processes import free_port
from integration.tests.shutdown import assert_stopped_cleanly, crashed_once_finalized
from integration.tests.test_series_private_tags import SYNTHETIC, synthetic
from integration.tests.test_smoke import ALL_PLUGINS

pytestmark = pytest.mark.e2e

SERIES = 2_000
GRACE_SECONDS = 10.0
# Open: in the debian-sid container (Orthanc 1.13.0, plugin 7.1, Orthanc as the container's
# PID 1) the stop is often slow: on one machine, 3 of 4 runs took the whole 30 s (Orthanc killed,
# its log silent after the stop request) while series-thumbnail counted the echoes of its own
# writes as Orthanc's activity, and 3 of 4 took 12-17 s once it stopped doing so (the others
# 3-6 s). As a process (chrooted, same rootfs) and on debian-12/13 it stops in 2.6-4 s. Not
# strict: a run that holds reports XPASS; a slow one still prints the end of Orthanc's log.
IN_A_CONTAINER = os.environ.get("HARNESS_PROVIDER", "") in ("docker", "compose")


@pytest.mark.xfail(
    IN_A_CONTAINER and os.environ.get("HARNESS_FLAVOUR") == "debian-sid",
    reason="Orthanc 1.13 as a container's PID 1 often takes more than 10 s to stop here (open)",
    strict=False,
)
def test_the_three_plugins_stop_within_ten_seconds_under_load(
    orthanc_factory: OrthancFactory,
) -> None:
    config = {
        "DicomEvents": {
            "Events": {"StoredInstance": True, "DeletedSeries": True},
            "Broker": {
                "Type": "rabbitmq",
                "RabbitConfig": {
                    "URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/",  # nobody listens
                    "Exchange": "stop",
                },
            },
        },
        "Dictionary": SYNTHETIC,
        "SeriesMainPrivateDicomTags": ["QueueID"],
        "UserMetadata": {"SeriesPrivateTags": 2000, "ThumbnailInstanceID": 2001},
    }
    orthanc = orthanc_factory(list(ALL_PLUGINS), config)
    files = [synthetic(generate_uid(), {0x11: ("UT", f"q{n}")}) for n in range(SERIES)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(orthanc.upload_file, files))
    reconstruct = orthanc.client.post("/with-private-tags/reconstruct", json={})
    assert reconstruct.status_code == 202, reconstruct.text
    listing_started = threading.Event()

    def list_everything() -> None:
        listing_started.set()
        for _ in range(20):
            try:
                orthanc.client.get("/with-private-tags/series", timeout=30)
            except Exception:
                return  # Orthanc went away under the listing: expected

    lister = threading.Thread(target=list_everything)
    lister.start()
    listing_started.wait(5)
    time.sleep(0.3)
    started = time.monotonic()
    status = orthanc.stop(timeout=30)
    elapsed = time.monotonic() - started
    lister.join(60)
    print(f"three plugins under load stopped in {elapsed:.1f} s")
    log = orthanc.log_text()
    tail = "\n".join(log.splitlines()[-80:])
    assert elapsed < GRACE_SECONDS, f"stopped in {elapsed:.1f} s; Orthanc's log ends:\n{tail}"
    assert_stopped_cleanly(orthanc, status)
    # Every plugin stopped before Orthanc finalized them (plugin 7.1's crash comes after that).
    assert "Python plugin is finalizing" in log
    if not crashed_once_finalized(status, log):
        assert "Orthanc has stopped" in log
    assert "Traceback" not in log.split("Orthanc is stopping")[-1]
