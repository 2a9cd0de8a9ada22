"""Several Orthanc nodes on one PostgreSQL index and one storage folder, as operators scale out.

Each node is an `OrthancServer` (the flavour HARNESS_FLAVOUR selects: debian-12 has
orthanc-postgresql 4.0, debian-13 and sid 5.0) with its own HTTP and DICOM ports on 127.0.0.1,
its own work folder and plugin state folder; all share the database (`"Lock": false`, so that
more than one node may open it), the storage folder and `CheckRevisions`.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .orthanc import Entry, OrthancServer, deep_merge
from .postgres import Database
from .processes import HarnessError

POSTGRESQL_INDEX_PLUGIN = "/usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so"

NodeConfig = Callable[[int, Path], Mapping[str, Any]]


def cluster_config(database: Database, storage: Path) -> dict[str, Any]:
    """What every node's configuration shares."""
    return {
        "StorageDirectory": str(storage),
        "CheckRevisions": True,
        "Plugins": [POSTGRESQL_INDEX_PLUGIN],
        "PostgreSQL": database.orthanc_section(),
    }


def own_state(node_dir: Path, plugins: Sequence[str]) -> dict[str, Any]:
    """What each node keeps for itself: its index folder (unused with PostgreSQL, but Orthanc
    names it) and dicom-events' deletion spool (`DicomEvents.StateDirectory`)."""
    state: dict[str, Any] = {"IndexDirectory": str(node_dir / "index")}
    if "dicom-events" in plugins:
        state["DicomEvents"] = {"StateDirectory": str(node_dir / "dicom-events-state")}
    return state


class OrthancCluster:
    """N nodes (default 2). `config` applies to all of them, `node_config(index, workdir)` to one
    (deep-merged in that order over the cluster's settings); `nodes[i]` is an `OrthancServer`."""

    def __init__(
        self,
        workdir: Path,
        database: Database,
        *,
        nodes: int = 2,
        plugins: Sequence[str] = (),
        config: Mapping[str, Any] | None = None,
        node_config: NodeConfig | None = None,
        entry: Entry = "composed",
        flavour: str | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        if nodes < 1:
            raise HarnessError(f"a cluster needs at least one node, not {nodes}")
        self.workdir = workdir
        self.database = database
        self.storage = workdir / "storage"
        shared = deep_merge(cluster_config(database, self.storage), config or {})
        self.nodes: list[OrthancServer] = []
        for index in range(nodes):
            node_dir = workdir / f"node-{index}"
            own = deep_merge(
                own_state(node_dir, plugins), node_config(index, node_dir) if node_config else {}
            )
            self.nodes.append(
                OrthancServer(
                    node_dir,
                    plugins=plugins,
                    config=deep_merge(shared, own),
                    entry=entry,
                    name=f"node{index}",
                    startup_timeout=startup_timeout,
                    flavour=flavour,
                )
            )

    def __getitem__(self, index: int) -> OrthancServer:
        return self.nodes[index]

    def __len__(self) -> int:
        return len(self.nodes)

    def start(self) -> OrthancCluster:
        """The first node alone (it creates the schema in an empty database), then the others."""
        self.storage.mkdir(parents=True, exist_ok=True)
        try:
            for node in self.nodes:
                node.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        self.nodes[index].kill(sig)

    def running(self) -> list[OrthancServer]:
        return [node for node in self.nodes if node.is_running()]
