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


def _secret_values(config: dict) -> list[str]:
    """Every secret in a provider's config; of a PEM key, each line of its body."""
    found = []
    for name, value in config.items():
        if isinstance(value, dict):
            found += _secret_values(value)
        elif any(word in name for word in ("secret", "key")) and isinstance(value, str):
            found += [line for line in value.splitlines() if "-----" not in line and len(line) >= 16] or [
                value
            ]
    return found


def test_no_provider_secret_in_any_table_or_log(shop, kits, caplog, capfd):
    from tests.e2e.test_provider_conformance import checkout, post

    caplog.set_level(logging.DEBUG)
    for kit in kits.values():
        order = checkout(shop, kit)
        post(shop, kit, kit.paid(order))
        shop.wait_for(order, "DELIVERED")
        shop.merchant("POST", f"/merchant/orders/{order['order_id']}/refund")
        post(shop, kit, kit.tampered(kit.paid(order)))  # a refusal is logged too

    tables = stored_text()
    out, err = capfd.readouterr()
    logs = "\n".join(repr(vars(record)) for record in caplog.records) + out + err
    secrets = [value for kit in kits.values() for value in _secret_values(kit.config())]

    assert len(kits) == 3 and len(secrets) >= 6
    assert "payment callback" in logs  # the callbacks were logged
    assert [s for s in secrets if s in tables] == []
    assert [s for s in secrets if s in logs] == []
