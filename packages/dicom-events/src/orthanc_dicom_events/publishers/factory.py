"""The publisher the configuration asks for."""

from __future__ import annotations

from ..config import BrokerType, DicomEventsConfig
from . import Publisher


def build_publisher(config: DicomEventsConfig) -> Publisher:
    if config.broker_type is BrokerType.RABBITMQ and config.rabbitmq is not None:
        from .rabbitmq import RabbitPublisher

        return RabbitPublisher(config.rabbitmq)
    if config.sns is not None:
        from .sns import SnsPublisher

        return SnsPublisher(config.sns)
    raise ValueError(f"no settings for broker {config.broker_type.value}")
