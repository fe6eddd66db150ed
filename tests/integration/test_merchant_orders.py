"""The merchant's orders: a list with filters and signed cursors, and one order's detail with its
codes; never another merchant's."""

import base64
import json
import logging
from datetime import datetime, timedelta

import boto3
import pytest

from functions.merchant.orders import sign_cursor
from shared.adapters import merchants as merchant_store
from shared.adapters import orders as order_store
from shared.orders import Status
from shared.settings import settings
from shared.store.orders import OrderFilter, OrderPosition
from tests.support import new_codes

EMAILS = ["alice@example.com", "Alice@Example.COM", "bob@example.com"]
PAID = {1, 7, 13, 19, 24}  # of the 25 orders, these are paid (and so delivered)


@pytest.fixture(scope="module")
def book(shop):
    """Merchant A's 25 orders on two products from three addresses (two of them one buyer in
    different case), five of them paid and delivered; every other test uses other merchants."""
    merchant, key = merchant_store().create_merchant("Orders A")
    first, second = shop.new_product(new_codes(20), key=key), shop.new_product(new_codes(5), key=key)
    placed = {}
    for i in range(25):
        product = second if i % 5 == 0 else first
        response = shop.checkout(product, email=EMAILS[i % 3])
        assert response.status_code == 201, response.text
        order = response.json()
        if i in PAID:
            shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
            shop.wait_for(order, "DELIVERED")
        placed[order["order_id"]] = {
            "product_id": product,
            "buyer": EMAILS[i % 3].lower(),
            "status": "DELIVERED" if i in PAID else "PENDING_PAYMENT",
        }
    return {"merchant": merchant, "key": key, "first": first, "second": second, "orders": placed}


@pytest.fixture
def fresh_merchant(runtime):
    return merchant_store().create_merchant("Orders B")


def listing(shop, key, **params):
    response = shop.merchant("GET", "/merchant/orders", key=key, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def every_page(shop, key, **params) -> list[list[dict]]:
    """Follow next_cursor to the end; each page as the API returned it."""
    pages, cursor = [], None
    while True:
        body = listing(shop, key, **params, **({"cursor": cursor} if cursor else {}))
        pages.append(body["orders"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50, "the cursor never ended"


def ids(orders: list[dict]) -> list[str]:
    return [o["order_id"] for o in orders]


def error_of(response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


# ---- the list


def test_the_list_is_my_orders_newest_first(shop, book):
    body = listing(shop, book["key"])  # default limit 50: all 25 on one page
    assert body["next_cursor"] is None
    assert sorted(ids(body["orders"])) == sorted(book["orders"])
    times = [datetime.fromisoformat(o["created_at"]) for o in body["orders"]]
    assert times == sorted(times, reverse=True)
    some = next(o for o in body["orders"] if book["orders"][o["order_id"]]["status"] == "DELIVERED")
    assert some == {
        "order_id": some["order_id"],
        "status": "DELIVERED",
        "product_id": book["orders"][some["order_id"]]["product_id"],
        "quantity": 1,
        "total": {"amount": 1999, "currency": "CNY"},
        "email": some["email"],
        "provider": "sandbox",
        "created_at": some["created_at"],
    }
    assert some["email"].lower() == book["orders"][some["order_id"]]["buyer"]


def test_pages_of_ten_cover_every_order_once_in_order(shop, book):
    pages = every_page(shop, book["key"], limit=10)
    assert [len(page) for page in pages] == [10, 10, 5]
    whole = listing(shop, book["key"], limit=100)["orders"]
    assert [o for page in pages for o in page] == whole  # no duplicate, no gap, same order


def test_a_cursor_may_continue_with_another_limit(shop, book):
    first = listing(shop, book["key"], limit=7)
    rest = listing(shop, book["key"], limit=100, cursor=first["next_cursor"])
    assert ids(first["orders"] + rest["orders"]) == ids(listing(shop, book["key"], limit=100)["orders"])


FILTERS = {
    "delivered": ({"status": "DELIVERED"}, lambda o, book: o["status"] == "DELIVERED"),
    "unpaid": ({"status": "PENDING_PAYMENT"}, lambda o, book: o["status"] == "PENDING_PAYMENT"),
    "expired": ({"status": "EXPIRED"}, lambda o, book: False),
    "product": (
        {"product_id": "second"},
        lambda o, book: o["product_id"] == book["second"],
    ),
    "email in any case": ({"email": "ALICE@example.com"}, lambda o, book: o["buyer"] == "alice@example.com"),
    "email": ({"email": "bob@example.com"}, lambda o, book: o["buyer"] == "bob@example.com"),
    "product and status": (
        {"product_id": "first", "status": "DELIVERED"},
        lambda o, book: o["product_id"] == book["first"] and o["status"] == "DELIVERED",
    ),
    "status and email": (
        {"status": "PENDING_PAYMENT", "email": "Bob@Example.com"},
        lambda o, book: o["status"] == "PENDING_PAYMENT" and o["buyer"] == "bob@example.com",
    ),
}


@pytest.mark.parametrize("name", FILTERS)
def test_each_filter_lists_exactly_the_matching_orders_across_pages(shop, book, name):
    params, matches = FILTERS[name]
    params = {k: book[v] if k == "product_id" else v for k, v in params.items()}
    pages = every_page(shop, book["key"], limit=3, **params)
    found = [o for page in pages for o in page]
    expected = {order_id for order_id, o in book["orders"].items() if matches(o, book)}
    assert len(ids(found)) == len(set(ids(found)))  # no order twice
    assert set(ids(found)) == expected
    assert [o for o in listing(shop, book["key"], limit=100)["orders"] if o["order_id"] in expected] == found


def test_from_is_inclusive_and_to_exclusive_in_any_offset(shop, book):
    whole = listing(shop, book["key"], limit=100)["orders"]
    times = [datetime.fromisoformat(o["created_at"]) for o in whole]
    start, end = times[19], times[5]
    in_shanghai = (end + timedelta(hours=8)).replace(tzinfo=None).isoformat(
        timespec="microseconds"
    ) + "+08:00"
    windows = [
        ({"from": start.isoformat(), "to": in_shanghai}, lambda t: start <= t < end),
        ({"from": start.isoformat().replace("+00:00", "Z")}, lambda t: t >= start),
        ({"to": end.isoformat()}, lambda t: t < end),
    ]
    for params, inside in windows:
        found = [o for page in every_page(shop, book["key"], limit=4, **params) for o in page]
        assert found == [o for o, t in zip(whole, times, strict=True) if inside(t)], params
    assert ids(listing(shop, book["key"], **windows[0][0])["orders"]) == ids(whole[6:20])


def test_paging_inside_one_request_is_bounded_and_resumes_where_it_stopped(book):
    """DynamoDB filters after its Limit: a listing reads a bounded number of pages and may return a
    short (even empty) page with a cursor, from which the rest follows with nothing lost or repeated."""
    delivered = {i for i, o in book["orders"].items() if o["status"] == "DELIVERED"}
    store, filters = order_store(), OrderFilter(status=Status.DELIVERED)
    found: list[str] = []
    short_pages, after = 0, None
    for _ in range(20):
        page = store.for_merchant(book["merchant"], filters, limit=4, after=after, page_size=3, max_pages=2)
        found += [o.order_id for o in page.orders]
        assert all(o.status == Status.DELIVERED for o in page.orders)
        short_pages += len(page.orders) < 4 and page.resume_after is not None
        after = page.resume_after
        if after is None:
            break
    assert sorted(found) == sorted(delivered) and len(found) == len(set(found))
    assert short_pages > 0  # the bound was hit: the cursor, not the page size, tells whether more follow


# ---- cursors


def _first_cursor(shop, book, **params) -> str:
    cursor = listing(shop, book["key"], limit=5, **params)["next_cursor"]
    assert cursor
    return cursor


def _reencode(cursor: str, change) -> str:
    payload, mac = cursor.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps(change(decoded)).encode()).decode().rstrip("=")
    return f"{forged}.{mac}"


def test_a_forged_cursor_is_refused(shop, book):
    cursor = _first_cursor(shop, book)
    payload, mac = cursor.split(".")
    other_order = ids(listing(shop, book["key"], limit=100)["orders"])[20]
    position = OrderPosition(
        created_at=datetime.fromisoformat("2000-01-01T00:00:00+00:00"), order_id=other_order
    )
    flipped = mac[:10] + ("A" if mac[10] != "A" else "B") + mac[11:]
    for forged in [
        "garbage",
        "a.b",
        f"{payload}.",
        f"{payload}.{flipped}",
        _reencode(cursor, lambda p: [p[0], other_order]),  # same signature, another position
        _reencode(cursor, lambda p: ["2000-01-01T00:00:00.000000+00:00", p[1]]),
        sign_cursor(position, book["merchant"], OrderFilter(), "not-the-server-secret-at-all"),
        cursor + "A" * 600,
    ]:
        response = shop.merchant("GET", "/merchant/orders", key=book["key"], params={"cursor": forged})
        assert error_of(response) == (400, "invalid_cursor"), forged


def test_a_cursor_signed_under_the_server_secret_for_me_is_accepted(shop, book):
    """The control for the test above: the same construction with the real secret works."""
    whole = listing(shop, book["key"], limit=100)["orders"]
    position = OrderPosition(
        created_at=datetime.fromisoformat(whole[9]["created_at"]), order_id=whole[9]["order_id"]
    )
    cursor = sign_cursor(position, book["merchant"], OrderFilter(), settings().order_token_secret)
    assert listing(shop, book["key"], limit=100, cursor=cursor)["orders"] == whole[10:]


def test_another_merchants_cursor_is_refused(shop, book, fresh_merchant):
    cursor = _first_cursor(shop, book)
    response = shop.merchant("GET", "/merchant/orders", key=fresh_merchant[1], params={"cursor": cursor})
    assert error_of(response) == (400, "invalid_cursor")


@pytest.mark.parametrize(
    "changed",
    [
        {},
        {"status": "DELIVERED"},
        {"status": "PENDING_PAYMENT", "email": "bob@example.com"},
        {"status": "PENDING_PAYMENT", "from": "2000-01-01T00:00:00Z"},
        {"status": "PENDING_PAYMENT", "to": "2999-01-01T00:00:00Z"},
        {"status": "PENDING_PAYMENT", "product_id": "prd_other"},
    ],
)
def test_a_cursor_only_continues_the_filters_it_was_given_for(shop, book, changed):
    cursor = _first_cursor(shop, book, status="PENDING_PAYMENT")
    response = shop.merchant("GET", "/merchant/orders", key=book["key"], params={**changed, "cursor": cursor})
    assert error_of(response) == (400, "invalid_cursor")
    same = listing(shop, book["key"], status="PENDING_PAYMENT", cursor=cursor)  # the same filters go on
    assert all(o["status"] == "PENDING_PAYMENT" for o in same["orders"]) and len(same["orders"]) == 15


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"status": "paid"}, "invalid_status"),
        ({"status": "SHIPPED"}, "invalid_status"),
        ({"limit": "0"}, "invalid_limit"),
        ({"limit": "101"}, "invalid_limit"),
        ({"limit": "ten"}, "invalid_limit"),
        ({"email": "not-an-address"}, "invalid_email"),
        ({"from": "yesterday"}, "invalid_from"),
        ({"from": "2024-05-01"}, "invalid_from"),
        ({"from": "1714521600"}, "invalid_from"),
        ({"to": "2024-05-01T00:00:00"}, "invalid_to"),  # no offset: which time would it be?
        ({"from": "2024-05-02T00:00:00Z", "to": "2024-05-01T00:00:00Z"}, "invalid_to"),
        ({"from": "2024-05-01T00:00:00Z", "to": "2024-05-01T00:00:00Z"}, "invalid_to"),
        ({"product_id": "p" * 65}, "invalid_product_id"),
        ({"stauts": "PAID"}, "unknown_parameter"),
    ],
)
def test_bad_parameters_are_422_naming_the_parameter(shop, fresh_merchant, params, code):
    response = shop.merchant("GET", "/merchant/orders", key=fresh_merchant[1], params=params)
    assert error_of(response) == (422, code)


# ---- isolation


def test_another_merchant_never_sees_or_refunds_my_orders(shop, book, fresh_merchant):
    _, key_b = fresh_merchant
    product_b = shop.new_product(new_codes(2), key=key_b)
    order_b = shop.buy(product_b)["order_id"]
    delivered = next(i for i, o in book["orders"].items() if o["status"] == "DELIVERED")
    missing = shop.merchant("GET", "/merchant/orders/ord_00000000000000000000", key=key_b)
    assert error_of(missing) == (404, "order_not_found")
    for method, path in [
        ("GET", f"/merchant/orders/{delivered}"),
        ("POST", f"/merchant/orders/{delivered}/refund"),
    ]:
        response = shop.merchant(method, path, key=key_b)
        assert (response.status_code, response.json()) == (404, missing.json()), path
    assert order_store().get(delivered).status == Status.DELIVERED  # the refund did nothing

    assert ids(listing(shop, key_b)["orders"]) == [order_b]
    assert listing(shop, key_b, product_id=book["first"])["orders"] == []
    assert order_b not in ids(listing(shop, book["key"], limit=100)["orders"])
    assert error_of(shop.merchant("GET", f"/merchant/orders/{order_b}", key=book["key"])) == (
        404,
        "order_not_found",
    )


# ---- the detail


def test_the_detail_shows_codes_only_once_delivered_and_audits_reading_them(
    shop, fresh_merchant, caplog, capfd
):
    caplog.set_level(logging.INFO)
    merchant, key = fresh_merchant
    codes = new_codes(3, prefix="DETAIL-CANARY")
    product = shop.new_product(codes, price=1500, key=key)
    order = shop.checkout(product, quantity=2, email="Carol@Example.com").json()

    unpaid = shop.merchant("GET", f"/merchant/orders/{order['order_id']}", key=key).json()
    assert "items" not in unpaid
    assert {
        k: unpaid[k] for k in ("status", "product_id", "quantity", "total", "email", "payment", "refund")
    } == {
        "status": "PENDING_PAYMENT",
        "product_id": product,
        "quantity": 2,
        "total": {"amount": 3000, "currency": "CNY"},
        "email": "Carol@example.com",
        "payment": None,
        "refund": None,
    }
    assert unpaid["history_intact"] is True and unpaid["expires_at"] == order["expires_at"]
    assert [e["type"] for e in unpaid["events"]] == ["order.created"]

    shop.runtime.sandbox.pay(order["order_id"], 3000, "CNY")
    buyer_view = shop.wait_for(order, "DELIVERED")
    capfd.readouterr()
    delivered = shop.merchant("GET", f"/merchant/orders/{order['order_id']}", key=key).json()
    assert delivered["status"] == "DELIVERED" and delivered["history_intact"] is True
    assert delivered["items"] == buyer_view["items"] and len(delivered["items"]) == 2
    assert {item["code"] for item in delivered["items"]} <= set(codes)
    assert delivered["payment"]["provider"] == "sandbox"
    assert delivered["payment"]["amount"] == {"amount": 3000, "currency": "CNY"}
    assert delivered["payment"]["payment_id"]
    types = [e["type"] for e in delivered["events"]]
    assert types[0] == "order.created" and "payment.succeeded" in types and types[-1] == "order.delivered"
    assert all(set(e) == {"type", "at", "data"} for e in delivered["events"])

    out, err = capfd.readouterr()
    logs = "\n".join(repr(vars(record)) for record in caplog.records) + out + err
    audit = [json.loads(line) for line in out.splitlines() if '"order codes read"' in line]
    assert [(a["order_id"], a["merchant_id"], a["count"]) for a in audit] == [
        (order["order_id"], merchant, 2)
    ]
    assert "DETAIL-CANARY" not in logs


def test_the_detail_tells_when_the_history_was_tampered_with(shop, fresh_merchant):
    _, key = fresh_merchant
    order = shop.buy(shop.new_product(new_codes(1), key=key))
    boto3.client("dynamodb").update_item(
        TableName=settings().orders_table,
        Key={"order_id": {"S": order["order_id"]}},
        UpdateExpression="SET history[0] = :e",
        ExpressionAttributeValues={
            ":e": {
                "S": json.dumps(
                    {"type": "order.created", "at": "2000-01-01T00:00:00Z", "data": {}, "hash": "0" * 64}
                )
            },
        },
    )
    detail = shop.merchant("GET", f"/merchant/orders/{order['order_id']}", key=key).json()
    assert detail["history_intact"] is False


def test_a_refunded_order_shows_its_refund(shop, fresh_merchant):
    _, key = fresh_merchant
    order = shop.buy(shop.new_product(new_codes(1), key=key))
    shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    shop.wait_for(order, "DELIVERED")
    refund = shop.merchant(
        "POST", f"/merchant/orders/{order['order_id']}/refund", key=key, json={"reason": "test"}
    )
    assert refund.status_code in (200, 202), refund.text
    detail = shop.merchant("GET", f"/merchant/orders/{order['order_id']}", key=key).json()
    assert detail["status"] in ("REFUNDING", "REFUNDED")
    assert detail["refund"] == {"refund_id": refund.json()["refund_id"], "error": None}
    assert "refund.requested" in [e["type"] for e in detail["events"]]


@pytest.mark.parametrize("order_id", ["ord_00000000000000000000", "nope", "..%2F..%2Fprd_x"])
def test_an_unknown_order_is_404(shop, fresh_merchant, order_id):
    response = shop.merchant("GET", f"/merchant/orders/{order_id}", key=fresh_merchant[1])
    assert error_of(response) == (404, "order_not_found")
