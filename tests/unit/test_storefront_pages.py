"""The buyer pages' words and numbers (issue 18): money as buyers read it, the product page's totals
from the checkout's own rule, a text in both languages for every error a buyer can meet (the page
translates the API's stable code), and the sandbox pay page in the shop page's language."""

import json
import re
from datetime import UTC, datetime
from html import unescape
from pathlib import Path

import pytest

from functions.storefront.checkout import CheckoutRequest
from functions.storefront.i18n import LANGUAGES, TEXTS, money
from functions.storefront.lookup import LookupRequest
from functions.storefront.pages import product_page
from infra.local.sandbox import _pay_page
from shared import errors
from shared.money import Money
from shared.products import PriceTier, Product

STOREFRONT = Path(__file__).resolve().parents[2] / "functions" / "storefront"


@pytest.mark.parametrize(
    ("amount", "currency", "written"),
    [
        (9900, "CNY", "¥99.00"),
        (500, "USD", "$5.00"),
        (5, "USD", "$0.05"),
        (123456789, "EUR", "€1,234,567.89"),
        (500, "JPY", "¥500"),  # no minor unit
        (1500, "KWD", "KWD\u00a01.500"),  # three decimals, no sign of its own here
        (1234500, "HKD", "HKD\u00a012,345.00"),
    ],
)
@pytest.mark.parametrize("lang", LANGUAGES)
def test_money_is_written_as_buyers_read_it(amount, currency, written, lang):
    assert money(Money(amount=amount, currency=currency), lang) == written


def tiered(**fields) -> Product:
    return Product(
        product_id="prd_" + "a" * 20,
        merchant_id="mer_1",
        name="Steam 100",
        description="",
        price=Money(amount=9900, currency="CNY"),
        delivery="stock",
        max_per_order=5,
        shards=1,
        active=True,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        price_tiers=(PriceTier(min_quantity=3, price=Money(amount=9000, currency="CNY")),),
        **fields,
    )


def page_data(html: str, name: str) -> str:
    return unescape(re.search(rf' data-{name}="([^"]*)"', html).group(1))


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_product_page_knows_the_total_of_every_quantity_it_takes_as_the_checkout_charges_it(lang):
    product = tiered(min_per_order=2)
    page = product_page(product, available=4, providers=["sandbox"], lang=lang)

    totals = json.loads(page_data(page.html, "totals"))
    assert list(totals) == ["2", "3", "4"]  # from min_per_order up to the stock left
    for quantity, (total, _) in totals.items():
        assert total == money(product.total_for(int(quantity)), lang)
    assert totals["3"] == ["¥270.00", "3 × ¥90.00"]
    assert '<strong id="total-amount">¥198.00</strong>' in page.html  # the first quantity's, without script


def test_a_sold_out_product_page_has_no_totals():
    assert "data-totals" not in product_page(tiered(), available=0, providers=["sandbox"], lang="en").html


def codes_raised_in(path: Path) -> set[str]:
    return set(re.findall(r'\bcode="([a-z_]+)"', path.read_text()))


# The codes the pages can meet from POST /api/orders, GET /api/orders/{id} and POST /api/orders/lookup:
# every storefront code, the shared errors those routes raise, and request validation of the fields the
# pages send.
PAGE_CODES = (
    set().union(*(codes_raised_in(path) for path in STOREFRONT.glob("*.py")))
    | {
        cls.code
        for cls in (
            errors.OutOfStock,
            errors.TooMany,
            errors.Busy,
            errors.ProviderDown,
            errors.Invalid,
            errors.StateConflict,
        )
    }
    | codes_raised_in(Path(errors.__file__).parent / "products.py")
    | {f"invalid_{field}" for field in ("product_id", "quantity", "email", "provider")}
    | {f"invalid_{field}" for field in LookupRequest.model_fields}
    | {"order_not_found", "internal_error", "risk_blocked"}
)
# Codes only a client other than the pages can cause (the pages send no such body or header).
NOT_FROM_THE_PAGES = {"idempotency_key_reused", "invalid_idempotency_key"}


def test_every_error_a_buyer_can_meet_has_its_own_text_in_both_languages():
    assert set(CheckoutRequest.model_fields) >= {"product_id", "quantity", "email", "provider"}
    missing = {
        lang: sorted(code for code in PAGE_CODES - NOT_FROM_THE_PAGES if f"error.{code}" not in TEXTS[lang])
        for lang in LANGUAGES
    }
    assert missing == {lang: [] for lang in LANGUAGES}


def test_both_languages_have_the_same_texts_with_the_same_placeholders():
    assert TEXTS["en"].keys() == TEXTS["zh-CN"].keys()
    for key, text in TEXTS["en"].items():
        assert set(re.findall(r"{\w+}", text)) == set(re.findall(r"{\w+}", TEXTS["zh-CN"][key])), key
    # A code the page has no words for is named; the API's English message never is.
    assert "{message}" not in TEXTS["zh-CN"]["error.other"] and "{code}" in TEXTS["zh-CN"]["error.other"]


@pytest.mark.parametrize(
    ("query", "headers", "lang"),
    [
        ({}, {"cookie": "miaofa_lang=zh-CN"}, "zh-CN"),  # the toggle's choice on the shop's page
        ({}, {"accept-language": "zh-CN,zh;q=0.9,en;q=0.5"}, "zh-CN"),
        ({"lang": "en"}, {"accept-language": "zh-CN"}, "en"),
        ({}, {"cookie": "bad cookie;;; ="}, "en"),
    ],
)
def test_the_sandbox_pay_page_speaks_the_shop_pages_language(query, headers, lang):
    page = _pay_page({"order_id": "ord_1", "amount": "1999", "currency": "CNY", **query}, headers)

    assert f'<html lang="{lang}">' in page
    assert '<strong id="amount">¥19.99</strong>' in page
    assert "overflow-wrap:anywhere" in page  # a long order id wraps on a 360 px phone


def test_the_sandbox_pay_page_shows_an_amount_no_payment_could_have_as_given():
    page = _pay_page({"order_id": "ord_1", "amount": "<b>", "currency": "??"}, {})
    assert "&lt;b&gt; ??" in page and "<b>" not in page
