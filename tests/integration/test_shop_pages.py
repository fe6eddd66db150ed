"""The shop's page over HTTP (issue 18): `GET /s/{merchant_id}` lists a shop's active products by
category with price, stock and delivery, in the buyer's language with the shop's own as the fallback;
`GET /` is the default shop's; an unknown shop, product or order is a 404 page, not the API's JSON; the
page allows images from the logo's origin and no other."""

import re
import time
from html import unescape

import pytest

from functions.storefront.i18n import TEXTS
from tests.support import event, new_codes, poll

ZH = {"accept-language": "zh-CN,zh;q=0.9"}
EN = {"accept-language": "en-US,en;q=0.9"}


@pytest.fixture(scope="module")
def neko(shop):
    """A merchant of its own with its shop's settings, two categories, a product without one, a
    sold-out one and an inactive one."""
    from shared.adapters import merchants

    merchant_id, key = merchants().create_merchant("Neko Cards")
    settings = {
        "name": "Neko Cards",
        "logo_url": "https://cdn.example.com/neko.png",
        "contact": "WeChat: neko_cards",
        "announcement": "Sunday: codes at once <b>as always</b>",
        "support_email": "help@neko.example",
        "default_language": "zh-CN",
    }
    assert shop.merchant("PUT", "/merchant/shop", key=key, json=settings).status_code == 200
    ids = {
        "steam": shop.new_product(new_codes(3), key=key, name="Steam 100", category="Steam", price=9900),
        "itunes": shop.new_product(new_codes(2), key=key, name="iTunes $5", category="App Store", price=3500),
        "gone": shop.new_product([], key=key, name="Steam 500", category="Steam", price=49900),
        "plain": shop.new_product(new_codes(1), key=key, name="Mystery key", price=100),
        "hidden": shop.new_product(new_codes(1), key=key, name="Withdrawn", category="Steam"),
    }
    changed = shop.merchant("PATCH", f"/merchant/products/{ids['hidden']}", key=key, json={"active": False})
    assert changed.status_code == 200 and changed.json()["category"] == "Steam"
    return {"merchant_id": merchant_id, "key": key, "ids": ids}


def get(shop, path: str, headers: dict | None = None):
    return shop.http.get(f"{shop.url}{path}", headers=headers or {}, timeout=30)


def listed(html: str) -> list[tuple[str, list[str]]]:
    """(category heading, [product names]) as the page lists them."""
    sections = re.findall(r'<h2 id="category-\d+">([^<]*)</h2><ul class="products">(.*?)</ul>', html)
    return [
        (unescape(h), [unescape(n) for n in re.findall(r'<a href="/p/[^"]+">([^<]*)</a>', ul)])
        for h, ul in sections
    ]


@pytest.mark.parametrize(("headers", "lang"), [(EN, "en"), (ZH, "zh-CN")])
def test_a_shops_page_lists_its_active_products_by_category_with_price_stock_and_delivery(
    shop, neko, headers, lang
):
    page = get(shop, f"/s/{neko['merchant_id']}", headers)

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    t = TEXTS[lang]
    assert f'<html lang="{lang}">' in page.text
    assert listed(page.text) == [
        ("App Store", ["iTunes $5"]),
        ("Steam", ["Steam 500", "Steam 100"]),  # newest first; the inactive one is not listed
        (t["shop.other"], ["Mystery key"]),
    ]
    assert "¥99.00" in page.text and "¥35.00" in page.text and "¥499.00" in page.text
    items = dict(re.findall(r'<li class="product" data-product-id="([^"]+)">(.*?)</li>', page.text))
    sold_out = [product_id for product_id, item in items.items() if "stock-out" in item]
    assert sold_out == [neko["ids"]["gone"]] and t["sold_out"] in items[neko["ids"]["gone"]]
    assert f'<span class="stock stock-in">{t["in_stock"].format(count=3)}</span>' in page.text
    assert page.text.count(f'<span class="delivery muted">{t["shop.instant"]}</span>') == 4
    assert '<h1 id="shop-name">Neko Cards</h1>' in page.text
    assert "Sunday: codes at once &lt;b&gt;as always&lt;/b&gt;" in page.text  # escaped
    assert "WeChat: neko_cards" in page.text and "mailto:help@neko.example" in page.text


def test_the_shops_language_is_the_fallback_and_the_buyers_choice_comes_first(shop, neko):
    path = f"/s/{neko['merchant_id']}"
    assert '<html lang="zh-CN">' in get(shop, path).text  # no Accept-Language: the shop's default
    assert '<html lang="en">' in get(shop, path, EN).text
    chosen = get(shop, f"{path}?lang=en", ZH)
    assert '<html lang="en">' in chosen.text and "miaofa_lang=en" in chosen.headers["set-cookie"]


def test_the_shops_page_allows_images_from_the_logos_origin_and_no_other(shop, neko):
    page = get(shop, f"/s/{neko['merchant_id']}")
    policy = dict(d.strip().split(" ", 1) for d in page.headers["content-security-policy"].split(";"))
    assert policy["img-src"] == "'self' https://cdn.example.com"
    assert policy["default-src"] == "'none'" and policy["connect-src"] == "'self'"
    assert '<img id="logo" src="https://cdn.example.com/neko.png"' in page.text


def test_link_previews_name_the_shop_and_the_product(shop, neko):
    head = get(shop, f"/s/{neko['merchant_id']}", EN).text.split("</head>")[0]
    assert '<meta property="og:title" content="Neko Cards">' in head
    assert '<meta name="description" content="Sunday: codes at once &lt;b&gt;as always&lt;/b&gt;">' in head
    product = get(shop, f"/p/{neko['ids']['steam']}", EN).text.split("</head>")[0]
    assert (
        "<title>Steam 100</title>" in product and '<meta property="og:title" content="Steam 100">' in product
    )
    assert '<meta property="og:description" content="¥99.00. Instant delivery' in product


@pytest.mark.parametrize(
    ("path", "what"),
    [
        ("/s/mer_" + "0" * 20, "shop"),
        ("/s/not-a-merchant", "shop"),
        ("/p/prd_" + "0" * 20, "product"),
        ("/p/%3Cscript%3E", "product"),
        ("/o/%3Cscript%3E", "order"),
    ],
)
@pytest.mark.parametrize(("headers", "lang"), [(EN, "en"), (ZH, "zh-CN")])
def test_an_unknown_shop_product_or_order_is_a_404_page_in_the_buyers_language(
    shop, path, what, headers, lang
):
    page = get(shop, path, headers)
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert f'<html lang="{lang}">' in page.text
    assert TEXTS[lang][f"not_found.{what}"] in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")


def test_an_inactive_product_is_a_404_page(shop, neko):
    page = get(shop, f"/p/{neko['ids']['hidden']}", ZH)
    assert page.status_code == 404 and TEXTS["zh-CN"]["not_found.product"] in page.text
    assert get(shop, f"/api/products/{neko['ids']['hidden']}").json()["error"]["code"] == "product_not_found"


def test_the_home_page_is_the_default_shop(shop, runtime):
    page = get(shop, "/", EN)
    assert page.status_code == 200
    # The demo merchant's shop (other tests add products to it, so its newest 50 may not hold the demo one).
    assert f'data-merchant-id="{runtime.info.merchant_id}"' in page.text
    assert '<h1 id="shop-name">Demo merchant</h1>' in page.text and 'id="announcement"' in page.text


def test_without_a_default_shop_the_home_page_says_no_shop_is_set(runtime, monkeypatch):
    from functions.storefront import page_routes

    unset = page_routes.settings().model_copy(update={"default_shop": ""})
    monkeypatch.setattr(page_routes, "settings", lambda: unset)
    answer = runtime.functions["StorefrontFunction"].invoke(event("http_home_page"))
    assert answer["statusCode"] == 200 and answer["headers"]["Content-Type"].startswith("text/html")
    assert TEXTS["zh-CN"]["shop.none"] in answer["body"]


def test_a_category_is_kept_changed_and_cleared_through_the_merchant_api(shop, neko):
    key, product_id = neko["key"], neko["ids"]["plain"]
    path = f"/merchant/products/{product_id}"
    assert shop.merchant("GET", path, key=key).json()["category"] is None
    assert shop.merchant("PATCH", path, key=key, json={"category": " Keys "}).json()["category"] == "Keys"
    assert shop.merchant("GET", path, key=key).json()["category"] == "Keys"
    refused = shop.merchant("PATCH", path, key=key, json={"category": "x" * 51})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_category"
    assert shop.merchant("PATCH", path, key=key, json={"category": None}).json()["category"] is None
    bad = shop.merchant(
        "POST",
        "/merchant/products",
        key=key,
        json={"name": "a", "price": {"amount": 1, "currency": "CNY"}, "category": "a\nb"},
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_category"


def test_shop_page_views_read_the_shop_its_listing_and_each_stock_level_once_per_ttl(shop, neko):
    """The page's reads are kept per container like the product page's (docs/buyer-pages.md, "The shop's
    page"): however many views, each item is read at most once per PRODUCT_CACHE_SECONDS."""
    from shared import adapters
    from shared.settings import settings
    from tests.faults_aws import on_table, watched
    from tests.integration.test_hot_reads import at_most_once_per_ttl, shard_reads

    merchant_id, listed_ids = (
        neko["merchant_id"],
        [neko["ids"][n] for n in ("steam", "itunes", "gone", "plain")],
    )
    shop_table = settings().shop_table
    kept = [
        lambda: adapters.recent_shops().kept.holds(merchant_id),
        lambda: adapters.products()._listings.holds(merchant_id),
        *(lambda p=p: adapters.recent_stock().kept.holds(p) for p in listed_ids),
    ]
    poll(lambda: not any(holds() for holds in kept))  # nothing of it kept: the first view reads each
    with (
        watched("GetItem", on_table(shop_table, pk=f"merchant#{merchant_id}")) as settings_reads,
        watched("GetItem", on_table(shop_table, pk=f"catalog#{merchant_id}")) as listing_reads,
        shard_reads(listed_ids[0]) as steam_levels,
        shard_reads(listed_ids[2]) as sold_out_levels,
    ):
        began = time.monotonic()
        for _ in range(20):
            assert get(shop, f"/s/{merchant_id}").status_code == 200
        elapsed = time.monotonic() - began

    bound = at_most_once_per_ttl(elapsed, settings().product_cache_seconds)
    seen = [r.seen for r in (settings_reads, listing_reads, steam_levels, sold_out_levels)]
    assert all(1 <= n <= bound for n in seen) and max(seen) < 20, (seen, elapsed)


def test_the_product_page_falls_back_to_its_shops_language_and_the_buyers_choice_comes_first(shop, neko):
    path = f"/p/{neko['ids']['steam']}"
    assert '<html lang="zh-CN">' in get(shop, path).text  # no Accept-Language: the shop's default
    assert '<html lang="zh-CN">' in get(shop, path, {"accept-language": "fr-FR,de;q=0.8"}).text
    assert '<html lang="en">' in get(shop, path, EN).text
    assert '<html lang="en">' in get(shop, f"{path}?lang=en", ZH).text
    page = get(shop, path).text
    assert (
        f'<a class="brand" id="shop-link" href="/s/{neko["merchant_id"]}">' in page
    )  # the shop's name on top
    assert "WeChat: neko_cards" in page and "mailto:help@neko.example" in page

    from shared.adapters import merchants

    english, key = merchants().create_merchant("English shop")
    settings = {"name": "English shop", "default_language": "en"}
    assert shop.merchant("PUT", "/merchant/shop", key=key, json=settings).status_code == 200
    product_id = shop.new_product(new_codes(1), key=key)
    assert '<html lang="en">' in get(shop, f"/p/{product_id}").text
    assert '<html lang="zh-CN">' in get(shop, f"/p/{product_id}", ZH).text


def test_product_page_views_read_the_shops_settings_once_per_ttl(shop, neko):
    """The product page's language and header come from the shop's settings, kept per container like
    the shop's page's: however many views, the merchant's item is read at most once per
    PRODUCT_CACHE_SECONDS."""
    from shared import adapters
    from shared.settings import settings
    from tests.faults_aws import on_table, watched
    from tests.integration.test_hot_reads import at_most_once_per_ttl

    merchant_id = neko["merchant_id"]
    poll(lambda: not adapters.recent_shops().kept.holds(merchant_id))
    with watched("GetItem", on_table(settings().shop_table, pk=f"merchant#{merchant_id}")) as reads:
        began = time.monotonic()
        for _ in range(20):
            assert get(shop, f"/p/{neko['ids']['steam']}").status_code == 200
        elapsed = time.monotonic() - began
    assert 1 <= reads.seen <= at_most_once_per_ttl(elapsed, settings().product_cache_seconds) < 20


def test_a_shop_of_more_than_a_page_of_products_is_listed_page_by_page(shop):
    """More than MAX_LISTED (50) active products: the page lists the newest 50 and links to the next
    page with an opaque cursor; following the links lists every active product once, newest first,
    and the last page links to none."""
    from shared.adapters import merchants
    from shared.store.products import MAX_LISTED

    merchant_id, key = merchants().create_merchant("Big shop")
    assert shop.merchant("PUT", "/merchant/shop", key=key, json={"name": "Big shop"}).status_code == 200
    names = [f"Card {n:03d}" for n in range(MAX_LISTED + 13)]
    ids = [shop.new_product([], key=key, name=name, shards=1) for name in names]
    for withdrawn in (ids[3], ids[60]):
        assert shop.merchant("PATCH", f"/merchant/products/{withdrawn}", key=key, json={"active": False}).ok
    active = [
        name for name, product_id in zip(names, ids, strict=True) if product_id not in (ids[3], ids[60])
    ]

    pages, path = [], f"/s/{merchant_id}"
    while path and len(pages) < 5:
        page = get(shop, path, EN)
        assert page.status_code == 200
        pages.append(page.text)
        more = re.search(
            r'<a id="more" rel="next" href="\?after=([A-Za-z0-9_-]+)">More products</a>', page.text
        )
        path = f"/s/{merchant_id}?after={more.group(1)}" if more else ""
    listed_names = [name for text in pages for name in re.findall(r'<a href="/p/[^"]+">([^<]*)</a>', text)]
    assert len(pages) == 2 and listed_names == active[::-1]  # newest first, each once, none withdrawn
    assert len(re.findall(r'<li class="product"', pages[0])) == MAX_LISTED
    assert 'id="newest"' not in pages[0] and f'<a id="newest" href="/s/{merchant_id}">' in pages[1]

    # A cursor the shop did not write is the first page, not an error.
    assert (
        get(shop, f"/s/{merchant_id}?after=%3Cscript%3E", EN).text.count('<li class="product"') == MAX_LISTED
    )
