"""Parse and validate the `DicomEvents` section of Orthanc's configuration.

Everything is checked once, at start-up: an invalid value raises `ConfigurationError` naming the
key path and the value seen, so Orthanc refuses to start rather than run half-configured.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from ._kit import (
    ConfigurationError,
    config_bool,
    config_int,
    config_object,
    config_strings,
    mask_url_credentials,
    reject_unknown_keys,
)
from .tags import PRIVATE_CREATOR

SECTION = "DicomEvents"
ORIGINS = ("UNKNOWN", "DICOM_PROTOCOL", "REST_API", "PLUGIN", "LUA", "WEB_DAV")
_SNS_TOPIC_ARN = re.compile(r"^arn:aws[\w-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")
_TAG_GROUP_ELEMENT = re.compile(r"^[0-9A-Fa-f]{4},[0-9A-Fa-f]{4}$")


class BrokerType(Enum):
    RABBITMQ = "rabbitmq"
    SNS = "sqs-sns"


@dataclass(frozen=True, slots=True)
class EventSelection:
    """Which events are published and with what content."""

    stored_instance: bool = False
    stable_series: bool = False
    stable_study: bool = False
    stable_patient: bool = False
    deleted_instance: bool = False
    deleted_series: bool = False
    deleted_study: bool = False
    deleted_patient: bool = False
    stored_instance_throttle_ms: int = 0
    stored_instance_skip_origins: frozenset[str] = frozenset()
    stored_instance_tags: tuple[str, ...] = ()
    stable_series_tags: tuple[str, ...] = ()
    stable_study_tags: tuple[str, ...] = ()
    stable_patient_tags: tuple[str, ...] = ()
    tag_value_max_length: int = 16_384


@dataclass(frozen=True, slots=True)
class RabbitConfig:
    url: str
    exchange: str
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    unroutable: str = "dead-letter"  # or "retry": hold the stream until a queue is bound
    alternate_exchange: str | None = None


@dataclass(frozen=True, slots=True)
class SnsConfig:
    topic_arn: str
    region: str | None = None
    endpoint_url: str | None = None

    @property
    def fifo(self) -> bool:
        return self.topic_arn.endswith(".fifo")

    @property
    def effective_region(self) -> str:
        """`Region` when set, else the region named in the topic ARN."""
        return self.region or self.topic_arn.split(":")[3]


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """One publisher at a time among Orthanc nodes sharing a PostgreSQL index: a session-level
    advisory lock on that database, reached with the settings of Orthanc's `PostgreSQL` section."""

    host: str
    port: int
    database: str
    username: str
    password: str = field(repr=False, default="")
    ssl: bool = False
    lock_key: int = 0x44494345  # DEFAULT_LOCK_KEY ("DICE"): any bigint, the same on every node
    lock_poll_ms: int = 1000
    connect_timeout_seconds: int = 5
    stable_age_seconds: int = 60  # Orthanc's StableAge, the same on every node
    # The server ends a lock session idle this long (PostgreSQL 14+): a publisher that hangs
    # without dying (its connection open) loses the lock then. 0: never.
    idle_session_timeout_seconds: int = 30
    clock_tolerance_seconds: int = 1


@dataclass(frozen=True, slots=True)
class DicomEventsConfig:
    events: EventSelection
    broker_type: BrokerType
    rabbitmq: RabbitConfig | None
    sns: SnsConfig | None
    source: str = "orthanc://Orthanc"
    replay_from_start: bool = False
    shutdown_flush_seconds: float = 5.0
    state_directory: str = "OrthancStorage"
    batch_window_ms: int = 50
    batch_window_max_ms: int = 400
    cluster: ClusterConfig | None = None


_EVENT_FLAGS = {
    "StoredInstance": "stored_instance",
    "StableSeries": "stable_series",
    "StableStudy": "stable_study",
    "StablePatient": "stable_patient",
    "DeletedInstance": "deleted_instance",
    "DeletedSeries": "deleted_series",
    "DeletedStudy": "deleted_study",
    "DeletedPatient": "deleted_patient",
}
_TAG_LISTS = {
    "StoredInstancePublishTags": "stored_instance_tags",
    "StableSeriesPublishTags": "stable_series_tags",
    "StableStudyPublishTags": "stable_study_tags",
    "StablePatientPublishTags": "stable_patient_tags",
}
_SECTION_KEYS = frozenset(
    {
        "Events",
        "Broker",
        "Source",
        "ReplayFromStart",
        "ShutdownFlushSeconds",
        "StateDirectory",
        "BatchWindowMs",
        "BatchWindowMaxMs",
        "Cluster",
    }
)
DEFAULT_LOCK_KEY = 0x44494345
BATCH_WINDOW_MAX_LIMIT_MS = 5000
_CLUSTER_KEYS = frozenset(
    {
        "Enabled",
        "LockKey",
        "LockPollMs",
        "ConnectTimeoutSeconds",
        "ClockToleranceSeconds",
        "IdleSessionTimeoutSeconds",
    }
)
_EVENT_KEYS = frozenset(
    {
        *_EVENT_FLAGS,
        *_TAG_LISTS,
        "StoredInstanceThrottleMs",
        "StoredInstanceSkipOrigin",
        "TagValueMaxLength",
    }
)


def mask_url_password(url: str) -> str:
    """The URL with its password replaced by `***`, for logs and status pages."""
    return mask_url_credentials(url)


def mask_secrets(text: str, config: DicomEventsConfig) -> str:
    """`text` without the broker password, whatever form it appears in."""
    text = mask_url_credentials(text)
    rabbit = config.rabbitmq
    password = urlsplit(rabbit.url).password if rabbit is not None else None
    if password:
        # A password may also appear alone (pika quotes credentials in some errors).
        text = text.replace(password, "***")
    if config.cluster is not None and config.cluster.password:
        text = text.replace(config.cluster.password, "***")
    return text


def parse(orthanc_config: Mapping[str, Any]) -> DicomEventsConfig:
    """Validate the `DicomEvents` section of a parsed Orthanc configuration."""
    section = config_object(orthanc_config.get(SECTION), SECTION, required=True)
    reject_unknown_keys(section, SECTION, _SECTION_KEYS)
    known_tags = _known_tag_names(orthanc_config)
    events = _parse_events(config_object(section.get("Events"), f"{SECTION}.Events"), known_tags)
    broker = config_object(section.get("Broker"), f"{SECTION}.Broker", required=True)
    broker_type = _parse_broker_type(broker.get("Type"))
    rabbitmq = sns = None
    if broker_type is BrokerType.RABBITMQ:
        rabbitmq = _parse_rabbit(broker.get("RabbitConfig"))
    else:
        sns = _parse_sns(broker.get("SNSConfig"))
    batch_window = _parse_batch_window(section.get("BatchWindowMs", 50))
    return DicomEventsConfig(
        events=events,
        broker_type=broker_type,
        rabbitmq=rabbitmq,
        sns=sns,
        source=_parse_source(section.get("Source"), orthanc_config.get("Name")),
        replay_from_start=config_bool(
            section.get("ReplayFromStart", False), f"{SECTION}.ReplayFromStart"
        ),
        shutdown_flush_seconds=_parse_flush_seconds(section.get("ShutdownFlushSeconds", 5)),
        state_directory=_parse_state_directory(section.get("StateDirectory"), orthanc_config),
        batch_window_ms=batch_window,
        batch_window_max_ms=_parse_batch_window_max(
            section.get("BatchWindowMaxMs", min(8 * batch_window, BATCH_WINDOW_MAX_LIMIT_MS)),
            batch_window,
        ),
        cluster=_parse_cluster(section.get("Cluster"), orthanc_config),
    )


def _parse_cluster(raw: object, orthanc_config: Mapping[str, Any]) -> ClusterConfig | None:
    """`DicomEvents.Cluster`, with the connection read from Orthanc's own `PostgreSQL` section."""
    path = f"{SECTION}.Cluster"
    if raw is None:
        return None
    section = config_object(raw, path)
    reject_unknown_keys(section, path, _CLUSTER_KEYS)
    if not config_bool(section.get("Enabled", True), f"{path}.Enabled"):
        return None
    postgres = orthanc_config.get("PostgreSQL")
    if not isinstance(postgres, Mapping) or not postgres.get("EnableIndex", False):
        raise ConfigurationError(
            path,
            raw,
            "needs Orthanc's index in PostgreSQL (a PostgreSQL section with EnableIndex: true):"
            " the nodes of a cluster share that database",
        )
    lock_key = config_int(
        section.get("LockKey", DEFAULT_LOCK_KEY), f"{path}.LockKey", -(2**63), 2**63 - 1
    )
    poll = config_int(section.get("LockPollMs", 1000), f"{path}.LockPollMs", 50, 60_000)
    timeout = config_int(
        section.get("ConnectTimeoutSeconds", 5), f"{path}.ConnectTimeoutSeconds", 1, 300
    )
    stable_age = orthanc_config.get("StableAge", 60)
    if isinstance(stable_age, bool) or not isinstance(stable_age, int) or stable_age < 1:
        raise ConfigurationError("StableAge", stable_age, "expected whole seconds >= 1")
    tolerance = config_int(
        section.get("ClockToleranceSeconds", 1),
        f"{path}.ClockToleranceSeconds",
        0,
        max(0, stable_age - 1),
    )
    idle = config_int(
        section.get("IdleSessionTimeoutSeconds", 30), f"{path}.IdleSessionTimeoutSeconds", 0, 86_400
    )
    if idle and idle * 1000 < 3 * poll:
        raise ConfigurationError(
            f"{path}.IdleSessionTimeoutSeconds",
            idle,
            "expected 0 (never) or at least three times LockPollMs",
        )
    connection = _postgres_connection(postgres)
    return ClusterConfig(
        **connection,
        lock_key=lock_key,
        lock_poll_ms=poll,
        connect_timeout_seconds=timeout,
        stable_age_seconds=stable_age,
        clock_tolerance_seconds=tolerance,
        idle_session_timeout_seconds=idle,
    )


def _postgres_connection(postgres: Mapping[str, Any]) -> dict[str, Any]:
    """Host, port, database, user, password and TLS as the orthanc-postgresql plugin reads them."""
    uri = postgres.get("ConnectionUri")
    if uri is not None:
        if not isinstance(uri, str):
            raise ConfigurationError("PostgreSQL.ConnectionUri", uri, "expected a URI string")
        parts = urlsplit(uri)
        if parts.scheme not in ("postgresql", "postgres") or not parts.path.strip("/"):
            raise ConfigurationError(
                "PostgreSQL.ConnectionUri", uri, "expected postgresql://user:password@host:port/db"
            )
        return {
            "host": parts.hostname or "localhost",
            "port": parts.port or 5432,
            "database": unquote(parts.path.strip("/")),
            "username": unquote(parts.username or ""),
            "password": unquote(parts.password or ""),
            "ssl": "sslmode=require" in parts.query,
        }
    values: dict[str, Any] = {}
    for key, attribute, default in (
        ("Host", "host", "localhost"),
        ("Database", "database", None),
        ("Username", "username", ""),
        ("Password", "password", ""),
    ):
        value = postgres.get(key, default)
        if value is None or not isinstance(value, str):
            raise ConfigurationError(f"PostgreSQL.{key}", value, "expected a string")
        values[attribute] = value
    if not values["database"]:
        raise ConfigurationError("PostgreSQL.Database", values["database"], "expected a name")
    values["port"] = config_int(postgres.get("Port", 5432), "PostgreSQL.Port", 1, 65535)
    values["ssl"] = config_bool(postgres.get("EnableSsl", False), "PostgreSQL.EnableSsl")
    return values


def _parse_source(raw: object, orthanc_name: object) -> str:
    if raw is None:
        name = orthanc_name if isinstance(orthanc_name, str) and orthanc_name else "Orthanc"
        return "orthanc://" + quote(name, safe="")
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigurationError(f"{SECTION}.Source", raw, "expected a non-empty URI reference")
    return raw


def _parse_flush_seconds(raw: object) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 <= raw <= 300:
        raise ConfigurationError(
            f"{SECTION}.ShutdownFlushSeconds", raw, "expected a number of seconds from 0 to 300"
        )
    return float(raw)


def _parse_batch_window(raw: object) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= 1000:
        raise ConfigurationError(
            f"{SECTION}.BatchWindowMs", raw, "expected whole milliseconds from 0 to 1000"
        )
    return raw


def _parse_batch_window_max(raw: object, batch_window: int) -> int:
    if (
        isinstance(raw, bool)
        or not isinstance(raw, int)
        or not batch_window <= raw <= BATCH_WINDOW_MAX_LIMIT_MS
    ):
        raise ConfigurationError(
            f"{SECTION}.BatchWindowMaxMs",
            raw,
            f"expected whole milliseconds from BatchWindowMs ({batch_window})"
            f" to {BATCH_WINDOW_MAX_LIMIT_MS}",
        )
    return raw


def _parse_state_directory(raw: object, orthanc_config: Mapping[str, Any]) -> str:
    if raw is None:
        # Beside Orthanc's own index, so the spool lives and dies with the database it follows.
        for key in ("IndexDirectory", "StorageDirectory"):
            value = orthanc_config.get(key)
            if isinstance(value, str) and value:
                return value
        return "OrthancStorage"
    if not isinstance(raw, str) or not raw:
        raise ConfigurationError(f"{SECTION}.StateDirectory", raw, "expected a directory path")
    return raw


def _parse_events(raw: Mapping[str, Any], known_tags: frozenset[str]) -> EventSelection:
    path = f"{SECTION}.Events"
    reject_unknown_keys(raw, path, _EVENT_KEYS)
    values: dict[str, Any] = {}
    for key, attribute in _EVENT_FLAGS.items():
        values[attribute] = config_bool(raw.get(key, False), f"{path}.{key}")
    for key, attribute in _TAG_LISTS.items():
        values[attribute] = _tag_names(raw.get(key, []), f"{path}.{key}", known_tags)
    throttle = raw.get("StoredInstanceThrottleMs", 0)
    if isinstance(throttle, bool) or not isinstance(throttle, int) or throttle < 0:
        raise ConfigurationError(
            f"{path}.StoredInstanceThrottleMs", throttle, "expected an integer >= 0"
        )
    values["stored_instance_throttle_ms"] = throttle
    values["tag_value_max_length"] = config_int(
        raw.get("TagValueMaxLength", 16_384), f"{path}.TagValueMaxLength", 64, 10_000_000
    )
    skip = config_strings(
        raw.get("StoredInstanceSkipOrigin", []), f"{path}.StoredInstanceSkipOrigin"
    )
    for index, origin in enumerate(skip):
        if origin not in ORIGINS:
            raise ConfigurationError(
                f"{path}.StoredInstanceSkipOrigin[{index}]",
                origin,
                f"unknown origin, expected one of {', '.join(ORIGINS)}",
            )
    values["stored_instance_skip_origins"] = frozenset(skip)
    return EventSelection(**values)


def _parse_broker_type(raw: object) -> BrokerType:
    for broker_type in BrokerType:
        if raw == broker_type.value:
            return broker_type
    choices = " or ".join(repr(t.value) for t in BrokerType)
    raise ConfigurationError(f"{SECTION}.Broker.Type", raw, f"expected {choices}")


def _parse_rabbit(raw: object) -> RabbitConfig:
    path = f"{SECTION}.Broker.RabbitConfig"
    section = config_object(raw, path, required=True)
    url = section.get("URL")
    if not isinstance(url, str) or not url:
        raise ConfigurationError(f"{path}.URL", url, "expected an amqp:// or amqps:// URL")
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        raise ConfigurationError(f"{path}.URL", url, "expected an amqp:// or amqps:// URL")
    exchange = section.get("Exchange")
    if not isinstance(exchange, str) or not exchange.strip():
        raise ConfigurationError(f"{path}.Exchange", exchange, "expected a non-empty exchange name")
    tls = {key: _optional_file(section.get(key), f"{path}.{key}") for key in _TLS_KEYS}
    if any(tls.values()) and parts.scheme != "amqps":
        key = next(key for key, value in tls.items() if value)
        raise ConfigurationError(f"{path}.{key}", tls[key], "TLS files need an amqps:// URL")
    if tls["KeyFile"] and not tls["CertFile"]:
        raise ConfigurationError(f"{path}.CertFile", None, "KeyFile needs CertFile")
    reject_unknown_keys(
        section, path, frozenset({"URL", "Exchange", "Unroutable", "AlternateExchange", *_TLS_KEYS})
    )
    unroutable = section.get("Unroutable", "dead-letter")
    if unroutable not in UNROUTABLE_CHOICES:
        choices = " or ".join(repr(choice) for choice in UNROUTABLE_CHOICES)
        raise ConfigurationError(f"{path}.Unroutable", unroutable, f"expected {choices}")
    alternate = section.get("AlternateExchange")
    if alternate is not None and (not isinstance(alternate, str) or not alternate.strip()):
        raise ConfigurationError(
            f"{path}.AlternateExchange", alternate, "expected an exchange name"
        )
    return RabbitConfig(
        url=url,
        exchange=exchange,
        ca_file=tls["CaFile"],
        cert_file=tls["CertFile"],
        key_file=tls["KeyFile"],
        unroutable=unroutable,
        alternate_exchange=alternate,
    )


_TLS_KEYS = ("CaFile", "CertFile", "KeyFile")
UNROUTABLE_CHOICES = ("dead-letter", "retry")


def _optional_file(raw: object, path: str) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not os.path.isfile(raw):
        raise ConfigurationError(path, raw, "expected the path of an existing file")
    return raw


def _parse_sns(raw: object) -> SnsConfig:
    path = f"{SECTION}.Broker.SNSConfig"
    section = config_object(raw, path, required=True)
    arn = section.get("TopicArn")
    if not isinstance(arn, str) or not _SNS_TOPIC_ARN.match(arn):
        raise ConfigurationError(f"{path}.TopicArn", arn, "expected an SNS topic ARN")
    region = section.get("Region")
    if region is not None and (not isinstance(region, str) or not region):
        raise ConfigurationError(f"{path}.Region", region, "expected an AWS region name")
    endpoint = section.get("EndpointUrl")
    if endpoint is not None and (
        not isinstance(endpoint, str) or urlsplit(endpoint).scheme not in ("http", "https")
    ):
        raise ConfigurationError(f"{path}.EndpointUrl", endpoint, "expected an http(s) URL")
    reject_unknown_keys(section, path, frozenset({"TopicArn", "Region", "EndpointUrl"}))
    return SnsConfig(topic_arn=arn, region=region, endpoint_url=endpoint)


def _known_tag_names(orthanc_config: Mapping[str, Any]) -> frozenset[str]:
    """Tag keywords of the standard dictionary plus the private names declared in `Dictionary`."""
    from pydicom.datadict import keyword_dict

    private = orthanc_config.get("Dictionary", {})
    declared = set()
    if isinstance(private, Mapping):
        for entry in private.values():
            if isinstance(entry, list) and len(entry) >= 2 and isinstance(entry[1], str):
                declared.add(entry[1])
    return frozenset(keyword_dict) | frozenset(declared) | {PRIVATE_CREATOR}


def _tag_names(raw: object, path: str, known: frozenset[str]) -> tuple[str, ...]:
    names = config_strings(raw, path)
    for index, name in enumerate(names):
        if name not in known and not _TAG_GROUP_ELEMENT.match(name):
            raise ConfigurationError(
                f"{path}[{index}]",
                name,
                "unknown tag name (not in the DICOM dictionary nor in Orthanc's Dictionary)",
            )
    return tuple(names)
