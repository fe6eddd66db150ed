"""Merchant endpoints behind the API-key authorizer: products, stock import, stock levels."""

import pytest

from shared.adapters import merchants as merchant_store
from shared.ids import key_hash
from tests.support import all_items, event, new_codes, stored_text


@pytest.fixture(scope="module")
def other_merchant_key(runtime):
    return merchant_store().create_merchant("Merchant B")[1]


def test_the_authorizer_maps_a_key_to_its_merchant_and_refuses_others(runtime, shop):
    authorizer = runtime.functions["MerchantAuthorizerFunction"]
    ok = authorizer.invoke(
        event("authorizer_request", headers={"authorization": f"Bearer {shop.merchant_key}"})
    )
    assert ok["isAuthorized"] is True and ok["context"]["merchant_id"].startswith("mer_")
    for header in ("Bearer mk_test_unknown", "Bearer ", "Basic abc", shop.merchant_key):
        assert authorizer.invoke(event("authorizer_request", headers={"authorization": header})) == {
            "isAuthorized": False
        }


def test_api_keys_are_stored_only_as_hashes(shop):
    stored = stored_text()
    assert shop.merchant_key not in stored and key_hash(shop.merchant_key) in stored


@pytest.mark.parametrize(("key", "status"), [(None, 401), ("mk_test_nope", 403)])
def test_merchant_routes_need_a_valid_key(shop, key, status):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = shop.http.post(
        f"{shop.url}/merchant/products",
        json={"name": "x", "price": {"amount": 1, "currency": "CNY"}},
        headers=headers,
    )
    assert response.status_code == status


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"price": {"amount": 100, "currency": "CNY"}}, "invalid_name"),
        ({"name": "x", "price": {"amount": 19.99, "currency": "CNY"}}, "invalid_price"),
        ({"name": "x", "price": {"amount": 100, "currency": "cny"}}, "invalid_price"),
        (
            {"name": "x", "price": {"amount": 100, "currency": "CNY"}, "delivery": "subscription"},
            "invalid_delivery",
        ),
        (
            {"name": "x", "price": {"amount": 100, "currency": "CNY"}, "max_per_order": 0},
            "invalid_max_per_order",
        ),
    ],
)
def test_an_invalid_product_is_422_and_not_created(shop, body, code):
    before = len(all_items())
    response = shop.merchant("POST", "/merchant/products", json=body)
    assert (response.status_code, response.json()["error"]["code"]) == (422, code)
    assert len(all_items()) == before


def test_import_reports_duplicates_and_rejects_with_line_numbers(shop):
    product_id = shop.new_product(["ALREADY-1"])
    body = "NEW-1\n\nALREADY-1\nNEW-2\r\nNEW-1\n" + "X" * 513 + "\n"
    response = shop.merchant(
        "POST",
        f"/merchant/products/{product_id}/stock",
        data=body.encode(),
        headers={"Content-Type": "text/plain"},
    )
    assert response.status_code == 200
    assert response.json() == {
        "added": 2,
        "duplicates": 2,
        "rejected": 2,
        "problems": [
            {"line": 2, "reason": "blank line"},
            {"line": 3, "reason": "duplicate"},
            {"line": 5, "reason": "duplicate"},
            {"line": 6, "reason": "longer than 512 characters"},
        ],
    }
    assert shop.stock(product_id)["available"] == 3


def test_import_accepts_json(shop):
    product_id = shop.new_product([])
    response = shop.merchant("POST", f"/merchant/products/{product_id}/stock", json={"codes": new_codes(3)})
    assert response.json()["added"] == 3 and shop.stock(product_id)["imported"] == 3


def test_importing_the_same_file_twice_adds_nothing_the_second_time(shop):
    codes = new_codes(20)
    product_id = shop.new_product(codes)
    again = shop.merchant(
        "POST",
        f"/merchant/products/{product_id}/stock",
        data="\n".join(codes).encode(),
        headers={"Content-Type": "text/plain"},
    )
    assert again.json()["added"] == 0 and again.json()["duplicates"] == 20
    assert shop.stock(product_id) == {
        "available": 20,
        "reserved": 0,
        "sold": 0,
        "returned": 0,
        "imported": 20,
    }


def test_another_merchant_sees_nothing_of_mine(shop, other_merchant_key):
    product_id = shop.new_product(new_codes(1))
    for method, path, kwargs in [
        ("GET", f"/merchant/products/{product_id}", {}),
        ("GET", f"/merchant/products/{product_id}/stock", {}),
        ("POST", f"/merchant/products/{product_id}/stock", {"json": {"codes": ["INJECTED"]}}),
    ]:
        response = shop.merchant(method, path, key=other_merchant_key, **kwargs)
        assert (response.status_code, response.json()["error"]["code"]) == (404, "product_not_found")
    assert shop.stock(product_id)["imported"] == 1
