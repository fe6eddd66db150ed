"""Regression (audit repro D): an order of several units of a reusable product never gets one code
twice while another code is in stock, even when the returned pool holds two copies of one code."""

from tests.support import expire_all, new_codes


def test_an_order_of_two_gets_two_different_reusable_codes(shop):
    x, y = new_codes(2)
    product_id = shop.new_product([x, y], shards=1, max_per_order=2, sales_per_code=2)  # shard: X Y X Y
    shop.buy(product_id)  # slot 0 (X)
    second = shop.buy(product_id)  # slot 1 (Y), paid and delivered
    assert shop.runtime.sandbox.pay(second["order_id"], second["total"]["amount"], "CNY")
    shop.wait_for(second, "DELIVERED")
    shop.buy(product_id)  # slot 2 (X)
    expire_all()  # slots 0 and 2 to the pool

    both = shop.buy(product_id, quantity=2)  # no shard holds 2 fresh: the fresh Y and one pooled X
    assert shop.runtime.sandbox.pay(both["order_id"], both["total"]["amount"], "CNY")
    codes = [item["code"] for item in shop.wait_for(both, "DELIVERED")["items"]]
    assert sorted(codes) == sorted([x, y])
    assert shop.stock(product_id)["available"] == 1  # the other copy of X, still for sale
