"""The shop's page (issue 18): a shop's active products grouped by category, with price, stock and
delivery, the shop's name, logo, contact and announcement; link-preview tags; the logo's origin and no
other in the page's Content-Security-Policy; "not found" as a page in the buyer's language."""

import re
from datetime import UTC, datetime
from html import unescape

import pytest
from pydantic import ValidationError

from functions.merchant.catalog import ProductChange, ProductRequest
from functions.storefront.i18n import LANGUAGES, TEXTS, choose
from functions.storefront.pages import not_found_page, product_page, shop_page
from functions.storefront.shopfront import Listing, grouped, shop_listing
from shared.money import Money
from shared.products import Product
from shared.shops import ShopSettings
from shared.store.products import ProductPage

MERCHANT = "mer_" + "1" * 20


def product(n: int, category: str | None, **fields) -> Product:
    return Product(
        product_id=f"prd_{n:020d}",
        merchant_id=MERCHANT,
        name=f"Card {n}",
        description="",
        price=Money(amount=9900 + n, currency="CNY"),
        delivery="stock",
        max_per_order=5,
        shards=1,
        active=True,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        category=category,
        **fields,
    )


class Shops:
    def __init__(self, shops: dict[str, ShopSettings]) -> None:
        self.shops, self.asked = shops, []

    def shop(self, merchant_id: str) -> ShopSettings | None:
        self.asked.append(merchant_id)
        return self.shops.get(merchant_id)


class Catalogue:
    """Products newest first; the newest at catalogue position len(products), the oldest at 1. Listed
    `size` positions at a time, as the store's bounded pages are."""

    def __init__(self, products: list[Product], size: int = 50) -> None:
        self.products, self.size, self.asked = products, size, []

    def recent_on_sale(self, merchant_id: str, before: int | None = None) -> ProductPage:
        self.asked.append(before)
        count = len(self.products)
        start = 0 if before is None else max(0, count - before + 1)
        page = self.products[start : start + self.size]
        last = count - (start + len(page)) + 1  # the position of the last one listed
        return ProductPage(
            products=[p for p in page if p.merchant_id == merchant_id],
            resume_before=last if page and last > 1 else None,
        )


class Levels:
    def __init__(self, stock: dict[str, int]) -> None:
        self.stock = stock

    def available(self, product: Product) -> int:
        return self.stock[product.product_id]

    def left(self, product: Product) -> int | None:
        return self.available(product) if product.stocked else None


NEKO = ShopSettings(
    name="Neko Cards",
    logo_url="https://cdn.example.com/neko.png",
    contact="QQ 12345",
    announcement="Closed on Sunday.\nCodes arrive at once.",
    support_email="help@neko.example",
    default_language="en",
)


def listing(shop: ShopSettings = NEKO) -> Listing:
    products = [product(1, "Steam"), product(2, None), product(3, "App Store"), product(4, "Steam")]
    stock = {p.product_id: 0 if p.name == "Card 4" else 7 for p in products}
    found = shop_listing(MERCHANT, Shops({MERCHANT: shop}), Catalogue(products), Levels(stock))
    assert found is not None
    return found


def texts_of(html: str, css_class: str) -> list[str]:
    return [unescape(text) for text in re.findall(rf'class="{css_class}"[^>]*>([^<]*)<', html)]


def test_offers_are_grouped_by_category_by_name_with_those_without_one_last_each_newest_first():
    groups = listing().groups
    assert [g.category for g in groups] == ["App Store", "Steam", None]
    assert [[o.product.name for o in g.offers] for g in groups] == [
        ["Card 3"],
        ["Card 1", "Card 4"],
        ["Card 2"],
    ]
    assert grouped([]) == []


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_shop_page_lists_each_product_with_its_price_stock_and_delivery_under_its_category(lang):
    t = TEXTS[lang]
    html = shop_page(listing(), lang).html

    headings = [unescape(h) for h in re.findall(r'<h2 id="category-\d+">([^<]*)</h2>', html)]
    assert headings == ["App Store", "Steam", t["shop.other"]]
    assert re.findall(r'<a href="(/p/prd_\d+)">', html) == [f"/p/prd_{n:020d}" for n in (3, 1, 4, 2)]
    assert texts_of(html, "product-price") == ["¥99.03", "¥99.01", "¥99.04", "¥99.02"]
    in_stock, sold_out = t["in_stock"].format(count=7), t["sold_out"]
    assert texts_of(html, "stock stock-in") == [in_stock, in_stock, in_stock]
    assert texts_of(html, "stock stock-out") == [sold_out]  # Card 4, the one without stock
    assert texts_of(html, "delivery muted") == [t["shop.instant"]] * 4
    assert t["shop.other"] == {"en": "Other", "zh-CN": "其他"}[lang]


def test_the_shop_page_shows_the_shops_name_logo_contact_and_announcement():
    html = shop_page(listing(), "en").html
    assert '<h1 id="shop-name">Neko Cards</h1>' in html
    assert '<img id="logo" src="https://cdn.example.com/neko.png" alt="Neko Cards logo"' in html
    assert "Closed on Sunday.\nCodes arrive at once." in html
    assert '<p id="contact">Contact: QQ 12345</p>' in html
    assert '<a href="mailto:help@neko.example">help@neko.example</a>' in html


def test_a_shop_with_nothing_on_sale_says_so():
    empty = shop_listing(MERCHANT, Shops({MERCHANT: NEKO}), Catalogue([]), Levels({}))
    assert empty is not None
    assert f'<p id="empty">{TEXTS["zh-CN"]["shop.empty"]}</p>' in shop_page(empty, "zh-CN").html


def test_an_unknown_or_malformed_shop_has_no_listing_and_a_malformed_id_is_not_even_looked_up():
    shops = Shops({MERCHANT: NEKO})
    assert shop_listing("mer_" + "2" * 20, shops, Catalogue([]), Levels({})) is None
    assert shop_listing("../etc", shops, Catalogue([]), Levels({})) is None
    assert shops.asked == ["mer_" + "2" * 20]


def policy(page) -> dict[str, str]:
    directives = (d.strip().split(" ", 1) for d in page.headers["Content-Security-Policy"].split(";"))
    return {name: rest for name, rest in directives}


def test_the_pages_policy_allows_images_from_the_logos_origin_and_no_other():
    assert policy(shop_page(listing(), "en"))["img-src"] == "'self' https://cdn.example.com"
    ported = listing(NEKO.model_copy(update={"logo_url": "https://IMG.example.com:8443/a.png?x=1"}))
    assert policy(shop_page(ported, "en"))["img-src"] == "'self' https://img.example.com:8443"
    assert policy(shop_page(listing(NEKO.model_copy(update={"logo_url": None})), "en"))["img-src"] == "'self'"
    assert policy(product_page(product(1, None), 3, ["sandbox"], "en"))["img-src"] == "'self'"


@pytest.mark.parametrize(
    "logo",
    ["https://a.example;script-src *@x/", "https://a.example:99999/x", "https://[::1]/x", "https://点.cn/x"],
)
def test_a_logo_whose_host_a_policy_cannot_name_exactly_is_not_shown_and_allows_nothing(logo):
    # Stored before the settings' rules or otherwise odd: the page never widens its policy for it.
    page = shop_page(listing(ShopSettings.model_construct(**{**NEKO.model_dump(), "logo_url": logo})), "en")
    assert (
        policy(page)["img-src"] == "'self'" and "script-src *" not in page.headers["Content-Security-Policy"]
    )
    assert 'id="logo"' not in page.html


def head(html: str) -> str:
    return html.split("</head>", 1)[0]


def test_link_previews_name_the_shop_and_the_product_escaped():
    hostile = NEKO.model_copy(update={"name": 'Neko "><script>x</script>', "announcement": "A & <b>B</b>"})
    shop = head(shop_page(listing(hostile), "en").html)
    assert "<title>Neko &quot;&gt;&lt;script&gt;x&lt;/script&gt;</title>" in shop
    assert '<meta property="og:title" content="Neko &quot;&gt;&lt;script&gt;x&lt;/script&gt;">' in shop
    assert '<meta name="description" content="A &amp; &lt;b&gt;B&lt;/b&gt;">' in shop
    assert '<meta property="og:description" content="A &amp; &lt;b&gt;B&lt;/b&gt;">' in shop
    assert "<script>x" not in shop

    plain = head(shop_page(listing(NEKO.model_copy(update={"announcement": None})), "zh-CN").html)
    assert '<meta name="description" content="Neko Cards：数字商品，付款后秒发。">' in plain

    described = product(1, None).model_copy(
        update={"name": "Steam <100>", "description": "Line one\n" + "x" * 300}
    )
    page = head(product_page(described, 3, ["sandbox"], "en").html)
    assert "<title>Steam &lt;100&gt;</title>" in page
    assert '<meta property="og:title" content="Steam &lt;100&gt;">' in page
    description = re.search(r'<meta name="description" content="([^"]*)">', page).group(1)
    assert description.startswith("¥99.01 · Line one xxx") and len(description) == 160
    bare = head(product_page(product(1, None), 3, ["sandbox"], "zh-CN").html)
    assert '<meta property="og:description" content="¥99.01。秒发：付款后几秒内卡密即显示在订单页。">' in bare


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("what", ["product", "shop", "order"])
def test_not_found_is_a_page_in_the_buyers_language(lang, what):
    page = not_found_page(lang, what)
    assert page.status == 404
    assert f'<html lang="{lang}">' in page.html
    assert f'<p id="not-found">{TEXTS[lang]["not_found." + what]}</p>' in page.html
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")


def test_the_shops_language_is_the_fallback_after_the_buyers_own_choice():
    assert choose(None, None, None, "zh-CN") == "zh-CN"
    assert choose(None, None, "en-GB,en;q=0.8", "zh-CN") == "en"  # the browser's language first
    assert choose("en", None, None, "zh-CN") == "en" and choose(None, "en", None, "zh-CN") == "en"
    assert choose(None, None, "fr", "xx") == "en"


def test_a_products_category_is_one_short_line_and_blank_or_null_is_none():
    base = {"name": "a", "price": {"amount": 100, "currency": "CNY"}}
    assert ProductRequest.model_validate({**base, "category": "  Game cards "}).category == "Game cards"
    assert ProductRequest.model_validate({**base, "category": "  "}).category is None
    assert ProductRequest.model_validate(base).category is None
    for bad in ("x" * 51, "a\nb", 5):
        with pytest.raises(ValidationError):
            ProductRequest.model_validate({**base, "category": bad})
    cleared = ProductChange.model_validate({"category": None})
    assert cleared.apply(product(1, "Steam")).category is None
    assert ProductChange.model_validate({"category": "点卡"}).apply(product(1, None)).category == "点卡"
    assert ProductChange.model_validate({}).apply(product(1, "Steam")).category == "Steam"


def test_the_default_shop_setting_is_a_merchant_id_or_empty(monkeypatch):
    from shared.settings import Settings
    from tests.fakes import REQUIRED_SETTINGS

    monkeypatch.delenv("DEFAULT_SHOP", raising=False)
    make = {**REQUIRED_SETTINGS, "MIAOFA_LOCAL": True}
    assert Settings(**make).default_shop == ""
    assert Settings(**make, DEFAULT_SHOP=MERCHANT).default_shop == MERCHANT
    for bad in ("mer_1", "../s", MERCHANT + " "):
        with pytest.raises(ValidationError, match="DEFAULT_SHOP"):
            Settings(**make, DEFAULT_SHOP=bad)


def test_a_shop_lists_a_page_of_its_products_and_links_to_the_next_with_an_opaque_cursor():
    products = [product(n, None) for n in range(120, 0, -1)]  # newest first
    catalogue, shops = Catalogue(products), Shops({MERCHANT: NEKO})
    levels = Levels({p.product_id: 1 for p in products})
    first = shop_listing(MERCHANT, shops, catalogue, levels)
    assert first is not None and first.more is not None and not first.paged
    assert [o.product.name for o in first.groups[0].offers] == [f"Card {n}" for n in range(120, 70, -1)]
    html = shop_page(first, "en", f"/s/{MERCHANT}").html
    assert f'<a id="more" rel="next" href="?after={first.more}">More products</a>' in html
    assert 'id="newest"' not in html
    assert "70" not in first.more and re.fullmatch(r"[A-Za-z0-9_-]+", first.more)  # opaque, URL-safe

    second = shop_listing(MERCHANT, shops, catalogue, levels, first.more)
    assert second is not None and second.paged and second.more is not None
    assert [o.product.name for o in second.groups[0].offers] == [f"Card {n}" for n in range(70, 20, -1)]
    last = shop_listing(MERCHANT, shops, catalogue, levels, second.more)
    assert last is not None and last.more is None
    assert [o.product.name for o in last.groups[0].offers] == [f"Card {n}" for n in range(20, 0, -1)]
    html = shop_page(last, "zh-CN", f"/s/{MERCHANT}").html
    assert f'<a id="newest" href="/s/{MERCHANT}">最新商品</a>' in html and 'id="more"' not in html
    assert catalogue.asked == [None, 71, 21]


@pytest.mark.parametrize("after", ["", "junk", "cDA", "cC0x", "p71", "cDcxMQ" * 10, "%%%", "cDcx\n"])
def test_a_malformed_or_foreign_cursor_lists_the_first_page(after):
    catalogue = Catalogue([product(1, None)])
    found = shop_listing(MERCHANT, Shops({MERCHANT: NEKO}), catalogue, Levels({f"prd_{1:020d}": 1}), after)
    assert found is not None and not found.paged and catalogue.asked == [None]


def test_the_product_page_speaks_for_its_shop_when_the_shop_is_known():
    neko = NEKO.model_copy(update={"logo_url": "https://cdn.example.com/neko.png"})
    page = product_page(product(1, None), 3, ["wechatpay", "alipay"], "zh-CN", shop=neko)
    assert f'<a class="brand" id="shop-link" href="/s/{MERCHANT}">' in page.html
    assert '<img id="logo" src="https://cdn.example.com/neko.png"' in page.html
    assert policy(page)["img-src"] == "'self' https://cdn.example.com"
    assert "由微信支付、支付宝安全支付" in page.html and '<p id="contact">联系方式: QQ 12345</p>' in page.html


def test_the_delivery_badge_says_how_the_product_arrives():
    from shared.products import ManualTerms

    by_hand = product(1, None).model_copy(
        update={"delivery": "manual", "manual": ManualTerms(promise_minutes=45)}
    )
    topup = product(2, None).model_copy(update={"delivery": "topup"})
    stocked = product(3, None)
    found = shop_listing(
        MERCHANT,
        Shops({MERCHANT: NEKO}),
        Catalogue([by_hand, topup, stocked]),
        Levels({p.product_id: 1 for p in (by_hand, topup, stocked)}),
    )
    assert found is not None
    assert texts_of(shop_page(found, "en").html, "delivery muted") == [
        "Delivered by hand within 45 min",
        "Instant top-up",
        "Instant delivery",
    ]
    assert texts_of(shop_page(found, "zh-CN").html, "delivery muted")[0] == "人工发货（45 分钟内）"
    page = product_page(by_hand, 3, ["sandbox"], "en").html
    assert '<span class="delivery">Delivered by hand within 45 min</span>' in page
    assert "<span>Delivered by the shop within 45 minutes of payment; your order page updates" in page
    preview = re.search(r'<meta property="og:description" content="([^"]*)">', page).group(1)
    assert (
        preview
        == "¥99.01 · Delivered by the shop within 45 minutes of payment; your order page updates by itself."
    )
