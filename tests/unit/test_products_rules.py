"""A product's selling rules: quantity limits, wholesale tiers, what a change may do, listing cursors."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from functions.merchant.catalog import (
    ProductChange,
    ProductRequest,
    parse_product_query,
    read_product_cursor,
    sign_product_cursor,
)
from shared.errors import DomainError, Invalid
from shared.http import validate
from shared.money import MAX_AMOUNT, Money
from shared.products import PriceTier, Product, broken_rule

SECRET = "a-test-secret-of-some-length"


def cny(amount: int) -> Money:
    return Money(amount=amount, currency="CNY")


def tier(min_quantity: int, amount: int, currency: str = "CNY") -> PriceTier:
    return PriceTier(min_quantity=min_quantity, price=Money(amount=amount, currency=currency))


def product(**changes) -> Product:
    fields = {
        "product_id": "prd_1",
        "merchant_id": "mer_1",
        "name": "Gift card",
        "description": "",
        "price": cny(1000),
        "delivery": "stock",
        "max_per_order": 20,
        "shards": 4,
        "active": True,
        "created_at": datetime(2026, 11, 22, tzinfo=UTC),
        "price_tiers": (tier(5, 900), tier(10, 750)),
        **changes,
    }
    return Product(**fields)


# ---------- tier prices and totals


@pytest.mark.parametrize(
    ("quantity", "total"),
    [(1, 1000), (4, 4000), (5, 4500), (9, 8100), (10, 7500), (20, 15000)],
    ids=["one", "below the first tier", "first tier", "last before the second", "second tier", "max"],
)
def test_the_total_uses_the_tier_with_the_largest_min_quantity_reached(quantity, total):
    assert product().total_for(quantity) == cny(total)


def test_without_tiers_the_total_is_price_times_quantity():
    assert product(price_tiers=()).total_for(7) == cny(7000)


def test_a_tiered_total_beyond_what_a_payment_can_carry_is_refused():
    pricey = product(price=cny(MAX_AMOUNT // 4), price_tiers=(), max_per_order=4)
    assert pricey.total_for(4).amount == MAX_AMOUNT // 4 * 4
    assert broken_rule(product(price=cny(MAX_AMOUNT // 4 + 1), price_tiers=(), max_per_order=4))


# ---------- quantity limits


@pytest.mark.parametrize("quantity", [3, 8])
def test_a_quantity_from_min_to_max_is_accepted(quantity):
    product(min_per_order=3, max_per_order=8, price_tiers=()).check_quantity(quantity)


@pytest.mark.parametrize("quantity", [0, 2, 9])
def test_a_quantity_outside_min_to_max_is_422(quantity):
    with pytest.raises(Invalid) as refused:
        product(min_per_order=3, max_per_order=8, price_tiers=()).check_quantity(quantity)
    assert (refused.value.status, refused.value.code) == (422, "validation_error")
    assert "between 3 and 8" in refused.value.message


def test_products_stored_before_these_fields_existed_read_as_the_defaults():
    old = Product.model_validate(product().model_dump(exclude={"price_tiers"}))
    assert (old.min_per_order, old.daily_limit_per_buyer, old.price_tiers) == (1, None, ())
    assert (old.instructions, old.low_stock_threshold) == ("", 0)


# ---------- the rules a product (new or changed) must keep


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"min_per_order": 6, "max_per_order": 5, "price_tiers": ()}, "min_per_order must not be larger"),
        ({"min_per_order": 3, "daily_limit_per_buyer": 2}, "daily_limit_per_buyer must be at least"),
        ({"price_tiers": (tier(10, 900), tier(5, 800))}, "sorted by min_quantity"),
        ({"price_tiers": (tier(5, 900), tier(5, 800))}, "sorted by min_quantity"),
        ({"price_tiers": (tier(5, 1000),)}, "lower than the price before"),
        ({"price_tiers": (tier(5, 900), tier(10, 900))}, "lower than the price before"),
        ({"price_tiers": (tier(5, 900, "USD"),)}, "product's currency (CNY)"),
        ({"price_tiers": (tier(21, 900),)}, "above max_per_order"),
        ({"price": cny(MAX_AMOUNT // 10), "price_tiers": ()}, "larger than a payment can be"),
    ],
    ids=[
        "min above max",
        "daily limit below min",
        "tiers out of order",
        "two tiers at one quantity",
        "tier not cheaper than price",
        "tier not cheaper than the one before",
        "tier in another currency",
        "tier no order reaches",
        "total too large",
    ],
)
def test_terms_that_break_a_rule_are_named(changes, words):
    fields = {**product().model_dump(), **changes}
    assert words in (broken_rule(Product.model_validate(fields)) or "")


def test_valid_terms_break_no_rule():
    assert broken_rule(product(min_per_order=2, daily_limit_per_buyer=2)) is None


def test_a_new_product_that_breaks_a_rule_is_refused():
    with pytest.raises(ValidationError, match="min_per_order must not be larger"):
        ProductRequest.model_validate(
            {"name": "x", "price": {"amount": 100, "currency": "CNY"}, "min_per_order": 4, "max_per_order": 3}
        )


def test_a_change_is_checked_against_the_product_it_changes():
    current = product(min_per_order=2, max_per_order=10, price_tiers=())
    assert validate(ProductChange, {"max_per_order": 5}).apply(current).max_per_order == 5
    with pytest.raises(Invalid, match="min_per_order must not be larger"):
        validate(ProductChange, {"max_per_order": 1}).apply(current)


def test_a_change_of_price_currency_must_bring_tiers_in_that_currency():
    with pytest.raises(Invalid, match="product's currency"):
        validate(ProductChange, {"price": {"amount": 1000, "currency": "USD"}}).apply(product())
    changed = validate(
        ProductChange,
        {"price": {"amount": 1000, "currency": "USD"}, "price_tiers": [tier(5, 900, "USD").model_dump()]},
    ).apply(product())
    assert changed.unit_price(5) == Money(amount=900, currency="USD")


def test_a_change_keeps_what_it_does_not_name():
    current = product(instructions="Redeem at example.com", daily_limit_per_buyer=4)
    changed = validate(ProductChange, {"name": "Renamed"}).apply(current)
    assert changed == current.model_copy(update={"name": "Renamed"})


def test_only_the_daily_limit_may_be_set_to_null():
    assert (
        validate(ProductChange, {"daily_limit_per_buyer": None})
        .apply(product(daily_limit_per_buyer=3))
        .daily_limit_per_buyer
        is None
    )
    for field in ("name", "price", "active", "max_per_order", "price_tiers", "instructions"):
        with pytest.raises(Invalid) as refused:
            validate(ProductChange, {field: None})
        assert refused.value.code == f"invalid_{field}"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"shards": 8}, "invalid_shards"),
        ({"delivery": "stock"}, "invalid_delivery"),
        ({"colour": "red"}, "invalid_colour"),
        ({"instructions": "x" * 2001}, "invalid_instructions"),
        ({"low_stock_threshold": -1}, "invalid_low_stock_threshold"),
        (
            {"price_tiers": [{"min_quantity": 1, "price": {"amount": 1, "currency": "CNY"}}]},
            "invalid_price_tiers",
        ),
        (
            {"price_tiers": [{"min_quantity": 5, "price": {"amount": 9.5, "currency": "CNY"}}]},
            "invalid_price_tiers",
        ),
        ({"active": "no"}, "invalid_active"),
        ([{"name": "x"}], "validation_error"),
    ],
)
def test_a_change_the_api_does_not_take_is_422(body, code):
    with pytest.raises(Invalid) as refused:
        validate(ProductChange, body)
    assert (refused.value.status, refused.value.code) == (422, code)


def test_instructions_up_to_2000_characters_are_taken():
    assert validate(ProductChange, {"instructions": "x" * 2000}).apply(product()).instructions == "x" * 2000


def test_an_empty_change_changes_nothing():
    assert ProductChange.model_validate({}).apply(product()) == product()


# ---------- listing parameters and cursors


def test_a_cursor_resumes_at_its_position_for_its_merchant_and_filter():
    cursor = sign_product_cursor(41, "mer_a", True, SECRET)
    assert read_product_cursor(cursor, "mer_a", True, SECRET) == 41


@pytest.mark.parametrize(
    ("merchant", "active", "secret"),
    [
        ("mer_b", True, SECRET),
        ("mer_a", None, SECRET),
        ("mer_a", False, SECRET),
        ("mer_a", True, SECRET + "x"),
    ],
    ids=["another merchant", "no filter", "other filter", "other secret"],
)
def test_a_cursor_is_refused_anywhere_else(merchant, active, secret):
    cursor = sign_product_cursor(41, "mer_a", True, SECRET)
    with pytest.raises(DomainError) as refused:
        read_product_cursor(cursor, merchant, active, secret)
    assert (refused.value.status, refused.value.code) == (400, "invalid_cursor")


def test_an_edited_or_made_up_cursor_is_refused():
    payload, _, mac = sign_product_cursor(41, "mer_a", None, SECRET).partition(".")
    forged = sign_product_cursor(4, "mer_a", None, SECRET).partition(".")[0]
    for cursor in (
        f"{forged}.{mac}",
        payload,
        f"{payload}.",
        ".",
        "",
        "!!.!!",
        f"{payload}.{mac}x",
        "NDE.AAAA",
    ):
        with pytest.raises(DomainError) as refused:
            read_product_cursor(cursor, "mer_a", None, SECRET)
        assert refused.value.code == "invalid_cursor", cursor


def test_listing_parameters():
    assert parse_product_query(None).model_dump() == {"active": None, "limit": 50, "cursor": None}
    assert parse_product_query({"active": "false", "limit": "100"}).model_dump()["active"] is False
    for parameters, code in [
        ({"active": "yes"}, "invalid_active"),
        ({"limit": "0"}, "invalid_limit"),
        ({"limit": "101"}, "invalid_limit"),
        ({"sort": "name"}, "unknown_parameter"),
    ]:
        with pytest.raises(Invalid) as refused:
            parse_product_query(parameters)
        assert refused.value.code == code
