"""The local runtime feeds SQS to functions as Lambda's event source mapping does: batches, partial
batch failures, failed records back after the visibility timeout, and redrive to the DLQ; and, as
on a Lambda timeout or a killed runtime, no result at all: every record of the batch comes back."""

import json
import time

import boto3

from infra.local.lambdas import InvocationKilled, LocalFunction
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


def back_with_receive_counts(queue: str, expected: int) -> dict[str, str]:
    """Body -> ApproximateReceiveCount of the queue's messages, once `expected` of them are visible again."""
    sqs, seen = boto3.client("sqs"), {}

    def all_back() -> bool:
        for message in sqs.receive_message(
            QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=30, AttributeNames=["All"]
        ).get("Messages", []):
            seen[message["Body"]] = message["Attributes"]["ApproximateReceiveCount"]
        return len(seen) == expected

    poll(all_back, deadline=10, every=0.1)
    return seen


def test_an_invocation_killed_mid_batch_has_no_result_and_every_record_comes_back(runtime):
    sqs = boto3.client("sqs")
    queue, arn, _ = make_queue_pair(visibility=1, max_receives=5)
    done = []

    class KilledMidBatch(LocalFunction):
        def invoke(self, event, context=None):
            done.append(event["Records"][0]["body"])  # one record handled, then the runtime dies
            raise InvocationKilled("killed")

    poller = QueuePoller(
        KilledMidBatch("x", "functions.deliver.handler.lambda_handler", 128, 3), queue, arn, 10, True
    )
    for n in range(3):
        sqs.send_message(QueueUrl=queue, MessageBody=f"m{n}")

    assert poller.poll_once(wait_seconds=1) == 3

    assert len(done) == 1
    assert back_with_receive_counts(queue, 3) == {"m0": "2", "m1": "2", "m2": "2"}


def test_an_invocation_that_runs_past_its_timeout_is_treated_as_killed(runtime):
    sqs = boto3.client("sqs")
    queue, arn, _ = make_queue_pair(visibility=1, max_receives=5)

    class Overrunning(LocalFunction):
        def invoke(self, event, context=None):
            deadline = time.monotonic() + self.timeout
            poll(lambda: time.monotonic() > deadline, deadline=self.timeout + 5, every=0.05)
            return {"batchItemFailures": []}  # "all done", which Lambda never hears once it timed out

    poller = QueuePoller(
        Overrunning("x", "functions.deliver.handler.lambda_handler", 128, 1), queue, arn, 10, True
    )
    sqs.send_message(QueueUrl=queue, MessageBody="a")
    sqs.send_message(QueueUrl=queue, MessageBody="b")

    assert poller.poll_once(wait_seconds=1) == 2

    assert back_with_receive_counts(queue, 2) == {"a": "2", "b": "2"}
