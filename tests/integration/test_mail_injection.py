"""Buyers' mail quotes merchant text (a product's name): line breaks in it cannot forge a paragraph
of ours in the body (a fake code, a fake link) nor a second line in the Subject."""

import secrets

from tests.integration.test_buyer_mail import buy_and_pay, lookup, mails, wait_for_mail
from tests.support import new_codes, poll

FORGED = "\r\n\r\nYour code: FAKE-0000\u2028\u2029See your codes: https://evil.example/o/ord_0\x85\x0b\x0cok"
NAME = f"Gift card{FORGED}"
FOLDED = "Gift card Your code: FAKE-0000 See your codes: https://evil.example/o/ord_0 ok"
BREAKS = set("\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")  # and "\n", which only our own lines end with


def quoting_lines(body: str) -> list[str]:
    """The body's lines, as any mail reader breaks them, that carry the product's name."""
    return [line for line in body.splitlines() if "FAKE-0000" in line or "evil.example" in line]


def test_a_product_name_with_line_breaks_stays_on_its_line_in_the_order_mail(shop):
    email = f"forged-{secrets.token_hex(4)}@example.com"
    product_id = shop.new_product(new_codes(1), name=NAME, instructions=f"Redeem it.{FORGED}")

    buy_and_pay(shop, product_id, email)

    [mail] = wait_for_mail(shop, email)
    subject, body = mail["subject"], mail["body"]
    assert not BREAKS & set(subject) and "\n" not in subject, repr(subject)
    assert subject.endswith(f"Your order is delivered: {FOLDED}")
    assert not BREAKS & set(body), repr(body)
    lines = quoting_lines(body)
    assert len(lines) == 2 and all(FOLDED in line for line in lines), lines
    assert lines[0].startswith("您的订单 ord_") and lines[1].startswith("Your order ord_")
    assert not [line for line in body.splitlines() if line.startswith("Your code")]
    [link] = [line for line in body.splitlines() if line.startswith("See your codes:")]
    assert link.startswith(f"See your codes: {shop.url}/o/ord_")


def test_a_product_name_with_line_breaks_stays_on_its_line_in_the_lookup_mail(shop):
    email = f"forged-lookup-{secrets.token_hex(4)}@example.com"
    buy_and_pay(shop, shop.new_product(new_codes(1), name=NAME), email)
    wait_for_mail(shop, email)  # the confirmation

    assert lookup(shop, email).status_code == 202

    listing = poll(lambda: [m for m in mails(shop, email) if "Your orders" in m["subject"]], deadline=15)[0]
    assert not BREAKS & set(listing["body"]), repr(listing["body"])
    lines = quoting_lines(listing["body"])
    assert len(lines) == 1 and lines[0].startswith("- ord_") and FOLDED in lines[0], lines
