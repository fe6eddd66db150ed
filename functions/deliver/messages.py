"""A batch's messages moved by the deliver function itself: handed back to the queue they came from as
fresh copies (a receive count of 0), or sent to that queue's dead-letter queue. Each is sent first and
deleted after, so a crash in between leaves a duplicate, which delivery tolerates, never a loss."""

import base64
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.exceptions import BotoCoreError, ClientError

from shared import aws

logger = logging.getLogger(__name__)

SQS_BATCH = 10  # entries per SendMessageBatch / DeleteMessageBatch


class DeliveryMessages:
    def __init__(self, sqs: Any | None = None) -> None:
        self._sqs = sqs
        self._urls: dict[str, str] = {}  # queue ARN -> URL, kept while warm
        self._dead_letter_arns: dict[str, str] = {}

    def hand_back(self, records: Sequence[SQSRecord]) -> set[str]:
        """Send a fresh copy of each message to its queue, then delete it; the ids of those sent."""
        return self._move(records, self._url)

    def dead_letter(self, records: Sequence[SQSRecord]) -> set[str]:
        """Send each message to its queue's dead-letter queue, then delete it; the ids of those sent."""
        return self._move(records, lambda arn: self._url(self._dead_letter_arn(arn)))

    def _move(self, records: Sequence[SQSRecord], target: Callable[[str], str]) -> set[str]:
        moved: set[str] = set()
        by_queue: dict[str, list[SQSRecord]] = {}
        for record in records:
            by_queue.setdefault(record.event_source_arn, []).append(record)
        for arn, queued in by_queue.items():
            for start in range(0, len(queued), SQS_BATCH):
                chunk = queued[start : start + SQS_BATCH]
                try:
                    sent = self._client().send_message_batch(
                        QueueUrl=target(arn),
                        Entries=[_entry(str(n), record) for n, record in enumerate(chunk)],
                    )
                except (BotoCoreError, ClientError, ValueError) as error:
                    logger.warning("messages not moved", extra={"error": type(error).__name__})
                    continue
                done = [chunk[int(entry["Id"])] for entry in sent.get("Successful", [])]
                moved |= {record.message_id for record in done}
                self._delete(arn, done)
        return moved

    def _delete(self, arn: str, records: list[SQSRecord]) -> None:
        """Delete the originals; one not deleted is still reported done, so the poller deletes it."""
        if not records:
            return
        try:
            self._client().delete_message_batch(
                QueueUrl=self._url(arn),
                Entries=[{"Id": str(n), "ReceiptHandle": r.receipt_handle} for n, r in enumerate(records)],
            )
        except (BotoCoreError, ClientError) as error:
            logger.warning("moved messages not deleted", extra={"error": type(error).__name__})

    def _url(self, arn: str) -> str:
        if arn not in self._urls:
            _, _, _, _, account, name = arn.split(":", 5)
            self._urls[arn] = self._client().get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)[
                "QueueUrl"
            ]
        return self._urls[arn]

    def _dead_letter_arn(self, arn: str) -> str:
        if arn not in self._dead_letter_arns:
            attributes = self._client().get_queue_attributes(
                QueueUrl=self._url(arn), AttributeNames=["RedrivePolicy"]
            )["Attributes"]
            if "RedrivePolicy" not in attributes:
                raise ValueError(f"{arn} has no dead-letter queue")
            self._dead_letter_arns[arn] = json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"]
        return self._dead_letter_arns[arn]

    def _client(self) -> Any:
        if self._sqs is None:
            self._sqs = aws.client("sqs")
        return self._sqs


def _entry(entry_id: str, record: SQSRecord) -> dict[str, Any]:
    """The message as it was sent: its body and message attributes (in SendMessage's shape)."""
    attributes: dict[str, Any] = {}
    for name, value in (record.raw_event.get("messageAttributes") or {}).items():
        if value.get("stringValue") is not None:
            attributes[name] = {"DataType": value["dataType"], "StringValue": value["stringValue"]}
        elif value.get("binaryValue") is not None:
            binary = value["binaryValue"]  # base64 in Lambda's event
            raw = binary if isinstance(binary, bytes) else base64.b64decode(binary)
            attributes[name] = {"DataType": value["dataType"], "BinaryValue": raw}
    return {
        "Id": entry_id,
        "MessageBody": record.body,
        **({"MessageAttributes": attributes} if attributes else {}),
    }
