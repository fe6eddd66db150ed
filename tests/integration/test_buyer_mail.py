"""Buyers' mail through the embedded SES (issue 7): the confirmation of a delivered order carries a
magic link to its page (not the codes, unless the product says so); the order look-up always
answers 202 the same way, mails a link to each of a known address's orders, nothing to an unknown
one, and is capped per hour."""

import re
import time

import pytest
import requests

from functions.storefront.lookup import LookupRequest, request_lookup
from shared.adapters import limits
from shared.errors import TooMany
from tests.support import new_codes, poll

LINK = re.compile(r"(http://[^\s]+/o/(ord_[0-9a-f]+))#token=([^\s]+)")


def mails(shop, to: str) -> list[dict]:
    answer = requests.get(f"{shop.url}/_local/mail", params={"format": "json"}, timeout=10)
    assert answer.status_code == 200
    return [m for m in answer.json() if to in m["to"]]


def wait_for_mail(shop, to: str, count: int = 1) -> list[dict]:
    return poll(lambda: (found := mails(shop, to)) and len(found) >= count and found, deadline=15)


def buy_and_pay(shop, product_id: str, email: str, quantity: int = 1) -> dict:
    response = shop.checkout(product_id, quantity=quantity, email=email)
    assert response.status_code == 201, response.text
    order = response.json()
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    return shop.wait_for(order, "DELIVERED")


def lookup(shop, email: str) -> requests.Response:
    return shop.http.post(f"{shop.url}/api/orders/lookup", json={"email": email}, timeout=10)


def test_a_delivered_order_mails_a_link_that_opens_it_and_not_its_codes(shop):
    email = "confirm@example.com"
    delivered = buy_and_pay(shop, shop.new_product(new_codes(2), price=1250), email, quantity=2)

    [mail] = wait_for_mail(shop, email)

    assert mail["from"] == "shop@miaofa.local"
    assert "Your order is delivered" in mail["subject"] and "已发货" in mail["subject"]
    assert "25.00 CNY" in mail["body"]  # 2 × 12.50
    for item in delivered["items"]:
        assert item["code"] not in mail["body"] + mail["subject"]
    _, order_id, token = LINK.search(mail["body"]).groups()
    assert order_id == delivered["order_id"] and token != delivered.get("access_token")
    opened = shop.order(order_id, token)
    assert opened.status_code == 200 and opened.json()["items"] == delivered["items"]


def test_a_product_that_mails_its_codes_puts_them_in_the_mail(shop):
    email = "with-codes@example.com"
    product_id = shop.new_product(new_codes(1), email_codes=True)

    delivered = buy_and_pay(shop, product_id, email)

    [mail] = wait_for_mail(shop, email)
    assert delivered["items"][0]["code"] in mail["body"]


def test_a_link_opens_only_its_own_order_and_not_once_tampered(shop):
    email = "own-link@example.com"
    first = buy_and_pay(shop, shop.new_product(new_codes(1)), email)
    [mail] = wait_for_mail(shop, email)
    _, order_id, token = LINK.search(mail["body"]).groups()
    other = shop.buy(shop.new_product(new_codes(1)))

    assert shop.order(other["order_id"], token).status_code == 404
    payload, mac = token.split(".")
    other_mac = ("BB" if mac.startswith("AA") else "AA") + mac[2:]  # always a different value
    assert shop.order(order_id, f"{payload}.{other_mac}").status_code == 404
    other_start = "B" if payload.startswith("A") else "A"  # the first character: six bits of data
    assert shop.order(order_id, f"{other_start}{payload[1:]}.{mac}").status_code == 404
    assert shop.order(first["order_id"], token).status_code == 200


def test_lookup_answers_a_known_and_an_unknown_address_alike(shop):
    known = "known-buyer@example.com"
    buy_and_pay(shop, shop.new_product(new_codes(1)), known)
    wait_for_mail(shop, known)  # the confirmation

    answers = [lookup(shop, address) for address in (known, "nobody-here@example.com")]

    assert [a.status_code for a in answers] == [202, 202]
    assert answers[0].json() == answers[1].json()
    varying = {"date", "x-request-id", "apigw-requestid", "content-length"}
    assert {k: v for k, v in answers[0].headers.items() if k.lower() not in varying} == {
        k: v for k, v in answers[1].headers.items() if k.lower() not in varying
    }


def test_lookup_mails_a_link_to_each_of_the_address_orders(shop):
    email = "Many.Orders@example.com"
    product_id = shop.new_product(new_codes(3))
    bought = [buy_and_pay(shop, product_id, email)["order_id"], shop.buy(product_id)["order_id"]]
    bought.append(buy_and_pay(shop, product_id, "many.orders@EXAMPLE.com")["order_id"])
    wait_for_mail(shop, email, 1)

    assert lookup(shop, "many.orders@example.com").status_code == 202  # any capitalisation

    asked = "many.orders@example.com"
    listing = poll(lambda: [m for m in mails(shop, asked) if "Your orders" in m["subject"]], deadline=15)[0]
    linked = {order_id: token for _, order_id, token in LINK.findall(listing["body"])}
    assert set(bought) - {bought[1]} <= set(linked)  # the other buyer's unpaid order is not theirs
    for order_id, token in linked.items():
        assert shop.order(order_id, token).status_code == 200


def test_lookup_by_order_number_and_address_mails_that_order_only_if_it_is_theirs(shop):
    email = "by-number@example.com"
    product_id = shop.new_product(new_codes(3))
    first, second = (buy_and_pay(shop, product_id, email)["order_id"] for _ in range(2))
    stranger = buy_and_pay(shop, product_id, "someone-else@example.com")["order_id"]
    wait_for_mail(shop, email, 2)  # the confirmations

    ask = {"email": email, "order_id": second}
    assert shop.http.post(f"{shop.url}/api/orders/lookup", json=ask, timeout=10).status_code == 202
    # Another's number with this address: the same answer, and no mail (checked below, after a later one).
    theirs = {"email": email, "order_id": stranger}
    assert shop.http.post(f"{shop.url}/api/orders/lookup", json=theirs, timeout=10).status_code == 202
    assert lookup(shop, email).status_code == 202  # then the whole listing, last

    listings = poll(
        lambda: (m := [x for x in mails(shop, email) if "Your orders" in x["subject"]]) and len(m) >= 2 and m,
        deadline=15,
    )
    assert len(listings) == 2  # the number's, and the address's: none for the stranger's number
    by_number = [m for m in listings if first not in m["body"]]
    assert len(by_number) == 1 and [o for _, o, _ in LINK.findall(by_number[0]["body"])] == [second]
    assert all(stranger not in m["body"] for m in mails(shop, email))


def test_lookup_of_an_address_without_orders_mails_nothing(shop):
    email = "never-bought@example.com"
    assert lookup(shop, email).status_code == 202
    # The request is queued like any other; wait until a later, known look-up's mail has gone out.
    known = "after-nothing@example.com"
    buy_and_pay(shop, shop.new_product(new_codes(1)), known)
    assert lookup(shop, known).status_code == 202
    wait_for_mail(shop, known, 2)
    assert mails(shop, email) == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"email": "not-an-address"},
        {"email": "a@b.c", "x": 1},
        {"email": "a@example.com", "order_id": "42"},
    ],
)
def test_a_malformed_lookup_is_422_and_sends_nothing(shop, body):
    answer = shop.http.post(f"{shop.url}/api/orders/lookup", json=body, timeout=10)
    assert answer.status_code == 422 and "error" in answer.json()


def test_lookups_are_capped_per_client_with_429_and_per_address_silently(shop):
    now = int(time.time())
    sent = []

    class Queue:
        def send_body(self, body):
            sent.append(body)

    def ask(email, client):
        request = LookupRequest(email=email)
        return request_lookup(request, client, limits(), caps=(2, 3), now=now, queue=Queue())

    for _ in range(3):
        ask("flooded@example.com", "203.0.113.7")
    with pytest.raises(TooMany):  # the fourth from this client
        ask("someone-else@example.com", "203.0.113.7")
    assert len(sent) == 2  # the address got two mails this hour; the third look-up sent none

    ask("flooded@example.com", "203.0.113.8")  # another client: answered, still no third mail
    assert len(sent) == 2
    ask("fresh@example.com", "203.0.113.8")
    assert len(sent) == 3
