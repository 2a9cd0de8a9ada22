#!/bin/sh
# LocalStack runs this once it is ready: the topic Orthanc publishes to, and one queue
# subscribed to it with raw delivery (the message body is the CloudEvent itself).
set -eu
topic_arn=$(awslocal sns create-topic --name dicom-events --query TopicArn --output text)
queue_url=$(awslocal sqs create-queue --queue-name dicom-events --query QueueUrl --output text)
queue_arn=$(awslocal sqs get-queue-attributes --queue-url "$queue_url" \
    --attribute-names QueueArn --query Attributes.QueueArn --output text)
awslocal sns subscribe --topic-arn "$topic_arn" --protocol sqs --notification-endpoint "$queue_arn" \
    --attributes RawMessageDelivery=true >/dev/null
echo "SNS topic $topic_arn delivers to SQS queue $queue_url"
