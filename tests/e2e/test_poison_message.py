"""The poison message, end to end: a paid order whose code cannot be opened fails delivery until its
retries are used up and its message is dead-lettered; the operator sees why with `miaofa-ops dlq list`, fixes the cause and
replays it; the buyer gets the right code, once, however often the message is replayed."""

import io
import json
import time
from dataclasses import asdict

import boto3
import pytest

from infra.local import template
from infra.ops.cli import Console, main
from infra.ops.target import local_target
from tests.support import new_codes, poll, stored_order

pytestmark = pytest.mark.e2e

TEMPLATE_VISIBILITY = str(template.load().queues["DeliveryQueue"]["VisibilityTimeout"])
POLLER_WAIT_SECONDS = 1  # the local runtime's pollers long-poll this long (infra/local/triggers.py)


def ops(runtime, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), target=local_target(asdict(runtime.info)), console=Console(out=out, err=err))
    return code, out.getvalue(), err.getvalue()


def dead_letters_of(runtime, order_id: str) -> list[dict]:
    """This order's messages in DeliveryDLQ, through the CLI's JSON listing (other tests' are ignored)."""
    code, out, err = ops(runtime, "dlq", "list", "--json")
    assert code == 0, err
    return [row for row in json.loads(out) if row["order_id"] == order_id]


def watch_deliveries(runtime, monkeypatch) -> list[tuple[str, bool]]:
    """(body, handled without failure) for each record the deliver function gets from now on."""
    function = runtime.functions["DeliverFunction"]
    invoke, handled = function.invoke, []

    def watched(event):
        try:
            result = invoke(event)
        except Exception:
            handled.extend((record["body"], False) for record in event["Records"])
            raise
        failed = {f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])}
        handled.extend((record["body"], record["messageId"] not in failed) for record in event["Records"])
        return result

    monkeypatch.setattr(function, "invoke", watched)
    return handled


def slot_key(runtime, order_id: str) -> dict:
    record = stored_order(order_id)
    (reserved,) = record.slots
    assert reserved.count == 1
    return {
        "pk": {"S": f"{record.product_id}#slots#{reserved.shard}"},
        "sk": {"S": f"{reserved.start:012d}"},
    }


def set_sealed_code(runtime, key: dict, sealed: bytes) -> None:
    boto3.client("dynamodb").update_item(
        TableName=runtime.info.tables["StockTable"],
        Key=key,
        UpdateExpression="SET sealed_code = :sealed",
        ExpressionAttributeValues={":sealed": {"B": sealed}},
    )


def test_a_poison_message_is_dead_lettered_shown_fixed_and_replayed_to_one_delivery(
    runtime, shop, monkeypatch
):
    sqs = boto3.client("sqs")
    codes = new_codes(1)
    order = shop.buy(shop.new_product(codes))
    order_id = order["order_id"]
    key = slot_key(runtime, order_id)
    original = boto3.client("dynamodb").get_item(
        TableName=runtime.info.tables["StockTable"], Key=key, ConsistentRead=True
    )["Item"]["sealed_code"]["B"]
    set_sealed_code(runtime, key, original[:-1] + bytes([original[-1] ^ 0xFF]))  # the GCM tag no longer fits

    delivery_queue = runtime.info.queues["DeliveryQueue"]
    sqs.set_queue_attributes(QueueUrl=delivery_queue, Attributes={"VisibilityTimeout": "1"})
    try:
        # A receive already waiting (the pollers long-poll for 1 s) would still hide the message for
        # the old 60 s: let those polls end first.
        changed = time.monotonic()
        poll(lambda: time.monotonic() > changed + 2 * POLLER_WAIT_SECONDS, every=0.1)
        assert shop.runtime.sandbox.pay(order_id, order["total"]["amount"], "CNY")
        # The order's retries used up (DELIVERY_RETRIES, counted on the order), the deliver function
        # moves its message to DeliveryDLQ.
        (dead,) = poll(lambda: dead_letters_of(runtime, order_id), deadline=60, every=0.5)
    finally:
        sqs.set_queue_attributes(
            QueueUrl=delivery_queue, Attributes={"VisibilityTimeout": TEMPLATE_VISIBILITY}
        )

    stuck = stored_order(order_id)
    assert stuck.status == "PAID"
    assert stuck.delivery_error == "InvalidTag" and stuck.delivery_failures >= 5
    assert dead["status"] == "PAID" and dead["delivery_error"] == "InvalidTag"
    code, listing, _ = ops(runtime, "dlq", "list")
    assert code == 0
    (line,) = [line for line in listing.splitlines() if order_id in line]
    assert dead["message_id"] in line and "PAID" in line and "InvalidTag" in line

    set_sealed_code(runtime, key, original)  # the cause, fixed
    code, out, err = ops(runtime, "dlq", "replay", "--order", order_id)
    assert code == 0, err
    assert f"order {order_id}" in out and "replayed 1 of" in out
    delivered = shop.wait_for(order, "DELIVERED")
    assert [item["code"] for item in delivered["items"]] == codes
    assert dead_letters_of(runtime, order_id) == []
    history_after_first = [(event.type, event.at) for event in stored_order(order_id).history]

    # The same message again (as if dead-lettered twice): replaying it delivers nothing more.
    body = json.dumps({"order_id": order_id})
    handled = watch_deliveries(runtime, monkeypatch)
    sqs.send_message(QueueUrl=runtime.info.queues["DeliveryDLQ"], MessageBody=body)
    code, out, err = ops(runtime, "dlq", "replay", "--order", order_id)
    assert code == 0, err
    assert "replayed 1 of" in out
    poll(lambda: (body, True) in handled)  # the replayed message was consumed, successfully
    again = shop.wait_for(order, "DELIVERED")
    assert [item["code"] for item in again["items"]] == codes
    assert [e["type"] for e in again["events"]].count("order.delivered") == 1
    assert [(event.type, event.at) for event in stored_order(order_id).history] == history_after_first
