"""Checkout's rules, with in-memory fakes (functions/storefront/checkout.py): what a buyer gets, what is
refused and why, and that a refused or failed checkout leaves nothing held; idempotent retries."""

import secrets
from datetime import timedelta

import pytest

from functions.storefront.checkout import Checkout, CheckoutRequest, checkout
from shared import faults
from shared.access import token_matches
from shared.errors import (
    AlreadyApplied,
    Invalid,
    NotFound,
    OutOfStock,
    ProviderDown,
    StateConflict,
    TooMany,
)
from shared.money import MAX_AMOUNT, Money
from shared.orders import Order, Status, verify_history
from shared.products import PriceTier, Product
from shared.providers import ProviderUnavailable
from shared.store.limits import buyer_key
from tests.fakes import BASE_URL, RESERVATION, FakePorts, fake_ports, raises

CLIENT = "198.51.100.7"


@pytest.fixture
def fakes() -> FakePorts:
    return fake_ports(providers=("sandbox", "alipay"))


def buy(
    fakes: FakePorts,
    product: Product | str,
    quantity: int = 1,
    *,
    email: str = "buyer@example.com",
    provider: str = "sandbox",
    key: str | None = None,
    client: str = CLIENT,
    caps: tuple[int, int] = (3, 20),
    unpaid_units: int = 20,
    made: dict[str, int] | None = None,
) -> Checkout:
    product_id = product if isinstance(product, str) else product.product_id
    request = CheckoutRequest(product_id=product_id, quantity=quantity, email=email, provider=provider)  # type: ignore[arg-type]
    return checkout(
        request,
        fakes.products,
        fakes.allocation,
        fakes.orders,
        fakes.limits,
        now=fakes.clock(),
        reservation=RESERVATION,
        providers=fakes.providers.provider,
        public_base_url=BASE_URL,
        idempotency_key=key,
        client=client,
        caps=caps,
        token_secret="test-token-secret-0001",
        unpaid_units=unpaid_units,
        left=lambda product: (
            None if product.cap is None else product.cap - (made or {}).get(product.product_id, 0)
        ),
    )


def nothing_held(fakes: FakePorts, product: Product) -> bool:
    """No order, no reserved stock, no buyer's place and no unpaid units taken."""
    levels = fakes.allocation.levels(product.product_id)
    return (
        fakes.orders.all() == []
        and levels.reserved == 0
        and fakes.limits.held_tickets() == []
        and fakes.limits.unpaid_units(product.product_id, CLIENT) == 0
    )


# ---------- a checkout that goes through ----------


def test_a_checkout_reserves_the_stock_and_creates_the_order_waiting_for_its_payment(fakes):
    product = fakes.add_product(codes=5, price=1250)

    result = buy(fakes, product, 2)

    order = result.order
    assert order.status == Status.PENDING_PAYMENT
    assert order.total.amount == 2500 and order.total.currency == "CNY"
    assert order.expires_at == fakes.clock() + RESERVATION
    assert fakes.orders.get(order.order_id) == order
    assert len(fakes.allocation.held_by(order.order_id)) == 2
    assert fakes.allocation.levels(product.product_id).available == 3
    assert result.pay_url == f"https://sandbox.test/pay/{order.order_id}" and result.pay_kind == "redirect"
    assert fakes.sandbox.started == [order.order_id]


def test_the_access_token_opens_the_order_and_its_history_starts_verified(fakes):
    result = buy(fakes, fakes.add_product())

    assert token_matches(result.order, result.access_token)
    assert not token_matches(result.order, result.access_token + "x")
    assert [event.type for event in result.order.history] == ["order.created"]
    assert verify_history(result.order.order_id, result.order.history, head=result.order.head)


def test_the_order_holds_the_buyers_places_until_it_is_paid(fakes):
    result = buy(fakes, fakes.add_product())

    held = fakes.limits.held_tickets(result.order.order_id)
    assert held and set(held) <= set(result.order.tickets)
    assert {ticket.pk for ticket in held} == {
        buyer_key("email", f"buyer@example.com\0{CLIENT}"),
        buyer_key("client", CLIENT),
    }


def test_a_volume_price_applies_from_its_quantity(fakes):
    tiers = (PriceTier(min_quantity=3, price=Money(amount=800, currency="CNY")),)
    product = fakes.add_product(codes=5, price=1000, price_tiers=tiers)

    assert buy(fakes, product, 2).order.total.amount == 2000
    assert buy(fakes, product, 3, email="other@example.com").order.total.amount == 2400


def test_stock_spread_over_shards_is_still_sold_in_one_order(fakes):
    product = fakes.add_product(codes=2, shards=2)  # one code in each shard

    order = buy(fakes, product, 2).order

    assert sorted(r.shard for r in order.slots) == [0, 1]
    assert fakes.allocation.levels(product.product_id).available == 0


def test_a_qr_provider_answers_with_qr_content(fakes):
    fakes.providers["alipay"].pay_kind = "qr"
    result = buy(fakes, fakes.add_product(), provider="alipay")
    assert result.pay_kind == "qr" and result.order.provider == "alipay"


# ---------- refused before anything is held ----------


def test_an_unknown_product_is_not_found(fakes):
    with pytest.raises(NotFound) as refused:
        buy(fakes, "prd_00000000000000000bad")
    assert refused.value.code == "product_not_found"
    assert fakes.orders.all() == [] and fakes.limits.held_tickets() == []


def test_an_inactive_product_is_not_found_and_nothing_is_held(fakes):
    product = fakes.add_product(active=False)
    with pytest.raises(NotFound):
        buy(fakes, product)
    assert nothing_held(fakes, product)


@pytest.mark.parametrize("quantity", [0, 1, 4, 11])
def test_a_quantity_outside_the_products_bounds_is_refused_and_nothing_is_held(fakes, quantity):
    product = fakes.add_product(codes=20, min_per_order=2, max_per_order=3)
    with pytest.raises(Invalid, match="between 2 and 3"):
        buy(fakes, product, quantity)
    assert nothing_held(fakes, product)


@pytest.mark.parametrize("quantity", [2, 3])
def test_a_quantity_within_the_bounds_is_sold(fakes, quantity):
    product = fakes.add_product(codes=20, min_per_order=2, max_per_order=3)
    assert buy(fakes, product, quantity).order.quantity == quantity


def test_a_total_larger_than_a_payment_can_be_is_refused_and_nothing_is_held(fakes):
    product = fakes.add_product(codes=3, price=MAX_AMOUNT)
    with pytest.raises(Invalid) as refused:
        buy(fakes, product, 2)
    assert refused.value.code == "total_too_large"
    assert nothing_held(fakes, product)


def test_a_provider_the_shop_is_not_configured_for_is_refused(fakes):
    product = fakes.add_product()
    with pytest.raises(Invalid) as refused:
        buy(fakes, product, provider="stripe")
    assert refused.value.code == "invalid_provider"
    assert nothing_held(fakes, product)


def test_a_provider_that_cannot_take_the_products_currency_is_refused(fakes):
    product = fakes.add_product(currency="USD")
    with pytest.raises(Invalid) as refused:
        buy(fakes, product, provider="alipay")
    assert refused.value.code == "currency_not_supported"
    assert nothing_held(fakes, product)


def test_a_guessable_idempotency_key_is_refused(fakes):
    product = fakes.add_product()
    with pytest.raises(Invalid) as refused:
        buy(fakes, product, key="order-1")
    assert refused.value.code == "invalid_idempotency_key"
    assert nothing_held(fakes, product)


# ---------- out of stock ----------


def test_no_stock_left_is_out_of_stock_and_the_buyers_places_go_back(fakes):
    product = fakes.add_product(codes=1)
    first = buy(fakes, product)

    with pytest.raises(OutOfStock):
        buy(fakes, product, email="late@example.com")

    assert [o.order_id for o in fakes.orders.all()] == [first.order.order_id]
    assert fakes.limits.held_tickets() == fakes.limits.held_tickets(first.order.order_id)


def test_a_capped_generated_product_past_its_cap_is_sold_out_and_nothing_is_held(fakes):
    product = fakes.add_product(0, delivery="generated", generated={"pattern": "GIFT-XXXXXXXXXX", "cap": 5})
    with pytest.raises(OutOfStock, match="only 1 more"):
        buy(fakes, product, 2, made={product.product_id: 4})
    with pytest.raises(OutOfStock, match="sold out"):
        buy(fakes, product, 1, made={product.product_id: 5})
    assert nothing_held(fakes, product)
    assert buy(fakes, product, 1, made={product.product_id: 4}).order.quantity == 1  # the last one


def test_a_quantity_larger_than_the_stock_takes_nothing(fakes):
    product = fakes.add_product(codes=2, shards=2)
    with pytest.raises(OutOfStock):
        buy(fakes, product, 3)
    assert fakes.allocation.levels(product.product_id).available == 2
    assert nothing_held(fakes, product)


# ---------- limits ----------


def test_unpaid_orders_per_email_are_capped(fakes):
    product = fakes.add_product(codes=10)
    for _ in range(2):
        buy(fakes, product, caps=(2, 20))

    with pytest.raises(TooMany) as refused:
        buy(fakes, product, caps=(2, 20))

    assert refused.value.code == "too_many_pending_orders"
    assert len(fakes.orders.all()) == 2
    assert fakes.allocation.levels(product.product_id).reserved == 2


def test_a_refused_client_cap_gives_the_emails_place_back(fakes):
    product = fakes.add_product(codes=10)
    buy(fakes, product, email="a@example.com", caps=(3, 1))

    with pytest.raises(TooMany):
        buy(fakes, product, email="b@example.com", caps=(3, 1))

    email_b = buyer_key("email", f"b@example.com\0{CLIENT}")
    assert all(ticket.pk != email_b for ticket in fakes.limits.held_tickets())


def test_another_client_is_not_held_to_somebody_elses_unpaid_orders(fakes):
    product = fakes.add_product(codes=10)
    for _ in range(2):
        buy(fakes, product, caps=(2, 20))

    assert buy(fakes, product, client="203.0.113.9", caps=(2, 20)).order.status == Status.PENDING_PAYMENT


def test_a_place_frees_itself_when_the_reservation_runs_out(fakes):
    product = fakes.add_product(codes=10)
    buy(fakes, product, caps=(1, 20))
    fakes.clock.advance(RESERVATION + timedelta(seconds=1))

    assert buy(fakes, product, caps=(1, 20)).order.status == Status.PENDING_PAYMENT


def test_a_client_holds_at_most_its_bound_of_unpaid_units(fakes):
    product = fakes.add_product(codes=10, unpaid_limit_per_client=3)
    buy(fakes, product, 2)

    with pytest.raises(TooMany) as refused:
        buy(fakes, product, 2, email="other@example.com")

    assert refused.value.code == "unpaid_limit_reached"
    assert refused.value.retry_after == int(RESERVATION.total_seconds())  # when the first hold runs out
    assert fakes.limits.unpaid_units(product.product_id, CLIENT) == 2
    assert len(fakes.orders.all()) == 1 and len(fakes.limits.held_tickets()) == 2


def test_without_a_client_no_units_are_held(fakes):
    product = fakes.add_product(codes=10, unpaid_limit_per_client=1)
    buy(fakes, product, 1, client="")
    assert buy(fakes, product, 1, client="").order.status == Status.PENDING_PAYMENT
    assert fakes.limits.unpaid_units(product.product_id, "") == 0


@pytest.mark.parametrize("client", [CLIENT, ""], ids=["over HTTP", "without a client"])
def test_units_paid_today_count_against_the_daily_limit(fakes, client):
    product = fakes.add_product(codes=10, daily_limit_per_buyer=3)
    assert fakes.limits.count_paid(
        product.product_id, "buyer@example.com", fakes.clock().date(), 2, 3, "ord_paid_earlier"
    )

    with pytest.raises(TooMany) as refused:
        buy(fakes, product, 2, client=client)

    assert refused.value.code == "daily_limit_reached"
    seconds_to_midnight = 86_400 - int(fakes.clock().timestamp()) % 86_400
    assert refused.value.retry_after == seconds_to_midnight
    assert nothing_held(fakes, product)
    assert buy(fakes, product, 1, client=client).order.quantity == 1  # what is left of the day's limit


def test_unpaid_units_of_the_same_email_count_against_the_daily_limit(fakes):
    product = fakes.add_product(codes=10, daily_limit_per_buyer=3)
    buy(fakes, product, 2)

    with pytest.raises(TooMany) as refused:
        buy(fakes, product, 2)

    assert refused.value.code == "daily_limit_reached"
    assert len(fakes.orders.all()) == 1


def test_the_daily_limit_is_per_email(fakes):
    product = fakes.add_product(codes=10, daily_limit_per_buyer=2)
    buy(fakes, product, 2)
    assert buy(fakes, product, 2, email="friend@example.com").order.quantity == 2


# ---------- the payment provider ----------


def test_a_provider_that_does_not_answer_is_a_503_and_the_order_keeps_its_stock_and_places(fakes):
    product = fakes.add_product(codes=3)
    fakes.sandbox.error = ProviderUnavailable("connect timeout")
    key = secrets.token_hex(16)

    with pytest.raises(ProviderDown):
        buy(fakes, product, key=key)

    (order,) = fakes.orders.all()
    assert order.status == Status.PENDING_PAYMENT
    assert len(fakes.allocation.held_by(order.order_id)) == 1
    assert fakes.limits.held_tickets(order.order_id)

    fakes.sandbox.error = None
    retried = buy(fakes, product, key=key)  # the buyer retries with the same key: the payment starts
    assert retried.order.order_id == order.order_id and retried.pay_url is not None
    assert fakes.allocation.levels(product.product_id).reserved == 1


# ---------- idempotent retries ----------


def test_a_retry_with_the_same_key_gets_the_same_order_and_token_and_reserves_nothing_more(fakes):
    product = fakes.add_product(codes=5)
    key = secrets.token_hex(16)

    first, again = buy(fakes, product, key=key), buy(fakes, product, key=key)

    assert again.order == first.order and again.access_token == first.access_token
    assert again.pay_url == first.pay_url
    assert len(fakes.orders.all()) == 1
    assert fakes.allocation.levels(product.product_id).reserved == 1


def test_a_key_reused_for_another_request_is_refused(fakes):
    product = fakes.add_product(codes=5)
    key = secrets.token_hex(16)
    buy(fakes, product, 1, key=key)

    with pytest.raises(Invalid) as refused:
        buy(fakes, product, 2, key=key)

    assert refused.value.code == "idempotency_key_reused"
    assert fakes.allocation.levels(product.product_id).reserved == 1


def test_a_retry_after_the_order_was_paid_starts_no_payment(fakes):
    product = fakes.add_product(codes=5)
    key = secrets.token_hex(16)
    first = buy(fakes, product, key=key)
    fakes.orders.transition(first.order, "payment.succeeded", fakes.clock())

    again = buy(fakes, product, key=key)

    assert again.order.status == Status.PAID and again.pay_url is None
    assert fakes.sandbox.started == [first.order.order_id]


def test_a_retry_after_the_provider_was_unconfigured_is_a_conflict(fakes):
    product = fakes.add_product(codes=5)
    key = secrets.token_hex(16)
    buy(fakes, product, key=key)
    del fakes.providers.by_name["sandbox"]

    with pytest.raises(StateConflict):
        buy(fakes, product, key=key)


def test_a_concurrent_retry_that_took_the_last_stock_is_answered_with_its_order(fakes):
    product = fakes.add_product(codes=1)
    key = secrets.token_hex(16)
    twin: list[Checkout] = []

    def twin_claims_first(*args, **kwargs) -> None:
        with fakes.quietly():  # the same request, a moment ahead of this one
            twin.append(buy(fakes, product, key=key))

    fakes.allocation.before("claim", twin_claims_first, times=1)
    result = buy(fakes, product, key=key)

    assert result.order == twin[0].order and result.access_token == twin[0].access_token
    assert len(fakes.orders.all()) == 1
    assert fakes.allocation.levels(product.product_id).reserved == 1
    assert len(fakes.limits.held_tickets()) == 2  # the twin's e-mail and client places, not ours too
    assert fakes.limits.unpaid_units(product.product_id, CLIENT) == 1


def test_a_concurrent_retry_that_wrote_its_order_first_keeps_its_stock_and_ours_goes_back(fakes):
    product = fakes.add_product(codes=5)
    key = secrets.token_hex(16)
    twin: list[Checkout] = []

    def twin_writes_first(order: Order) -> None:
        with fakes.quietly():
            twin.append(buy(fakes, product, key=key))

    fakes.orders.before("create", twin_writes_first, times=1)
    result = buy(fakes, product, key=key)

    assert result.order == twin[0].order
    assert len(fakes.orders.all()) == 1
    assert fakes.allocation.levels(product.product_id).reserved == 1  # only the twin's slot
    assert len(fakes.limits.held_tickets()) == 2
    assert fakes.limits.unpaid_units(product.product_id, CLIENT) == 1


# ---------- a write that fails ----------


def test_an_order_write_that_fails_gives_back_the_stock_and_the_places(fakes):
    product = fakes.add_product(codes=3)
    fakes.orders.before("create", raises(ConnectionError("throttled")), times=1)

    with pytest.raises(ConnectionError):
        buy(fakes, product)

    assert nothing_held(fakes, product)
    assert fakes.allocation.levels(product.product_id).available == 3


def test_an_order_write_whose_answer_was_lost_still_answers_with_the_order(fakes):
    product = fakes.add_product(codes=3)
    fakes.orders.after("create", raises(ConnectionError("answer lost")), times=1)

    result = buy(fakes, product)

    assert fakes.orders.get(result.order.order_id) is not None
    assert len(fakes.allocation.held_by(result.order.order_id)) == 1
    assert fakes.limits.held_tickets(result.order.order_id)


def test_a_write_already_applied_is_taken_as_our_own(fakes):
    product = fakes.add_product(codes=3)

    def own_write_applied_first(order: Order) -> None:
        with fakes.quietly():
            fakes.orders.create(order)  # the SDK's first attempt applied; its retry finds it
        raise AlreadyApplied(order.order_id)

    fakes.orders.before("create", own_write_applied_first, times=1)
    result = buy(fakes, product)

    assert fakes.orders.get(result.order.order_id) == result.order
    assert len(fakes.allocation.held_by(result.order.order_id)) == 1


def test_a_crash_after_the_claim_leaves_no_order_and_no_places_held(fakes):
    product = fakes.add_product(codes=3)
    faults.arm("checkout:after-claim")

    with pytest.raises(faults.InjectedFault):
        buy(fakes, product)

    assert fakes.orders.all() == [] and fakes.limits.held_tickets() == []
    assert fakes.allocation.levels(product.product_id).reserved == 1  # burned: reconcile returns it
