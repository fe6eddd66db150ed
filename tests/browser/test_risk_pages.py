"""A checkout the merchant's risk rules refuse: the product page says so in its language with the
reference to quote, and nothing else (no rule, no reason)."""

import re
import secrets
from datetime import datetime, timedelta

import pytest
from playwright.sync_api import expect

from shared.orders import Status
from tests.integration.test_screening import merchant_with_rules, paid, settled

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


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_an_order_in_review_says_until_when_and_what_then(shop, browse, lang):
    _, key = merchant_with_rules(
        shop,
        [{"id": "look", "type": "amount", "above": {"amount": 1, "currency": "CNY"}, "action": "review"}],
    )
    product_id = shop.new_product([f"C-{secrets.token_hex(4)}"], key=key, review_deadline_minutes=90)
    order = paid(shop, product_id, "someone")
    assert settled(order) == Status.IN_REVIEW

    body = shop.order(order["order_id"], order["access_token"]).json()
    entered = next(e["at"] for e in body["events"] if e["type"] == "risk.review")
    until = datetime.fromisoformat(body["review_until"])
    assert until - datetime.fromisoformat(entered) == timedelta(minutes=90)
    assert body["review_expires_to"] == "refund"
    page = browse(locale=lang)
    page.goto(f"{shop.url}/o/{order['order_id']}?lang={lang}#token={order['access_token']}")

    shown = page.evaluate(
        "(at) => new Date(at).toLocaleString(document.documentElement.lang)", body["review_until"]
    )
    says = {"en": "if it has not by then, your money is returned", "zh-CN": "届时仍未处理的，款项原路退回"}
    expect(page.locator("#explain")).to_contain_text(shown)
    expect(page.locator("#explain")).to_contain_text(says[lang])
