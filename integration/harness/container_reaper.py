"""Removes a test process's containers once that process is gone, however it ended.

Testcontainers' reaper (Ryuk) does this from an image that comes from a registry; this is a plain
process instead, started by the container provider in a session of its own (a signal sent to the
test's process group does not reach it). It polls its owner's PID; when the owner is gone it
removes every container labelled with that PID and, when the owner had started the harness's own
Docker engine, stops it too (with the firewall comparison), then exits. After a normal end the
provider has done all that and stops the reaper itself.

    python -m integration.harness.container_reaper --owner PID
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Sequence

from .docker_engine import process_alive

POLL_SECONDS = 0.5


def reap(owner: int) -> None:
    """Remove the owner's containers; stop the harness's engine if the owner had started it."""
    import docker

    from .containers import OWNER_LABEL
    from .docker_engine import DockerEngine

    client = docker.from_env(timeout=60)
    try:
        for container in client.containers.list(
            all=True, filters={"label": f"{OWNER_LABEL}={owner}"}
        ):
            with contextlib.suppress(Exception):
                container.remove(force=True)
    finally:
        client.close()
    engine = DockerEngine()
    if engine.owner_of_running_engine() == str(owner):
        report = engine.stop()
        print(report.describe(), file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m integration.harness.container_reaper")
    parser.add_argument("--owner", type=int, required=True, help="the test process's PID")
    arguments = parser.parse_args(argv)
    while process_alive(arguments.owner):
        time.sleep(POLL_SECONDS)
    reap(arguments.owner)
    return 0


if __name__ == "__main__":
    sys.exit(main())
