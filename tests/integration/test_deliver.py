"""The deliver handler against the embedded AWS: binds the reserved codes once, reports failed
records individually, and a redelivered message binds nothing new."""

import json
from datetime import timedelta

import boto3

from shared.adapters import allocation, orders
from shared.adapters import merchants as merchant_store
from shared.orders import Payment, utcnow
from shared.settings import settings
from tests.support import event, new_codes, poll, stored_order


def mark_paid_without_enqueueing(order: dict, due_in: timedelta = timedelta(seconds=120)) -> None:
    """A PAID order whose delivery message never left (as after a crash right after the PAID write)."""
    record = stored_order(order["order_id"])
    payment = Payment(provider="sandbox", payment_id="pay_x", event_id="evt_x", amount=record.total)
    orders().transition(
        record,
        "payment.succeeded",
        utcnow(),
        {"payment_id": "pay_x"},
        payment=payment,
        due_in=due_in,
    )


def sqs_event(*order_ids: str) -> dict:
    template = event("sqs_delivery_batch")["Records"][0]
    records = [
        {**template, "messageId": f"msg-{i}", "body": json.dumps({"order_id": oid})}
        for i, oid in enumerate(order_ids)
    ]
    return {"Records": records}


def codes_of(order_id: str) -> list[str]:
    record = stored_order(order_id)
    return allocation().read_codes(
        record.product_id, record.slots, order_id, merchant_store().cipher(record.merchant_id)
    )


def test_deliver_binds_the_reserved_codes(runtime, shop):
    codes = new_codes(2)
    order = shop.buy(shop.new_product(codes), quantity=2)
    mark_paid_without_enqueueing(order)

    result = runtime.functions["DeliverFunction"].invoke(sqs_event(order["order_id"]))

    assert result == {"batchItemFailures": []}
    assert stored_order(order["order_id"]).status == "DELIVERED"
    assert sorted(codes_of(order["order_id"])) == sorted(codes)


def test_a_redelivered_message_binds_the_same_codes(runtime, shop):
    order = shop.buy(shop.new_product(new_codes(3)))
    mark_paid_without_enqueueing(order)
    runtime.functions["DeliverFunction"].invoke(sqs_event(order["order_id"]))
    first = codes_of(order["order_id"])

    again = runtime.functions["DeliverFunction"].invoke(sqs_event(order["order_id"], order["order_id"]))

    assert again == {"batchItemFailures": []}
    assert codes_of(order["order_id"]) == first
    history = stored_order(order["order_id"]).history
    assert [e.type for e in history].count("order.delivered") == 1


def test_one_bad_record_fails_alone(runtime, shop):
    order = shop.buy(shop.new_product(new_codes(1)))
    mark_paid_without_enqueueing(order)

    result = runtime.functions["DeliverFunction"].invoke(sqs_event("ord_" + "0" * 20, order["order_id"]))

    assert result == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    assert stored_order(order["order_id"]).status == "DELIVERED"


def test_an_unpaid_order_is_not_delivered(runtime, shop):
    order = shop.buy(shop.new_product(new_codes(1)))
    result = runtime.functions["DeliverFunction"].invoke(sqs_event(order["order_id"]))
    assert result == {"batchItemFailures": []}
    assert stored_order(order["order_id"]).status == "PENDING_PAYMENT"
    assert shop.stock(order_product(order))["sold"] == 0


def order_product(order: dict) -> str:
    return stored_order(order["order_id"]).product_id


def test_a_retry_is_counted_once_however_often_its_request_is_repeated(runtime, shop):
    order = shop.buy(shop.new_product(new_codes(1)))
    mark_paid_without_enqueueing(order)
    order_id = order["order_id"]

    # The same receive counted twice, as when the SDK repeats a request whose answer was lost.
    assert orders().count_delivery_retry(order_id, "msg-1#2") == 1
    assert orders().count_delivery_retry(order_id, "msg-1#2") == 1
    assert orders().count_delivery_retry(order_id, "msg-1#3") == 2
    runtime.functions["DeliverFunction"].invoke(sqs_event(order_id))
    assert orders().count_delivery_retry(order_id, "msg-1#4") is None  # no longer PAID: nothing counted


def test_a_retry_past_the_orders_allowance_is_not_started(runtime, shop):
    order = shop.buy(shop.new_product(new_codes(1)))
    mark_paid_without_enqueueing(order)
    order_id = order["order_id"]
    allowed = settings().delivery_retries
    for n in range(allowed):
        orders().count_delivery_retry(order_id, f"earlier#{n + 2}")
    retried = sqs_event(order_id)
    retried["Records"][0]["attributes"]["ApproximateReceiveCount"] = "2"

    # Its queue is the runtime's DeliveryQueue (the fixture's ARN): the message goes to DeliveryDLQ.
    result = runtime.functions["DeliverFunction"].invoke(retried)

    assert result == {"batchItemFailures": []}  # dead-lettered, so done with here
    assert stored_order(order_id).status == "PAID"
    assert shop.stock(order_product(order))["sold"] == 0
    sqs, dlq = boto3.client("sqs"), runtime.info.queues["DeliveryDLQ"]

    def dead_lettered() -> list[dict]:
        messages = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=5)
        mine = [m for m in messages.get("Messages", []) if m["Body"] == json.dumps({"order_id": order_id})]
        for message in mine:  # other tests' letters come back after 5 s
            sqs.delete_message(QueueUrl=dlq, ReceiptHandle=message["ReceiptHandle"])
        return mine

    assert len(poll(dead_lettered, deadline=15, every=0.2)) == 1


def test_a_batch_of_only_worn_messages_hands_them_back_without_an_error(runtime, shop):
    """Every record received too often is handed back before the batch runs: nothing is left to run,
    which is not a failure (it was: Powertools refuses an empty batch, so the function raised)."""
    order = shop.buy(shop.new_product(new_codes(1)))
    mark_paid_without_enqueueing(order)
    worn = sqs_event(order["order_id"])
    worn["Records"][0]["attributes"]["ApproximateReceiveCount"] = str(settings().delivery_hand_back_after)

    result = runtime.functions["DeliverFunction"].invoke(worn)

    assert result == {"batchItemFailures": []}
    # The fresh copy it sent to the DeliveryQueue delivers the order.
    assert poll(lambda: stored_order(order["order_id"]).status == "DELIVERED", deadline=15)
