"""Generated delivery on the local runtime (docs/licenses.md "Generated delivery"): each paid unit gets a
fresh code made from the product's pattern, unique per product, sealed on the order, never stored or
logged in plaintext; a cap is counted exactly under concurrency; a collision draws again; a duplicated
or crashed delivery never shows two sets of codes."""

import dataclasses
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from functions.deliver.delivery import deliver
from functions.deliver.generated import LEASE, InFlight
from shared import faults, generated
from shared.adapters import made_codes, ports
from shared.faults import InjectedFault
from shared.orders import Status, utcnow
from shared.settings import settings
from tests.integration.test_buyer_mail import buy_and_pay, wait_for_mail
from tests.integration.test_deliver import mark_paid_without_enqueueing
from tests.support import poll, session_from, stored_order, stored_text

PATTERN = "C\\ARD-XXXX-XXXX-9999"  # CARD-…: the A escaped, 52.9 bits
PARSED = generated.validate(PATTERN)


def generated_product(shop, pattern: str = PATTERN, cap: int | None = None, **fields) -> str:
    created = shop.merchant(
        "POST",
        "/merchant/products",
        json={
            "name": "Gift card",
            "price": {"amount": 500, "currency": "CNY"},
            "delivery": "generated",
            "generated": {"pattern": pattern, "cap": cap},
            "max_per_order": fields.pop("max_per_order", 100),
            **fields,
        },
    )
    assert created.status_code == 201, created.text
    return created.json()["id"]


def paid(shop, product_id: str, quantity: int = 1, n: int = 0) -> dict:
    """An order paid through the sandbox (its delivery goes through the delivery queue)."""
    answer = shop.checkout(
        product_id, quantity, email=f"buyer{n}@example.com", via=session_from(f"127.0.21.{n % 250 + 1}")
    )
    assert answer.status_code == 201, answer.text
    order = answer.json()
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    return order


def unpaid(shop, product_id: str, quantity: int = 1) -> dict:
    answer = shop.checkout(product_id, quantity)
    assert answer.status_code == 201, answer.text
    return answer.json()


def codes(shop, order: dict, deadline: float = 60) -> list[str]:
    body = shop.wait_for(order, "DELIVERED", deadline=deadline)
    return [item["code"] for item in body["items"]]


def made_items(product_id: str) -> list[dict]:
    """The product's uniqueness items as the stock table holds them (one per code made)."""
    client = boto3.client("dynamodb")
    found, start = [], {}
    while True:
        page = client.scan(
            TableName=settings().stock_table,
            FilterExpression="begins_with(pk, :p)",
            ExpressionAttributeValues={":p": {"S": f"gen#{product_id}#"}},
            **start,
        )
        found += page["Items"]
        if "LastEvaluatedKey" not in page:
            return found
        start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}


def test_a_paid_generated_order_gets_fresh_codes_of_its_pattern_sealed_and_unique(shop):
    created = shop.merchant(
        "POST",
        "/merchant/products",
        json={
            "name": "Gift card",
            "price": {"amount": 500, "currency": "CNY"},
            "delivery": "generated",
            "generated": {"pattern": PATTERN},
        },
    )
    assert created.status_code == 201, created.text
    product = created.json()
    assert product["generated"] == {"pattern": PATTERN, "cap": None}
    assert product["example"].startswith("CARD-") and PARSED.matches(product["example"])
    public = shop.http.get(f"{shop.url}/api/products/{product['id']}", timeout=30).json()
    assert public["available"] is None and public["delivery"]["kind"] == "generated"

    order = paid(shop, product["id"], quantity=3)
    made = codes(shop, order)

    assert len(made) == len(set(made)) == 3 and all(PARSED.matches(code) for code in made)
    assert product["example"] not in made  # an example is never sold (2^-52.9 it would be by chance)
    items = made_items(product["id"])
    assert sorted(int(i["unit"]["N"]) for i in items) == [0, 1, 2]
    assert {i["order_id"]["S"] for i in items} == {order["order_id"]}
    text = stored_text()
    assert not any(code in text for code in made)  # sealed on the order, keyed hashes in the store
    record = stored_order(order["order_id"])
    delivered = [e for e in record.history if e.type == "order.delivered"]
    assert len(delivered) == 1 and delivered[0].data == {"quantity": 3, "made": 3}
    detail = shop.merchant("GET", f"/merchant/orders/{order['order_id']}").json()
    assert [item["code"] for item in detail["items"]] == made and "fulfilment" not in detail


def test_a_thousand_codes_have_no_duplicate(shop):
    """10 orders of 100 units, paid over HTTP at once and delivered by the runtime's delivery queue:
    1,000 codes, every one of the pattern, no two alike, and the store holds exactly one uniqueness
    item per code, each naming the order and unit it was made for. This proves the wiring (one code
    per unit, every unit recorded, none shown twice); the forced collision below proves the redraw;
    10,000 orders are `bench/generated.py`'s (BENCHMARKS.md), kept out of the suite for time."""
    product_id = generated_product(shop)
    with ThreadPoolExecutor(max_workers=8) as pool:
        orders = list(pool.map(lambda n: paid(shop, product_id, 100, n), range(10)))
        made = list(pool.map(lambda order: codes(shop, order, deadline=120), orders))

    every = [code for order_codes in made for code in order_codes]
    assert len(every) == 1_000 and len(set(every)) == 1_000
    assert all(PARSED.matches(code) for code in every)
    items = made_items(product_id)
    assert len(items) == 1_000
    owners = {(i["order_id"]["S"], int(i["unit"]["N"])) for i in items}
    assert owners == {(order["order_id"], unit) for order in orders for unit in range(100)}


def test_a_code_another_order_has_is_drawn_again(shop):
    """A generator forced to repeat another order's code (through the delivery's `draw` port, the
    store untouched): the order still gets a fresh code of its own, and the store one item per code."""
    product_id = generated_product(shop)
    first = paid(shop, product_id, quantity=1)
    [taken] = codes(shop, first)
    second = unpaid(shop, product_id, quantity=2)
    mark_paid_without_enqueueing(second)
    fresh = iter(itertools.chain([taken, taken], iter(lambda: PARSED.generate(generated.CSPRNG), None)))
    repeating = dataclasses.replace(ports(), draw=lambda pattern: next(fresh))

    assert deliver(second["order_id"], repeating, utcnow()) == Status.DELIVERED

    made = codes(shop, second)
    assert taken not in made and len(set(made)) == 2 and all(PARSED.matches(c) for c in made)
    items = made_items(product_id)
    assert len(items) == 3  # one per code: the collision wrote nothing
    assert sorted((i["order_id"]["S"], int(i["unit"]["N"])) for i in items) == sorted(
        [(first["order_id"], 0), (second["order_id"], 0), (second["order_id"], 1)]
    )


def test_the_same_code_for_two_units_of_one_order_is_drawn_again(shop):
    product_id = generated_product(shop)
    order = unpaid(shop, product_id, quantity=2)
    mark_paid_without_enqueueing(order)
    same = PARSED.generate(generated.CSPRNG)
    fresh = iter(itertools.chain([same, same], iter(lambda: PARSED.generate(generated.CSPRNG), None)))

    deliver(order["order_id"], dataclasses.replace(ports(), draw=lambda pattern: next(fresh)), utcnow())

    made = codes(shop, order)
    assert made[0] == same and made[1] != same and len(made_items(product_id)) == 2


def test_a_generator_that_only_repeats_fails_the_delivery_loudly(shop):
    product_id = generated_product(shop)
    [taken] = codes(shop, paid(shop, product_id))
    order = unpaid(shop, product_id)
    mark_paid_without_enqueueing(order)

    with pytest.raises(Exception, match="were all taken"):
        deliver(order["order_id"], dataclasses.replace(ports(), draw=lambda pattern: taken), utcnow())

    assert stored_order(order["order_id"]).status == Status.PAID  # retried, then dead-lettered
    assert len(made_items(product_id)) == 1


@pytest.mark.parametrize("policy", ["refund", "hold"])
def test_exactly_cap_units_are_made_under_concurrency_the_rest_follow_the_policy(shop, policy):
    cap, buyers = 5, 14
    product_id = generated_product(shop, cap=cap, max_per_order=1, when_undeliverable=policy)
    start = threading.Barrier(buyers)

    def buy(n: int) -> dict:
        answer = shop.checkout(
            product_id, 1, email=f"cap{n}@example.com", via=session_from(f"127.0.22.{n + 1}")
        )
        assert answer.status_code == 201, answer.text
        order = answer.json()
        start.wait()  # every payment at once: the deliveries race for the cap
        assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
        return order

    with ThreadPoolExecutor(max_workers=buyers) as pool:
        orders = list(pool.map(buy, range(buyers)))
    given_up = {Status.REFUNDING, Status.REFUNDED} if policy == "refund" else {Status.IN_REVIEW}

    def settled():
        states = [stored_order(order["order_id"]).status for order in orders]
        return states if all(s == Status.DELIVERED or s in given_up for s in states) else None

    states = poll(settled, deadline=60)
    assert states.count(Status.DELIVERED) == cap and len(states) - cap == buyers - cap
    assert made_codes().made(product_id) == cap
    assert len(made_items(product_id)) == cap
    held = [order for order, state in zip(orders, states, strict=True) if state != Status.DELIVERED]
    assert all(
        any("cap of 5 codes" in str(e.data.get("reason")) for e in stored_order(o["order_id"]).history)
        for o in held
    )


def test_a_capped_product_that_made_its_cap_is_sold_out_before_the_buyer_pays(shop):
    product_id = generated_product(shop, cap=3)
    codes(shop, paid(shop, product_id, quantity=2))
    assert shop.stock(product_id)["generated"] == {"cap": 3, "made": 2, "left": 1}
    # The checkout and the pages read the count as their process kept it (PRODUCT_CACHE_SECONDS).
    poll(lambda: available(shop, product_id) == 1 or None)
    too_many = shop.checkout(product_id, 2, email="late@example.com", via=session_from("127.0.23.1"))
    assert (too_many.status_code, too_many.json()["error"]["code"]) == (409, "out_of_stock")
    assert "only 1 more" in too_many.json()["error"]["message"]
    codes(shop, paid(shop, product_id, n=1))
    assert shop.stock(product_id)["generated"] == {"cap": 3, "made": 3, "left": 0}
    poll(lambda: available(shop, product_id) == 0 or None)
    refused = shop.checkout(product_id, 1, email="later@example.com", via=session_from("127.0.23.2"))
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "out_of_stock")
    uncapped = generated_product(shop)
    assert shop.stock(uncapped)["generated"] == {"cap": None, "made": None, "left": None}
    assert available(shop, uncapped) is None


def available(shop, product_id: str) -> int | None:
    """What the product's public page says is left."""
    return shop.http.get(f"{shop.url}/api/products/{product_id}").json()["available"]


def test_a_delivery_duplicated_at_once_delivers_one_set_of_codes(shop):
    product_id = generated_product(shop, cap=1000)
    order = unpaid(shop, product_id, quantity=4)
    mark_paid_without_enqueueing(order)
    start, now = threading.Barrier(2), utcnow()

    def attempt() -> str:
        start.wait()
        try:
            return deliver(order["order_id"], ports(), now).value
        except InFlight:
            return "in flight"

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(lambda _: attempt(), range(2)))

    assert "DELIVERED" in outcomes
    made = codes(shop, order)
    assert len(set(made)) == 4
    assert len(made_items(product_id)) == 4 and made_codes().made(product_id) == 4  # drawn and counted once
    history = [e.type for e in stored_order(order["order_id"]).history]
    assert history.count("order.delivered") == 1 and history.count("codes.drawing") == 1
    assert deliver(order["order_id"], ports(), utcnow()) == Status.DELIVERED  # a late copy: nothing more
    assert codes(shop, order) == made


def test_a_crash_after_drawing_costs_the_drawn_codes_and_the_retry_draws_new_ones(shop):
    """What docs/licenses.md says a crash costs: the crashed attempt's uniqueness items stay, shown by no
    order; the retry, once the lease is over, delivers codes of its own — and does not count the order
    against the cap again (its `codes.counted` note)."""
    product_id = generated_product(shop, cap=10)
    order = unpaid(shop, product_id, quantity=2)
    mark_paid_without_enqueueing(order)
    now = utcnow()
    faults.arm("generated:after-draw")
    try:
        with pytest.raises(InjectedFault):
            deliver(order["order_id"], ports(), now)
    finally:
        faults.disarm()
    with pytest.raises(InFlight):  # within the lease another delivery may still be drawing
        deliver(order["order_id"], ports(), now + LEASE / 2)

    assert deliver(order["order_id"], ports(), now + LEASE) == Status.DELIVERED

    made = codes(shop, order)
    items = made_items(product_id)
    assert len(items) == 4  # 2 shown, 2 burned
    assert made_codes().made(product_id) == 2  # counted once
    assert len(set(made)) == 2


def test_a_pattern_that_breaks_a_rule_is_refused_naming_it(shop):
    for pattern, words in [("XXXX-XXXX", "bits of randomness"), ("GIFT XXXXXXXXXX", "position 5"), ("", "")]:
        answer = shop.merchant(
            "POST",
            "/merchant/products",
            json={
                "name": "Gift card",
                "price": {"amount": 500, "currency": "CNY"},
                "delivery": "generated",
                "generated": {"pattern": pattern},
            },
        )
        assert answer.status_code == 422, answer.text
        assert words in answer.json()["error"]["message"]


def test_changing_the_pattern_answers_an_example_of_the_new_one(shop):
    product_id = generated_product(shop)
    changed = shop.merchant(
        "PATCH", f"/merchant/products/{product_id}", json={"generated": {"pattern": "CARD-XXXXXXXXXX"}}
    )
    assert changed.status_code == 200, changed.text
    example = changed.json()["example"]
    assert generated.validate("CARD-XXXXXXXXXX").matches(example)
    # Unescaped, the A is a class (a random safe letter, A itself 1 time in 23): C, R and D stay.
    assert example[0] == "C" and example[2:5] == "RD-" and example[1] in generated.SAFE_LETTERS
    other = shop.merchant("PATCH", f"/merchant/products/{product_id}", json={"name": "Renamed"})
    assert "example" not in other.json()
    shown = shop.merchant("GET", f"/merchant/products/{product_id}").json()
    assert shown["generated"] == {"pattern": "CARD-XXXXXXXXXX", "cap": None} and "example" not in shown


def test_a_generated_product_that_mails_its_codes_puts_the_made_codes_in_the_mail(shop):
    email = "made-codes@example.com"
    product_id = generated_product(shop, email_codes=True)

    delivered = buy_and_pay(shop, product_id, email, quantity=2)

    [mail] = wait_for_mail(shop, email)
    assert all(item["code"] in mail["body"] for item in delivered["items"])


def test_make_runs_demo_gift_card_and_license_are_made_when_paid(shop):
    from shared.licenses import Keyring, verify_license

    info = shop.runtime.info
    bought = {}
    for name, product_id in (
        ("gift", info.demo_generated_product_id),
        ("license", info.demo_license_product_id),
    ):
        answer = shop.checkout(product_id, email=f"demo-{name}@example.com")
        assert answer.status_code == 201, answer.text
        order = answer.json()
        assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
        bought[name] = codes(shop, order)

    [gift] = bought["gift"]
    assert generated.validate("GIFT-XXXX-XXXX-9999").matches(gift)
    [text] = bought["license"]
    keys = shop.http.get(f"{shop.url}/api/licenses/keys/{info.merchant_id}", timeout=30).json()
    made = verify_license(
        text,
        Keyring.from_jwks(keys),
        now=utcnow(),
        merchant_id=info.merchant_id,
        product_id=info.demo_license_product_id,
    )
    assert made.max_machines == 3 and made.entitlements == ("pro",)
