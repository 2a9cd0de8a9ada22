"""Servers for the end-to-end suites and the helpers to drive them.

Suites use the fixtures of `integration/conftest.py`; the objects they get follow the protocols of
`interfaces`, so where the servers come from (`providers`) can change without touching a suite.
"""

from .interfaces import Orthanc, Provider, RabbitMQ, SnsEmulator
from .orthanc import PLUGINS, OrthancClient
from .processes import HarnessError, free_port, wait_until
from .providers import select_provider
from .rabbitmq import EventCollector, ReceivedMessage, consume, declare_exchange
from .sns import SnsMessage, SqsReader

__all__ = [
    "PLUGINS",
    "EventCollector",
    "HarnessError",
    "Orthanc",
    "OrthancClient",
    "Provider",
    "RabbitMQ",
    "ReceivedMessage",
    "SnsEmulator",
    "SnsMessage",
    "SqsReader",
    "consume",
    "declare_exchange",
    "free_port",
    "select_provider",
    "wait_until",
]
