"""A checkout the merchant's risk rules refuse: the product page says so in its language with the
reference to quote, and nothing else (no rule, no reason)."""

import re
import secrets

import pytest
from playwright.sync_api import expect

from tests.integration.test_screening import merchant_with_rules

SAYS = {
    "zh-CN": "商店无法接受此订单。如有疑问，请联系商家并提供参考号 {reference}。",
    "en": "The shop cannot accept this order. If you think this is wrong, contact the shop and quote reference {reference}.",
}


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_a_refused_checkout_shows_the_reference_to_quote_in_the_pages_language(shop, browse, lang):
    _, key = merchant_with_rules(
        shop,
        [
            {
                "id": "known-fraud",
                "type": "list",
                "kind": "email",
                "values": ["fraud@example.com"],
                "action": "block",
            }
        ],
    )
    product_id = shop.new_product([f"C-{secrets.token_hex(4)}"], key=key)
    page = browse(locale=lang)
    page.goto(f"{shop.url}/p/{product_id}?lang={lang}")
    page.locator("#buy").locator("#email").fill("fraud@example.com")

    with page.expect_response(f"{shop.url}/api/orders") as answer:
        page.locator("#pay").click()

    reference = answer.value.json()["error"]["reference"]
    assert re.fullmatch(r"rsk_[0-9a-f]{20}", reference)
    expect(page.locator("#error")).to_have_text(SAYS[lang].format(reference=reference))
    expect(page.locator("#error")).not_to_contain_text("known-fraud")
    assert page.url.startswith(f"{shop.url}/p/")  # still on the product page: no order, no payment
