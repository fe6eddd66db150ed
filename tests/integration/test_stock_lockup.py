"""Buyers who do not play fair cannot take the shop hostage (issue 15): one client holds a bounded
number of a product's units unpaid, whatever e-mails it uses; somebody else's unpaid orders in your
e-mail never lock you out; the daily limit counts what was paid. Over HTTP, each buyer at a loopback
address of its own (the local gateway takes the client's address from the connection, as API Gateway
does)."""

import secrets
import threading
from datetime import timedelta

import pytest

from functions.reconcile.run import reconcile
from shared.errors import TooMany
from shared.orders import utcnow
from shared.settings import Settings, settings
from tests.faults_aws import key_prefix, lost_answer
from tests.integration.test_reservation_caps import buy
from tests.support import new_codes, session_from

DEFAULT_BOUND = Settings.model_fields["unpaid_units_per_client"].default


@pytest.fixture
def shop_defaults(shop):
    """The shop's own defaults for these limits (the test session lifts them for everyone else)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("UNPAID_UNITS_PER_CLIENT", str(DEFAULT_BOUND))
        patch.setenv("MAX_PENDING_PER_EMAIL", str(Settings.model_fields["max_pending_per_email"].default))
        settings.cache_clear()  # read once per process: read again, with these
        yield shop
    settings.cache_clear()


def in_threads(work, arguments) -> list:
    results: list = [None] * len(arguments)
    start = threading.Barrier(len(arguments))

    def run(i: int) -> None:
        start.wait()
        results[i] = work(*arguments[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(arguments))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def pay_and_receive(shop, created: dict) -> list[str]:
    assert shop.runtime.sandbox.pay(created["order_id"], created["total"]["amount"], "CNY")
    return [item["code"] for item in shop.wait_for(created, "DELIVERED")["items"]]


def test_one_address_with_fifty_emails_holds_no_more_than_the_bound_and_honest_buyers_all_get_theirs(
    shop_defaults,
):
    shop = shop_defaults
    assert DEFAULT_BOUND == 20  # docs/operations.md "Limits" documents this default
    product_id = shop.new_product(new_codes(40), max_per_order=10, shards=4)

    def hoard(n: int):
        response = shop.checkout(
            product_id, 10, email=f"hoarder{n}@example.com", via=session_from("127.0.0.9")
        )
        return response.status_code, response.json()

    hoarded = in_threads(hoard, [(n,) for n in range(50)])

    held = [body for status, body in hoarded if status == 201]
    refused = {(status, body["error"]["code"]) for status, body in hoarded if status != 201}
    assert sum(order["total"]["amount"] for order in held) == DEFAULT_BOUND * 1999  # 20 units, no more
    assert refused == {(429, "unpaid_limit_reached")}
    assert shop.stock(product_id)["reserved"] == DEFAULT_BOUND

    def honest(n: int) -> list[str]:
        response = shop.checkout(
            product_id, 1, email=f"honest{n}@example.com", via=session_from(f"127.0.1.{n + 1}")
        )
        assert response.status_code == 201, response.text
        return pay_and_receive(shop, response.json())

    received = in_threads(honest, [(n,) for n in range(20)])

    codes = [code for got in received for code in got]
    assert len(codes) == 20 and len(set(codes)) == 20
    assert shop.stock(product_id) == {
        "available": 0,
        "reserved": DEFAULT_BOUND,
        "sold": 20,
        "returned": 0,
        "imported": 40,
    }


def test_paying_frees_the_units_a_client_held(shop_defaults):
    shop = shop_defaults
    product_id = shop.new_product(new_codes(30), max_per_order=10)
    buyer = session_from("127.0.2.1")
    first = shop.checkout(product_id, 10, email="reseller@example.com", via=buyer).json()
    assert shop.checkout(product_id, 10, email="reseller@example.com", via=buyer).status_code == 201
    over = shop.checkout(product_id, 1, email="reseller@example.com", via=buyer)
    assert (over.status_code, over.json()["error"]["code"]) == (429, "unpaid_limit_reached")
    assert 0 < int(over.headers["Retry-After"]) <= 15 * 60  # when its holds run out at the latest

    assert len(pay_and_receive(shop, first)) == 10
    assert shop.checkout(product_id, 10, email="reseller@example.com", via=buyer).status_code == 201


def test_a_merchant_tunes_the_bound_per_product(shop_defaults):
    shop = shop_defaults
    product_id = shop.new_product(new_codes(10), max_per_order=5, unpaid_limit_per_client=3)
    buyer = session_from("127.0.2.2")
    assert shop.checkout(product_id, 3, email="a@example.com", via=buyer).status_code == 201
    over = shop.checkout(product_id, 1, email="b@example.com", via=buyer)
    assert (over.status_code, over.json()["error"]["code"]) == (429, "unpaid_limit_reached")
    assert (
        shop.checkout(product_id, 1, email="b@example.com", via=session_from("127.0.2.3")).status_code == 201
    )


def test_the_bound_holds_over_a_whole_ipv6_64(shop_defaults):
    """The local gateway listens on IPv4 only: the checkout use case is called as the storefront calls
    it, with source addresses spread over one /64 (one subscriber's network)."""
    product_id = shop_defaults.new_product(new_codes(40), max_per_order=10)

    def attempt(n: int) -> str:
        client = f"2001:db8:1:2:{n:x}:{n * 7:x}::{n + 1:x}"
        try:
            buy(product_id, f"v6-{n}@example.com", client, (3, 1000), quantity=10, unpaid_units=DEFAULT_BOUND)
        except TooMany as refused:
            return refused.code
        return "ok"

    outcomes = in_threads(attempt, [(n,) for n in range(12)])
    assert sorted(outcomes) == ["ok"] * 2 + ["unpaid_limit_reached"] * 10
    assert shop_defaults.stock(product_id)["reserved"] == DEFAULT_BOUND


def test_unpaid_orders_in_your_email_do_not_lock_you_out(shop_defaults):
    shop = shop_defaults
    capped = shop.new_product(new_codes(10), max_per_order=2)
    limited = shop.new_product(new_codes(10), max_per_order=2, daily_limit_per_buyer=2)
    victim, squatter = "victim@example.com", session_from("127.0.3.1")
    for _ in range(3):  # the e-mail's cap of unpaid orders, all taken by somebody else
        assert shop.checkout(capped, 1, email=victim, via=squatter).status_code == 201
    squatted = shop.checkout(limited, 2, email=victim, via=session_from("127.0.3.4"))  # and its daily limit
    assert squatted.status_code == 201

    owner = session_from("127.0.3.2")
    bought = [shop.checkout(product, 2, email=victim, via=owner) for product in (capped, limited)]
    assert [response.status_code for response in bought] == [201, 201], [r.text for r in bought]
    assert [len(pay_and_receive(shop, response.json())) for response in bought] == [2, 2]

    # The daily limit counts what was paid: the owner has used it today, from any address ...
    again = shop.checkout(limited, 1, email=victim, via=session_from("127.0.3.3"))
    assert (again.status_code, again.json()["error"]["code"]) == (429, "daily_limit_reached")
    # ... and the squatter's order, paid now, would break it: refunded in full, once, nothing delivered,
    # its reservation back in stock at once.
    order = squatted.json()
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    assert "items" not in shop.wait_for(order, "REFUNDING")
    levels = shop.stock(limited)
    assert (levels["reserved"], levels["sold"]) == (0, 2)
    (payment_id,) = shop.runtime.sandbox.payments_for(order["order_id"])
    reconcile(settings(), utcnow())
    reconcile(settings(), utcnow() + timedelta(minutes=5))
    (refund,) = shop.runtime.sandbox.refunds_for(payment_id)
    assert refund["amount"] == order["total"]["amount"]
    assert "items" not in shop.wait_for(order, "REFUNDED")


def test_twin_checkouts_with_one_key_cannot_carry_a_client_past_its_bound(shop_defaults):
    """Twins share an order id; the one that does not create the order gives back only its own hold."""
    shop = shop_defaults
    product_id = shop.new_product(new_codes(60), max_per_order=10, shards=8)
    client = session_from("127.0.4.1")

    def pair(n: int) -> list[int]:
        key, body = (
            secrets.token_urlsafe(16),
            {"product_id": product_id, "quantity": 10, "email": f"twin{n}@example.com"},
        )
        twins = in_threads(
            lambda: client.post(
                f"{shop.url}/api/orders", json=body, headers={"Idempotency-Key": key}, timeout=30
            ),
            [(), ()],
        )
        return [twin.status_code for twin in twins]

    for n in range(5):
        pair(n)

    assert shop.stock(product_id)["reserved"] == DEFAULT_BOUND  # two orders' worth, however many twins
    over = shop.checkout(product_id, 1, email="one-more@example.com", via=client)
    assert (over.status_code, over.json()["error"]["code"]) == (429, "unpaid_limit_reached")


def test_a_lost_answer_on_counting_a_payment_counts_it_once(shop):
    product_id = shop.new_product(new_codes(5), max_per_order=1, daily_limit_per_buyer=2)
    email = "counted-once@example.com"
    first = shop.checkout(product_id, 1, email=email).json()

    daily = key_prefix(settings().limits_table, "pk", f"daily#{product_id}#")
    with lost_answer("UpdateItem", daily) as fault:
        assert len(pay_and_receive(shop, first)) == 1
    assert (fault.hits, fault.seen) == (1, 2)

    second = shop.checkout(product_id, 1, email=email)
    assert second.status_code == 201  # 1 paid + 1: within the limit of 2
    assert len(pay_and_receive(shop, second.json())) == 1
    over = shop.checkout(product_id, 1, email=email)
    assert (over.status_code, over.json()["error"]["code"]) == (429, "daily_limit_reached")


def test_twenty_buyers_behind_one_address_check_out_at_once(shop_defaults):
    """Their checkouts meet on one holds item (product, client): each is read again and retried, with
    a pause, until it is through — none is turned away busy while the bound has room."""
    shop = shop_defaults
    product_id = shop.new_product(new_codes(40), max_per_order=1, shards=4)
    campus = session_from("127.0.5.1")

    def buy(n: int) -> int:
        return shop.checkout(product_id, 1, email=f"student{n}@example.com", via=campus).status_code

    assert in_threads(buy, [(n,) for n in range(DEFAULT_BOUND)]) == [201] * DEFAULT_BOUND
    assert shop.stock(product_id)["reserved"] == DEFAULT_BOUND
