"""The plugin object Orthanc (or a composed entry file) drives; the only module touching `orthanc`.

Implements the contract every plugin of this repository shares (`create(orthanc, orthanc_config)`,
see "Plugin contract" in the repository README); everything Orthanc-specific goes through `_kit`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from types import ModuleType
from typing import Any

from .__about__ import __version__
from ._kit import (
    ConfigurationError,
    HostError,
    OrthancHost,
    Request,
    Response,
    configured_directory,
    json_response,
    method_not_allowed,
    orthanc_at_least,
    status_handler,
)
from .config import SECTION, DicomEventsConfig, mask_secrets, mask_url_password, parse
from .events import EventType, enabled_types
from .lease import AdvisoryLock, DriverMissing, PublisherLock
from .publishers import Publisher
from .publishers.factory import build_publisher
from .spool import read_dead_letters
from .status import Status, as_json
from .stored_tags import StoredInstanceTags, origin_codes
from .worker import EventWorker

NAME = "dicom-events"
STATUS_ROUTE = "/dicom-events/status"
DEAD_LETTERS_ROUTE = "/dicom-events/dead-letters"
DEAD_LETTERS_SHOWN = 100


class DicomEventsPlugin:
    """Publishes Orthanc's DICOM events to the configured broker."""

    name = NAME
    on_stored_instance: Callable[[Any, str], None] | None = None  # nothing on the store path

    def __init__(
        self,
        orthanc: ModuleType,
        config: DicomEventsConfig,
        publisher_factory: Callable[[], Publisher] | None = None,
        lock: PublisherLock | None = None,
    ) -> None:
        self.config = config
        self.lock = lock
        self.host = OrthancHost(orthanc, redact=lambda text: mask_secrets(text, config))
        self._kinds = self.host.constants
        self.status_counters = Status()
        self.stored_tags = stored_tags_cache(orthanc, config)
        if self.stored_tags is not None:
            self.on_stored_instance = self.stored_tags.on_stored_instance
        self.worker = EventWorker(
            self.host,
            config,
            publisher_factory or (lambda: build_publisher(config)),
            self.status_counters,
            lock=lock,
            stored_tags=self.stored_tags,
        )

    def on_change(self, change_type: int, level: int, resource_id: str) -> None:
        """Orthanc's change callback: starts and stops the publisher, otherwise only wakes it."""
        kinds = self._kinds
        if change_type == kinds.orthanc_started:
            self.worker.start()
        elif change_type == kinds.orthanc_stopped:
            self.stop()
        elif change_type == kinds.deleted:
            if level == kinds.instance and self.stored_tags is not None:
                self.stored_tags.forget(resource_id)
            level_name = kinds.level_name(level)
            if level_name is not None:
                self.worker.deleted(level_name, resource_id)
        else:
            self.worker.wake()

    def stop(self) -> None:
        ended = self.worker.stop()
        self.host.close()
        if not ended:
            self.host.log_warning("dicom-events: publisher still busy after the flush time; left")

    def status(self) -> dict[str, Any]:
        """What `GET /dicom-events/status` reports."""
        config = self.config
        broker: dict[str, Any] = {"Type": config.broker_type.value}
        if config.rabbitmq is not None:
            broker["URL"] = mask_url_password(config.rabbitmq.url)
            broker["Exchange"] = config.rabbitmq.exchange
        if config.sns is not None:
            broker["TopicArn"] = config.sns.topic_arn
        self._refresh_log_end()
        broker.update(as_json(self.status_counters.snapshot()))
        answer: dict[str, Any] = {
            "Plugin": NAME,
            "Version": __version__,
            "Source": config.source,
            "Broker": broker,
        }
        if self.stored_tags is not None:
            answer["InstanceTagsCapturedOnStore"] = self.stored_tags.captured
        if self.lock is not None:
            worker = self.worker
            answer["Cluster"] = {
                "Role": worker.role,
                "RoleSince": worker.role_since,
                "Takeovers": worker.takeovers,
                "Lock": self.lock.describe(),
                "LockError": getattr(self.lock, "last_error", None),
                "RepeatedStableDropped": worker.repeated_stable_dropped,
                "PrematureStableDropped": worker.premature_stable_dropped,
            }
        return answer

    def _refresh_log_end(self) -> None:
        """The backlog counts changes recorded since the publisher last looked, too."""
        try:
            last = int(self.host.get_json("/changes?last")["Last"])
        except (HostError, ValueError, KeyError):
            return
        if last > self.status_counters.snapshot().log_end_seq:
            self.status_counters.update(log_end_seq=last)

    def register_routes(self) -> None:
        # Until the start position in the change log is known, nothing is published: 503.
        handler = status_handler(self.status, ready=self.worker.ready.is_set)
        self.host.register_route(STATUS_ROUTE, handler, NAME)
        self.host.register_route(DEAD_LETTERS_ROUTE, self.dead_letters, NAME)

    def dead_letters(self, request: Request) -> Response:
        """`GET /dicom-events/dead-letters`: the newest events given up on, with the reason."""
        if request.method != "GET":
            return method_not_allowed("GET")
        letters = read_dead_letters(self.config.state_directory, DEAD_LETTERS_SHOWN)
        total = self.status_counters.snapshot().dead_letters
        return json_response(200, {"DeadLettersSinceStart": total, "Newest": letters})


# From this version on (measured on 1.12.7 and 1.13.0) a lookup of an instance goes through
# Orthanc's newer find path, whose cost grows with an SQLite index and pays a round trip with
# PostgreSQL: `/tags` afterwards costs 4 to 20 times the capture. On 1.10 the read afterwards is
# cheaper in all than a Python callback on every store.
CAPTURE_FROM_ORTHANC = (1, 12, 5)


def stored_tags_cache(orthanc: ModuleType, config: DicomEventsConfig) -> StoredInstanceTags | None:
    """Capture event tags as instances are stored only when every stored instance is published
    with tags (no throttle) and Orthanc's own lookup is the dearer way to read them."""
    events = config.events
    if not (
        EventType.INSTANCE_STORED in enabled_types(events)
        and events.stored_instance_tags
        and events.stored_instance_throttle_ms == 0
        and hasattr(orthanc, "RegisterOnStoredInstanceCallback")
        and orthanc_at_least(orthanc, *CAPTURE_FROM_ORTHANC)
    ):
        return None
    skipped = origin_codes(orthanc, events.stored_instance_skip_origins)
    return StoredInstanceTags(events.stored_instance_tags, skipped)


def create(orthanc: ModuleType, orthanc_config: Mapping[str, Any]) -> DicomEventsPlugin:
    """Validate the `DicomEvents` section, register the REST routes and return the plugin."""
    config = parse(orthanc_config)
    state = configured_directory(orthanc, config.state_directory, f"{SECTION}.StateDirectory")
    lock: PublisherLock | None = None
    if config.cluster is not None:
        try:
            lock = AdvisoryLock(config.cluster)
        except DriverMissing as error:
            raise ConfigurationError(
                f"{SECTION}.Cluster", orthanc_config[SECTION].get("Cluster"), str(error)
            ) from None
    plugin = DicomEventsPlugin(orthanc, replace(config, state_directory=state), lock=lock)
    plugin.register_routes()
    return plugin
