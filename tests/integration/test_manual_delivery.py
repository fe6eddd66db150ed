"""Manual delivery and buyer input, end to end on the local runtime: the buyer fills the product's
fields (checked, sealed), pays, is told the promised time; the merchant sees the order in its queue,
reads the input (audited) and fulfils it once; past the promise an alarm, past the deadline the policy."""

from datetime import timedelta

import boto3
import pytest

from shared.adapters import orders
from shared.orders import Status, utcnow
from shared.settings import settings
from tests.support import stored_order

FIELDS = [
    {"name": "uid", "label": {"zh-CN": "游戏 UID", "en": "Game UID"}, "type": "number", "confirm": True},
    {
        "name": "server",
        "label": {"zh-CN": "区服", "en": "Server"},
        "type": "select",
        "options": ["Asia", "Europe"],
    },
    {"name": "note", "label": {"zh-CN": "备注", "en": "Note"}, "required": False, "pattern": "[a-z ]{1,20}"},
]


def manual_product(shop, key=None, policy="refund", **fields) -> str:
    return shop.new_product(
        [],
        key=key,
        delivery="manual",
        manual={"promise_minutes": 30, "deadline_minutes": 120},
        buyer_input=FIELDS,
        when_undeliverable=policy,
        **fields,
    )


def paid_manual_order(shop, product_id: str, quantity: int = 1) -> dict:
    answer = shop.checkout(product_id, quantity, buyer_input={"uid": "10086", "server": "Asia"})
    assert answer.status_code == 201, answer.text
    order = answer.json()
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    shop.wait_for(order, "PAID")
    return order


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"server": "Asia"}, "uid"),  # required, missing
        ({"uid": "10a86", "server": "Asia"}, "uid"),  # not a number
        ({"uid": "10086", "server": "Mars"}, "server"),  # not an option
        ({"uid": "10086", "server": "Asia", "note": "NO CAPS"}, "note"),  # not the merchant's pattern
        ({"uid": "10086", "server": "Asia", "level": "99"}, "level"),  # not a field of this product
    ],
)
def test_wrong_buyer_input_is_refused_naming_the_field_and_nothing_is_written(shop, given, field):
    product_id = manual_product(shop)
    before = shop.merchant("GET", "/merchant/orders", params={"product_id": product_id}).json()["orders"]

    answer = shop.checkout(product_id, buyer_input=given)

    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid_buyer_input"
    assert f"buyer_input.{field}" in answer.json()["error"]["message"]
    assert all(value not in answer.text for value in given.values())  # the field, never the value
    after = shop.merchant("GET", "/merchant/orders", params={"product_id": product_id}).json()["orders"]
    assert after == before == []


def test_a_manual_order_waits_for_its_merchant_then_shows_what_it_was_fulfilled_with(shop):
    product_id = manual_product(shop)
    public = shop.http.get(f"{shop.url}/api/products/{product_id}", timeout=30).json()
    assert public["available"] is None and public["delivery"] == {
        "mode": "manual",
        "eta_seconds": 1800,
        "kind": "manual",
    }
    assert [f["name"] for f in public["buyer_input"]] == ["uid", "server", "note"]

    order = paid_manual_order(shop, product_id, quantity=2)

    waiting = shop.order(order["order_id"], order["access_token"]).json()
    assert waiting["status"] == "PAID" and waiting["delivery"] == "manual"
    assert waiting["promise_minutes"] == 30 and "items" not in waiting
    queue = shop.merchant("GET", "/merchant/fulfilments").json()["orders"]
    assert order["order_id"] in [o["order_id"] for o in queue]
    detail = shop.merchant("GET", f"/merchant/orders/{order['order_id']}").json()
    assert detail["buyer_input"] == {"uid": "10086", "server": "Asia"}

    fulfilment = {"text": "Credited to UID 10086 on Asia.", "codes": ["GIFT-1", "GIFT-2"]}
    first = shop.merchant("POST", f"/merchant/orders/{order['order_id']}/fulfil", json=fulfilment)
    again = shop.merchant("POST", f"/merchant/orders/{order['order_id']}/fulfil", json=fulfilment)
    other = shop.merchant(
        "POST", f"/merchant/orders/{order['order_id']}/fulfil", json={"text": "something else"}
    )

    assert (first.status_code, first.json()["status"]) == (200, "DELIVERED")
    assert again.status_code == 200  # a retry whose first answer was lost: the same answer
    assert other.status_code == 409 and other.json()["error"]["code"] == "order_not_awaiting_fulfilment"
    delivered = shop.order(order["order_id"], order["access_token"]).json()
    assert delivered["status"] == "DELIVERED" and delivered["text"] == fulfilment["text"]
    assert [item["code"] for item in delivered["items"]] == fulfilment["codes"]
    assert [e.type for e in stored_order(order["order_id"]).history].count("order.delivered") == 1
    queue = shop.merchant("GET", "/merchant/fulfilments").json()["orders"]
    assert order["order_id"] not in [o["order_id"] for o in queue]


def test_buyer_input_and_fulfilment_are_stored_sealed(shop):
    order = paid_manual_order(shop, manual_product(shop))
    shop.merchant("POST", f"/merchant/orders/{order['order_id']}/fulfil", json={"text": "SECRET-ACCOUNT-PW"})

    item = boto3.client("dynamodb").get_item(
        TableName=settings().orders_table, Key={"order_id": {"S": order["order_id"]}}
    )["Item"]

    raw = repr(item)
    assert "10086" not in raw and "SECRET-ACCOUNT-PW" not in raw
    assert "sealed_input" in item and "sealed_fulfilment" in item


def test_only_a_paid_manual_order_of_ones_own_is_fulfilled(shop):
    from shared.adapters import merchants

    stocked = shop.buy(shop.new_product(["CODE-A"]))
    refused = shop.merchant("POST", f"/merchant/orders/{stocked['order_id']}/fulfil", json={"text": "x"})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_manual"

    product_id = manual_product(shop)
    unpaid = shop.checkout(product_id, buyer_input={"uid": "1", "server": "Asia"}).json()
    early = shop.merchant("POST", f"/merchant/orders/{unpaid['order_id']}/fulfil", json={"text": "x"})
    assert early.status_code == 409 and early.json()["error"]["code"] == "order_not_awaiting_fulfilment"

    paid = paid_manual_order(shop, product_id, quantity=2)
    short = shop.merchant("POST", f"/merchant/orders/{paid['order_id']}/fulfil", json={"codes": ["ONLY-ONE"]})
    assert short.status_code == 409 and short.json()["error"]["code"] == "codes_do_not_match_quantity"

    _, other_key = merchants().create_merchant("Another shop")
    theirs = shop.merchant("GET", "/merchant/fulfilments", key=other_key).json()["orders"]
    assert paid["order_id"] not in [o["order_id"] for o in theirs]
    assert stored_order(paid["order_id"]).status == Status.PAID


def test_a_manual_product_takes_no_codes(shop):
    product_id = manual_product(shop)
    imported = shop.merchant(
        "POST",
        f"/merchant/products/{product_id}/stock",
        data=b"CODE-1",
        headers={"Content-Type": "text/plain"},
    )
    assert imported.status_code == 422 and imported.json()["error"]["code"] == "not_stocked"


@pytest.mark.parametrize(
    ("policy", "ends"), [("refund", {Status.REFUNDING, Status.REFUNDED}), ("hold", {Status.IN_REVIEW})]
)
def test_past_its_promise_a_manual_order_is_late_once_and_past_its_deadline_the_policy_applies(
    shop, policy, ends
):
    from functions.reconcile.run import reconcile

    order = paid_manual_order(shop, manual_product(shop, policy=policy))
    now = utcnow()

    early = reconcile(settings(), now + timedelta(minutes=10))
    late = reconcile(settings(), now + timedelta(minutes=31))
    still_late = reconcile(settings(), now + timedelta(minutes=60))

    assert order["order_id"] not in early["late_fulfilments"]
    assert order["order_id"] in late["late_fulfilments"]
    assert order["order_id"] not in still_late["late_fulfilments"]  # told once
    assert orders().get(order["order_id"]).status == Status.PAID

    past = reconcile(settings(), now + timedelta(minutes=121))

    assert order["order_id"] in past["gave_up"]
    assert orders().get(order["order_id"]).status in ends
    queue = shop.merchant("GET", "/merchant/fulfilments").json()["orders"]
    assert order["order_id"] not in [o["order_id"] for o in queue]


def test_a_products_fields_and_promise_can_be_changed_but_not_its_delivery(shop):
    product_id = manual_product(shop)
    changed = shop.merchant(
        "PATCH",
        f"/merchant/products/{product_id}",
        json={"buyer_input": FIELDS[:1], "manual": {"promise_minutes": 10, "deadline_minutes": 60}},
    )
    assert changed.status_code == 200, changed.text
    assert [f["name"] for f in changed.json()["buyer_input"]] == ["uid"]
    assert changed.json()["manual"] == {"promise_minutes": 10, "deadline_minutes": 60}
    refused = shop.merchant("PATCH", f"/merchant/products/{product_id}", json={"delivery": "stock"})
    assert refused.status_code == 422


def test_a_waiting_manual_order_refunded_by_its_merchant_leaves_the_queue(shop):
    order = paid_manual_order(shop, manual_product(shop))

    refunded = shop.merchant(
        "POST", f"/merchant/orders/{order['order_id']}/refund", json={"reason": "no stock"}
    )

    assert refunded.status_code in (200, 202), refunded.text
    assert orders().get(order["order_id"]).status in (Status.REFUNDING, Status.REFUNDED)
    queue = shop.merchant("GET", "/merchant/fulfilments").json()["orders"]
    assert order["order_id"] not in [o["order_id"] for o in queue]
    late = shop.merchant("POST", f"/merchant/orders/{order['order_id']}/fulfil", json={"text": "too late"})
    assert late.status_code == 409
