"""A delivery batch, with fakes: what it runs, in which order, and what it hands back or dead-letters
instead (functions/deliver/batch.py); and the sizing in template.yaml that keeps a batch inside its
timeout (docs/operations.md "Delivery timeouts")."""

import json

import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from functions.deliver.batch import DeliveryBatch, Limits, Outcome, OutOfTime, order_seconds
from functions.deliver.delivery import RetriesExhausted, UnknownOrder
from infra.local.template import translate
from shared.products import MAX_PER_ORDER
from tests.support import event

LIMITS = Limits(retries=5, hand_back_after=5, order_seconds=6)


def record(order_id: str, receives: int = 1, body: str | None = None) -> dict:
    template = event("sqs_delivery_batch")["Records"][0]
    return {
        **template,
        "messageId": f"msg-{order_id}",
        "body": body if body is not None else json.dumps({"order_id": order_id}),
        "attributes": {**template["attributes"], "ApproximateReceiveCount": str(receives)},
    }


class FakeMessages:
    def __init__(self, working: bool = True) -> None:
        self.working = working
        self.handed_back: list[str] = []
        self.dead_lettered: list[str] = []

    def hand_back(self, records) -> set[str]:
        if not self.working:
            return set()
        self.handed_back += [r.message_id for r in records]
        return {r.message_id for r in records}

    def dead_letter(self, records) -> set[str]:
        if not self.working:
            return set()
        self.dead_lettered += [r.message_id for r in records]
        return {r.message_id for r in records}


class Clock:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def __call__(self) -> int:
        return self.remaining_ms


def batch_of(records, messages=None, clock=None, deliver=None):
    ran: list[tuple[str, object]] = []

    def record_run(order_id, retry):
        ran.append((order_id, retry))
        if deliver:
            deliver(order_id, retry)

    batch = DeliveryBatch(LIMITS, messages or FakeMessages(), clock or Clock(30_000), record_run)
    return batch, ran


def run_all(batch, records):
    return [batch.run(SQSRecord(r)) for r in batch.triage(records)]


def test_a_message_received_too_often_is_handed_back_before_anything_runs_and_the_rest_run_fewest_receives_first():
    messages = FakeMessages()
    records = [record("a", 3), record("worn", 5), record("b", 1), record("c", 2)]
    batch, ran = batch_of(records, messages)

    run_all(batch, records)

    assert messages.handed_back == ["msg-worn"]
    assert [order_id for order_id, _ in ran] == ["b", "c", "a"]


def test_a_worn_message_that_cannot_be_handed_back_still_runs():
    records = [record("worn", 5)]
    batch, ran = batch_of(records, FakeMessages(working=False))
    run_all(batch, records)
    assert [order_id for order_id, _ in ran] == ["worn"]


def test_only_a_receive_after_the_first_is_a_retry_and_each_receive_is_its_own_attempt():
    records = [record("a", 1), record("b", 3)]
    batch, ran = batch_of(records)
    run_all(batch, records)
    assert ran[0] == ("a", None)
    assert ran[1][1].attempt == "msg-b#3" and ran[1][1].allowed == LIMITS.retries


def test_no_order_starts_with_less_than_an_orders_time_left_but_the_first():
    messages, clock = FakeMessages(), Clock(5_999)
    records = [record("a"), record("b"), record("c")]
    batch, ran = batch_of(records, messages, clock)

    outcomes = run_all(batch, records)

    assert [order_id for order_id, _ in ran] == ["a"]
    assert outcomes == [Outcome.RAN, Outcome.HANDED_BACK, Outcome.HANDED_BACK]
    assert messages.handed_back == ["msg-b", "msg-c"]


def test_a_record_out_of_time_that_cannot_be_handed_back_is_reported_failed():
    batch, _ = batch_of([], FakeMessages(working=False), Clock(1_000))
    batch.run(SQSRecord(record("a")))
    with pytest.raises(OutOfTime):
        batch.run(SQSRecord(record("b")))


@pytest.mark.parametrize(
    "error", [UnknownOrder("no such order"), RetriesExhausted("used its retries")], ids=type
)
def test_what_no_retry_can_deliver_is_dead_lettered_on_its_second_receive(error):
    def failing(order_id, retry):
        raise error

    messages = FakeMessages()
    batch, _ = batch_of([], messages, deliver=failing)
    with pytest.raises(type(error)):  # first receive: reported, retried
        batch.run(SQSRecord(record("a", 1)))
    assert batch.run(SQSRecord(record("a", 2))) == Outcome.DEAD_LETTERED
    assert messages.dead_lettered == ["msg-a"]


def test_a_message_that_is_not_a_delivery_message_is_dead_lettered_on_its_second_receive():
    messages = FakeMessages()
    batch, ran = batch_of([], messages)
    with pytest.raises(ValueError):
        batch.run(SQSRecord(record("x", 1, body="not json")))
    assert batch.run(SQSRecord(record("x", 2, body="not json"))) == Outcome.DEAD_LETTERED
    assert ran == []


def test_an_ordinary_failure_is_retried_not_dead_lettered():
    def failing(order_id, retry):
        raise RuntimeError("KMS unavailable")

    messages = FakeMessages()
    batch, _ = batch_of([], messages, deliver=failing)
    with pytest.raises(RuntimeError):
        batch.run(SQSRecord(record("a", 4)))
    assert messages.dead_lettered == []


def test_a_batch_of_the_largest_orders_fits_the_deliver_functions_timeout_with_room_to_spare():
    resources = translate()["Resources"]
    function = resources["DeliverFunction"]["Properties"]
    (mapping,) = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
        and r["Properties"]["FunctionName"] == {"Ref": "DeliverFunction"}
    ]
    queue = resources["DeliveryQueue"]["Properties"]
    timeout, batch_size = function["Timeout"], mapping["BatchSize"]
    window = mapping.get("MaximumBatchingWindowInSeconds", 0)
    variables = function["Environment"]["Variables"]
    budget = float(variables["DELIVERY_ORDER_SECONDS"])
    worst = order_seconds(MAX_PER_ORDER)

    # An order taking twice its planned worst case still ends before the deadline.
    assert budget >= 2 * worst
    # A whole batch of worst-case orders runs before the budget would stop starting them.
    assert batch_size * worst <= timeout - budget
    # As AWS advises: the queue hides a batch for six times the function's timeout, plus the window.
    assert queue["VisibilityTimeout"] >= 6 * timeout + window
    # A latency promise of a second leaves no room for waiting for a fuller batch.
    assert window == 0
    # A message is handed back before its receives could reach maxReceiveCount.
    assert int(variables["DELIVERY_HAND_BACK_AFTER"]) < queue["RedrivePolicy"]["maxReceiveCount"]
