"""A dead-letter queue as an operator sees it: read every message without losing one, move a message
back to its source queue, purge.

SQS has no "peek": reading a message hides it for a visibility timeout and counts a receive. So the
CLI receives everything with a hold long enough for its own work, then makes what it did not
delete visible again at once.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.queues import NotADeliveryMessage, order_id_of

BATCH = 10  # SQS's maximum per receive / visibility batch
WAIT_SECONDS = 1  # long poll: a short poll samples only some SQS servers and may miss messages
MAX_HOLD_SECONDS = 12 * 3600  # SQS's maximum visibility timeout


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    receipt_handle: str = field(repr=False)
    body: str
    sent_at: datetime
    first_received_at: datetime | None
    receive_count: int
    message_attributes: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def order_id(self) -> str | None:
        """The order a delivery message is about; None for anything else."""
        try:
            return order_id_of(self.body)
        except NotADeliveryMessage:
            return None


def _time(attributes: dict[str, str], name: str) -> datetime | None:
    value = attributes.get(name)
    return datetime.fromtimestamp(int(value) / 1000, UTC) if value else None


def _letter(message: dict[str, Any]) -> DeadLetter:
    attributes = message.get("Attributes", {})
    return DeadLetter(
        message_id=message["MessageId"],
        receipt_handle=message["ReceiptHandle"],
        body=message["Body"],
        sent_at=_time(attributes, "SentTimestamp") or datetime.now(UTC),
        first_received_at=_time(attributes, "ApproximateFirstReceiveTimestamp"),
        receive_count=int(attributes.get("ApproximateReceiveCount", 0)),
        message_attributes=message.get("MessageAttributes", {}),
    )


class DeadLetterQueue:
    def __init__(self, sqs: Any, url: str, wait_seconds: int = WAIT_SECONDS) -> None:
        self.sqs, self.url, self.wait_seconds = sqs, url, wait_seconds

    @property
    def name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    def count(self) -> int:
        """Messages in the queue: visible, in flight and delayed (SQS's approximate figures)."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())

    def hold_for(self, seconds_of_work: float) -> int:
        """A visibility timeout that outlasts reading everything and then `seconds_of_work`."""
        return int(min(MAX_HOLD_SECONDS, 60 + 2 * seconds_of_work))

    def take_all(self, hold_seconds: int) -> list[DeadLetter]:
        """Receive every message, each hidden for `hold_seconds`; oldest first.

        Until `release` (or `replay`), nobody else sees them: call `release` in a `finally`."""
        letters: dict[str, DeadLetter] = {}
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=BATCH,
                VisibilityTimeout=hold_seconds,
                WaitTimeSeconds=self.wait_seconds,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                break
            for message in messages:
                letters[message["MessageId"]] = _letter(message)  # a second receive: keep the newest handle
        return sorted(letters.values(), key=lambda letter: (letter.sent_at, letter.message_id))

    def release(self, letters: Iterable[DeadLetter]) -> None:
        """Make held messages visible again, now (one whose hold already ran out is visible anyway)."""
        pending = list(letters)
        for start in range(0, len(pending), BATCH):
            chunk = pending[start : start + BATCH]
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": letter.receipt_handle, "VisibilityTimeout": 0}
                    for n, letter in enumerate(chunk)
                ],
            )

    def replay(self, letter: DeadLetter, source_url: str) -> None:
        """Send the message to its source queue again, then delete it here.

        Send before delete: a crash in between leaves the message in both queues, and replaying it
        again later is harmless because delivery is idempotent (an order that is no longer PAID is
        skipped, a slot already bound to the order is not bound again). Delete-then-send could lose it.
        """
        extra = {"MessageAttributes": letter.message_attributes} if letter.message_attributes else {}
        self.sqs.send_message(QueueUrl=source_url, MessageBody=letter.body, **extra)
        self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=letter.receipt_handle)

    def purge(self) -> None:
        self.sqs.purge_queue(QueueUrl=self.url)


def body_for_display(body: str) -> str:
    """The body as one line: JSON re-serialised compactly, anything else as it came."""
    try:
        return json.dumps(json.loads(body), ensure_ascii=False, sort_keys=True)
    except ValueError:
        return body
