"""Codes made per order in a real browser (issue 21): a generated product's page says its code is made for
the buyer (never "sold out"), and its order page shows the codes made, of the product's pattern; a license
product's order page shows the license key as a license: whole, monospace and wrapped, with a copy button
and a download of `<order>.lic` made in the browser. zh-CN and en on a 360 px phone; screenshots go to
test-artifacts/browser/."""

import pytest
from playwright.sync_api import expect

from shared import generated
from tests.browser.conftest import snap
from tests.browser.test_buyer_pages import PHONE, no_sideways_scrolling, no_violations

pytestmark = pytest.mark.e2e

PATTERN = "C\\ARD-XXXX-XXXX-9999"
SAYS = {
    "zh-CN": {
        "badge": "自动发卡（专属生成）",
        "trust": "卡密在您付款时生成，仅在您的订单页向您显示",
        "license_badge": "自动发放许可证",
        "delivered": "已发货",
        "codes": "您的卡密",
        "licenses": "您的许可证密钥",
        "copied": "已复制",
        "download": "下载 .lic 文件",
        "drawing": "正在生成卡密",
    },
    "en": {
        "badge": "Instant code, made for you",
        "trust": "Your code is made when you pay and shown only to you, on your order page",
        "license_badge": "Instant license key",
        "delivered": "Delivered",
        "codes": "Your codes",
        "licenses": "Your license key",
        "copied": "Copied",
        "download": "Download .lic file",
        "drawing": "Making your codes",
    },
}


def paid_order(shop, product_id: str, quantity: int = 1) -> dict:
    answer = shop.checkout(product_id, quantity)
    assert answer.status_code == 201, answer.text
    order = answer.json()
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    return order


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_a_generated_order_shows_the_codes_made_for_it(shop, browse, lang):
    says = SAYS[lang]
    product_id = shop.new_product(
        [], name="Gift card 50", price=5000, delivery="generated", generated={"pattern": PATTERN}
    )
    page = browse(locale=lang, **PHONE)
    page.goto(f"{shop.url}/p/{product_id}?lang={lang}")
    expect(page.locator(".delivery")).to_have_text(says["badge"])
    expect(page.locator(".stock")).to_have_count(0)  # not counted: never sold out
    expect(page.locator(".hints")).to_contain_text(says["trust"])
    no_sideways_scrolling(page)
    no_violations(page)

    order = paid_order(shop, product_id, quantity=2)
    page.goto(f"{shop.url}/o/{order['order_id']}?lang={lang}#token={order['access_token']}")

    expect(page.locator("#status")).to_have_text(says["delivered"], timeout=15_000)
    expect(page.locator("#codes-title")).to_have_text(says["codes"])
    shown = [page.locator(f"#code-{n}").text_content() for n in range(2)]
    api = shop.order(order["order_id"], order["access_token"]).json()
    assert shown == [item["code"] for item in api["items"]]
    assert all(generated.validate(PATTERN).matches(code) and code.startswith("CARD-") for code in shown)
    expect(page.locator("#events li").filter(has_text=says["drawing"])).to_have_count(1)
    page.locator("#codes li button").first.click()
    expect(page.locator("#codes li button").first).to_have_text(says["copied"])
    assert page.evaluate("navigator.clipboard.readText()") == shown[0]
    no_sideways_scrolling(page)
    no_violations(page)
    snap(page, f"generated-delivered-{lang}-360px")


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_a_license_order_shows_the_license_with_copy_and_download(shop, browse, lang):
    says = SAYS[lang]
    product_id = shop.new_product(
        [],
        name="Editor Pro",
        price=9900,
        delivery="license",
        license={
            "entitlements": ["pro", "updates:2027"],
            "max_machines": 3,
            "valid_days": 365,
            "prefix": "ACME",
        },
    )
    page = browse(locale=lang, **PHONE)
    page.goto(f"{shop.url}/p/{product_id}?lang={lang}")
    expect(page.locator(".delivery")).to_have_text(says["license_badge"])
    expect(page.locator(".stock")).to_have_count(0)

    order = paid_order(shop, product_id)
    page.goto(f"{shop.url}/o/{order['order_id']}?lang={lang}#token={order['access_token']}")

    expect(page.locator("#status")).to_have_text(says["delivered"], timeout=15_000)
    [license_text] = [
        item["code"] for item in shop.order(order["order_id"], order["access_token"]).json()["items"]
    ]
    assert license_text.startswith("ACME-")
    shown = page.locator("#license-0")
    expect(shown).to_have_text(license_text)
    expect(page.locator("#codes-title")).to_have_text(says["licenses"])
    assert shown.evaluate("e => e.tagName") == "PRE"
    style = shown.evaluate("e => [getComputedStyle(e).whiteSpace, getComputedStyle(e).fontFamily]")
    assert style[0] == "pre-wrap" and "monospace" in style[1]
    no_sideways_scrolling(page)  # a 200-character key wraps on a phone

    page.locator("#copy-license-0").click()
    expect(page.locator("#copy-license-0")).to_have_text(says["copied"])
    assert page.evaluate("navigator.clipboard.readText()") == license_text
    expect(page.locator("#download-license-0")).to_have_text(says["download"])
    with page.expect_download() as downloading:
        page.locator("#download-license-0").click()
    download = downloading.value
    assert download.suggested_filename == f"{order['order_id']}.lic"
    with open(download.path(), encoding="ascii") as saved:
        assert saved.read() == license_text + "\n"
    no_violations(page)
    snap(page, f"license-delivered-{lang}-360px")
