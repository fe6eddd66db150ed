"""The buyer's side in a real browser (issue 7): buy through the sandbox pay page and watch the code
arrive without a reload, copy and download it, the sold-out and expired states, zh-CN and en, a
360 px phone, hostile merchant text shown as text, and a strict CSP that refuses nothing of ours."""

import http.server
import re
import threading

import pytest
from playwright.sync_api import expect

from shared.adapters import orders
from shared.orders import utcnow
from tests.browser.conftest import snap
from tests.integration.test_buyer_mail import wait_for_mail
from tests.support import expire_all, new_codes

pytestmark = pytest.mark.e2e


def no_violations(page) -> None:
    assert page.evaluate("window.__violations") == []


def test_buy_the_demo_product_and_the_code_appears_without_a_reload(shop, browse, tmp_path, capfd):
    page = browse()
    page.goto(f"{shop.url}/p/{shop.runtime.info.demo_product_id}?lang=en")
    expect(page.locator("#pay")).to_have_text("Buy")
    page.locator("#buy").get_by_label("E-mail").fill("browser@example.com")
    page.get_by_label("Sandbox (test payment)").check()
    snap(page, "1-product-en")
    page.locator("#pay").click()
    page.wait_for_url(re.compile(r".*/_sandbox/pay\?.*"))
    pay_url = page.url
    order_id = re.search(r"order_id=(ord_[0-9a-f]+)", pay_url).group(1)

    # The order page is open before the payment: it must update by itself.
    page.goto(f"{shop.url}/o/{order_id}")
    expect(page.locator("#status")).to_have_text("Waiting for your payment")
    page.evaluate("window.__stillHere = true")
    snap(page, "2-order-waiting")
    payer = page.context.new_page()
    payer.goto(pay_url)
    payer.locator("#pay").click()

    code = page.locator("#code-0")
    expect(code).to_have_text(re.compile(r"^DEMO-[0-9A-F]{8}-[0-9A-F]{8}$"), timeout=15_000)
    assert page.evaluate("window.__stillHere") is True  # no reload happened
    expect(page.locator("#status")).to_have_text("Delivered")
    expect(page.locator("#events li")).to_have_count(3)
    snap(page, "3-order-delivered")

    page.get_by_role("button", name="Copy", exact=True).click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == code.text_content()
    with page.expect_download() as download:
        page.locator("#download").click()
    saved = tmp_path / "codes.txt"
    download.value.save_as(saved)
    assert saved.read_text() == f"{code.text_content()}\n"
    no_violations(page)

    token = page.evaluate(f"localStorage.getItem('miaofa:token:{order_id}')")
    assert token and token not in capfd.readouterr().out + capfd.readouterr().err


def test_a_magic_link_token_leaves_the_address_bar_and_no_referer_leaves_the_page(shop, browse):
    seen: list[dict] = []

    class Other(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/elsewhere":  # not the browser's own /favicon.ico that follows
                seen.append(dict(self.headers))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    other = http.server.HTTPServer(("127.0.0.1", 0), Other)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    order = shop.buy(shop.new_product(new_codes(1)))
    page = browse()
    try:
        page.goto(f"{shop.url}/o/{order['order_id']}#token={order['access_token']}")
        expect(page.locator("#status")).to_have_text("Waiting for your payment")
        assert order["access_token"] not in page.url
        page.evaluate(f"location.href = 'http://127.0.0.1:{other.server_port}/elsewhere'")
        page.wait_for_url(re.compile(r".*/elsewhere$"))
    finally:
        other.shutdown()
    assert len(seen) == 1 and "Referer" not in seen[0], seen


def test_the_sold_out_page_offers_nothing_to_buy(shop, browse):
    page = browse()
    page.goto(f"{shop.url}/p/{shop.new_product([])}?lang=en")

    expect(page.locator("#soldout")).to_have_text("Sold out")
    expect(page.locator("#buy")).to_have_count(0)
    snap(page, "sold-out-en")
    no_violations(page)


def test_stock_that_runs_out_while_the_page_is_open_is_explained(shop, browse):
    product_id = shop.new_product(new_codes(1))
    page = browse()
    page.goto(f"{shop.url}/p/{product_id}?lang=en")
    shop.buy(product_id)  # someone else takes the last code

    page.locator("#buy").get_by_label("E-mail").fill("late@example.com")
    page.locator("#pay").click()

    expect(page.locator("#error")).to_have_text("Sold out: not enough stock left for this quantity.")
    assert "/p/" in page.url


def test_an_order_that_expires_while_its_page_is_open_says_so(shop, browse):
    order = shop.buy(shop.new_product(new_codes(1)))
    page = browse(locale="zh-CN")
    page.goto(f"{shop.url}/o/{order['order_id']}#token={order['access_token']}")
    expect(page.locator("#status")).to_have_text("等待付款")

    expire_all()

    expect(page.locator("#status")).to_have_text("已过期", timeout=20_000)
    expect(page.locator("#explain")).to_have_text("订单未在时限内付款，已过期，未扣款。")
    snap(page, "expired-zh")
    no_violations(page)


def test_a_refunded_order_says_so(shop, browse):
    order = shop.buy(shop.new_product(new_codes(1)))
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    shop.wait_for(order, "DELIVERED")
    refund = shop.merchant("POST", f"/merchant/orders/{order['order_id']}/refund")
    assert refund.status_code in (200, 202), refund.text
    shop.wait_for(order, "REFUNDED")

    page = browse()
    page.goto(f"{shop.url}/o/{order['order_id']}?lang=en#token={order['access_token']}")

    expect(page.locator("#status")).to_have_text("Refunded")
    expect(page.locator("#explain")).to_have_text("Your payment was returned to you.")


def test_accept_language_chooses_chinese_and_the_toggle_switches_and_sticks(shop, browse):
    page = browse(locale="zh-CN")
    product = f"{shop.url}/p/{shop.runtime.info.demo_product_id}"
    page.goto(product)
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("#pay")).to_have_text("购买")
    expect(page.get_by_label("数量")).to_be_visible()
    snap(page, "product-zh")

    page.locator("#lang-toggle").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#pay")).to_have_text("Buy")
    page.goto(product)  # no choice in the URL: the cookie remembers it
    expect(page.locator("html")).to_have_attribute("lang", "en")


def test_a_360_px_phone_sees_the_whole_page_without_sideways_scrolling(shop, browse):
    page = browse(locale="zh-CN", width=360, height=740)
    page.goto(f"{shop.url}/p/{shop.runtime.info.demo_product_id}")

    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    for field in ("#quantity", "#email", "#pay"):
        box = page.locator(field).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360, field
    snap(page, "product-360px")
    order = shop.buy(shop.new_product(new_codes(2)), quantity=2)
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    page.goto(f"{shop.url}/o/{order['order_id']}#token={order['access_token']}")
    expect(page.locator("#code-1")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    snap(page, "order-360px")


def test_a_hostile_product_name_and_description_render_as_text(shop, browse):
    name = "<script>window.__pwned = 1</script>"
    description = '"><img src=x onerror="window.__pwned = 2">'
    created = shop.merchant(
        "POST",
        "/merchant/products",
        json={"name": name, "description": description, "price": {"amount": 500, "currency": "CNY"}},
    )
    product_id = created.json()["id"]
    page = browse()
    page.goto(f"{shop.url}/p/{product_id}")

    expect(page.locator("#name")).to_have_text(name)
    expect(page.locator("#description")).to_have_text(description)
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img").count() == 0
    no_violations(page)
    snap(page, "hostile-text")


def test_the_mailed_magic_link_opens_the_order_in_another_browser(shop, browse):
    email = "magic-link@example.com"
    order = shop.checkout(shop.new_product(new_codes(1)), email=email).json()
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    code = shop.wait_for(order, "DELIVERED")["items"][0]["code"]
    wait_for_mail(shop, email)
    page = browse()  # a browser that never saw the order's access token

    page.goto(f"{shop.url}/_local/mail")
    mail = page.locator("article", has_text=email).first
    mail.locator(f'a[href*="/o/{order["order_id"]}#token="]').first.click()

    expect(page.locator("#code-0")).to_have_text(code)
    assert "#token=" not in page.url
    no_violations(page)
    snap(page, "magic-link-order")


def test_the_lookup_form_answers_the_same_for_any_address(shop, browse):
    page = browse()
    page.goto(f"{shop.url}/p/{shop.runtime.info.demo_product_id}?lang=en")

    page.locator("#lookup").get_by_label("E-mail").fill("who-knows@example.com")
    page.get_by_role("button", name="E-mail me a link").click()

    expect(page.locator("#lookup-note")).to_have_text(
        "If this address has orders here, a link to them is on its way."
    )
    no_violations(page)


def test_the_lookup_form_with_an_order_number_mails_a_link_to_that_order(shop, browse):
    email = "form-by-number@example.com"
    product_id = shop.new_product(new_codes(2))
    orders_of = [shop.checkout(product_id, email=email).json() for _ in range(2)]
    page = browse()
    page.goto(f"{shop.url}/p/{product_id}?lang=en")

    page.locator("#lookup").get_by_label("E-mail").fill(email)
    page.locator("#lookup").get_by_label("Order number").fill(orders_of[1]["order_id"])
    page.get_by_role("button", name="E-mail me a link").click()

    expect(page.locator("#lookup-note")).to_have_text(
        "If this address has orders here, a link to them is on its way."
    )
    [mail] = wait_for_mail(shop, email)
    assert orders_of[1]["order_id"] in mail["body"] and orders_of[0]["order_id"] not in mail["body"]
    no_violations(page)


def test_an_order_held_for_review_says_so_and_then_shows_its_fate(shop, browse):
    order = shop.buy(shop.new_product(new_codes(1)))
    page = browse()
    page.goto(f"{shop.url}/o/{order['order_id']}?lang=en#token={order['access_token']}")
    expect(page.locator("#status")).to_have_text("Waiting for your payment")
    # The risk hold, written as the webhook and reconcile write it (no delivery message is queued).
    stored = orders().get(order["order_id"])
    stored = orders().transition(stored, "payment.succeeded", utcnow(), {"note": "browser test"})
    orders().transition(stored, "review.held", utcnow(), {"reason": "browser test"})

    expect(page.locator("#status")).to_have_text("In review", timeout=20_000)
    expect(page.locator("#explain")).to_contain_text("being checked by the shop")
    snap(page, "in-review-en")
