"""Delivery's rules, with in-memory fakes (functions/deliver/delivery.py): a PAID order's reserved slots
are bound to it once (I1), every code opens before it is DELIVERED, anything not PAID is left alone, its
merchant and its buyer are told; retries are counted on the order; crashes, lost answers and races
converge. Then the batch over the real delivery (functions/deliver/batch.py): worn messages handed back,
poison and hopeless ones dead-lettered, one failure failing its record alone; and how a message is moved
(functions/deliver/messages.py): sent first, deleted after, never lost."""

import base64
import json
from datetime import timedelta

import pytest
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidTag

from functions.deliver.batch import DeliveryBatch, Limits
from functions.deliver.delivery import RetriesExhausted, Retry, UnknownOrder, deliver
from functions.deliver.messages import SQS_BATCH, DeliveryMessages
from shared import faults
from shared.errors import IntegrityViolation, StateConflict
from shared.orders import Order, Status
from tests.fakes import FakePorts, raises, stored
from tests.support import event

QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:DeliveryQueue"
DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:DeliveryDLQ"


def run(fakes: FakePorts, order: Order, retry: Retry | None = None) -> Status:
    return deliver(order.order_id, fakes, fakes.clock(), retry)


def paid(fakes: FakePorts, codes: int = 3, quantity: int = 1, **product: object) -> Order:
    return fakes.add_order(fakes.add_product(codes=codes, **product), Status.PAID, quantity=quantity)


def reserved(order: Order) -> list[tuple[str, int, int]]:
    """(product, shard, slot) of every slot the order lists."""
    return sorted((order.product_id, r.shard, n) for r in order.slots for n in r.slots())


def codes_of(fakes: FakePorts, order: Order) -> list[str]:
    with fakes.quietly():
        return fakes.allocation.read_codes(
            order.product_id, order.slots, order.order_id, fakes.ciphers(order.merchant_id)
        )


def told(fakes: FakePorts, order: Order) -> tuple[int, int]:
    """How many order.delivered events and buyer's mails were queued for the order."""
    events = [n for n in fakes.notify.events("order.delivered") if n.data["order_id"] == order.order_id]
    mails = [m for m in fakes.notify.mails() if m.order_id == order.order_id]
    return len(events), len(mails)


def delivered_meanwhile(fakes: FakePorts, order: Order):
    """A hook action: another copy of the message delivers the order first."""

    def action(*args: object, **kwargs: object) -> None:
        with fakes.quietly():
            fakes.allocation.bind(order.product_id, order.slots, order.order_id)
            fakes.orders.transition(order, "order.delivered", fakes.clock(), {"quantity": order.quantity})

    return action


def refunded_meanwhile(fakes: FakePorts, order: Order):
    """A hook action: its merchant refunds the order first (-> REFUNDING, unbound stock given back)."""

    def action(*args: object, **kwargs: object) -> None:
        with fakes.quietly():
            fakes.orders.transition(order, "refund.requested", fakes.clock(), due_in=timedelta(0))
            fakes.allocation.release(order.product_id, order.slots, order.order_id)

    return action


# ---------- a PAID order is delivered ----------


def test_a_paid_order_gets_exactly_its_reserved_codes_and_is_delivered(fakes):
    product = fakes.add_product(codes=["A-1", "B-2", "C-3", "D-4"])
    order = fakes.add_order(product, Status.PAID, quantity=2)

    assert run(fakes, order) == Status.DELIVERED

    delivered = stored(fakes, order)
    assert delivered.status == Status.DELIVERED
    assert delivered.history[-1].type == "order.delivered"
    assert delivered.history[-1].data == {"quantity": 2}
    assert fakes.allocation.bound_to(order.order_id) == reserved(order)
    assert fakes.allocation.held_by(order.order_id) == []
    assert codes_of(fakes, order) == ["A-1", "B-2"]
    levels = fakes.allocation.levels(product.product_id)
    assert (levels.sold, levels.reserved, levels.available) == (2, 0, 2)


def test_a_delivered_order_is_no_longer_due(fakes):
    order = paid(fakes)
    assert fakes.orders.due_entry(order.order_id) is not None
    run(fakes, order)
    assert fakes.orders.due_entry(order.order_id) is None


def test_an_order_spread_over_shards_binds_every_one_of_its_slots(fakes):
    product = fakes.add_product(codes=4, shards=2)  # two codes a shard
    order = fakes.add_order(product, Status.PAID, quantity=3)
    assert len(order.slots) == 2  # the claim took from both shards

    assert run(fakes, order) == Status.DELIVERED
    assert fakes.allocation.bound_to(order.order_id) == reserved(order)
    assert len(codes_of(fakes, order)) == 3


def test_two_orders_get_two_different_codes(fakes):
    product = fakes.add_product(codes=2)
    first = fakes.add_order(product, Status.PAID)
    second = fakes.add_order(product, Status.PAID)

    run(fakes, first)
    run(fakes, second)

    assert set(codes_of(fakes, first)).isdisjoint(codes_of(fakes, second))


def test_a_reusable_code_is_delivered_to_as_many_orders_as_it_may_be_sold(fakes):
    product = fakes.add_product(codes=["SHARED"], copies=2, sales_per_code=2)
    first = fakes.add_order(product, Status.PAID)
    second = fakes.add_order(product, Status.PAID)

    assert run(fakes, first) == run(fakes, second) == Status.DELIVERED
    assert codes_of(fakes, first) == codes_of(fakes, second) == ["SHARED"]
    assert fakes.allocation.bound_to(first.order_id) != fakes.allocation.bound_to(second.order_id)


# ---------- who is told ----------


def test_the_merchant_is_told_and_the_buyers_mail_is_requested(fakes):
    order = paid(fakes, quantity=2)
    run(fakes, order)

    (event_,) = fakes.notify.events("order.delivered")
    assert event_.merchant_id == order.merchant_id
    assert event_.data["order_id"] == order.order_id
    assert event_.data["status"] == "DELIVERED" and event_.data["quantity"] == 2
    assert event_.data["total"] == order.total.model_dump()
    (mail,) = fakes.notify.mails()
    assert mail.mail == "order" and mail.order_id == order.order_id


def test_neither_the_event_nor_the_mail_carries_a_code(fakes):
    product = fakes.add_product(codes=["SECRET-CODE-1"])
    run(fakes, fakes.add_order(product, Status.PAID))
    assert fakes.notify.messages
    assert all("SECRET-CODE-1" not in message.body for message in fakes.notify.messages)


def test_a_delivery_leaving_the_stock_at_its_threshold_tells_the_merchant_stock_is_low(fakes):
    product = fakes.add_product(codes=3, low_stock_threshold=2)
    order = fakes.add_order(product, Status.PAID)

    run(fakes, order)

    (low,) = fakes.notify.events("stock.low")
    assert low.merchant_id == product.merchant_id
    assert low.data == {
        "product_id": product.product_id,
        "available": 2,
        "low_stock_threshold": 2,
        "order_id": order.order_id,
    }


def test_stock_above_the_threshold_is_not_low(fakes):
    run(fakes, paid(fakes, codes=4, low_stock_threshold=2))  # 3 left
    assert fakes.notify.events("stock.low") == []
    assert len(fakes.notify.events("order.delivered")) == 1


def test_a_product_without_a_threshold_never_reads_its_stock_level(fakes):
    run(fakes, paid(fakes, codes=1))  # none left, and no threshold set
    assert fakes.notify.events("stock.low") == []
    assert fakes.levels.called("available") == []


def test_a_product_this_process_has_not_seen_yet_still_gets_its_order_delivered_event(fakes):
    order = paid(fakes, codes=1, low_stock_threshold=5)
    fakes.products.serve_stale(None, product_id=order.product_id)

    assert run(fakes, order) == Status.DELIVERED
    assert told(fakes, order) == (1, 1)
    assert fakes.notify.events("stock.low") == []


@pytest.mark.parametrize(
    ("fake", "method"),
    [("notify", "send_body"), ("notify", "send"), ("products", "recent_product"), ("levels", "available")],
)
def test_a_merchant_or_buyer_who_cannot_be_told_fails_no_delivery(fakes, fake, method):
    order = paid(fakes, codes=2, low_stock_threshold=5)
    getattr(fakes, fake).before(method, raises(ConnectionError("unreachable")))

    assert run(fakes, order) == Status.DELIVERED
    assert stored(fakes, order).status == Status.DELIVERED


def test_the_order_delivered_event_goes_out_even_when_the_mail_cannot(fakes):
    order = paid(fakes)
    fakes.notify.before("send_body", raises(ConnectionError("unreachable")), times=1)  # the mail: first
    run(fakes, order)
    assert told(fakes, order) == (1, 0)


# ---------- what is not delivered ----------


@pytest.mark.parametrize(
    "status",
    [
        Status.PENDING_PAYMENT,
        Status.EXPIRED,
        Status.IN_REVIEW,
        Status.REFUNDING,
        Status.REFUNDED,
        Status.CLAIMED,
        Status.REPLACED,
    ],
)
def test_an_order_that_is_not_paid_is_left_alone(fakes, status):
    product = fakes.add_product(codes=3)
    order = fakes.add_order(product, status)
    levels = fakes.allocation.levels(product.product_id)

    assert run(fakes, order) == status

    assert stored(fakes, order) == order
    assert fakes.allocation.called("bind") == [] and fakes.allocation.called("read_codes") == []
    assert fakes.allocation.levels(product.product_id) == levels
    assert fakes.notify.messages == []


def test_an_order_held_for_review_is_not_delivered_until_released(fakes):
    order = fakes.add_order(fakes.add_product(codes=2), Status.IN_REVIEW)
    run(fakes, order)
    assert fakes.allocation.bound_to(order.order_id) == []

    with fakes.quietly():
        released = fakes.orders.transition(order, "review.released", fakes.clock())
    assert run(fakes, released) == Status.DELIVERED


def test_a_message_for_an_unknown_order_cannot_be_delivered_by_any_retry(fakes):
    with pytest.raises(UnknownOrder):
        deliver(fakes.new_id("ord"), fakes, fakes.clock())
    assert fakes.notify.messages == []


# ---------- a message again (I1) ----------


def test_a_redelivered_message_for_a_delivered_order_binds_and_changes_nothing(fakes):
    order = paid(fakes, quantity=2)
    run(fakes, order)
    delivered = stored(fakes, order)
    bound = fakes.allocation.bound_to(order.order_id)
    binds = len(fakes.allocation.called("bind"))

    assert run(fakes, order) == Status.DELIVERED

    assert stored(fakes, order) == delivered
    assert fakes.allocation.bound_to(order.order_id) == bound
    assert len(fakes.allocation.called("bind")) == binds


def test_a_redelivered_message_tells_the_merchant_again_under_the_same_event_id(fakes):
    order = paid(fakes)
    run(fakes, order)
    run(fakes, order)

    events = fakes.notify.events("order.delivered")
    assert len(events) == 2 and len({n.event_id for n in events}) == 1  # the merchant sees one


def test_a_slot_bound_to_another_order_is_never_bound_again(fakes):
    product = fakes.add_product(codes=3)
    first = fakes.add_order(product, Status.PAID)
    second = fakes.add_order(product, Status.PAID)
    run(fakes, first)
    fakes.orders.put(stored(fakes, second).model_copy(update={"slots": first.slots}))

    with pytest.raises(IntegrityViolation):
        run(fakes, second)

    assert fakes.allocation.bound_to(first.order_id) == reserved(first)
    assert fakes.allocation.bound_to(second.order_id) == []
    assert stored(fakes, second).status == Status.PAID
    assert told(fakes, second) == (0, 0)


def test_a_delivery_racing_its_merchants_refund_binds_nothing_the_refund_gave_back(fakes):
    product = fakes.add_product(codes=2)
    order = fakes.add_order(product, Status.PAID)
    fakes.allocation.before("bind", refunded_meanwhile(fakes, order), times=1)

    with pytest.raises(IntegrityViolation):
        run(fakes, order)

    assert stored(fakes, order).status == Status.REFUNDING
    assert fakes.allocation.bound_to(order.order_id) == []
    assert fakes.allocation.levels(product.product_id).available == 2
    assert run(fakes, order) == Status.REFUNDING  # the message again: nothing to deliver


def test_an_order_refunded_between_its_bind_and_its_delivered_write_is_not_delivered(fakes):
    order = paid(fakes)
    fakes.orders.before("transition", refunded_meanwhile(fakes, order), times=1)

    with pytest.raises(StateConflict):
        run(fakes, order)

    assert stored(fakes, order).status == Status.REFUNDING
    assert told(fakes, order) == (0, 0)


# ---------- every code must open ----------


def test_a_code_that_does_not_decrypt_stops_the_delivery(fakes):
    order = paid(fakes, codes=3, quantity=2)
    (product_id, shard, slot), _ = reserved(order)
    sealed = fakes.allocation.slots[(product_id, shard, slot)].sealed
    fakes.allocation.slots[(product_id, shard, slot)].sealed = sealed[:-1] + bytes([sealed[-1] ^ 1])

    with pytest.raises(InvalidTag):
        run(fakes, order)

    assert stored(fakes, order).status == Status.PAID
    assert told(fakes, order) == (0, 0)


def test_a_sealed_code_moved_to_another_slot_does_not_open_there(fakes):
    order = paid(fakes, codes=3)
    (key,) = reserved(order)
    other = (key[0], key[1], key[2] + 1)
    fakes.allocation.slots[key].sealed = fakes.allocation.slots[other].sealed

    with pytest.raises(InvalidTag):
        run(fakes, order)
    assert stored(fakes, order).status == Status.PAID


def test_an_order_listing_fewer_codes_than_its_quantity_is_not_delivered(fakes):
    order = paid(fakes, codes=3)
    fakes.orders.put(stored(fakes, order).model_copy(update={"quantity": 2}))

    with pytest.raises(IntegrityViolation, match="1 codes for a quantity of 2"):
        run(fakes, order)
    assert stored(fakes, order).status == Status.PAID
    assert told(fakes, order) == (0, 0)


# ---------- retries, counted on the order ----------


def test_a_first_receive_is_not_counted_as_a_retry(fakes):
    order = paid(fakes)
    run(fakes, order)
    assert fakes.orders.called("count_delivery_retry") == []


def test_a_retry_is_counted_before_it_binds_and_delivers_within_its_allowance(fakes):
    order = paid(fakes)

    def count_comes_first(*args: object, **kwargs: object) -> None:
        assert fakes.orders.delivery_retries(order.order_id) == 1

    fakes.allocation.before("bind", count_comes_first, times=1)

    assert run(fakes, order, Retry("msg-1#2", allowed=1)) == Status.DELIVERED
    assert fakes.orders.delivery_retries(order.order_id) == 1


def test_a_retry_past_the_orders_allowance_is_refused_before_it_starts(fakes):
    order = paid(fakes)
    fakes.allocation.before("bind", raises(ConnectionError("throttled")), times=2)
    for attempt in ("msg-1#2", "msg-1#3"):
        with pytest.raises(ConnectionError):
            run(fakes, order, Retry(attempt, allowed=2))

    with pytest.raises(RetriesExhausted):
        run(fakes, order, Retry("msg-1#4", allowed=2))

    assert len(fakes.allocation.called("bind")) == 2  # the third was never started
    assert stored(fakes, order).status == Status.PAID
    assert fakes.orders.delivery_retries(order.order_id) == 3


def test_one_attempt_repeated_counts_once(fakes):
    order = paid(fakes)
    fakes.allocation.before("bind", raises(ConnectionError("throttled")), times=1)
    with pytest.raises(ConnectionError):
        run(fakes, order, Retry("msg-1#2", allowed=1))

    assert run(fakes, order, Retry("msg-1#2", allowed=1)) == Status.DELIVERED
    assert fakes.orders.delivery_retries(order.order_id) == 1


def test_a_retry_for_an_order_that_is_not_paid_is_not_counted(fakes):
    order = paid(fakes)
    run(fakes, order)
    assert run(fakes, order, Retry("msg-1#2", allowed=1)) == Status.DELIVERED
    assert fakes.orders.called("count_delivery_retry") == []


def test_a_retry_finding_the_order_delivered_meanwhile_tells_its_merchant_and_binds_nothing(fakes):
    order = paid(fakes)
    fakes.orders.before("count_delivery_retry", delivered_meanwhile(fakes, order), times=1)

    assert run(fakes, order, Retry("msg-1#2", allowed=1)) == Status.DELIVERED

    assert fakes.allocation.called("bind") == []
    assert told(fakes, order) == (1, 1)


def test_a_retry_finding_the_order_refunded_meanwhile_delivers_nothing(fakes):
    order = paid(fakes)
    fakes.orders.before("count_delivery_retry", refunded_meanwhile(fakes, order), times=1)

    assert run(fakes, order, Retry("msg-1#2", allowed=1)) == Status.REFUNDING
    assert fakes.allocation.called("bind") == [] and fakes.allocation.bound_to(order.order_id) == []
    assert told(fakes, order) == (0, 0)


# ---------- crashes and lost answers converge ----------


def assert_delivered_once(fakes: FakePorts, order: Order) -> None:
    delivered = stored(fakes, order)
    assert delivered.status == Status.DELIVERED
    assert [e.type for e in delivered.history].count("order.delivered") == 1
    assert fakes.allocation.bound_to(order.order_id) == reserved(order)
    assert fakes.allocation.held_by(order.order_id) == []
    events = fakes.notify.events("order.delivered")
    assert events and len({n.event_id for n in events}) == 1


@pytest.mark.parametrize("point", ["deliver:between-binds", "deliver:after-bind"])
def test_a_retry_after_a_crash_delivers_the_same_codes_once(fakes, point):
    order = paid(fakes, codes=3, quantity=2)
    faults.arm(point)
    with pytest.raises(faults.InjectedFault):
        run(fakes, order)
    assert stored(fakes, order).status == Status.PAID

    assert run(fakes, order) == Status.DELIVERED
    assert_delivered_once(fakes, order)


def test_a_lost_answer_on_the_bind_converges_when_retried(fakes):
    order = paid(fakes, quantity=2)
    fakes.allocation.after("bind", raises(ConnectionError("answer lost")), times=1)
    with pytest.raises(ConnectionError):
        run(fakes, order)

    assert run(fakes, order) == Status.DELIVERED
    assert_delivered_once(fakes, order)


def test_a_lost_answer_on_the_delivered_write_refused_on_its_repeat_is_a_delivery(fakes):
    order = paid(fakes)
    fakes.orders.after(
        "transition", raises(StateConflict("answer lost: refused on the SDK's retry")), times=1
    )

    assert run(fakes, order) == Status.DELIVERED
    assert_delivered_once(fakes, order)
    assert told(fakes, order) == (1, 1)


def test_a_lost_answer_on_the_delivered_write_tells_everyone_when_the_message_comes_back(fakes):
    order = paid(fakes)
    fakes.orders.after("transition", raises(ConnectionError("answer lost")), times=1)
    with pytest.raises(ConnectionError):
        run(fakes, order)
    assert told(fakes, order) == (0, 0)

    assert run(fakes, order) == Status.DELIVERED
    assert_delivered_once(fakes, order)
    assert told(fakes, order) == (1, 1)


def test_a_throttled_delivered_write_is_delivered_on_the_retry(fakes):
    order = paid(fakes)
    fakes.orders.before("transition", raises(ConnectionError("throttled")), times=1)
    with pytest.raises(ConnectionError):
        run(fakes, order)

    assert run(fakes, order) == Status.DELIVERED
    assert_delivered_once(fakes, order)


def test_a_copy_delivering_the_order_first_makes_this_one_a_delivery_too(fakes):
    order = paid(fakes)
    fakes.orders.before("transition", delivered_meanwhile(fakes, order), times=1)

    assert run(fakes, order) == Status.DELIVERED
    assert_delivered_once(fakes, order)


# ---------- a batch over the real delivery ----------

LIMITS = Limits(retries=2, hand_back_after=5, order_seconds=6)


class Moved:
    """Where the batch moves records (functions/deliver/batch.py, Messages): kept for assertions."""

    def __init__(self) -> None:
        self.handed_back: list[str] = []
        self.dead_lettered: list[str] = []

    def hand_back(self, records) -> set[str]:
        self.handed_back += [r.message_id for r in records]
        return {r.message_id for r in records}

    def dead_letter(self, records) -> set[str]:
        self.dead_lettered += [r.message_id for r in records]
        return {r.message_id for r in records}


def record(message_id: str, body: str, receives: int = 1) -> dict:
    template = event("sqs_delivery_batch")["Records"][0]
    return {
        **template,
        "messageId": message_id,
        "receiptHandle": f"handle-{message_id}",
        "body": body,
        "attributes": {**template["attributes"], "ApproximateReceiveCount": str(receives)},
    }


def for_order(order: Order, receives: int = 1) -> dict:
    return record(f"msg-{order.order_id}", json.dumps({"order_id": order.order_id}), receives)


def run_batch(fakes: FakePorts, records: list[dict], moved: Moved) -> list[str]:
    """One invocation as the deliver function runs it; the ids of the records reported failed."""
    batch = DeliveryBatch(
        LIMITS, moved, lambda: 30_000, lambda order_id, retry: deliver(order_id, fakes, fakes.clock(), retry)
    )
    response = process_partial_response(
        event={"Records": batch.triage(records)},
        record_handler=batch.run,
        processor=BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False),
    )
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


def test_one_order_that_fails_fails_its_record_alone(fakes):
    product = fakes.add_product(codes=3)
    good, bad, also_good = (fakes.add_order(product, Status.PAID) for _ in range(3))
    fakes.orders.put(stored(fakes, bad).model_copy(update={"slots": good.slots}))

    failed = run_batch(fakes, [for_order(good), for_order(bad), for_order(also_good)], Moved())

    assert failed == [f"msg-{bad.order_id}"]
    assert stored(fakes, good).status == stored(fakes, also_good).status == Status.DELIVERED
    assert stored(fakes, bad).status == Status.PAID


def test_a_poison_message_is_retried_once_then_dead_lettered_without_holding_up_the_rest(fakes):
    order = paid(fakes)
    poison = record("msg-poison", "not json")
    moved = Moved()

    assert run_batch(fakes, [poison, for_order(order)], moved) == ["msg-poison"]
    assert stored(fakes, order).status == Status.DELIVERED

    assert run_batch(fakes, [record("msg-poison", "not json", receives=2)], moved) == []
    assert moved.dead_lettered == ["msg-poison"]


def test_a_message_for_an_unknown_order_is_dead_lettered_on_its_second_receive(fakes):
    ghost = json.dumps({"order_id": fakes.new_id("ord")})
    moved = Moved()
    assert run_batch(fakes, [record("msg-ghost", ghost)], moved) == ["msg-ghost"]
    assert run_batch(fakes, [record("msg-ghost", ghost, receives=2)], moved) == []
    assert moved.dead_lettered == ["msg-ghost"]


def test_an_order_that_used_its_retries_is_dead_lettered_and_keeps_its_reservation(fakes):
    order = paid(fakes)
    fakes.allocation.before("bind", raises(ConnectionError("throttled")))
    moved = Moved()
    for receives in (1, 2, 3):  # the first receive, then the LIMITS.retries retries
        assert run_batch(fakes, [for_order(order, receives)], moved) == [f"msg-{order.order_id}"]
    assert moved.dead_lettered == []

    assert run_batch(fakes, [for_order(order, receives=4)], moved) == []

    assert moved.dead_lettered == [f"msg-{order.order_id}"]
    assert stored(fakes, order).status == Status.PAID
    assert fakes.allocation.held_by(order.order_id) == reserved(order)


def test_a_worn_message_is_handed_back_and_its_fresh_copy_delivers(fakes):
    order, other = paid(fakes), paid(fakes)
    moved = Moved()

    failed = run_batch(fakes, [for_order(order, receives=LIMITS.hand_back_after), for_order(other)], moved)

    assert failed == [] and moved.handed_back == [f"msg-{order.order_id}"]
    assert stored(fakes, order).status == Status.PAID  # not run in this batch
    assert stored(fakes, other).status == Status.DELIVERED
    assert run_batch(fakes, [for_order(order)], moved) == []  # the fresh copy, received once
    assert stored(fakes, order).status == Status.DELIVERED


def test_a_message_for_a_delivered_order_succeeds_and_changes_nothing(fakes):
    order = paid(fakes)
    run(fakes, order)
    before = stored(fakes, order)
    assert run_batch(fakes, [for_order(order, receives=2)], Moved()) == []
    assert stored(fakes, order) == before


# ---------- moving a message: sent first, deleted after ----------


def error(code: str = "ServiceUnavailable") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "SendMessageBatch")


class FakeSqs:
    """The SQS calls DeliveryMessages makes, on two queues (the delivery queue and its DLQ)."""

    def __init__(self, redrive: bool = True) -> None:
        self.urls = {"DeliveryQueue": "https://sqs.test/DeliveryQueue", "DeliveryDLQ": "https://sqs.test/DLQ"}
        self.redrive = redrive
        self.sent: list[tuple[str, dict]] = []  # (queue URL, entry)
        self.deleted: list[tuple[str, str]] = []  # (queue URL, receipt handle)
        self.refuse: set[str] = set()  # message bodies a send reports Failed
        self.send_error: ClientError | None = None
        self.delete_error: ClientError | None = None
        self.send_calls = 0

    def get_queue_url(self, QueueName: str, QueueOwnerAWSAccountId: str) -> dict:
        return {"QueueUrl": self.urls[QueueName]}

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict:
        policy = {"deadLetterTargetArn": DLQ_ARN, "maxReceiveCount": 10}
        return {"Attributes": {"RedrivePolicy": json.dumps(policy)} if self.redrive else {}}

    def send_message_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:
        self.send_calls += 1
        assert len(Entries) <= SQS_BATCH
        if self.send_error is not None:
            raise self.send_error
        ok = [e for e in Entries if e["MessageBody"] not in self.refuse]
        self.sent += [(QueueUrl, e) for e in ok]
        return {
            "Successful": [{"Id": e["Id"]} for e in ok],
            "Failed": [{"Id": e["Id"]} for e in Entries if e not in ok],
        }

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:
        if self.delete_error is not None:
            raise self.delete_error
        self.deleted += [(QueueUrl, e["ReceiptHandle"]) for e in Entries]
        return {"Successful": [{"Id": e["Id"]} for e in Entries]}


def sqs_record(n: int, **attributes: dict) -> SQSRecord:
    raw = record(f"m{n}", json.dumps({"order_id": f"ord_{n:020x}"}))
    return SQSRecord({**raw, "eventSourceARN": QUEUE_ARN, "messageAttributes": attributes})


def test_a_handed_back_message_is_sent_as_it_was_to_its_own_queue_then_deleted():
    sqs = FakeSqs()
    binary = base64.b64encode(b"\x00\x01").decode()
    message = sqs_record(
        1,
        trace={"dataType": "String", "stringValue": "abc"},
        blob={"dataType": "Binary", "binaryValue": binary},
    )

    assert DeliveryMessages(sqs).hand_back([message]) == {"m1"}

    ((url, entry),) = sqs.sent
    assert url == sqs.urls["DeliveryQueue"]
    assert entry["MessageBody"] == message.body
    assert entry["MessageAttributes"] == {
        "trace": {"DataType": "String", "StringValue": "abc"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
    }
    assert sqs.deleted == [(sqs.urls["DeliveryQueue"], "handle-m1")]


def test_a_dead_lettered_message_goes_to_its_queues_dead_letter_queue():
    sqs = FakeSqs()
    assert DeliveryMessages(sqs).dead_letter([sqs_record(1)]) == {"m1"}
    assert [url for url, _ in sqs.sent] == [sqs.urls["DeliveryDLQ"]]
    assert sqs.deleted == [(sqs.urls["DeliveryQueue"], "handle-m1")]


def test_only_what_was_sent_is_deleted_and_reported_moved():
    sqs = FakeSqs()
    records = [sqs_record(n) for n in range(3)]
    sqs.refuse = {records[1].body}

    assert DeliveryMessages(sqs).hand_back(records) == {"m0", "m2"}
    assert sorted(handle for _, handle in sqs.deleted) == ["handle-m0", "handle-m2"]


def test_a_send_that_fails_moves_and_deletes_nothing():
    sqs = FakeSqs()
    sqs.send_error = error()
    assert DeliveryMessages(sqs).hand_back([sqs_record(1)]) == set()
    assert sqs.deleted == []


def test_a_queue_without_a_dead_letter_queue_dead_letters_nothing():
    sqs = FakeSqs(redrive=False)
    assert DeliveryMessages(sqs).dead_letter([sqs_record(1)]) == set()
    assert sqs.sent == [] and sqs.deleted == []


def test_a_message_sent_but_not_deleted_is_still_reported_moved():
    sqs = FakeSqs()
    sqs.delete_error = error()
    assert DeliveryMessages(sqs).hand_back([sqs_record(1)]) == {"m1"}  # the poller deletes it


def test_more_messages_than_one_request_takes_are_sent_in_batches_of_ten():
    sqs = FakeSqs()
    records = [sqs_record(n) for n in range(SQS_BATCH + 3)]
    assert DeliveryMessages(sqs).hand_back(records) == {r.message_id for r in records}
    assert sqs.send_calls == 2 and len(sqs.deleted) == SQS_BATCH + 3


def test_a_poison_message_is_dead_lettered_with_its_body_as_it_came():
    sqs = FakeSqs()
    poison = SQSRecord({**record("poison", "not json"), "eventSourceARN": QUEUE_ARN})
    assert DeliveryMessages(sqs).dead_letter([poison]) == {"poison"}
    assert sqs.sent[0][1]["MessageBody"] == "not json"
