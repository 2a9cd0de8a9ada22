from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from dicom_events_testing import base_config

from orthanc_dicom_events.config import ConfigurationError, parse


def _with(section_changes: dict[str, Any]) -> dict[str, Any]:
    config = base_config(StoredInstance=True)
    config["DicomEvents"].update(section_changes)
    return config


def test_defaults() -> None:
    config = parse({**base_config(StoredInstance=True), "IndexDirectory": "/var/idx"})
    assert config.source == "orthanc://UnitOrthanc"
    assert config.replay_from_start is False
    assert config.shutdown_flush_seconds == 5.0
    assert config.state_directory == "/var/idx"


def test_source_name_is_escaped() -> None:
    config = base_config()
    config["Name"] = "My Orthanc"
    assert parse(config).source == "orthanc://My%20Orthanc"


@pytest.mark.parametrize(
    ("changes", "path", "value"),
    [
        ({"Source": ""}, "DicomEvents.Source", ""),
        ({"ReplayFromStart": "yes"}, "DicomEvents.ReplayFromStart", "yes"),
        ({"ShutdownFlushSeconds": -1}, "DicomEvents.ShutdownFlushSeconds", -1),
        ({"ShutdownFlushSeconds": True}, "DicomEvents.ShutdownFlushSeconds", True),
        ({"BatchWindowMs": -5}, "DicomEvents.BatchWindowMs", -5),
        ({"BatchWindowMs": 2.5}, "DicomEvents.BatchWindowMs", 2.5),
        ({"BatchWindowMs": 5000}, "DicomEvents.BatchWindowMs", 5000),
        ({"BatchWindowMaxMs": 20}, "DicomEvents.BatchWindowMaxMs", 20),
        ({"BatchWindowMaxMs": 6000}, "DicomEvents.BatchWindowMaxMs", 6000),
        ({"BatchWindowMaxMs": "400"}, "DicomEvents.BatchWindowMaxMs", "400"),
        ({"StateDirectory": 3}, "DicomEvents.StateDirectory", 3),
        ({"Unexpected": 1}, "DicomEvents.Unexpected", 1),
    ],
)
def test_bad_section_values(changes: dict[str, Any], path: str, value: object) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse(_with(changes))
    assert raised.value.path == path
    assert raised.value.value == value
    assert path in str(raised.value)


def test_tls_files_need_amqps_and_must_exist(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    config = base_config()
    rabbit = config["DicomEvents"]["Broker"]["RabbitConfig"]
    rabbit["CaFile"] = str(ca)
    with pytest.raises(ConfigurationError, match=r"RabbitConfig\.CaFile.*amqps"):
        parse(config)
    rabbit["URL"] = "amqps://u:p@broker.example:5671/"
    assert parse(config).rabbitmq is not None
    missing = copy.deepcopy(config)
    missing["DicomEvents"]["Broker"]["RabbitConfig"]["CertFile"] = str(tmp_path / "nope.pem")
    with pytest.raises(ConfigurationError, match=r"RabbitConfig\.CertFile"):
        parse(missing)
    key_only = copy.deepcopy(config)
    key_only["DicomEvents"]["Broker"]["RabbitConfig"]["KeyFile"] = str(ca)
    with pytest.raises(ConfigurationError, match="KeyFile needs CertFile"):
        parse(key_only)


def test_sns_region_defaults_to_the_arn_region() -> None:
    config = base_config()
    config["DicomEvents"]["Broker"] = {
        "Type": "sqs-sns",
        "SNSConfig": {"TopicArn": "arn:aws:sns:eu-west-3:000000000000:events.fifo"},
    }
    sns = parse(config).sns
    assert sns is not None and sns.effective_region == "eu-west-3" and sns.fifo


def test_unknown_broker_keys_are_refused() -> None:
    config = base_config()
    config["DicomEvents"]["Broker"]["RabbitConfig"]["Url"] = "amqp://x"
    with pytest.raises(ConfigurationError, match=r"RabbitConfig\.Url"):
        parse(config)


def test_the_batch_window_may_grow_eight_times_unless_told_otherwise() -> None:
    assert (parse(_with({})).batch_window_ms, parse(_with({})).batch_window_max_ms) == (50, 400)
    assert parse(_with({"BatchWindowMs": 0})).batch_window_max_ms == 0
    assert parse(_with({"BatchWindowMs": 1000})).batch_window_max_ms == 5000
    chosen = parse(_with({"BatchWindowMs": 20, "BatchWindowMaxMs": 20}))
    assert (chosen.batch_window_ms, chosen.batch_window_max_ms) == (20, 20)
