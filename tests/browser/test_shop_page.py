"""The shop's page in a real browser (issue 18): a shop's products grouped by category with their
prices, a sold-out one marked so, the shop's logo (from its own https origin, the one the page's policy
allows beside its own), announcement and contact, in zh-CN and en, on a 360 px phone and a desktop;
"not found" as a page. No CSP violation of ours; an image from any other origin is refused.
Screenshots go to test-artifacts/browser/."""

import io

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import snap
from tests.browser.test_buyer_pages import DESKTOP, PHONE, no_violations, snap_widths
from tests.support import new_codes

pytestmark = pytest.mark.e2e

LOGO = "https://cdn.example.com/neko/logo.png"
SAYS = {
    "zh-CN": {
        "other": "其他",
        "sold_out": "已售罄",
        "in_stock": "库存 3",
        "instant": "自动发货（秒发）",
        "not_found": "该商品不存在或已下架。",
    },
    "en": {
        "other": "Other",
        "sold_out": "Sold out",
        "in_stock": "3 in stock",
        "instant": "Instant delivery",
        "not_found": "This product does not exist or is no longer on sale.",
    },
}


@pytest.fixture(scope="module")
def neko(shop):
    """A shop of its own: settings with a logo, two categories, a product without one, one sold out."""
    from shared.adapters import merchants

    merchant_id, key = merchants().create_merchant("Neko Cards")
    settings = {
        "name": "Neko Cards 猫卡铺",
        "logo_url": LOGO,
        "contact": "WeChat: neko_cards",
        "announcement": "Codes arrive seconds after payment.\n付款后几秒内自动发货。",
        "support_email": "help@neko.example",
        "default_language": "zh-CN",
    }
    assert shop.merchant("PUT", "/merchant/shop", key=key, json=settings).status_code == 200
    ids = {
        "steam": shop.new_product(new_codes(3), key=key, name="Steam 100", category="Steam", price=9900),
        "itunes": shop.new_product(new_codes(3), key=key, name="iTunes $5", category="App Store", price=3500),
        "gone": shop.new_product([], key=key, name="Steam 500", category="Steam", price=49900),
        "plain": shop.new_product(new_codes(3), key=key, name="Mystery key", price=100),
    }
    return {"merchant_id": merchant_id, "ids": ids}


def logo_png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 64), (230, 120, 40)).save(out, format="PNG")
    return out.getvalue()


def serve_logo(page) -> None:
    """The logo's origin, answered here (no network in the tests): what a browser fetches once the
    page's policy lets it."""
    png = logo_png()
    page.route(
        "https://cdn.example.com/**",
        lambda route: route.fulfill(status=200, content_type="image/png", body=png),
    )


def category(page, name: str):
    return page.locator("section.category", has=page.locator("h2", has_text=name))


def product_row(page, product_id: str):
    return page.locator(f'li.product[data-product-id="{product_id}"]')


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_the_shop_lists_its_products_by_category_with_prices_and_a_sold_out_one(shop, browse, neko, lang):
    says, ids = SAYS[lang], neko["ids"]
    page = browse(locale=lang)
    serve_logo(page)
    page.goto(f"{shop.url}/s/{neko['merchant_id']}?lang={lang}")

    expect(page.locator("#shop-name")).to_have_text("Neko Cards 猫卡铺")
    expect(page.locator("#announcement")).to_contain_text("付款后几秒内自动发货。")
    expect(page.locator("#contact")).to_contain_text("WeChat: neko_cards")
    expect(page.locator("section.category h2")).to_have_text(["App Store", "Steam", says["other"]])
    expect(category(page, "Steam").locator("li.product a")).to_have_text(["Steam 500", "Steam 100"])
    expect(category(page, says["other"]).locator("li.product a")).to_have_text(["Mystery key"])
    for product_id, price in ((ids["steam"], "¥99.00"), (ids["itunes"], "¥35.00"), (ids["plain"], "¥1.00")):
        expect(product_row(page, product_id).locator(".product-price")).to_have_text(price)
        expect(product_row(page, product_id).locator(".stock")).to_have_text(says["in_stock"])
        expect(product_row(page, product_id).locator(".delivery")).to_have_text(says["instant"])
    gone = product_row(page, ids["gone"])
    expect(gone.locator(".product-price")).to_have_text("¥499.00")
    expect(gone.locator(".stock-out")).to_have_text(says["sold_out"])
    expect(gone.locator(".stock-out")).to_be_visible()
    page.wait_for_function("() => document.getElementById('logo').complete")
    assert page.evaluate("document.getElementById('logo').naturalWidth") == 64  # loaded, not refused

    snap_widths(page, f"shop-{lang}")
    no_violations(page)

    product_row(page, ids["steam"]).locator("a").click()
    page.wait_for_url(f"{shop.url}/p/{ids['steam']}")
    expect(page.locator("#name")).to_have_text("Steam 100")
    no_violations(page)


def test_the_shop_page_refuses_an_image_from_any_other_origin(shop, browse, neko):
    page = browse(locale="en")
    serve_logo(page)
    page.goto(f"{shop.url}/s/{neko['merchant_id']}")
    page.evaluate(
        """() => { const img = document.createElement("img");
                   img.src = "https://elsewhere.example/x.png"; document.body.append(img); }"""
    )
    page.wait_for_function("() => window.__violations.length > 0")
    assert page.evaluate("window.__violations") == ["img-src"]


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_the_home_page_is_the_demo_shop_and_an_unknown_product_is_a_page(shop, browse, lang):
    page = browse(locale=lang)
    page.goto(f"{shop.url}/?lang={lang}")
    # The demo merchant's shop (other tests add products to it, so its newest 50 may not hold the demo one).
    expect(page.locator("#page")).to_have_attribute("data-merchant-id", shop.runtime.info.merchant_id)
    expect(page.locator("#shop-name")).to_have_text("Demo merchant")
    no_violations(page)

    answer = page.goto(f"{shop.url}/p/prd_{'0' * 20}?lang={lang}")
    assert answer is not None and answer.status == 404
    expect(page.locator("#not-found")).to_have_text(SAYS[lang]["not_found"])
    page.set_viewport_size(PHONE)
    snap(page, f"not-found-{lang}-360px")
    page.set_viewport_size(DESKTOP)
    snap(page, f"not-found-{lang}-desktop")
    no_violations(page)
