"""A delivery batch: sized so it does not time out, and run so that one that does (or a Lambda killed
mid-batch) costs no other message a receive toward the dead-letter queue.

SQS counts a receive for every message of a batch; when the invocation times out or dies, all of
them come back with their count raised, and after the queue's maxReceiveCount SQS dead-letters them.
Left at that, an order next to a poison message, or behind slow ones, is dead-lettered for nothing it
did. So (docs/operations.md "Delivery timeouts"):
- the order's own retries decide: each is counted on the order as it starts (before the first bind),
  and the one past `retries` is not started but dead-lettered here; so is a message no retry can
  deliver (not a delivery message, no such order) on its second receive;
- a message received `hand_back_after` times is handed back (a fresh copy sent, the old one deleted)
  before anything of the batch runs, so receives that others ran up never reach maxReceiveCount;
- the records received fewest times run first: one that killed its last invocation runs last;
- no order starts with less than `order_seconds` of the invocation left; the rest are handed back.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, Protocol

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from functions.deliver.delivery import RetriesExhausted, Retry, UnknownOrder
from shared.products import MAX_PER_ORDER
from shared.queues import NotADeliveryMessage, order_id_of
from shared.settings import Settings

logger = logging.getLogger(__name__)

# Sizing (docs/operations.md "Delivery timeouts"): one order makes one conditional write per code it
# binds, sequentially, and at most this many other requests: the order read, the retry count, the
# codes read, the merchant's data key (read and KMS), DELIVERED, the buyer's mail, order.delivered,
# the product, the stock level (two), stock.low.
REQUESTS_BESIDES_BINDS: Final = 12
# What one DynamoDB, SQS or KMS request is planned to take from the function: in-region latencies are
# single-digit milliseconds; this covers their tail and the SDK's own time on a 512 MB arm64 function.
REQUEST_SECONDS: Final = 0.025


def order_seconds(quantity: int = MAX_PER_ORDER) -> float:
    """The planned worst case of one order of `quantity` codes (by default the largest any product allows)."""
    return (quantity + REQUESTS_BESIDES_BINDS) * REQUEST_SECONDS


@dataclass(frozen=True)
class Limits:
    retries: int  # retries an order gets; the next is dead-lettered instead
    hand_back_after: int  # receives after which a message is replaced by a fresh copy
    order_seconds: float  # the least time left in which an order (after the first) is started

    @classmethod
    def of(cls, settings: Settings) -> "Limits":
        return cls(
            settings.delivery_retries, settings.delivery_hand_back_after, settings.delivery_order_seconds
        )


class Messages(Protocol):
    """Where a record goes when it is not run to the end: each returns the ids of those it moved."""

    def hand_back(self, records: Sequence[SQSRecord]) -> set[str]: ...

    def dead_letter(self, records: Sequence[SQSRecord]) -> set[str]: ...


class Outcome(Enum):
    RAN = "ran"
    HANDED_BACK = "handed back"
    DEAD_LETTERED = "dead-lettered"


class OutOfTime(Exception):
    """No time left to start this record, and it could not be handed back: it is reported failed."""


# What no retry can deliver: dead-lettered on the message's second receive rather than run again.
UNDELIVERABLE = (NotADeliveryMessage, UnknownOrder, RetriesExhausted)


def receives(record: SQSRecord) -> int:
    return int(record.attributes.approximate_receive_count or 1)


class DeliveryBatch:
    """One invocation's records. `deliver(order_id, retry)` delivers one order or raises."""

    def __init__(
        self,
        limits: Limits,
        messages: Messages,
        remaining_ms: Callable[[], int],
        deliver: Callable[[str, Retry | None], Any],
    ) -> None:
        self.limits, self.messages = limits, messages
        self._remaining_ms, self._deliver = remaining_ms, deliver
        self._started = False

    def triage(self, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The records to run, fewest receives first, after handing back those received too often."""
        worn = [SQSRecord(r) for r in records if receives(SQSRecord(r)) >= self.limits.hand_back_after]
        moved = self.messages.hand_back(worn) if worn else set()
        if moved:
            logger.info("handed back before the batch ran", extra={"messages": sorted(moved)})
        kept = [r for r in records if r["messageId"] not in moved]
        return sorted(kept, key=lambda r: receives(SQSRecord(r)))

    def run(self, record: SQSRecord) -> Outcome:
        """Deliver one record's order, unless there is no time left to start it (handed back) or no
        retry can deliver it (dead-lettered). Raises to have the record retried."""
        if not self._may_start():
            if self.messages.hand_back([record]):
                return Outcome.HANDED_BACK
            raise OutOfTime(
                f"less than {self.limits.order_seconds}s left to start message {record.message_id}"
            )
        count = receives(record)
        retry = Retry(f"{record.message_id}#{count}", self.limits.retries) if count > 1 else None
        try:
            self._deliver(order_id_of(record.body), retry)
        except UNDELIVERABLE as error:
            if count > 1 and self.messages.dead_letter([record]):
                logger.warning(
                    "dead-lettered", extra={"message_id": record.message_id, "error": type(error).__name__}
                )
                return Outcome.DEAD_LETTERED
            raise
        return Outcome.RAN

    def _may_start(self) -> bool:
        """The first record always starts; another only with a whole order's time left."""
        if self._started and self._remaining_ms() < self.limits.order_seconds * 1000:
            return False
        self._started = True
        return True
