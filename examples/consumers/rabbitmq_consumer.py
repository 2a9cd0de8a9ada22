"""Print the DICOM events orthanc-dicom-events publishes to a RabbitMQ topic exchange.

    pip install pika
    python rabbitmq_consumer.py --url amqp://orthanc:orthanc@127.0.0.1:5672/%2F \\
        --binding dicom.series.stable --binding 'dicom.*.deleted'

Routing keys are event types (`dicom.series.stable`, ...), so a binding pattern selects types.
Without --queue the queue is private to this process and disappears with it; with --queue NAME
it is durable and keeps the events that arrive while the consumer is away. Each event is
acknowledged once printed: the broker delivers again what was not acknowledged (at least once,
so deduplicate on the event's `id`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import pika


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url",
        default=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"),
        help="broker URL (default: $AMQP_URL or the local guest account)",
    )
    parser.add_argument("--exchange", default="dicom-events", help="the plugin's Exchange")
    parser.add_argument(
        "--binding",
        action="append",
        help="routing-key pattern to bind, repeatable (default: '#', every event)",
    )
    parser.add_argument("--queue", default="", help="durable queue name (default: a private one)")
    parser.add_argument(
        "--max-messages", type=int, default=0, help="exit after this many events (0: never)"
    )
    parser.add_argument("--json", action="store_true", help="print each event as one JSON line")
    return parser.parse_args(argv)


def summary(event: dict[str, Any]) -> str:
    """One line a person can read: type, resource, tags, id."""
    data = event.get("data", {})
    tags = json.dumps(data.get("tags", {}), ensure_ascii=False)
    resource = f"{data.get('resourceType')} {event.get('subject')}"
    return f"{event.get('type')} {resource} {tags} id={event.get('id')}"


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    connection = pika.BlockingConnection(pika.URLParameters(arguments.url))
    channel = connection.channel()
    # Declared as the plugin declares it, so either may start first.
    channel.exchange_declare(arguments.exchange, exchange_type="topic", durable=True)
    if arguments.queue:
        queue = channel.queue_declare(arguments.queue, durable=True).method.queue
    else:
        queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
    for pattern in arguments.binding or ["#"]:
        channel.queue_bind(queue, arguments.exchange, routing_key=pattern)
    print(
        f"listening on queue {queue!r}, exchange {arguments.exchange!r}, "
        f"bindings {arguments.binding or ['#']}",
        file=sys.stderr,
        flush=True,
    )
    received = 0
    try:
        for method, _properties, body in channel.consume(queue):
            event = json.loads(body)
            print(json.dumps(event) if arguments.json else summary(event), flush=True)
            channel.basic_ack(method.delivery_tag)
            received += 1
            if arguments.max_messages and received >= arguments.max_messages:
                break
    except KeyboardInterrupt:
        pass
    finally:
        if connection.is_open:
            connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
