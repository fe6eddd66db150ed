"""Storefront: the buyer API and the hosted pages."""

import time
from datetime import timedelta
from typing import Annotated

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query
from aws_lambda_powertools.shared.cookies import Cookie, SameSite
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.storefront import i18n
from functions.storefront.checkout import CheckoutRequest, checkout, token_matches
from functions.storefront.lookup import LookupAccepted, LookupRequest, request_lookup
from functions.storefront.pages import Page, order_page, product_page
from functions.storefront.schemas import BuyerOrder, OrderCreated, PublicProduct
from shared import adapters, links
from shared.clients import client_key
from shared.errors import NotFound
from shared.http import documented, install_error_handlers, json_response
from shared.orders import Status, utcnow
from shared.products import Product
from shared.providers import registry
from shared.settings import settings
from shared.store.rate import Bucket
from shared.store.shop import is_id

logger = Logger(service="storefront")
app = APIGatewayHttpResolver(enable_validation=True)
install_error_handlers(app, logger)


def _product(product_id: str) -> Product:
    product = adapters.shop().recent_product(product_id) if is_id(product_id, "prd") else None
    if product is None or not product.active:
        raise NotFound("no such product", code="product_not_found")
    return product


def _throttle(group: str, per_minute: int, burst: int) -> None:
    """429 for a client past its token bucket on these routes (shared/store/rate.py)."""
    client = client_key(app.current_event.request_context.http.source_ip)
    adapters.rates().admit(group, client, Bucket(per_minute, burst), time.time())


@app.get(
    "/api/products/<product_id>",
    summary="A product as buyers see it",
    tags=["buyer"],
    responses=documented(200, "the product", PublicProduct, errors=[404]),
)
def get_product(product_id: str) -> Response[str]:
    product = _product(product_id)
    return json_response(
        200,
        {
            "id": product.product_id,
            "name": product.name,
            "description": product.description,
            "price": product.price.model_dump(),
            "available": adapters.recent_stock().available(product),
            "delivery": {"mode": "instant", "eta_seconds": 1},
            "min_per_order": product.min_per_order,
            "max_per_order": product.max_per_order,
            "price_tiers": [tier.model_dump() for tier in product.price_tiers],
        },
    )


@app.post(
    "/api/orders",
    summary="Create an order: stock reserved, payment started",
    tags=["buyer"],
    responses=documented(
        201, "the order, waiting for its payment", OrderCreated, errors=[400, 404, 409, 415, 429, 503]
    ),
)
def create_order(
    request: Annotated[CheckoutRequest, Body()],
    idempotency_key: Annotated[
        str | None, Header(alias="idempotency-key", description="the same key replays the same order")
    ] = None,
) -> Response[str]:
    config = settings()
    _throttle("checkout", config.checkouts_per_client_minute, config.checkout_burst_per_client)
    result = checkout(
        request,
        adapters.shop(),
        adapters.stock(),
        adapters.orders(),
        adapters.limits(),
        now=utcnow(),
        reservation=timedelta(minutes=config.reservation_minutes),
        providers=registry.provider,
        public_base_url=config.public_base_url,
        idempotency_key=idempotency_key,
        client=app.current_event.request_context.http.source_ip,
        caps=(config.max_pending_per_email, config.max_pending_per_client),
        unpaid_units=config.unpaid_units_per_client,
        token_secret=config.order_token_secret,
    )
    order = result.order
    logger.info("order created", extra={"order_id": order.order_id, "product_id": order.product_id})
    return json_response(
        201,
        {
            "order_id": order.order_id,
            "access_token": result.access_token,
            "status": order.status.value,
            "total": order.total.model_dump(),
            "expires_at": order.expires_at.isoformat(),
            "payment": {"provider": order.provider, "url": result.pay_url, "kind": result.pay_kind},
        },
    )


@app.post(
    "/api/orders/lookup",
    summary="E-mail the address a magic link to each of its orders (always 202)",
    tags=["buyer"],
    status_code=202,
    responses=documented(
        202, "accepted, whether or not the address has orders", LookupAccepted, errors=[400, 415, 429]
    ),
)
def lookup_orders(request: Annotated[LookupRequest, Body()]) -> Response[str]:
    config = settings()
    _throttle("lookup", config.lookups_per_client_minute, config.lookup_burst_per_client)
    answer = request_lookup(
        request,
        app.current_event.request_context.http.source_ip,
        adapters.limits(),
        (config.lookups_per_email_hour, config.lookups_per_client_hour),
        now=int(time.time()),
    )
    return json_response(202, answer)


@app.get(
    "/api/orders/<order_id>",
    summary="An order, for whoever holds its access token",
    tags=["buyer"],
    responses=documented(200, "the order; its codes once DELIVERED", BuyerOrder, errors=[404, 429]),
)
def get_order(
    order_id: str,
    authorization: Annotated[str | None, Header(description="Bearer <access_token>")] = None,
) -> Response[str]:
    config = settings()
    _throttle("poll", config.polls_per_client_minute, config.poll_burst_per_client)
    header = authorization or ""
    token = header[7:] if header.lower().startswith("bearer ") else None
    order = adapters.orders().get(order_id) if is_id(order_id, "ord") else None
    opened = order is not None and (
        token_matches(order, token)
        or (token is not None and links.opens(token, order.order_id, utcnow(), config.order_token_secret))
    )
    if order is None or not opened:
        raise NotFound("no such order", code="order_not_found")
    body = {
        "order_id": order.order_id,
        "status": order.status.value,
        "quantity": order.quantity,
        "total": order.total.model_dump(),
        "expires_at": order.expires_at.isoformat(),
        "events": [{"type": e.type, "at": e.at.isoformat()} for e in order.history],
        "eta_seconds": 0 if order.status == Status.DELIVERED else 1,
    }
    if order.status == Status.DELIVERED:
        cipher = adapters.shop().cipher(order.merchant_id)
        codes = adapters.stock().read_codes(order.product_id, order.slots, order.order_id, cipher)
        body["items"] = [{"code": code} for code in codes]
        product = adapters.shop().recent_product(order.product_id)  # its instructions, for the buyer only
        body["instructions"] = product.instructions if product is not None else ""
    return json_response(200, body)


def _language(lang: str | None) -> str:
    cookies = dict(c.partition("=")[::2] for c in app.current_event.cookies or [])
    return i18n.choose(lang, cookies.get(i18n.COOKIE), app.current_event.headers.get("accept-language"))


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


LANG = Annotated[str | None, Query(description="zh-CN or en; remembered in a cookie")]


@app.get(
    "/p/<product_id>",
    summary="The hosted product page",
    tags=["pages"],
    responses=documented(200, "the page", media="text/html", errors=[404]),
)
def product_html(product_id: str, lang: LANG = None) -> Response[str]:
    product = _product(product_id)
    available = adapters.recent_stock().available(product)
    page = product_page(product, available, registry.configured(), _language(lang))
    return _html(page, lang)


@app.get(
    "/o/<order_id>",
    summary="The hosted order page (the access token stays in the URL fragment)",
    tags=["pages"],
    responses=documented(200, "the page", media="text/html", errors=[404]),
)
def order_html(order_id: str, lang: LANG = None) -> Response[str]:
    if not is_id(order_id, "ord"):
        raise NotFound("no such order", code="order_not_found")
    return _html(order_page(order_id, _language(lang)), lang)


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
