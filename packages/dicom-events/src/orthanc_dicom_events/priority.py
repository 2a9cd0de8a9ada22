"""A lower CPU priority for the publisher thread, so Orthanc's own threads go first."""

from __future__ import annotations

import contextlib
import os
import threading

# Publishing can wait a little, storing cannot: with a higher nice value the publisher gives the
# CPU to Orthanc's store threads whenever both want it. It still runs at once on an idle machine,
# so latency at a steady rate is unchanged. On Linux each thread has its own nice value.
PUBLISHER_NICENESS = 10


def lower_own_priority(niceness: int = PUBLISHER_NICENESS) -> None:
    """Raise the calling thread's nice value; a no-op where threads cannot have their own."""
    if niceness <= 0 or not hasattr(os, "setpriority"):
        return
    with contextlib.suppress(OSError):  # not permitted here: run at normal priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
