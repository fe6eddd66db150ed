"""I6: imported codes never appear in plaintext in any DynamoDB item or log line; neither do
access tokens or merchant keys."""

import logging

import pytest

from tests.support import new_codes, stored_text

pytestmark = pytest.mark.e2e


def test_no_code_token_or_key_in_any_table_or_log(shop, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    codes = new_codes(4, prefix="PLAINTEXT-CANARY")
    product_id = shop.new_product(codes)
    order = shop.buy(product_id, quantity=2)
    shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], order["total"]["currency"])
    delivered = shop.wait_for(order, "DELIVERED")
    assert {item["code"] for item in delivered["items"]} <= set(codes)  # the buyer does get them

    tables = stored_text()
    out, err = capfd.readouterr()
    # Every record with all its fields (Powertools puts extras on the record), and any stray output.
    logs = "\n".join(repr(vars(record)) for record in caplog.records) + out + err

    assert order["order_id"] in logs and order["order_id"] in tables  # both were captured
    secrets = [*codes, order["access_token"], shop.merchant_key]
    assert [s for s in secrets if s in tables] == []
    assert [s for s in secrets if s in logs] == []
    assert "PLAINTEXT-CANARY" not in tables + logs
