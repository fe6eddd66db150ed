"""The real AWS's faults, against the local runtime (tests/faults_aws.py): an answer lost after its
request applied (the SDK sends it again) and throttling past the SDK's retries. Every write is safe
to repeat; a throttled request answers 503 with Retry-After and leaves nothing taken (DESIGN.md)."""

import hashlib
import json
import secrets
import threading
import time

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters.base import DEFAULT_PROVIDERS
from botocore.exceptions import ClientError
from pynamodb.models import Model

from functions.notify import mail
from infra.local.lambdas import LocalFunction
from infra.local.triggers import QueuePoller
from shared import aws
from shared.adapters import (
    allocation,
    delivery_queue,
    limits,
    merchants,
    orders,
    products,
    stock_changes,
    stock_upkeep,
    webhooks,
)
from shared.errors import OutOfStock, TooMany
from shared.orders import Payment, utcnow
from shared.providers import registry
from shared.queues import notify_queue
from shared.settings import settings
from shared.store.limits import buyer_key
from tests.faults_aws import key_prefix, lost_answer, on_table, throttled, watched
from tests.integration.test_reservation_caps import buy as buy_from
from tests.support import expire_all, make_queue_pair, new_codes, poll, stored_order

T0 = utcnow()


def held_tickets(email: str, client: str = "127.0.0.1") -> int:
    """The unpaid-order tickets an e-mail holds from one client (checkouts over HTTP come from 127.0.0.1)."""
    key = buyer_key("email", f"{email}\0{client}")
    table = settings().limits_table
    found = boto3.client("dynamodb").query(
        TableName=table, KeyConditionExpression="pk = :k", ExpressionAttributeValues={":k": {"S": key}}
    )
    return found["Count"]


def unpaid_units(product_id: str, email: str, client: str = "127.0.0.1") -> int:
    """The units an e-mail holds unpaid of a product from one client: what its daily limit counts
    besides the units paid today."""
    return limits().holds(product_id, client, int(time.time())).units(buyer_key("email", email))


def client_of(email: str) -> str:
    """A client address of the e-mail's own."""
    # 198.18.0.0/16 (benchmarking, RFC 2544): no other test's address, 65,536 of them.
    digest = int(hashlib.sha256(email.encode()).hexdigest(), 16)
    return f"198.18.{digest >> 8 & 255}.{digest & 255}"


def buy(product_id: str, email: str, caps=(2, 100)):
    """A checkout in process, from the e-mail's own client address."""
    return buy_from(product_id, email, client_of(email), caps)


# ---- the hooks themselves


def test_every_client_retries_in_standard_mode_with_three_attempts(runtime):
    for store in (limits, orders, allocation, stock_changes, stock_upkeep, merchants, products, webhooks):
        store()  # each names its models' tables
    models = [m for m in _models(Model) if getattr(m.Meta, "table_name", None)]
    clients = [m._get_connection().connection.client for m in models]  # PynamoDB's, one per model
    clients += [delivery_queue()._sqs, notify_queue()._sqs, merchants()._kms, mail._ses()]
    registry.configured()  # reads the provider secret through Powertools' default provider
    clients += [DEFAULT_PROVIDERS["secrets"].client]

    assert len(models) >= 8
    assert [c.meta.config.retries for c in clients] == [aws.RETRIES] * len(clients)


def _models(base: type) -> list[type]:
    return [m for sub in base.__subclasses__() for m in [sub, *_models(sub)]]


def test_a_lost_answer_is_applied_and_then_sent_again_by_the_sdk(runtime):
    client, table = aws.client("dynamodb"), settings().limits_table
    key = {"pk": {"S": f"test#{secrets.token_hex(6)}"}, "sk": {"S": "n"}}
    with lost_answer("UpdateItem", on_table(table, pk=key["pk"]["S"])) as fault:
        client.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="ADD n :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
        )

    assert (fault.hits, fault.seen) == (1, 2)  # one answer lost; the SDK's retry went through
    stored = client.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    assert stored["n"] == {"N": "2"}  # a write that only adds is not safe to repeat


def test_a_throttle_is_retried_by_the_sdk_then_raised(runtime):
    client, table = aws.client("dynamodb"), settings().limits_table
    key = {"pk": {"S": f"test#{secrets.token_hex(6)}"}, "sk": {"S": "n"}}
    with (
        throttled("GetItem", on_table(table, pk=key["pk"]["S"])) as fault,
        pytest.raises(ClientError) as refused,
    ):
        client.get_item(TableName=table, Key=key)

    assert refused.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert fault.seen == aws.RETRIES["total_max_attempts"]


# ---- the buyer's caps and daily limits: safe to repeat


def test_a_lost_answer_on_the_unpaid_hold_does_not_hold_twice(shop):
    product_id = shop.new_product(new_codes(5), max_per_order=1, daily_limit_per_buyer=3)
    email = f"lost-{secrets.token_hex(4)}@example.com"
    hold = key_prefix(settings().limits_table, "pk", f"unpaid#{product_id}#")

    with lost_answer("PutItem", hold) as fault:
        assert shop.checkout(product_id, 1, email=email).status_code == 201
    assert (fault.hits, fault.seen) == (1, 2)

    assert [shop.checkout(product_id, 1, email=email).status_code for _ in range(2)] == [201, 201]
    over = shop.checkout(product_id, 1, email=email)
    assert (over.status_code, over.json()["error"]["code"]) == (429, "daily_limit_reached")
    assert 0 < int(over.headers["Retry-After"]) <= 86_400  # the next UTC day
    assert unpaid_units(product_id, email) == 3


def test_the_daily_limit_stays_exact_when_every_hold_loses_its_first_answer_at_once(shop):
    product_id = shop.new_product(new_codes(20), max_per_order=1, daily_limit_per_buyer=3, shards=8)
    email = f"burst-{secrets.token_hex(4)}@example.com"
    hold = key_prefix(settings().limits_table, "pk", f"unpaid#{product_id}#")
    start, answers = threading.Barrier(10), []

    def attempt() -> None:
        start.wait()
        answers.append(shop.checkout(product_id, 1, email=email).status_code)

    with lost_answer("PutItem", hold, times=None, attempt=1) as fault:
        threads = [threading.Thread(target=attempt) for _ in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert fault.hits >= 3  # every hold's first attempt applied (or was refused) and lost its answer
    assert sorted(answers) == [201] * 3 + [429] * 7
    assert unpaid_units(product_id, email) == 3
    assert shop.stock(product_id)["reserved"] == 3


def test_a_lost_answer_on_giving_the_unpaid_hold_back_does_not_give_back_twice(shop):
    product_id = shop.new_product(new_codes(2), max_per_order=2, daily_limit_per_buyer=4)
    email = f"giveback-{secrets.token_hex(4)}@example.com"
    assert shop.checkout(product_id, 2, email=email).status_code == 201  # holds 2, sold out

    hold = key_prefix(settings().limits_table, "pk", f"unpaid#{product_id}#")

    def giving_back(params: dict) -> bool:  # the write that removes what the failed checkout held
        return hold(params) and params["Item"]["version"]["N"] == "3"  # 1: the first, 2: this one's hold

    with lost_answer("PutItem", giving_back) as fault:
        sold_out = shop.checkout(product_id, 1, email=email)
    assert (sold_out.status_code, sold_out.json()["error"]["code"]) == (409, "out_of_stock")
    assert (fault.hits, fault.seen) == (1, 2)

    assert unpaid_units(product_id, email) == 2
    imported = shop.merchant(
        "POST",
        f"/merchant/products/{product_id}/stock",
        data="\n".join(new_codes(3)).encode(),
        headers={"Content-Type": "text/plain"},
    )
    assert imported.status_code == 200
    assert [shop.checkout(product_id, 1, email=email).status_code for _ in range(3)] == [201, 201, 429]


def test_a_lost_answer_on_taking_a_ticket_does_not_hold_two(shop):
    product_id = shop.new_product(new_codes(5))
    email = f"ticket-{secrets.token_hex(4)}@example.com"

    ticket = on_table(settings().limits_table, pk=buyer_key("email", f"{email}\0{client_of(email)}"))
    with lost_answer("PutItem", ticket) as fault:
        first = buy(product_id, email)
    assert (fault.hits, fault.seen) == (1, 2)
    assert held_tickets(email, client_of(email)) == 1

    buy(product_id, email)  # the cap is 2: the second unpaid order still fits
    with pytest.raises(TooMany):
        buy(product_id, email)
    assert shop.runtime.sandbox.pay(first.order.order_id, first.order.total.amount, "CNY")
    assert held_tickets(email, client_of(email)) == 1
    buy(product_id, email)


def test_a_lost_answer_on_the_stock_take_takes_the_slots_once(shop):
    """The shard claim records a token: the SDK's retry is refused and the claim finds its own range."""
    product_id = shop.new_product(new_codes(4), shards=1, max_per_order=2)
    shard = on_table(settings().stock_table, pk=f"{product_id}#shard#0000")
    with lost_answer("UpdateItem", shard) as fault:
        order = shop.buy(product_id, quantity=2)
    assert (fault.hits, fault.seen) == (1, 2)
    assert shop.stock(product_id) == {"available": 2, "reserved": 2, "sold": 0, "returned": 0, "imported": 4}
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    assert len(shop.wait_for(order, "DELIVERED")["items"]) == 2
    assert shop.checkout(product_id, 2).status_code == 201  # the other two were never taken


def test_a_lost_answer_on_giving_a_piece_back_does_not_give_it_back_twice(shop):
    """A claim that cannot be completed winds its fresh piece back once: never back to the cursor and
    into the pool as well (the code would count, and could be handed out, twice)."""
    product_id = shop.new_product(new_codes(2), shards=2, max_per_order=2)  # one code a shard
    late = shop.buy(product_id)
    expire_all()  # its slot is pooled
    own = stored_order(late["order_id"]).slots

    def giving_back(params: dict) -> bool:  # the shard write that winds a claim back (`_untake`)
        values = params.get("ExpressionAttributeValues", {}).values()
        return params.get("TableName") == settings().stock_table and any(
            v.get("S", "").startswith("back:") for v in values
        )

    # A late payment never takes its own old slots back: the fresh piece alone cannot make 2.
    with lost_answer("UpdateItem", giving_back) as fault, pytest.raises(OutOfStock):
        allocation().claim(product_id, 2, 2, late["order_id"], avoid=own)
    assert (fault.hits, fault.seen) == (1, 2)
    assert shop.stock(product_id) == {"available": 2, "reserved": 0, "sold": 0, "returned": 0, "imported": 2}
    order = shop.buy(product_id, quantity=2)
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    assert len({item["code"] for item in shop.wait_for(order, "DELIVERED")["items"]}) == 2


def test_a_lost_answer_on_writing_the_order_keeps_its_tickets_and_hold(shop):
    product_id = shop.new_product(new_codes(5), max_per_order=1, daily_limit_per_buyer=2)
    email = f"order-{secrets.token_hex(4)}@example.com"

    with lost_answer("PutItem", on_table(settings().orders_table)) as fault:
        created = shop.checkout(product_id, 1, email=email)
    assert created.status_code == 201 and (fault.hits, fault.seen) == (1, 2)

    assert stored_order(created.json()["order_id"]).status == "PENDING_PAYMENT"
    assert held_tickets(email) == 1  # the order's ticket, still held
    assert unpaid_units(product_id, email) == 1
    assert [shop.checkout(product_id, 1, email=email).status_code for _ in range(2)] == [201, 429]


# ---- throttled past the SDK's retries: 503, Retry-After, nothing taken or lost


def test_a_throttled_checkout_is_503_with_retry_after_and_takes_nothing(shop):
    product_id = shop.new_product(new_codes(3), shards=1, daily_limit_per_buyer=5)
    email = f"throttled-{secrets.token_hex(4)}@example.com"
    key = {"Idempotency-Key": secrets.token_hex(16)}
    body = {"product_id": product_id, "quantity": 2, "email": email}

    with throttled(
        "UpdateItem", on_table(settings().stock_table, pk=f"{product_id}#shard#0000")
    ) as fault:  # the stock take
        refused = shop.http.post(f"{shop.url}/api/orders", json=body, headers=key, timeout=30)

    assert fault.hits == aws.RETRIES["total_max_attempts"]
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert refused.json()["error"]["code"] == "busy"
    assert shop.stock(product_id) == {"available": 3, "reserved": 0, "sold": 0, "returned": 0, "imported": 3}
    assert unpaid_units(product_id, email) == 0
    assert held_tickets(email) == 0

    again = shop.http.post(f"{shop.url}/api/orders", json=body, headers=key, timeout=30)
    assert again.status_code == 201, again.text


def test_a_checkout_throttled_writing_its_order_gives_everything_back_at_once(shop):
    product_id = shop.new_product(new_codes(3), shards=1, daily_limit_per_buyer=5)
    email = f"unwritten-{secrets.token_hex(4)}@example.com"

    with throttled("PutItem", on_table(settings().orders_table)):
        refused = shop.checkout(product_id, 2, email=email)

    assert (refused.status_code, refused.json()["error"]["code"]) == (503, "busy")
    assert refused.headers["Retry-After"] == "1"
    assert unpaid_units(product_id, email) == 0
    assert held_tickets(email) == 0
    # Every attempt answered and a strongly consistent read finds no order: its slots go back now,
    # not after reconciliation's grace period (a throttling storm must not look like a sell-out).
    assert shop.stock(product_id) == {"available": 3, "reserved": 0, "sold": 0, "returned": 0, "imported": 3}
    assert shop.checkout(product_id, 3, email=email).status_code == 201


def test_an_order_write_throttled_after_its_first_attempt_applied_is_the_order(shop):
    product_id = shop.new_product(new_codes(3), daily_limit_per_buyer=5)
    email = f"applied-{secrets.token_hex(4)}@example.com"
    order_put = on_table(settings().orders_table)

    with lost_answer("PutItem", order_put, attempt=1), throttled("PutItem", order_put) as throttle:
        created = shop.checkout(product_id, 2, email=email)

    assert throttle.hits == aws.RETRIES["total_max_attempts"] - 1  # the SDK's retries, refused
    assert created.status_code == 201, created.text  # a strongly consistent read found the order
    assert stored_order(created.json()["order_id"]).quantity == 2
    assert unpaid_units(product_id, email) == 2
    assert held_tickets(email) == 1
    assert shop.stock(product_id)["reserved"] == 2


def test_a_throttled_callback_is_503_and_its_retry_delivers(shop):
    order = shop.buy(shop.new_product(new_codes(1)))
    callback = shop.payment_event(order)

    with throttled("UpdateItem", on_table(settings().orders_table, order_id=order["order_id"])):
        refused = shop.callback(callback)
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert stored_order(order["order_id"]).status == "PENDING_PAYMENT"

    assert shop.callback(callback).status_code == 200  # the provider's retry
    delivered = shop.wait_for(order, "DELIVERED")
    assert len(delivered["items"]) == 1
    assert [e["type"] for e in delivered["events"]].count("payment.succeeded") == 1


def test_a_throttled_enqueue_loses_no_delivery(shop):
    order = shop.buy(shop.new_product(new_codes(1)))
    callback = shop.payment_event(order)
    queue = settings().delivery_queue_url

    with throttled("SendMessage", lambda params: params.get("QueueUrl") == queue, service="sqs"):
        refused = shop.callback(callback)
    assert refused.status_code == 503
    assert stored_order(order["order_id"]).status == "PAID"  # paid, but its delivery message never left

    assert shop.callback(callback).status_code == 200  # the provider's retry sends it
    assert len(shop.wait_for(order, "DELIVERED")["items"]) == 1


def test_a_delivery_throttled_past_the_sdks_retries_comes_back_from_sqs(runtime, shop):
    codes = new_codes(2)
    order = shop.buy(shop.new_product(codes), quantity=2)
    record = stored_order(order["order_id"])
    paid = Payment(provider="sandbox", payment_id="pay_t", event_id="evt_t", amount=record.total)
    orders().transition(record, "payment.succeeded", utcnow(), {"payment_id": "pay_t"}, payment=paid)
    sqs = boto3.client("sqs")
    queue, arn, dlq = make_queue_pair(visibility=1, max_receives=5)
    deliver = LocalFunction("DeliverFunction", "functions.deliver.handler.lambda_handler", 512, 10)
    poller = QueuePoller(deliver, queue, arn, batch_size=10, report_failures=True)
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"order_id": order["order_id"]}))

    transition = on_table(settings().orders_table, order_id=order["order_id"])
    receives = []
    with throttled("UpdateItem", transition, times=aws.RETRIES["total_max_attempts"]) as fault:

        def delivered() -> bool:
            receives.append(poller.poll_once(wait_seconds=1))
            return stored_order(order["order_id"]).status == "DELIVERED"

        poll(delivered, deadline=20, every=0.1)

    assert fault.hits == aws.RETRIES["total_max_attempts"]  # the first receive's DELIVERED write failed
    assert sum(receives) == 2  # ... and SQS handed the message out again
    assert not sqs.receive_message(QueueUrl=dlq, VisibilityTimeout=0).get("Messages")
    assert len(shop.order(order["order_id"], order["access_token"]).json()["items"]) == 2


def test_a_lost_answer_on_a_removals_shrink_still_removes_the_code_once(shop):
    """The removal's one shard write carries a token: its retry finds it applied and the removal
    finishes, instead of leaving the shard fenced with the removed code still in a slot."""
    codes = new_codes(6)
    product_id = shop.new_product(codes, shards=1, max_per_order=5)

    def shrinking(params: dict) -> bool:
        names = params.get("ExpressionAttributeNames", {}).values()
        return params.get("TableName") == settings().stock_table and "last_removal" in names

    with lost_answer("UpdateItem", shrinking) as fault:
        removed = shop.merchant(
            "DELETE", f"/merchant/products/{product_id}/stock", json={"codes": [codes[2]]}
        )
    assert (fault.hits, fault.seen) == (1, 2)
    assert removed.status_code == 200 and removed.json()["removed"] == 1, removed.text
    assert shop.stock(product_id)["imported"] == 5
    order = shop.buy(product_id, quantity=5)
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    sold = {item["code"] for item in shop.wait_for(order, "DELIVERED")["items"]}
    assert sold == set(codes) - {codes[2]}
    assert stock_upkeep().audit(product_id, 1) == []


def test_a_sold_out_shard_refuses_without_reading_it_back(shop):
    """Only a refusal on the SDK's retry can hide a claim that applied: a first refusal costs no read."""
    product_id = shop.new_product(new_codes(1), shards=2)
    shop.buy(product_id)
    shard_items = key_prefix(settings().stock_table, "pk", f"{product_id}#shard#")
    with watched("UpdateItem", shard_items) as takes, watched("GetItem", shard_items) as reads:
        assert shop.checkout(product_id).status_code == 409
    assert (takes.seen, reads.seen) == (2, 0)  # one refused take a shard, nothing read back
