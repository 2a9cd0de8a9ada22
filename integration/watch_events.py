"""Print the events a RabbitMQ exchange routes, as they arrive, until Ctrl-C.

python -m integration.watch_events --url amqp://guest:guest@127.0.0.1:5672/%2F
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import pika
import pika.exceptions


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m integration.watch_events", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--url", required=True, help="AMQP URL of the broker")
    parser.add_argument("--exchange", default="dicom-events", help="default: dicom-events")
    parser.add_argument("--binding", default="#", help="binding key pattern (default: #, all)")
    parser.add_argument("--compact", action="store_true", help="one line per event")
    return parser


def format_event(routing_key: str, properties: Any, body: bytes, *, compact: bool) -> str:
    """A readable rendering of one message: routing key, message id, then the JSON body."""
    try:
        parsed = json.loads(body)
        text = json.dumps(parsed, sort_keys=True) if compact else json.dumps(parsed, indent=2)
    except ValueError:
        text = body.decode("utf-8", errors="replace")
    head = f"[{routing_key}] message_id={properties.message_id}"
    return f"{head} {text}" if compact else f"{head}\n{text}\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    channel.exchange_declare(args.exchange, exchange_type="topic", durable=True)
    queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
    channel.queue_bind(queue, args.exchange, routing_key=args.binding)

    def show(channel: Any, method: Any, properties: Any, body: bytes) -> None:
        print(format_event(method.routing_key, properties, body, compact=args.compact), flush=True)

    channel.basic_consume(queue, show, auto_ack=True)
    print(f"watching exchange {args.exchange!r} (binding {args.binding!r}); Ctrl-C to stop")
    try:
        channel.start_consuming()
    except KeyboardInterrupt:
        pass
    except pika.exceptions.AMQPConnectionError as error:
        print(f"connection lost: {error!r}", file=sys.stderr)
        return 1
    finally:
        if connection.is_open:
            connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
