"""The fake `orthanc` module of the unit tests agrees with the real one in Orthanc."""

from __future__ import annotations

from pathlib import Path

import pytest

import orthanc_fake
from integration.conftest import OrthancFactory
from orthanc_fake import drift

pytestmark = pytest.mark.e2e

PROBE = Path(orthanc_fake.__file__).with_name("probe.py")


def test_fake_names_and_enum_values_match_the_real_module(
    orthanc_factory: OrthancFactory,
) -> None:
    server = orthanc_factory(script=PROBE, ready_routes=["/orthanc-fake/probe"])
    real = server.client.get_json("/orthanc-fake/probe")
    assert real["functions"], "the probe described no function: it cannot detect drift"
    assert drift.compare(real) == []


def test_the_comparison_detects_a_changed_enum_value(orthanc_factory: OrthancFactory) -> None:
    server = orthanc_factory(script=PROBE, ready_routes=["/orthanc-fake/probe"])
    real = server.client.get_json("/orthanc-fake/probe")
    real["classes"]["ChangeType"]["constants"]["STABLE_SERIES"] = 99
    assert any("STABLE_SERIES" in problem for problem in drift.compare(real))
