"""Merchant B gets 404 for everything of merchant A's, route by route, and changes nothing of A's.

The cases are generated from the template's route table: a new /merchant route fails
`test_every_merchant_route_has_an_isolation_case` until it gets a case here."""

import pytest

from infra.local.template import load
from tests.support import in_review, new_codes, stored_order

MERCHANT_ROUTES = sorted((r.method, r.path) for r in load().routes if r.path.startswith("/merchant"))

# Routes naming one of A's resources: B must get exactly what a missing resource gets.
BY_ID = {
    ("GET", "/merchant/products/{product_id}"): {},
    ("PATCH", "/merchant/products/{product_id}"): {"json": {"name": "taken over"}},
    ("POST", "/merchant/products/{product_id}/stock"): {
        "data": b"B-WAS-HERE-1",
        "headers": {"Content-Type": "text/plain"},
    },
    ("GET", "/merchant/products/{product_id}/stock"): {},
    ("DELETE", "/merchant/products/{product_id}/stock"): {"json": {"codes": ["A-CODE-0"]}},
    ("GET", "/merchant/products/{product_id}/stock/export"): {},
    ("GET", "/merchant/orders/{order_id}"): {},
    ("POST", "/merchant/orders/{order_id}/refund"): {"json": {"reason": "mine now"}},
    ("POST", "/merchant/orders/{order_id}/fulfil"): {"json": {"text": "mine now"}},
    # A's order in review: tests/integration/test_reviews.py (B's approve and reject are 404 there too).
    ("POST", "/merchant/reviews/{order_id}/approve"): {"json": {}},
    ("POST", "/merchant/reviews/{order_id}/reject"): {"json": {"reason": "mine now"}},
    # A's license (docs/licenses.md): neither shown, revoked nor reinstated for B.
    ("GET", "/merchant/licenses/{license_id}"): {},
    ("POST", "/merchant/licenses/{license_id}/revoke"): {"json": {"reason": "mine now"}},
    ("POST", "/merchant/licenses/{license_id}/reinstate"): {"json": {}},
    ("POST", "/merchant/licenses/{license_id}/reissue"): {},
}
# Routes naming one of A's resources in their query string: the same, with the query.
BY_QUERY = {("GET", "/merchant/licenses"): "order_id"}
# Routes over the caller's own collection: B's answer must not contain A's resources.
LISTS = {
    ("GET", "/merchant/products"),
    ("GET", "/merchant/orders"),
    ("GET", "/merchant/fulfilments"),
    ("GET", "/merchant/reviews"),
}
# Routes that name no one's resource (they make or configure the caller's own).
OWN = {
    ("POST", "/merchant/products"),
    ("PUT", "/merchant/webhook"),
    ("GET", "/merchant/webhook"),
    ("DELETE", "/merchant/webhook"),
    (
        "POST",
        "/merchant/webhook/test",
    ),  # to the caller's own webhook: tests/integration/test_merchant_webhooks.py
    ("GET", "/merchant/shop"),  # each merchant's own: tests/integration/test_merchant_shop.py
    ("PUT", "/merchant/shop"),
    # Each merchant's own rules: tests/integration/test_risk_rules.py checks B's PUT leaves A's alone.
    ("GET", "/merchant/risk/rules"),
    ("PUT", "/merchant/risk/rules"),
    # Keyed by the caller and a name of its choosing: tests/integration/test_topup.py checks another
    # merchant's upstream of the same name is neither read, replaced nor removed.
    ("PUT", "/merchant/upstreams/{name}"),
    ("GET", "/merchant/upstreams/{name}"),
    ("DELETE", "/merchant/upstreams/{name}"),
    # Each merchant's own license keys (tests/integration/test_licenses.py).
    ("GET", "/merchant/license-keys"),
    ("POST", "/merchant/license-keys/rotate"),
    # A key id names the caller's own key: another merchant's is 404 as an unknown one (test_licenses.py).
    ("POST", "/merchant/license-keys/{kid}/retire"),
}


def test_every_merchant_route_has_an_isolation_case():
    assert set(MERCHANT_ROUTES) == set(BY_ID) | set(BY_QUERY) | LISTS | (OWN & set(MERCHANT_ROUTES))


@pytest.fixture(scope="module")
def a_shop(shop):
    """Merchant A's product (with stock) and a delivered order, and merchant B's key."""
    from shared.adapters import merchants as merchant_store

    _, key_a = merchant_store().create_merchant("Merchant A")
    _, key_b = merchant_store().create_merchant("Merchant B")
    product_id = shop.new_product([f"A-CODE-{n}" for n in range(3)] + new_codes(2), key=key_a)
    order = shop.buy(product_id)
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    shop.wait_for(order, "DELIVERED")
    manual = shop.new_product([], key=key_a, delivery="manual", manual={"promise_minutes": 30})
    waiting = shop.buy(manual)  # paid, waiting in A's fulfilments
    assert shop.runtime.sandbox.pay(waiting["order_id"], waiting["total"]["amount"], "CNY")
    shop.wait_for(waiting, "PAID")
    reviewed = shop.buy(product_id)  # paid, in A's review queue
    in_review(shop, reviewed)
    licensed = shop.merchant(
        "POST",
        "/merchant/products",
        key=key_a,
        json={
            "name": "A's app",
            "price": {"amount": 500, "currency": "CNY"},
            "delivery": "license",
            "license": {"max_machines": 2},
        },
    ).json()["id"]
    licensed_order = shop.buy(licensed)
    assert shop.runtime.sandbox.pay(licensed_order["order_id"], licensed_order["total"]["amount"], "CNY")
    shop.wait_for(licensed_order, "DELIVERED")
    (license_id,) = stored_order(licensed_order["order_id"]).history[-1].data["licenses"]
    return {
        "key_a": key_a,
        "key_b": key_b,
        "product_id": product_id,
        "order_id": order["order_id"],
        "waiting_id": waiting["order_id"],
        "review_id": reviewed["order_id"],
        "licensed_order_id": licensed_order["order_id"],
        "license_id": license_id,
    }


def _snapshot(shop, a_shop) -> tuple:
    product = shop.merchant("GET", f"/merchant/products/{a_shop['product_id']}", key=a_shop["key_a"]).json()
    order = stored_order(a_shop["order_id"])
    license = shop.merchant("GET", f"/merchant/licenses/{a_shop['license_id']}", key=a_shop["key_a"]).json()
    stock = shop.stock(a_shop["product_id"], key=a_shop["key_a"])
    return product, stock, order.status, len(order.history), license


@pytest.mark.parametrize(("method", "path"), sorted(BY_ID), ids=[f"{m} {p}" for m, p in sorted(BY_ID)])
def test_merchant_b_gets_404_for_merchant_as_resource_and_changes_nothing(shop, a_shop, method, path):
    before = _snapshot(shop, a_shop)
    target = path.format(
        product_id=a_shop["product_id"], order_id=a_shop["order_id"], license_id=a_shop["license_id"]
    )
    missing = path.format(
        product_id="prd_" + "0" * 20, order_id="ord_" + "0" * 20, license_id="lic_" + "0" * 20
    )

    theirs = shop.merchant(method, target, key=a_shop["key_b"], **BY_ID[(method, path)])
    nobodys = shop.merchant(method, missing, key=a_shop["key_b"], **BY_ID[(method, path)])

    assert theirs.status_code == 404, theirs.text
    assert (theirs.status_code, theirs.json()) == (nobodys.status_code, nobodys.json())
    assert _snapshot(shop, a_shop) == before


@pytest.mark.parametrize(("method", "path"), sorted(LISTS))
def test_merchant_b_never_sees_merchant_as_resources_in_a_list(shop, a_shop, method, path):
    mine = shop.merchant(method, path, key=a_shop["key_a"])
    theirs = shop.merchant(method, path, key=a_shop["key_b"])
    assert mine.status_code == theirs.status_code == 200, (mine.text, theirs.text)
    ids = (a_shop["product_id"], a_shop["order_id"], a_shop["waiting_id"], a_shop["review_id"])
    assert any(id_ in mine.text for id_ in ids)
    assert not any(id_ in theirs.text for id_ in ids)


@pytest.mark.parametrize(("method", "path"), sorted(BY_QUERY))
def test_merchant_b_gets_404_for_merchant_as_resource_named_in_a_query(shop, a_shop, method, path):
    before = _snapshot(shop, a_shop)
    name = BY_QUERY[(method, path)]
    theirs = shop.merchant(method, path, key=a_shop["key_b"], params={name: a_shop["licensed_order_id"]})
    nobodys = shop.merchant(method, path, key=a_shop["key_b"], params={name: "ord_" + "0" * 20})
    mine = shop.merchant(method, path, key=a_shop["key_a"], params={name: a_shop["licensed_order_id"]})
    assert mine.status_code == 200 and a_shop["license_id"] in mine.text
    assert theirs.status_code == 404, theirs.text
    assert (theirs.status_code, theirs.json()) == (nobodys.status_code, nobodys.json())
    assert _snapshot(shop, a_shop) == before
