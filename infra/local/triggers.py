"""SQS event source mappings and schedules, run as Lambda's poller and EventBridge Scheduler would.

A poller receives up to BatchSize messages, invokes the function with an SQS event, deletes the
records that succeeded and leaves the failed ones to come back after the visibility timeout; SQS
itself moves a message to its DLQ after maxReceiveCount receives. An invocation that raised, was
killed (InvocationKilled) or ran past its function's Timeout has no result: as on Lambda, nothing of
its batch is deleted and every record comes back with its receive count raised. (A local invocation
cannot be stopped at its deadline; its result is thrown away once it returns.)
"""

import base64
import json
import sys
import threading
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3

from infra.local.aws import REGION, stream_writes
from infra.local.lambdas import InvocationKilled, LocalFunction

POLLERS_PER_QUEUE = 3  # Lambda starts with several concurrent pollers per event source
STREAM_IDLE_SECONDS = 0.02  # between reads of an idle stream, unless moto's writes wake the poller
STREAM_WAKE_SECONDS = 1.0  # with them: a read at least this often all the same
STREAM_RETRY_SECONDS = (0.1, 5.0)  # a failed batch is retried after this, doubling up to the cap
FILTER_OPERATORS = {"exists", "prefix", "anything-but"}


class QueuePoller:
    def __init__(
        self,
        function: LocalFunction,
        queue_url: str,
        queue_arn: str,
        batch_size: int,
        report_failures: bool,
        hurry: Callable[[str], bool] | None = None,
    ) -> None:
        self.function, self.queue_url, self.queue_arn = function, queue_url, queue_arn
        self.batch_size, self.report_failures = min(batch_size, 10), report_failures
        # Failed records whose body it picks come back at once, not after the visibility timeout
        # (local mode's failure switch, infra/local/faults.py).
        self.hurry = hurry
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
        if self.hurry is not None:
            for message in messages:
                if message["MessageId"] in failed and self.hurry(message["Body"]):
                    self._sqs.change_message_visibility(
                        QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                    )
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


class StreamPoller:
    """A DynamoDB stream event source mapping: reads the table's stream (from LATEST, as the template's
    StartingPosition says) and invokes the function with Lambda's DynamoDB stream event.

    Batches hold up to BatchSize records, in stream order. If the function raises, or reports a
    failed record (`batchItemFailures`, with ReportBatchItemFailures), the batch is retried from the
    first failed record, after a backoff, until it succeeds or MaximumRetryAttempts (if set) runs out;
    records after it wait, as a shard's records do on Lambda, and records older than
    MaximumRecordAgeInSeconds (if set) are dropped. FilterCriteria drop records that match
    none of their patterns (`exists`, `prefix`, `anything-but` and plain values).
    """

    def __init__(
        self,
        function: LocalFunction,
        stream_arn: str,
        batch_size: int,
        report_failures: bool,
        starting_position: str = "LATEST",
        filters: tuple[str, ...] = (),
        maximum_retries: int = -1,
        maximum_age: int = -1,
    ) -> None:
        self.function, self.stream_arn = function, stream_arn
        self.batch_size, self.report_failures = batch_size, report_failures
        self.starting_position, self.maximum_retries = starting_position, maximum_retries
        self.maximum_age = maximum_age
        self.patterns = [json.loads(pattern) for pattern in filters]
        for pattern in self.patterns:
            _check_pattern(pattern)
        self._streams = boto3.client("dynamodbstreams", region_name=REGION)
        self._iterators: dict[str, str] = {}  # shard id -> the next shard iterator
        self._pending: list[dict[str, Any]] = []  # read, not yet handled
        self._retries = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"stream-{function.name}", daemon=True)

    def open(self) -> None:
        """Take the shards' iterators: changes from now on (LATEST) are delivered."""
        for shard in self._streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]:
            self._iterators[shard["ShardId"]] = self._streams.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard["ShardId"], ShardIteratorType=self.starting_position
            )["ShardIterator"]

    def start(self) -> None:
        if not self._iterators:
            self.open()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        stream_writes.wake()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            seen = stream_writes.count
            try:
                handled = self.poll_once()
            except Exception:
                if self._stop.is_set():
                    return
                traceback.print_exc(file=sys.stderr)
                self._stop.wait(1)
                continue
            if handled < 0:
                self._stop.wait(
                    min(STREAM_RETRY_SECONDS[0] * 2 ** (self._retries - 1), STREAM_RETRY_SECONDS[1])
                )
            elif handled == 0 and stream_writes.watched:
                stream_writes.wait(seen, STREAM_WAKE_SECONDS)
            elif handled == 0:
                self._stop.wait(STREAM_IDLE_SECONDS)

    def poll_once(self) -> int:
        """Handle one batch: how many records it held, 0 if none were waiting, -1 if it is to be retried."""
        if not self._iterators:
            self.open()
        if not self._pending:
            self._pending = self._read()
        self._drop_old()
        if not self._pending:
            return 0
        batch = self._pending[: self.batch_size]
        records = [record for record in batch if self._wanted(record)]
        failed = self._invoke(records) if records else None
        if failed is None:
            self._retries = 0
            del self._pending[: len(batch)]
            return len(batch)
        self._retries += 1
        if 0 <= self.maximum_retries < self._retries:
            print(
                f"miaofa: {self.function.name} failed on {len(batch)} stream records"
                f" {self._retries} times; they are discarded",
                file=sys.stderr,
            )
            self._retries = 0
            del self._pending[: len(batch)]
            return len(batch)
        del self._pending[: batch.index(failed)]  # retried from the first failed record
        return -1

    def _drop_old(self) -> None:
        if self.maximum_age < 0:
            return
        oldest = time.time() - self.maximum_age
        young = [
            r for r in self._pending if r["dynamodb"].get("ApproximateCreationDateTime", oldest) >= oldest
        ]
        if len(young) < len(self._pending):
            print(
                f"miaofa: {len(self._pending) - len(young)} stream records older than {self.maximum_age} s"
                f" dropped before {self.function.name}",
                file=sys.stderr,
            )
            self._pending, self._retries = young, 0

    def _invoke(self, records: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Invoke the function; the first record to retry from, or None if the batch succeeded."""
        try:
            result = self.function.invoke({"Records": records}) or {}
        except (Exception, InvocationKilled):
            traceback.print_exc(file=sys.stderr)
            return records[0]
        reported = (result.get("batchItemFailures") or []) if self.report_failures else []
        if not reported:
            return None
        by_sequence = {record["dynamodb"]["SequenceNumber"]: record for record in records}
        identifiers = [failure.get("itemIdentifier") for failure in reported]
        if any(identifier not in by_sequence for identifier in identifiers):
            return records[0]  # an unknown or empty identifier fails the whole batch, as on Lambda
        return min((by_sequence[i] for i in identifiers), key=records.index)

    def _read(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        for shard, iterator in list(self._iterators.items()):
            answer = self._streams.get_records(ShardIterator=iterator, Limit=1000)
            if answer.get("NextShardIterator"):
                self._iterators[shard] = answer["NextShardIterator"]
            else:  # a closed shard
                del self._iterators[shard]
            records.extend(self._record(record) for record in answer["Records"])
        return records

    def _record(self, record: dict[str, Any]) -> dict[str, Any]:
        """A record as Lambda hands it over: JSON (dates as epoch seconds, binaries base64), with the ARN."""
        change = dict(record["dynamodb"])
        created = change.get("ApproximateCreationDateTime")
        if created is not None:
            change["ApproximateCreationDateTime"] = int(created.timestamp())
        for image in ("Keys", "NewImage", "OldImage"):
            if image in change:
                change[image] = {name: _as_json(value) for name, value in change[image].items()}
        return {**record, "dynamodb": change, "eventSourceARN": self.stream_arn}

    def _wanted(self, record: dict[str, Any]) -> bool:
        return not self.patterns or any(_matches(pattern, record) for pattern in self.patterns)


def _as_json(value: dict[str, Any]) -> dict[str, Any]:
    """An attribute value from boto3 (bytes for binaries) as DynamoDB's JSON (base64 for binaries)."""
    kind, inner = next(iter(value.items()))
    if kind == "B":
        return {kind: base64.b64encode(inner).decode()}
    if kind == "BS":
        return {kind: [base64.b64encode(b).decode() for b in inner]}
    if kind == "M":
        return {kind: {name: _as_json(v) for name, v in inner.items()}}
    if kind == "L":
        return {kind: [_as_json(v) for v in inner]}
    return {kind: inner}


_MISSING = object()


def _check_pattern(pattern: Any) -> None:
    if isinstance(pattern, dict):
        for value in pattern.values():
            _check_pattern(value)
    elif isinstance(pattern, list):
        for rule in pattern:
            if isinstance(rule, dict) and not set(rule) <= FILTER_OPERATORS:
                raise ValueError(
                    f"the local runtime's event filters know {sorted(FILTER_OPERATORS)}, not {rule}"
                )
    else:
        raise ValueError(f"an event filter's leaves are lists, not {pattern!r}")


def _matches(pattern: Any, value: Any) -> bool:
    """Does a record (or part of one) match a Lambda event filter pattern?"""
    if isinstance(pattern, dict):
        return all(
            _matches(inner, value.get(key, _MISSING) if isinstance(value, dict) else _MISSING)
            for key, inner in pattern.items()
        )
    return any(_rule(rule, value) for rule in pattern)


def _rule(rule: Any, value: Any) -> bool:
    if not isinstance(rule, dict):
        return value is not _MISSING and (value == rule or (isinstance(value, list) and rule in value))
    if "exists" in rule:
        return (value is not _MISSING) == bool(rule["exists"])
    if value is _MISSING:
        return False
    if "prefix" in rule:
        return isinstance(value, str) and value.startswith(rule["prefix"])
    excluded = rule["anything-but"]
    return value not in (excluded if isinstance(excluded, list) else [excluded])


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
