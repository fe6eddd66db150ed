"""Delivery timeouts (issue 14, item 11), with the template's sizing and the real deliver function fed
by the local poller: an invocation killed mid-batch, again and again, next to innocent messages costs
them no receive toward the DLQ, while the message that kills it ends there after its order's own
retries; and a batch short of time hands back what it cannot start, without spending a receive."""

import json
import time

import boto3
import pytest

from infra.local import template
from infra.local.lambdas import Context, InvocationKilled, LocalFunction
from infra.local.triggers import QueuePoller
from shared.store.stock.allocation import Allocation
from tests.integration.test_deliver import mark_paid_without_enqueueing
from tests.support import make_queue_pair, new_codes, poll, stored_order


@pytest.fixture(scope="module")
def sizing() -> dict:
    infra = template.load()
    function = infra.functions["DeliverFunction"]
    (trigger,) = [t for t in infra.triggers if t.function == "DeliverFunction"]
    variables = function["Environment"]["Variables"]
    return {
        "handler": function["Handler"],
        "memory": int(function["MemorySize"]),
        "timeout": int(function["Timeout"]),
        "batch_size": trigger.batch_size,
        "max_receives": int(infra.queues["DeliveryQueue"]["RedrivePolicy"]["maxReceiveCount"]),
        "retries": int(variables["DELIVERY_RETRIES"]),
        "hand_back_after": int(variables["DELIVERY_HAND_BACK_AFTER"]),
        "order_seconds": float(variables["DELIVERY_ORDER_SECONDS"]),
    }


class Watched(LocalFunction):
    """The deliver function, keeping (body, ApproximateReceiveCount) of every record it is given."""

    def __init__(self, sizing: dict) -> None:
        super().__init__("DeliverFunction", sizing["handler"], sizing["memory"], sizing["timeout"])
        self.seen: list[tuple[str, int]] = []

    def invoke(self, event, context=None):
        self.seen.extend(
            (r["body"], int(r["attributes"]["ApproximateReceiveCount"])) for r in event["Records"]
        )
        return super().invoke(event, context)


def paid_orders(shop, n: int) -> list[str]:
    product = shop.new_product(new_codes(n))
    orders = [shop.buy(product) for _ in range(n)]
    for order in orders:
        mark_paid_without_enqueueing(order)
    return [order["order_id"] for order in orders]


def body(order_id: str) -> str:
    return json.dumps({"order_id": order_id})


def visible(queue: str) -> list[dict]:
    return (
        boto3.client("sqs")
        .receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=0, AttributeNames=["All"])
        .get("Messages", [])
    )


def in_queue(queue: str) -> int:
    """Messages in the queue, visible or in flight."""
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=queue,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def delivered_once(order_id: str) -> bool:
    order = stored_order(order_id)
    return order.status == "DELIVERED" and [e.type for e in order.history].count("order.delivered") == 1


def test_a_batch_killed_again_and_again_costs_its_innocent_messages_nothing(
    runtime, shop, sizing, monkeypatch
):
    sqs = boto3.client("sqs")
    queue, arn, dlq = make_queue_pair(visibility=1, max_receives=sizing["max_receives"])
    first, killer, *behind = paid_orders(shop, 5)
    started = []
    bind = Allocation.bind

    def bind_or_die(self, product_id, ranges, order_id):
        if order_id == killer:
            started.append(order_id)
            raise InvocationKilled("the runtime died delivering this order")
        return bind(self, product_id, ranges, order_id)

    monkeypatch.setattr(Allocation, "bind", bind_or_die)
    deliver = Watched(sizing)
    poller = QueuePoller(deliver, queue, arn, sizing["batch_size"], report_failures=True)
    for order_id in (first, killer, *behind):  # one batch: the killer second, three innocents behind it
        sqs.send_message(QueueUrl=queue, MessageBody=body(order_id))

    def drained() -> bool:
        poller.poll_once(wait_seconds=1)
        return in_queue(queue) == 0

    poll(drained, deadline=120, every=0)

    assert [m["Body"] for m in visible(dlq)] == [body(killer)]
    assert all(delivered_once(order_id) for order_id in (first, *behind))
    assert stored_order(killer).status == "PAID"
    # The killer died in every batch it started in, and was started no more than its retries allow:
    # once per message before counting (the payment's, and one fresh copy), then each counted retry.
    assert len(started) <= sizing["retries"] + 2
    # No innocent message got anywhere near the DLQ: handed back as a fresh copy before its receives did.
    innocent = {body(order_id) for order_id in (first, *behind)}
    receives = [count for text, count in deliver.seen if text in innocent]
    assert max(receives) <= sizing["hand_back_after"] < sizing["max_receives"]


def test_a_batch_short_of_time_hands_back_what_it_cannot_start_without_spending_a_receive(
    runtime, shop, sizing
):
    sqs = boto3.client("sqs")
    queue, arn, dlq = make_queue_pair(visibility=60, max_receives=sizing["max_receives"])
    order_ids = paid_orders(shop, 3)

    class Late(Watched):
        """Invoked with less than one order's time left (as after slow orders before these)."""

        def invoke(self, event, context=None):
            left = sizing["order_seconds"] - 1
            late = Context(
                self.name, self.memory, self.timeout, started=time.monotonic() - (self.timeout - left)
            )
            return super().invoke(event, late)

    for order_id in order_ids:
        sqs.send_message(QueueUrl=queue, MessageBody=body(order_id))

    assert QueuePoller(Late(sizing), queue, arn, sizing["batch_size"], True).poll_once(wait_seconds=1) == 3

    statuses = sorted(stored_order(order_id).status for order_id in order_ids)
    assert statuses == ["DELIVERED", "PAID", "PAID"]  # the first one ran; no other was started
    waiting = visible(queue)  # at once, not after the visibility timeout, and none in flight
    assert sorted(m["Body"] for m in waiting) == sorted(
        body(o) for o in order_ids if stored_order(o).status == "PAID"
    )
    assert [m["Attributes"]["ApproximateReceiveCount"] for m in waiting] == ["1", "1"]  # this look's
    assert QueuePoller(Watched(sizing), queue, arn, sizing["batch_size"], True).poll_once(wait_seconds=1) == 2
    assert all(delivered_once(order_id) for order_id in order_ids)
    assert visible(queue) == [] and visible(dlq) == []
