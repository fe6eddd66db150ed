"""SQS event source mappings and schedules, run as Lambda's poller and EventBridge Scheduler would.

A poller receives up to BatchSize messages, invokes the function with an SQS event, deletes the
records that succeeded and leaves the failed ones to come back after the visibility timeout; SQS
itself moves a message to its DLQ after maxReceiveCount receives. An invocation that raised, was
killed (InvocationKilled) or ran past its function's Timeout has no result: as on Lambda, nothing of
its batch is deleted and every record comes back with its receive count raised. (A local invocation
cannot be stopped at its deadline; its result is thrown away once it returns.)
"""

import sys
import threading
import time
import traceback
from datetime import UTC, datetime
from typing import Any

import boto3

from infra.local.aws import REGION
from infra.local.lambdas import InvocationKilled, LocalFunction

POLLERS_PER_QUEUE = 3  # Lambda starts with several concurrent pollers per event source


class QueuePoller:
    def __init__(
        self, function: LocalFunction, queue_url: str, queue_arn: str, batch_size: int, report_failures: bool
    ) -> None:
        self.function, self.queue_url, self.queue_arn = function, queue_url, queue_arn
        self.batch_size, self.report_failures = min(batch_size, 10), report_failures
        self._stop = threading.Event()
        self._sqs = boto3.client("sqs", region_name=REGION)
        self._threads = [
            threading.Thread(target=self._run, name=f"poll-{function.name}-{n}", daemon=True)
            for n in range(POLLERS_PER_QUEUE)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once(wait_seconds=1)
            except Exception:
                if not self._stop.is_set():
                    traceback.print_exc(file=sys.stderr)
                    self._stop.wait(1)

    def poll_once(self, wait_seconds: int = 0) -> int:
        """Receive one batch and invoke the function with it; returns how many messages it held."""
        messages = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        event = {"Records": [self._record(m) for m in messages]}
        started = time.monotonic()
        try:
            result = self.function.invoke(event) or {}
            if time.monotonic() - started > self.function.timeout:
                raise InvocationKilled(f"Task timed out after {self.function.timeout} seconds")
            failed = (
                {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
                if self.report_failures
                else set()
            )
        except (Exception, InvocationKilled):
            traceback.print_exc(file=sys.stderr)
            failed = {m["MessageId"] for m in messages}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        return len(messages)

    def _record(self, message: Any) -> dict[str, Any]:
        attributes = {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value["DataType"],
            }
            for name, value in message.get("MessageAttributes", {}).items()
        }
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": attributes,
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": REGION,
        }


class Schedule:
    """Fires a function every `every_seconds`, as a rate() schedule would."""

    def __init__(self, function: LocalFunction, every_seconds: float) -> None:
        self.function, self.every_seconds = function, every_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"schedule-{function.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.every_seconds):
            try:
                self.function.invoke({"source": "local.scheduler", "time": datetime.now(UTC).isoformat()})
            except Exception:
                traceback.print_exc(file=sys.stderr)
