"""Storefront routes: checkout, and an order for whoever holds its access token."""

from datetime import timedelta
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Header
from aws_lambda_powertools.metrics import MetricUnit

from functions.storefront.checkout import Checkout, CheckoutRequest, checkout
from functions.storefront.qr import qr_svg
from functions.storefront.routing import answer, client_address, logger, throttle
from functions.storefront.schemas import BuyerOrder, Event, Item, OrderCreated, PaymentStart, ProductRef
from shared import access, adapters, observability
from shared.errors import NotFound, RiskBlocked
from shared.fulfilment import open_fulfilment
from shared.http import documented
from shared.ids import is_id
from shared.orders import Order, Status, utcnow
from shared.ports import Ports
from shared.products import Product
from shared.reviews import entered_review, review_due_in
from shared.settings import settings

router = Router()


def order_created(result: Checkout) -> OrderCreated:
    order = result.order
    return OrderCreated(
        order_id=order.order_id,
        access_token=result.access_token,
        status=order.status,
        total=order.total,
        expires_at=order.expires_at.isoformat(),
        payment=PaymentStart(
            provider=order.provider,
            url=result.pay_url,
            kind=result.pay_kind,
            qr_svg=qr_svg(result.pay_url) if result.pay_kind == "qr" and result.pay_url else None,
        ),
    )


def buyer_order(order: Order) -> BuyerOrder:
    """The order as its buyer sees it: what was bought, and its codes and the product's instructions
    once DELIVERED."""
    items, instructions, text, receipt = None, None, None, None
    product = adapters.products().recent_product(order.product_id)  # read at most once a second a container
    promise = product.manual.promise_minutes if product is not None and product.manual else None
    if order.status == Status.DELIVERED:
        cipher = adapters.merchants().cipher(order.merchant_id)
        if order.delivery == "stock":
            codes = adapters.allocation().read_codes(order.product_id, order.slots, order.order_id, cipher)
        else:  # sealed on the order: a manual order's fulfilment, generated codes, license keys
            fulfilment = open_fulfilment(order, cipher)
            codes = fulfilment.codes if fulfilment is not None else []
            text = fulfilment.text if fulfilment is not None else None
        receipt = next((e.data.get("receipt") for e in order.history if e.type == "order.delivered"), None)
        items = [Item(code=code) for code in codes]
        instructions = product.instructions if product is not None else ""  # for the buyer only
    return BuyerOrder(
        order_id=order.order_id,
        status=order.status,
        product=ProductRef(id=product.product_id, name=product.name) if product is not None else None,
        provider=order.provider,
        quantity=order.quantity,
        total=order.total,
        expires_at=order.expires_at.isoformat(),
        events=[Event(type=e.type, at=e.at.isoformat()) for e in order.history],
        eta_seconds=0 if order.status == Status.DELIVERED else 60 * (promise or 0) or 1,
        items=items,
        instructions=instructions,
        delivery=order.delivery,
        promise_minutes=promise if order.delivery == "manual" else None,
        text=text,
        receipt=receipt,
        **review_deadline(order, product),
    )


def review_deadline(order: Order, product: Product | None) -> dict[str, Any]:
    """An order the risk rules sent to review: until when its shop may decide, and what then."""
    entered = entered_review(order) if order.status == Status.IN_REVIEW else None
    if entered is None or entered[1].type != "risk.review":
        return {}
    until = entered[1].at + review_due_in(product)
    expires_to = product.when_review_expires if product is not None else "refund"
    return {"review_until": until.isoformat(), "review_expires_to": expires_to}


@router.post(
    "/api/orders",
    summary="Create an order: stock reserved, payment started",
    tags=["buyer"],
    responses=documented(
        201,
        "the order, waiting for its payment",
        OrderCreated,
        errors=[400, 404, 409, 415, 429, 503],
        risk_blocked=True,
    ),
)
def create_order(
    request: Annotated[CheckoutRequest, Body()],
    idempotency_key: Annotated[
        str | None, Header(alias="idempotency-key", description="the same key replays the same order")
    ] = None,
) -> Response[str]:
    config = settings()
    throttle(router, "checkout", config.checkouts_per_client_minute, config.checkout_burst_per_client)
    ports = adapters.ports()
    try:
        result = _checkout(request, idempotency_key, ports)
    except RiskBlocked as blocked:
        # The decision under the reference the buyer may quote: rules, score, hashed signals (no value).
        logger.info(
            "checkout refused by risk rules",
            extra={"reference": blocked.details["reference"], **blocked.decision},
        )
        observability.metrics("storefront").add_metric(
            name="CheckoutsBlocked", unit=MetricUnit.Count, value=1
        )
        raise
    order = result.order
    logger.info("order created", extra={"order_id": order.order_id, "product_id": order.product_id})
    observability.metrics("storefront").add_metric(name="OrdersCreated", unit=MetricUnit.Count, value=1)
    return answer(201, order_created(result))


def _checkout(request: CheckoutRequest, idempotency_key: str | None, ports: Ports) -> Checkout:
    config = settings()
    return checkout(
        request,
        ports.products,
        ports.allocation,
        ports.orders,
        ports.limits,
        now=ports.clock(),
        reservation=timedelta(minutes=config.reservation_minutes),
        providers=ports.providers.provider,
        public_base_url=config.public_base_url,
        idempotency_key=idempotency_key,
        client=client_address(router),
        caps=(config.max_pending_per_email, config.max_pending_per_client),
        unpaid_units=config.unpaid_units_per_client,
        token_secret=config.order_token_secret,
        ciphers=ports.ciphers,
        screen=ports.screen_checkout,
        left=ports.levels.left,
    )


@router.get(
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
    throttle(router, "poll", config.polls_per_client_minute, config.poll_burst_per_client)
    header = authorization or ""
    token = header[7:] if header.lower().startswith("bearer ") else None
    order = adapters.orders().get(order_id) if is_id(order_id, "ord") else None
    opened = order is not None and access.opens(order, token, utcnow(), config.order_token_secret)
    if order is None or not opened:
        raise NotFound("no such order", code="order_not_found")
    return answer(200, buyer_order(order), exclude_none=True)  # no items or instructions before DELIVERED
