"""Merchant products through the local runtime: list (newest first, signed cursors, the active filter),
change (every rule, nothing written on a refusal), isolation, and what checkout and the buyer's
order view make of the product's terms (min/max, tier prices, the per-buyer daily limit, instructions)."""

import threading
import time

import boto3
import pytest
import requests

from shared.adapters import limits
from shared.adapters import merchants as merchant_store
from shared.settings import settings
from shared.store.limits import buyer_key
from tests.support import new_codes, poll

PRICE = {"amount": 1000, "currency": "CNY"}


@pytest.fixture
def merchant(runtime) -> str:
    """A merchant of its own for each test, so its listings hold only what the test made."""
    return merchant_store().create_merchant("Products test")[1]


def create(shop, key: str, **fields) -> dict:
    created = shop.merchant(
        "POST", "/merchant/products", key=key, json={"name": "Card", "price": PRICE, **fields}
    )
    assert created.status_code == 201, created.text
    return created.json()


def import_codes(shop, key: str, product_id: str, n: int) -> None:
    response = shop.merchant(
        "POST", f"/merchant/products/{product_id}/stock", key=key, json={"codes": new_codes(n)}
    )
    assert response.status_code == 200 and response.json()["added"] == n, response.text


def patch(shop, key: str, product_id: str, body) -> requests.Response:
    return shop.merchant("PATCH", f"/merchant/products/{product_id}", key=key, json=body)


def listing(shop, key: str, **params) -> dict:
    response = shop.merchant("GET", "/merchant/products", key=key, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def shown_within_ttl(shop, product_id: str, status: int) -> None:
    """Wait (read-only) until the buyers' view of the product answers `status`: the storefront keeps a
    product for PRODUCT_CACHE_SECONDS (checkout and pages alike, one container locally)."""
    url = f"{shop.url}/api/products/{product_id}"
    poll(lambda: shop.http.get(url).status_code == status, deadline=settings().product_cache_seconds + 5)


def stored_item(product_id: str) -> dict:
    return boto3.client("dynamodb").get_item(
        TableName=settings().shop_table, Key={"pk": {"S": f"product#{product_id}"}}, ConsistentRead=True
    )["Item"]


# ---------- list


def test_products_are_listed_newest_first_page_by_page(shop, merchant):
    made = [create(shop, merchant, name=f"Card {n}")["id"] for n in range(5)]

    pages, cursor = [], None
    while True:
        page = listing(shop, merchant, limit=2, **({"cursor": cursor} if cursor else {}))
        pages.append([p["id"] for p in page["products"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == [made[4:2:-1], made[2:0:-1], made[0:1]]
    assert [p["id"] for p in listing(shop, merchant)["products"]] == made[::-1]  # default limit 50


def test_a_listed_product_has_every_field_with_its_defaults(shop, merchant):
    product_id = create(shop, merchant)["id"]
    [listed] = listing(shop, merchant)["products"]
    assert listed == shop.merchant("GET", f"/merchant/products/{product_id}", key=merchant).json()
    assert {k: listed[k] for k in listed if k not in ("id", "created_at")} == {
        "name": "Card",
        "description": "",
        "price": PRICE,
        "delivery": "stock",
        "max_per_order": 10,
        "active": True,
        "when_undeliverable": "refund",
        "min_per_order": 1,
        "daily_limit_per_buyer": None,
        "unpaid_limit_per_client": None,
        "price_tiers": [],
        "instructions": "",
        "low_stock_threshold": 0,
        "sales_per_code": 1,
        "email_codes": False,
        "category": None,
        "review_deadline_minutes": 1440,
        "when_review_expires": "refund",
        "buyer_input": [],
        "topup": None,
        "manual": None,
        "generated": None,
        "license": None,
    }


def test_the_active_filter_lists_only_products_in_that_state(shop, merchant):
    kept, stopped = create(shop, merchant)["id"], create(shop, merchant)["id"]
    assert patch(shop, merchant, stopped, {"active": False}).json()["active"] is False

    assert [p["id"] for p in listing(shop, merchant, active="true")["products"]] == [kept]
    assert [p["id"] for p in listing(shop, merchant, active="false")["products"]] == [stopped]
    assert [p["id"] for p in listing(shop, merchant)["products"]] == [stopped, kept]


def test_a_filtered_listing_pages_through_many_products_it_skips(shop, merchant):
    first = create(shop, merchant)["id"]
    for _ in range(3):
        patch(shop, merchant, create(shop, merchant)["id"], {"active": False})
    last = create(shop, merchant)["id"]
    page = listing(shop, merchant, active="true", limit=1)
    assert [p["id"] for p in page["products"]] == [last]
    rest = listing(shop, merchant, active="true", limit=1, cursor=page["next_cursor"])
    assert [p["id"] for p in rest["products"]] == [first]


@pytest.mark.parametrize(
    "params",
    [{"limit": "0"}, {"limit": "101"}, {"limit": "ten"}, {"active": "yes"}, {"order": "name"}],
)
def test_bad_listing_parameters_are_422(shop, merchant, params):
    response = shop.merchant("GET", "/merchant/products", key=merchant, params=params)
    assert response.status_code == 422 and response.json()["error"]["code"].startswith(
        ("invalid_", "unknown_")
    )


def test_a_cursor_works_only_for_the_merchant_and_filter_it_was_given_for(shop, merchant):
    other = merchant_store().create_merchant("Products test B")[1]
    for _ in range(3):
        create(shop, merchant)
    cursor = listing(shop, merchant, limit=1)["next_cursor"]
    payload, _, mac = cursor.partition(".")
    forged = listing(shop, merchant, limit=2)["next_cursor"].partition(".")[0]

    for key, params in [
        (other, {"cursor": cursor}),
        (merchant, {"cursor": cursor, "active": "true"}),
        (merchant, {"cursor": f"{forged}.{mac}"}),
        (merchant, {"cursor": "garbage"}),
        (merchant, {"cursor": "x" * 600}),
    ]:
        response = shop.merchant("GET", "/merchant/products", key=key, params=params)
        assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_cursor"), params
    assert len(listing(shop, merchant, cursor=cursor)["products"]) == 2


# ---------- isolation


def test_another_merchant_can_neither_read_nor_change_nor_list_my_product(shop, merchant):
    other = merchant_store().create_merchant("Products test B")[1]
    product_id = create(shop, merchant, instructions="secret redemption steps")["id"]
    before = stored_item(product_id)
    missing = "prd_" + "0" * 20

    for method, body in [("GET", None), ("PATCH", {"price": {"amount": 1, "currency": "CNY"}})]:
        theirs = shop.merchant(method, f"/merchant/products/{product_id}", key=other, json=body)
        nobodys = shop.merchant(method, f"/merchant/products/{missing}", key=other, json=body)
        assert (theirs.status_code, theirs.json()) == (nobodys.status_code, nobodys.json())
        assert theirs.json()["error"]["code"] == "product_not_found"
    for params in ({}, {"active": "true"}, {"active": "false"}):
        assert product_id not in shop.merchant("GET", "/merchant/products", key=other, params=params).text
    assert stored_item(product_id) == before


# ---------- change


def test_a_change_sets_every_field_it_names_and_keeps_the_rest(shop, merchant):
    product = create(shop, merchant, description="kept", max_per_order=5)
    change = {
        "name": "Steam 100",
        "price": {"amount": 2000, "currency": "CNY"},
        "min_per_order": 2,
        "max_per_order": 8,
        "daily_limit_per_buyer": 6,
        "price_tiers": [
            {"min_quantity": 4, "price": {"amount": 1900, "currency": "CNY"}},
            {"min_quantity": 8, "price": {"amount": 1800, "currency": "CNY"}},
        ],
        "instructions": "Redeem at store.example/redeem",
        "low_stock_threshold": 3,
        "when_undeliverable": "hold",
    }
    changed = patch(shop, merchant, product["id"], change)
    assert changed.status_code == 200, changed.text
    assert changed.json() == {**product, **change}
    assert shop.merchant("GET", f"/merchant/products/{product['id']}", key=merchant).json() == changed.json()

    cleared = patch(shop, merchant, product["id"], {"daily_limit_per_buyer": None, "price_tiers": []})
    assert (cleared.json()["daily_limit_per_buyer"], cleared.json()["price_tiers"]) == (None, [])
    assert "daily_limit_per_buyer" not in stored_item(product["id"])


TIERS = [{"min_quantity": 3, "price": {"amount": 900, "currency": "CNY"}}]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"min_per_order": 6}, "validation_error"),  # above max_per_order (5)
        ({"max_per_order": 2}, "validation_error"),  # below min_per_order (3)
        ({"daily_limit_per_buyer": 2}, "validation_error"),  # below min_per_order
        (
            {"price_tiers": [TIERS[0], {"min_quantity": 3, "price": {"amount": 800, "currency": "CNY"}}]},
            "validation_error",
        ),
        (
            {"price_tiers": [{"min_quantity": 4, "price": {"amount": 900, "currency": "CNY"}}, TIERS[0]]},
            "validation_error",
        ),
        (
            {"price_tiers": [{"min_quantity": 4, "price": {"amount": 1000, "currency": "CNY"}}]},
            "validation_error",
        ),
        (
            {"price_tiers": [{"min_quantity": 4, "price": {"amount": 900, "currency": "USD"}}]},
            "validation_error",
        ),
        ({"price": {"amount": 1000, "currency": "USD"}}, "validation_error"),  # the tiers stay in CNY
        ({"price": {"amount": 300_000_000_000, "currency": "CNY"}, "price_tiers": []}, "validation_error"),
        ({"shards": 8}, "invalid_shards"),
        ({"sales_per_code": 2}, "invalid_sales_per_code"),
        ({"delivery": "license"}, "invalid_delivery"),
        ({"stock": 100}, "invalid_stock"),
        ({"name": None}, "invalid_name"),
        ({"name": ""}, "invalid_name"),
        ({"active": "false"}, "invalid_active"),
        ({"instructions": "x" * 2001}, "invalid_instructions"),
        ({"low_stock_threshold": -1}, "invalid_low_stock_threshold"),
        ({"when_undeliverable": "shrug"}, "invalid_when_undeliverable"),
        ({"min_per_order": 0}, "invalid_min_per_order"),
        ([], "validation_error"),
    ],
)
def test_a_change_that_breaks_a_rule_is_422_and_writes_nothing(shop, merchant, body, code):
    product_id = create(shop, merchant, min_per_order=3, max_per_order=5, price_tiers=TIERS)["id"]
    before = stored_item(product_id)
    refused = patch(shop, merchant, product_id, body)
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, code), refused.text
    assert stored_item(product_id) == before


def test_a_body_that_is_not_json_is_400_and_writes_nothing(shop, merchant):
    product_id = create(shop, merchant)["id"]
    before = stored_item(product_id)
    refused = shop.merchant("PATCH", f"/merchant/products/{product_id}", key=merchant, data=b"{not json")
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "malformed_json")
    assert stored_item(product_id) == before


def test_two_changes_at_once_cannot_together_break_a_rule(shop, merchant):
    """Each change alone is valid (min 1→6 under max 10; max 10→5 over min 1); together they are not:
    a change is written only if the product is still what it was checked against."""
    for _ in range(3):
        product_id = create(shop, merchant, max_per_order=10)["id"]
        start, answers = threading.Barrier(2), []

        def send(body):
            start.wait()
            answers.append(patch(shop, merchant, product_id, body).status_code)

        threads = [
            threading.Thread(target=send, args=(b,)) for b in ({"min_per_order": 6}, {"max_per_order": 5})
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        final = shop.merchant("GET", f"/merchant/products/{product_id}", key=merchant).json()
        assert sorted(answers) == [200, 422]
        assert final["min_per_order"] <= final["max_per_order"]


# ---------- what checkout and the buyer see


def test_a_deactivated_product_cannot_be_bought_or_seen_and_comes_back_when_reactivated(shop, merchant):
    product_id = create(shop, merchant)["id"]
    import_codes(shop, merchant, product_id, 2)
    patch(shop, merchant, product_id, {"active": False})
    shown_within_ttl(shop, product_id, 404)  # buyers see a change within PRODUCT_CACHE_SECONDS

    refused = shop.checkout(product_id)
    assert (refused.status_code, refused.json()["error"]["code"]) == (404, "product_not_found")
    assert shop.http.get(f"{shop.url}/api/products/{product_id}").status_code == 404
    assert shop.stock(product_id, key=merchant)["reserved"] == 0

    patch(shop, merchant, product_id, {"active": True})
    shown_within_ttl(shop, product_id, 200)
    assert shop.checkout(product_id).status_code == 201


def test_the_public_product_shows_the_quantity_terms_but_not_the_instructions(shop, merchant):
    tiers = [{"min_quantity": 3, "price": {"amount": 900, "currency": "CNY"}}]
    product_id = create(
        shop, merchant, min_per_order=2, max_per_order=6, price_tiers=tiers, instructions="SECRET-STEPS-7"
    )["id"]
    public = shop.http.get(f"{shop.url}/api/products/{product_id}")
    assert public.status_code == 200
    assert (public.json()["min_per_order"], public.json()["max_per_order"]) == (2, 6)
    assert public.json()["price_tiers"] == tiers
    assert "SECRET-STEPS-7" not in public.text and "instructions" not in public.json()


@pytest.mark.parametrize(
    ("quantity", "total"),
    [(2, 2000), (3, 2700), (4, 3600), (5, 3500), (6, 4200)],
    ids=["min, base price", "first tier", "last of the first tier", "second tier", "max"],
)
def test_checkout_charges_the_tier_price_for_the_quantity(shop, merchant, quantity, total):
    tiers = [
        {"min_quantity": 3, "price": {"amount": 900, "currency": "CNY"}},
        {"min_quantity": 5, "price": {"amount": 700, "currency": "CNY"}},
    ]
    product_id = create(shop, merchant, min_per_order=2, max_per_order=6, price_tiers=tiers)["id"]
    import_codes(shop, merchant, product_id, 6)
    order = shop.checkout(product_id, quantity)
    assert order.status_code == 201, order.text
    assert order.json()["total"] == {"amount": total, "currency": "CNY"}


@pytest.mark.parametrize("quantity", [1, 7])
def test_checkout_refuses_a_quantity_outside_min_and_max_and_reserves_nothing(shop, merchant, quantity):
    product_id = create(shop, merchant, min_per_order=2, max_per_order=6)["id"]
    import_codes(shop, merchant, product_id, 8)
    refused = shop.checkout(product_id, quantity)
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "validation_error")
    assert "between 2 and 6" in refused.json()["error"]["message"]
    assert shop.stock(product_id, key=merchant)["reserved"] == 0


def test_the_daily_limit_holds_exactly_when_ten_checkouts_arrive_at_once(shop, merchant):
    product_id = create(shop, merchant, max_per_order=1, daily_limit_per_buyer=3, shards=8)["id"]
    import_codes(shop, merchant, product_id, 20)
    start, answers = threading.Barrier(10), []

    def buy(n: int) -> None:
        email = "Hoarder@Example.com" if n % 2 else " hoarder@example.com"  # one buyer, written two ways
        start.wait()
        response = shop.checkout(product_id, 1, email=email)
        answers.append((response.status_code, response.json().get("error", {}).get("code")))

    threads = [threading.Thread(target=buy, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(answers, key=str) == [(201, None)] * 3 + [(429, "daily_limit_reached")] * 7
    assert shop.stock(product_id, key=merchant)["reserved"] == 3
    assert shop.checkout(product_id, 1, email="someone.else@example.com").status_code == 201


def test_the_daily_limit_counts_units_and_gives_back_a_checkout_that_failed(shop, merchant):
    product_id = create(shop, merchant, max_per_order=3, daily_limit_per_buyer=4)["id"]
    import_codes(shop, merchant, product_id, 3)
    email = "counted@example.com"

    assert shop.checkout(product_id, 3, email=email).status_code == 201
    over = shop.checkout(product_id, 2, email=email)
    assert (over.status_code, over.json()["error"]["code"]) == (429, "daily_limit_reached")
    sold_out = shop.checkout(product_id, 1, email=email)  # within the limit, but no stock left
    assert (sold_out.status_code, sold_out.json()["error"]["code"]) == (409, "out_of_stock")
    held = limits().holds(product_id, "127.0.0.1", int(time.time()))  # checkouts come from 127.0.0.1
    assert held.units(buyer_key("email", email)) == 3

    import_codes(shop, merchant, product_id, 2)
    assert shop.checkout(product_id, 1, email=email).status_code == 201  # the failed one was given back
    assert shop.checkout(product_id, 1, email=email).status_code == 429


def test_instructions_are_shown_only_to_the_token_holder_once_delivered(shop, merchant):
    product_id = create(shop, merchant, instructions="Redeem at store.example/redeem")["id"]
    import_codes(shop, merchant, product_id, 1)
    order = shop.buy(product_id)

    unpaid = shop.order(order["order_id"], order["access_token"])
    assert unpaid.status_code == 200 and "instructions" not in unpaid.json()
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    delivered = shop.wait_for(order, "DELIVERED")
    assert delivered["instructions"] == "Redeem at store.example/redeem"

    stranger = shop.order(order["order_id"], "not-the-token")
    assert stranger.status_code == 404 and "Redeem" not in stranger.text
