"""Product quantity rules and Money (integer minor units, ISO currency)."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from shared.errors import Invalid
from shared.money import Money
from shared.products import Product

MAX_PER_ORDER = 5


@pytest.fixture
def product() -> Product:
    return Product(
        product_id="prd_1",
        merchant_id="mer_1",
        name="Gift card",
        description="",
        price=Money(amount=1999, currency="CNY"),
        delivery="stock",
        max_per_order=MAX_PER_ORDER,
        shards=4,
        active=True,
        created_at=datetime(2026, 11, 22, tzinfo=UTC),
    )


@pytest.mark.parametrize("quantity", [1, MAX_PER_ORDER])
def test_a_quantity_within_the_limits_is_accepted(product, quantity):
    product.check_quantity(quantity)


@pytest.mark.parametrize("quantity", [-1, 0, MAX_PER_ORDER + 1])
def test_a_quantity_outside_the_limits_is_invalid(product, quantity):
    with pytest.raises(Invalid) as raised:
        product.check_quantity(quantity)
    assert raised.value.status == 422


def test_money_keeps_integer_minor_units():
    price = Money(amount=1999, currency="CNY")
    assert (price.amount, price.currency) == (1999, "CNY")


@pytest.mark.parametrize(
    "amount", [19.99, 1999.0, "1999", True], ids=["float", "integral float", "string", "bool"]
)
def test_money_refuses_a_non_integer_amount(amount):
    with pytest.raises(ValidationError):
        Money(amount=amount, currency="CNY")


def test_money_refuses_a_negative_amount():
    with pytest.raises(ValidationError):
        Money(amount=-1, currency="CNY")


def test_money_accepts_zero():
    assert Money(amount=0, currency="CNY").amount == 0


@pytest.mark.parametrize("currency", ["cny", "Cny", "CN", "CNYY", "12A", ""])
def test_money_refuses_a_currency_that_is_not_three_capital_letters(currency):
    with pytest.raises(ValidationError):
        Money(amount=1, currency=currency)


def test_money_times_multiplies_the_amount_and_keeps_the_currency():
    assert Money(amount=1999, currency="CNY").times(3) == Money(amount=5997, currency="CNY")


def test_money_times_zero_is_zero():
    assert Money(amount=1999, currency="USD").times(0) == Money(amount=0, currency="USD")


def test_money_times_beyond_the_cap_is_refused():
    with pytest.raises(ValidationError):
        Money(amount=10**12, currency="CNY").times(2)


def test_a_total_beyond_what_a_payment_can_carry_is_refused_before_anything_is_written(product):
    pricey = product.model_copy(update={"price": Money(amount=600_000_000_000, currency="CNY")})
    assert pricey.total_for(1).amount == 600_000_000_000
    with pytest.raises(Invalid) as refused:
        pricey.total_for(2)
    assert refused.value.code == "total_too_large"
