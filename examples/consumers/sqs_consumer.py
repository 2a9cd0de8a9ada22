"""Print the DICOM events orthanc-dicom-events publishes to an SNS topic, read from an SQS queue.

    pip install boto3
    # a queue of its own, subscribed to the topic (raw delivery), stable series only:
    python sqs_consumer.py --topic-arn arn:aws:sns:us-east-1:000000000000:dicom-events \\
        --queue-name my-consumer --type dicom.series.stable --endpoint-url http://127.0.0.1:4566
    # or a queue that is already subscribed:
    python sqs_consumer.py --queue-url http://127.0.0.1:4566/queue/us-east-1/000000000000/dicom-events

Credentials and region come from boto3's usual chain (AWS_* variables, profiles, roles); against
an emulator, any key works. Every event carries the SNS message attribute `type`, which --type
turns into the subscription's filter policy. A message is deleted once printed; SQS delivers
again what was not deleted (at least once, so deduplicate on the event's `id`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import boto3


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--queue-url", help="read this queue (already subscribed)")
    source.add_argument("--queue-name", help="create this queue and subscribe it to --topic-arn")
    parser.add_argument("--topic-arn", help="the plugin's SNSConfig.TopicArn")
    parser.add_argument(
        "--type", action="append", dest="types", help="only these event types (repeatable)"
    )
    parser.add_argument("--endpoint-url", default=os.environ.get("AWS_ENDPOINT_URL"))
    parser.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    parser.add_argument(
        "--max-messages", type=int, default=0, help="exit after this many events (0: never)"
    )
    parser.add_argument("--json", action="store_true", help="print each event as one JSON line")
    arguments = parser.parse_args(argv)
    if arguments.queue_name and not arguments.topic_arn:
        parser.error("--queue-name needs --topic-arn")
    return arguments


def subscribe_new_queue(
    sns: Any, sqs: Any, topic_arn: str, queue_name: str, types: list[str] | None
) -> str:
    """Create `queue_name`, let the topic send to it and subscribe it; returns its URL."""
    attributes = {"FifoQueue": "true"} if topic_arn.endswith(".fifo") else {}
    name = queue_name + (".fifo" if attributes and not queue_name.endswith(".fifo") else "")
    queue_url: str = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    # Real SNS delivers only to queues whose policy lets the topic send.
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
    subscription = {"RawMessageDelivery": "true"}
    if types:
        subscription["FilterPolicy"] = json.dumps({"type": types})
    sns.subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes=subscription,
        ReturnSubscriptionArn=True,
    )
    return queue_url


def event_of(body: str) -> dict[str, Any]:
    """The CloudEvent in an SQS body: the body itself (raw delivery) or SNS's envelope's Message."""
    parsed: dict[str, Any] = json.loads(body)
    if parsed.get("Type") == "Notification" and "Message" in parsed:
        message: dict[str, Any] = json.loads(parsed["Message"])
        return message
    return parsed


def summary(event: dict[str, Any]) -> str:
    """One line a person can read: type, resource, tags, id."""
    data = event.get("data", {})
    tags = json.dumps(data.get("tags", {}), ensure_ascii=False)
    resource = f"{data.get('resourceType')} {event.get('subject')}"
    return f"{event.get('type')} {resource} {tags} id={event.get('id')}"


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    session = boto3.session.Session(region_name=arguments.region)
    sqs = session.client("sqs", endpoint_url=arguments.endpoint_url)
    if arguments.queue_name:
        sns = session.client("sns", endpoint_url=arguments.endpoint_url)
        queue_url = subscribe_new_queue(
            sns, sqs, arguments.topic_arn, arguments.queue_name, arguments.types
        )
    else:
        queue_url = arguments.queue_url
    print(f"listening on {queue_url}", file=sys.stderr, flush=True)
    received = 0
    try:
        while not arguments.max_messages or received < arguments.max_messages:
            answer = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=10
            )
            for message in answer.get("Messages", []):
                event = event_of(message["Body"])
                print(json.dumps(event) if arguments.json else summary(event), flush=True)
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                received += 1
                if arguments.max_messages and received >= arguments.max_messages:
                    break
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
