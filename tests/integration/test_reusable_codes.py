"""Reusable codes (issue 6): a product whose `sales_per_code` is above 1 sells each code that many
times — and never more (I1 as the product states it). Stock counts sales, so oversell, the levels
(I4), removal, duplicates and resumable imports work as for single-use codes."""

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared import faults
from tests.integration.test_stock_import import buy_all, export, levels, remove, send_chunk
from tests.support import new_codes


def pay(shop, order):
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    return [item["code"] for item in shop.wait_for(order, "DELIVERED", deadline=30)["items"]]


def test_each_code_is_sold_exactly_as_many_times_as_the_product_says(shop):
    codes = new_codes(2, prefix="SHARED")
    product_id = shop.new_product(codes, shards=2, sales_per_code=3)
    assert levels(shop, product_id, shards=2) == {
        "available": 6,
        "reserved": 0,
        "sold": 0,
        "returned": 0,
        "imported": 6,
    }
    assert shop.merchant("GET", f"/merchant/products/{product_id}").json()["sales_per_code"] == 3

    sold = [code for _ in range(6) for code in buy_all(shop, product_id, 1)]

    assert Counter(sold) == {codes[0]: 3, codes[1]: 3}
    refused = shop.checkout(product_id)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "out_of_stock"
    assert levels(shop, product_id, shards=2)["sold"] == 6


def test_an_order_of_several_gets_different_codes_while_the_shard_has_others(shop):
    codes = new_codes(3, prefix="SEATS")
    product_id = shop.new_product(codes, shards=1, sales_per_code=2)

    first, second = buy_all(shop, product_id, 3), buy_all(shop, product_id, 3)

    assert sorted(first) == sorted(second) == sorted(codes)


def test_concurrent_buyers_never_get_a_reusable_code_more_often_than_it_sells(shop):
    code, sales, buyers = new_codes(1, prefix="ONE")[0], 12, 30
    product_id = shop.new_product([code], shards=4, sales_per_code=sales, max_per_order=1)
    start = threading.Barrier(buyers)

    def buyer(n: int) -> int | dict:
        start.wait()
        response = shop.checkout(product_id, email=f"reuse{n}@example.com")
        return response.json() if response.status_code == 201 else response.status_code

    with ThreadPoolExecutor(buyers) as pool:
        outcomes = list(pool.map(buyer, range(buyers)))

    bought = [o for o in outcomes if isinstance(o, dict)]
    assert len(bought) == sales and sorted(o for o in outcomes if not isinstance(o, dict)) == [409] * (
        buyers - sales
    )
    with ThreadPoolExecutor(8) as pool:
        received = [c for codes in pool.map(lambda order: pay(shop, order), bought) for c in codes]
    assert received == [code] * sales
    assert levels(shop, product_id)["sold"] == sales


def test_a_reusable_code_imported_again_is_a_duplicate(shop):
    codes = new_codes(2, prefix="AGAIN")
    product_id = shop.new_product(codes, sales_per_code=5)

    again = shop.merchant(
        "POST", f"/merchant/products/{product_id}/stock", json={"codes": [codes[1], "NEW-ONE", "NEW-ONE"]}
    )

    assert again.json() == {
        "added": 1,
        "duplicates": 2,
        "rejected": 0,
        "problems": [{"line": 1, "reason": "duplicate"}, {"line": 3, "reason": "duplicate"}],
    }
    assert levels(shop, product_id)["imported"] == 15


def test_removing_a_reusable_code_takes_every_copy_still_for_sale(shop):
    sold_code, unsold_code = new_codes(2, prefix="GONE")
    product_id = shop.new_product([sold_code], shards=2, sales_per_code=4)
    assert buy_all(shop, product_id, 1) == [sold_code]
    shop.merchant("POST", f"/merchant/products/{product_id}/stock", json={"codes": [unsold_code]})
    assert Counter(export(shop, product_id)) == {sold_code: 3, unsold_code: 4}

    response = remove(shop, product_id, [sold_code, unsold_code, "NEVER-IMPORTED"])

    assert response.json() == {"removed": 2, "not_found": [3], "not_available": []}
    assert export(shop, product_id) == []
    assert levels(shop, product_id, shards=2) == {
        "available": 0,
        "reserved": 0,
        "sold": 1,
        "returned": 0,
        "imported": 1,
    }
    # The sold copy still holds its code (a duplicate); the other left no trace and comes back whole.
    assert remove(shop, product_id, [sold_code]).json() == {
        "removed": 0,
        "not_found": [],
        "not_available": [1],
    }
    again = shop.merchant(
        "POST", f"/merchant/products/{product_id}/stock", json={"codes": [sold_code, unsold_code]}
    )
    assert again.json()["added"] == 1 and again.json()["duplicates"] == 1
    assert Counter(export(shop, product_id)) == {unsold_code: 4}


def test_a_chunk_that_crashed_between_shards_adds_the_missing_copies_when_sent_again(shop):
    """The first shard counted its copies, the process died before the second did."""
    codes = new_codes(2, prefix="HALF")
    product_id = shop.new_product([], shards=2, sales_per_code=3)
    faults.arm("import:between-shards")
    crashed = send_chunk(shop, product_id, codes, "half-done", 0, 1)
    assert crashed.status_code == 500 and faults.armed() == set()
    assert 0 < levels(shop, product_id, shards=2)["imported"] < 6

    again = send_chunk(shop, product_id, codes, "half-done", 0, 1)

    assert again.status_code == 200 and again.json()["added"] == 2
    assert levels(shop, product_id, shards=2)["imported"] == 6
    assert Counter(export(shop, product_id)) == {codes[0]: 3, codes[1]: 3}


def test_a_request_may_fill_at_most_10000_slots(shop):
    product_id = shop.new_product([], sales_per_code=5000)

    response = shop.merchant(
        "POST", f"/merchant/products/{product_id}/stock", json={"codes": new_codes(3, prefix="BIG")}
    )

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "too_many_codes"
    assert "at most 2 codes per request" in response.json()["error"]["message"]
    assert levels(shop, product_id)["imported"] == 0


@pytest.mark.parametrize("sales", [0, 10_001, "2", 1.5, None])
def test_sales_per_code_out_of_range_is_422(shop, sales):
    response = shop.merchant(
        "POST",
        "/merchant/products",
        json={"name": "x", "price": {"amount": 100, "currency": "CNY"}, "sales_per_code": sales},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_sales_per_code"


def test_sales_per_code_cannot_change_once_the_product_exists(shop):
    product_id = shop.new_product(new_codes(1), sales_per_code=2)

    response = shop.merchant("PATCH", f"/merchant/products/{product_id}", json={"sales_per_code": 1})

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_sales_per_code"
    assert shop.merchant("GET", f"/merchant/products/{product_id}").json()["sales_per_code"] == 2
    assert levels(shop, product_id)["available"] == 2
