"""The buyer pages of issue 18 in a real browser: the total for the chosen quantity before "buy"
(wholesale tiers applied), the order page's summary, a WeChat Pay checkout whose QR code (inline SVG
under the page's CSP) decodes to the provider's payment URL and gives way to the code once paid,
errors in the page's language, money as buyers read it, and the sandbox pay page in zh-CN on a phone.
Screenshots (zh-CN and en, 360 px and desktop) go to test-artifacts/browser/."""

import io
import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import snap
from tests.support import new_codes

pytestmark = pytest.mark.e2e

TIERED = {"price": 9900, "price_tiers": [{"min_quantity": 3, "price": {"amount": 9000, "currency": "CNY"}}]}
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
# What each language says, so a test reads the same in both.
SAYS = {
    "zh-CN": {
        "wechatpay": "微信支付",
        "bad_quantity": "请输入 1 到 5 之间的整数数量。",
        "out_of_stock": "库存不足，无法购买该数量。",
        "unknown": "出错了（错误代码 brand_new_refusal），请重试。",
        "bad_email": "请输入有效的邮箱地址。",
        "delivered": "已发货",
    },
    "en": {
        "wechatpay": "WeChat Pay",
        "bad_quantity": "Enter the quantity as a whole number from 1 to 5.",
        "out_of_stock": "Sold out: not enough stock left for this quantity.",
        "unknown": "Something went wrong (error brand_new_refusal). Please try again.",
        "bad_email": "Enter a valid e-mail address.",
        "delivered": "Delivered",
    },
}


def no_violations(page) -> None:
    assert page.evaluate("window.__violations") == []


def no_sideways_scrolling(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]


def snap_widths(page, name: str) -> None:
    """Screenshots of the page as it is, on a desktop and on a 360 px phone (which must not scroll sideways)."""
    page.set_viewport_size(DESKTOP)
    snap(page, f"{name}-desktop")
    page.set_viewport_size(PHONE)
    no_sideways_scrolling(page)
    snap(page, f"{name}-360px")
    page.set_viewport_size(DESKTOP)


def decode_qr(locator) -> list[str]:
    """What a QR reader makes of the element as the browser draws it (a screenshot, read by zxing-cpp)."""
    import zxingcpp
    from PIL import Image

    image = Image.open(io.BytesIO(locator.screenshot()))
    return [
        found.text for found in zxingcpp.read_barcodes(image) if found.format == zxingcpp.BarcodeFormat.QRCode
    ]


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_the_product_page_shows_the_total_for_the_chosen_quantity_with_its_tier(shop, browse, lang):
    product_id = shop.new_product(new_codes(5), name="Steam 100", **TIERED)
    page = browse(locale=lang)
    page.goto(f"{shop.url}/p/{product_id}?lang={lang}")

    expect(page.locator("#price")).to_have_text("¥99.00")
    expect(page.locator("#total-amount")).to_have_text("¥99.00")
    page.locator("#quantity").fill("2")
    expect(page.locator("#total-amount")).to_have_text("¥198.00")
    page.locator("#quantity").fill("3")  # the tier: ¥90.00 each from 3 on
    expect(page.locator("#total-amount")).to_have_text("¥270.00")
    expect(page.locator("#total-detail")).to_have_text("3 × ¥90.00")
    snap_widths(page, f"product-total-{lang}")
    no_violations(page)


def test_a_dollar_product_reads_as_dollars_on_both_pages(shop, browse):
    product_id = shop.new_product(new_codes(1), price=500, currency="USD")
    order = shop.buy(product_id)
    for lang in ("zh-CN", "en"):
        page = browse(locale=lang)
        page.goto(f"{shop.url}/p/{product_id}?lang={lang}")
        expect(page.locator("#price")).to_have_text("$5.00")
        page.goto(f"{shop.url}/o/{order['order_id']}?lang={lang}#token={order['access_token']}")
        expect(page.locator("#summary-total")).to_have_text("$5.00")  # the browser's Intl.NumberFormat


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_the_order_page_says_what_was_bought_and_links_back_to_it(shop, browse, lang):
    product_id = shop.new_product(new_codes(3), name="Steam 100", **TIERED)
    order = shop.buy(product_id, quantity=3)
    page = browse(locale=lang)
    page.goto(f"{shop.url}/o/{order['order_id']}?lang={lang}#token={order['access_token']}")

    expect(page.locator("#summary-product")).to_have_text("Steam 100")
    expect(page.locator("#summary-quantity")).to_have_text("3")
    expect(page.locator("#summary-total")).to_have_text("¥270.00")
    snap_widths(page, f"order-summary-{lang}")
    no_violations(page)
    page.locator("#product-link").click()
    page.wait_for_url(f"{shop.url}/p/{product_id}")
    expect(page.locator("#name")).to_have_text("Steam 100")


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_a_wechat_pay_checkout_shows_a_qr_code_of_the_payment_url_until_it_is_paid(shop, kits, browse, lang):
    kit = kits["wechatpay"]
    product_id = shop.new_product(new_codes(1), name="Steam 100", price=9900)
    page = browse(locale=lang)
    page.goto(f"{shop.url}/p/{product_id}?lang={lang}")
    page.locator("#buy").locator("#email").fill("qr@example.com")
    page.get_by_label(SAYS[lang]["wechatpay"]).check()
    page.locator("#pay").click()
    page.wait_for_url(re.compile(r".*/o/ord_[0-9a-f]+$"))
    order_id = page.url.rsplit("/", 1)[1]

    qr = page.locator("#qr svg")
    expect(qr).to_be_visible()
    expect(page.locator("#qr-provider")).to_have_text(SAYS[lang]["wechatpay"])
    expect(page.locator("#qr-amount")).to_have_text("¥99.00")
    assert decode_qr(qr) == [kit.fake.trades[order_id]["code_url"]]
    snap_widths(page, f"qr-payment-{lang}")
    page.set_viewport_size(PHONE)
    assert decode_qr(qr) == [kit.fake.trades[order_id]["code_url"]]  # still whole on a phone
    page.set_viewport_size(DESKTOP)

    paid = kit.paid({"order_id": order_id, "total": {"amount": 9900, "currency": "CNY"}})
    answer = shop.http.post(
        f"{shop.url}/webhooks/wechatpay", data=paid.body, headers=paid.headers, timeout=30
    )
    assert answer.status_code // 100 == 2, answer.text

    expect(page.locator("#code-0")).to_be_visible(timeout=15_000)
    expect(page.locator("#status")).to_have_text(SAYS[lang]["delivered"])
    expect(page.locator("#qr-box")).to_be_hidden()
    no_violations(page)


def test_the_qr_code_survives_a_reload_and_another_tab_until_the_order_is_paid(shop, kits, browse):
    """The order does not keep the payment URL: the product page keeps the checkout's QR code in this
    browser's localStorage (static/qr.js), so the order page draws it again after a reload and in another
    tab while the order waits for its payment, and forgets it once the order is paid."""
    kit = kits["wechatpay"]
    product_id = shop.new_product(new_codes(1), name="Steam 100", price=9900)
    page = browse(locale="zh-CN")
    page.goto(f"{shop.url}/p/{product_id}?lang=zh-CN")
    page.locator("#buy").locator("#email").fill("qr-reload@example.com")
    page.get_by_label(SAYS["zh-CN"]["wechatpay"]).check()
    page.locator("#pay").click()
    page.wait_for_url(re.compile(r".*/o/ord_[0-9a-f]+$"))
    order_id = page.url.rsplit("/", 1)[1]
    code_url = kit.fake.trades[order_id]["code_url"]
    expect(page.locator("#qr svg")).to_be_visible()

    page.reload()
    expect(page.locator("#status")).to_have_text("等待付款")
    expect(page.locator("#qr svg")).to_be_visible()
    expect(page.locator("#qr-amount")).to_have_text("¥99.00")
    assert decode_qr(page.locator("#qr svg")) == [code_url]
    other = page.context.new_page()  # another tab: its own sessionStorage, the same localStorage
    other.goto(f"{shop.url}/o/{order_id}")
    expect(other.locator("#qr svg")).to_be_visible()
    assert decode_qr(other.locator("#qr svg")) == [code_url]
    no_violations(page)
    no_violations(other)

    paid = kit.paid({"order_id": order_id, "total": {"amount": 9900, "currency": "CNY"}})
    answer = shop.http.post(
        f"{shop.url}/webhooks/wechatpay", data=paid.body, headers=paid.headers, timeout=30
    )
    assert answer.status_code // 100 == 2, answer.text
    expect(page.locator("#code-0")).to_be_visible(timeout=15_000)
    expect(page.locator("#qr-box")).to_be_hidden()
    assert page.evaluate(f"localStorage.getItem('miaofa:qr:{order_id}')") is None  # nothing left to scan
    page.reload()
    expect(page.locator("#code-0")).to_be_visible()
    expect(page.locator("#qr-box")).to_be_hidden()


def test_a_kept_qr_code_whose_order_expired_is_dropped_by_the_next_page(shop, browse):
    page = browse()
    page.goto(f"{shop.url}/p/{shop.runtime.info.demo_product_id}?lang=en")
    past, future = "2020-01-01T00:00:00+00:00", "2999-01-01T00:00:00+00:00"
    page.evaluate(
        """([past, future]) => {
             localStorage.setItem("miaofa:qr:ord_old", JSON.stringify({svg: "<svg/>", url: "x", expires_at: past}));
             localStorage.setItem("miaofa:qr:ord_bad", "{not json");
             localStorage.setItem("miaofa:qr:ord_new", JSON.stringify({svg: "<svg/>", url: "x", expires_at: future}));
             localStorage.setItem("miaofa:token:ord_old", "kept");
           }""",
        [past, future],
    )
    page.reload()
    kept = page.evaluate("Object.keys(localStorage).sort()")
    assert kept == ["miaofa:device", "miaofa:qr:ord_new", "miaofa:token:ord_old"]  # static/device.js's too


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_errors_are_said_in_the_pages_language(shop, browse, lang):
    says = SAYS[lang]
    product_id = shop.new_product(new_codes(5))
    page = browse(locale=lang)
    page.goto(f"{shop.url}/p/{product_id}?lang={lang}")
    page.locator("#buy").locator("#email").fill("errors@example.com")

    page.locator("#quantity").fill("9")  # more than one order may take: said before anything is sent
    expect(page.locator("#error")).to_have_text(says["bad_quantity"])
    expect(page.locator("#total-amount")).to_have_text("—")

    page.locator("#quantity").fill("2")
    for _ in range(4):
        shop.buy(product_id)  # others take four of the five codes meanwhile
    page.locator("#pay").click()
    expect(page.locator("#error")).to_have_text(says["out_of_stock"])  # the API's 409 out_of_stock
    snap_widths(page, f"error-out-of-stock-{lang}")

    # A refusal this page has no words for yet: its code, never the API's English message.
    page.route(
        "**/api/orders",
        lambda route: route.fulfill(
            status=400, json={"error": {"code": "brand_new_refusal", "message": "English only"}}
        ),
    )
    page.locator("#pay").click()
    expect(page.locator("#error")).to_have_text(says["unknown"])

    page.locator("#lookup-email").fill("nobody@localhost")  # the browser takes it, the API does not
    page.locator("#lookup button").click()
    expect(page.locator("#lookup-note")).to_have_text(says["bad_email"])
    no_violations(page)


def test_the_sandbox_pay_page_follows_the_pages_language_and_fits_a_phone(shop, browse):
    product_id = shop.new_product(new_codes(1), price=1999)
    page = browse(locale="en-US", width=PHONE["width"], height=PHONE["height"])
    page.goto(f"{shop.url}/p/{product_id}?lang=zh-CN")  # the toggle's choice, not the browser's
    page.locator("#buy").locator("#email").fill("sandbox-zh@example.com")
    page.get_by_label("沙箱（测试支付）").check()
    page.locator("#pay").click()
    page.wait_for_url(re.compile(r".*/_sandbox/pay\?.*"))

    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("h1")).to_have_text("沙箱支付")
    expect(page.locator("#amount")).to_have_text("¥19.99")
    expect(page.locator("#pay")).to_have_text("付款")
    no_sideways_scrolling(page)
    snap_widths(page, "sandbox-pay-zh")
    page.locator("#pay").click()  # back to the order page, which shows the code
    expect(page.locator("#code-0")).to_be_visible(timeout=15_000)
