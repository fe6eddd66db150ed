"""The local runtime feeds SQS to functions as Lambda's event source mapping does: batches, partial
batch failures, failed records back after the visibility timeout, and redrive to the DLQ."""

import json

import boto3

from infra.local.lambdas import LocalFunction
from infra.local.triggers import QueuePoller
from tests.support import make_queue_pair, poll


def test_failed_records_come_back_and_end_in_the_dlq_while_good_ones_are_deleted(runtime):
    sqs = boto3.client("sqs")
    queue, arn, dlq = make_queue_pair(visibility=1, max_receives=2)
    deliver = LocalFunction("DeliverFunction", "functions.deliver.handler.lambda_handler", 512, 10)
    poller = QueuePoller(deliver, queue, arn, batch_size=10, report_failures=True)
    # An unknown order is a poison message; a delivered-elsewhere (non-PAID) order is a success.
    poison = json.dumps({"order_id": "ord_" + "0" * 20})
    sqs.send_message(QueueUrl=queue, MessageBody=poison)

    receives = []

    def drained() -> bool:
        receives.append(poller.poll_once(wait_seconds=1))
        return bool(sqs.receive_message(QueueUrl=dlq, VisibilityTimeout=0).get("Messages"))

    poll(drained, deadline=15, every=0.1)
    assert sum(receives) == 2  # received maxReceiveCount times, then moved by SQS
    dead = sqs.receive_message(QueueUrl=dlq)["Messages"]
    assert [m["Body"] for m in dead] == [poison]


def test_a_function_that_raises_fails_the_whole_batch(runtime):
    sqs = boto3.client("sqs")
    queue, arn, _ = make_queue_pair(visibility=30, max_receives=5)

    class Crashing(LocalFunction):
        def invoke(self, event):
            raise RuntimeError("injected crash")

    poller = QueuePoller(
        Crashing("x", "functions.deliver.handler.lambda_handler", 128, 3), queue, arn, 10, True
    )
    sqs.send_message(QueueUrl=queue, MessageBody="{}")
    assert poller.poll_once(wait_seconds=1) == 1
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )
    assert attributes["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "1"  # not deleted
