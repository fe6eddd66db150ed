"""Storefront routes: the hosted pages (HTML), in the buyer's language. An unknown product, shop or
order is a page too (404), never the API's JSON."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.shared.cookies import Cookie, SameSite

from functions.storefront import i18n
from functions.storefront.pages import (
    Page,
    no_shop_page,
    not_found_page,
    order_page,
    product_page,
    shop_page,
)
from functions.storefront.routing import on_sale, request
from functions.storefront.shopfront import shop_listing
from shared import adapters
from shared.errors import NotFound
from shared.http import documented
from shared.ids import is_id
from shared.providers import registry
from shared.settings import settings

router = Router()
LANG = Annotated[str | None, Query(description="zh-CN or en; remembered in a cookie")]
AFTER = Annotated[
    str | None, Query(description="the next page's cursor, from the page's \"more products\" link")
]


def _language(lang: str | None, fallback: str = i18n.DEFAULT) -> str:
    event = request(router)
    cookies = dict(c.partition("=")[::2] for c in event.cookies or [])
    return i18n.choose(lang, cookies.get(i18n.COOKIE), event.headers.get("accept-language"), fallback)


def _html(page: Page, lang: str | None) -> Response[str]:
    """A page, remembering the language toggle's choice in a cookie."""
    cookies = []
    if lang in i18n.LANGUAGES:
        cookies = [
            Cookie(name=i18n.COOKIE, value=lang, path="/", max_age=31_536_000, same_site=SameSite.LAX_MODE)
        ]
    return Response(
        status_code=page.status,
        content_type="text/html; charset=utf-8",
        body=page.html,
        headers=page.headers,
        cookies=cookies,
    )


def _not_found(what: str, lang: str | None) -> Response[str]:
    return _html(not_found_page(_language(lang), what), lang)


PAGE = documented(200, "the page", media="text/html", pages=[404])


@router.get("/", summary="The default shop's page (DEFAULT_SHOP)", tags=["pages"], responses=PAGE)
def home_html(lang: LANG = None, after: AFTER = None) -> Response[str]:
    merchant = settings().default_shop
    return _shop(merchant, lang, after, "/") if merchant else _html(no_shop_page(_language(lang)), lang)


@router.get(
    "/s/<merchant_id>",
    summary="A shop's page: its active products by category",
    tags=["pages"],
    responses=PAGE,
)
def shop_html(merchant_id: str, lang: LANG = None, after: AFTER = None) -> Response[str]:
    return _shop(merchant_id, lang, after, f"/s/{merchant_id}")


def _shop(merchant_id: str, lang: str | None, after: str | None, path: str) -> Response[str]:
    listing = shop_listing(
        merchant_id, adapters.recent_shops(), adapters.products(), adapters.recent_stock(), after
    )
    if listing is None:
        return _not_found("shop", lang)
    return _html(
        shop_page(listing, _language(lang, listing.shop.default_language), path, registry.configured()), lang
    )


@router.get("/p/<product_id>", summary="The hosted product page", tags=["pages"], responses=PAGE)
def product_html(product_id: str, lang: LANG = None) -> Response[str]:
    try:
        product = on_sale(product_id)
    except NotFound:
        return _not_found("product", lang)
    # Not counted (None) for a top-up, manual, license or uncapped generated product: never sold out.
    available = adapters.recent_stock().left(product)
    shop = adapters.recent_shops().shop(product.merchant_id)  # kept per container, as on the shop's page
    language = _language(lang, shop.default_language if shop else i18n.DEFAULT)
    page = product_page(product, available, registry.configured(), language, shop=shop)
    return _html(page, lang)


@router.get(
    "/o/<order_id>",
    summary="The hosted order page (the access token stays in the URL fragment)",
    tags=["pages"],
    responses=PAGE,
)
def order_html(order_id: str, lang: LANG = None) -> Response[str]:
    if not is_id(order_id, "ord"):
        return _not_found("order", lang)
    return _html(order_page(order_id, _language(lang), settings().websocket_url), lang)
