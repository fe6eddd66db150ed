"""Storefront routes: the hosted pages (HTML), in the buyer's language."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.shared.cookies import Cookie, SameSite

from functions.storefront import i18n
from functions.storefront.pages import Page, order_page, product_page
from functions.storefront.routing import on_sale, request
from shared import adapters
from shared.errors import NotFound
from shared.http import documented
from shared.ids import is_id
from shared.providers import registry
from shared.settings import settings

router = Router()
LANG = Annotated[str | None, Query(description="zh-CN or en; remembered in a cookie")]


def _language(lang: str | None) -> str:
    event = request(router)
    cookies = dict(c.partition("=")[::2] for c in event.cookies or [])
    return i18n.choose(lang, cookies.get(i18n.COOKIE), event.headers.get("accept-language"))


def _html(page: Page, lang: str | None) -> Response[str]:
    """A page, remembering the language toggle's choice in a cookie."""
    cookies = []
    if lang in i18n.LANGUAGES:
        cookies = [
            Cookie(name=i18n.COOKIE, value=lang, path="/", max_age=31_536_000, same_site=SameSite.LAX_MODE)
        ]
    return Response(
        status_code=200,
        content_type="text/html; charset=utf-8",
        body=page.html,
        headers=page.headers,
        cookies=cookies,
    )


@router.get(
    "/p/<product_id>",
    summary="The hosted product page",
    tags=["pages"],
    responses=documented(200, "the page", media="text/html", errors=[404]),
)
def product_html(product_id: str, lang: LANG = None) -> Response[str]:
    product = on_sale(product_id)
    available = adapters.recent_stock().available(product)
    page = product_page(product, available, registry.configured(), _language(lang))
    return _html(page, lang)


@router.get(
    "/o/<order_id>",
    summary="The hosted order page (the access token stays in the URL fragment)",
    tags=["pages"],
    responses=documented(200, "the page", media="text/html", errors=[404]),
)
def order_html(order_id: str, lang: LANG = None) -> Response[str]:
    if not is_id(order_id, "ord"):
        raise NotFound("no such order", code="order_not_found")
    return _html(order_page(order_id, _language(lang), settings().websocket_url), lang)
