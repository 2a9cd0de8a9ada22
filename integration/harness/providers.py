"""Where the servers come from. HARNESS_PROVIDER selects the provider; `local` (processes on this
machine) is the only one so far. A container provider (testcontainers) would be a new class here
implementing `interfaces.Provider`, and an entry in PROVIDERS: the suites would not change.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .interfaces import Orthanc, Provider, RabbitMQ, SnsEmulator
from .orthanc import Entry, OrthancServer
from .processes import HarnessError
from .rabbitmq import ExternalRabbitMQ, PrivateRabbitMQNode
from .sns import available_kinds, create_emulator


class LocalProcessProvider:
    """Orthanc, RabbitMQ and the SNS emulator as processes of this machine, on loopback ports."""

    name = "local"

    def orthanc(
        self,
        workdir: Path,
        *,
        plugins: Sequence[str] = (),
        config: Mapping[str, Any] | None = None,
        entry: Entry = "composed",
        script: Path | None = None,
        ready_routes: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
        name: str = "harness",
    ) -> Orthanc:
        return OrthancServer(
            workdir,
            plugins=plugins,
            config=config,
            entry=entry,
            script=script,
            ready_routes=ready_routes,
            env=env,
            name=name,
        )

    def rabbitmq(self, workdir: Path) -> RabbitMQ:
        """RABBITMQ_URL's broker when set, else a private node."""
        url = os.environ.get("RABBITMQ_URL")
        if url:
            return ExternalRabbitMQ(url)
        return PrivateRabbitMQNode(workdir)

    def sns(self, kind: str, workdir: Path) -> SnsEmulator:
        return create_emulator(kind, workdir)

    def sns_kinds(self) -> list[str]:
        return available_kinds()


PROVIDERS: dict[str, Callable[[], Provider]] = {"local": LocalProcessProvider}


def select_provider() -> Provider:
    """The provider named by HARNESS_PROVIDER (default `local`)."""
    name = os.environ.get("HARNESS_PROVIDER", "local").strip().lower() or "local"
    factory = PROVIDERS.get(name)
    if factory is None:
        raise HarnessError(f"HARNESS_PROVIDER={name!r}: expected one of {', '.join(PROVIDERS)}")
    return factory()
