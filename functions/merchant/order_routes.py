"""Merchant routes: the merchant's orders (list, detail, refund)."""

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import BaseModel, ConfigDict, Field

from functions.merchant.orders import OrderQuery, list_orders, order_detail, parse_query
from functions.merchant.refund import refund_order
from functions.merchant.routing import MERCHANT_KEY, logger, merchant_id
from functions.merchant.schemas import OrderDetail, OrderPage, RefundStarted
from shared import adapters, observability
from shared.disputes import blocked_values
from shared.fulfilment import open_fulfilment, open_input
from shared.http import (
    documented,
    json_response,
    json_text,
    parse_json,
    query_parameters,
    request_body,
    validate,
)
from shared.orders import Order, OrderSummary, Status
from shared.refunds import refund_id_for
from shared.settings import settings

router = Router()


class RefundBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=200)
    # The order was fraud (a stolen card or account): its payer, device, e-mail and client address go
    # onto the merchant's learned block lists, so their next payment is refused before delivery
    # (docs/risk.md).
    fraud: bool = Field(default=False, strict=True)


def _refund_body(order: Order) -> dict | None:
    refunding = order.status in (Status.REFUNDING, Status.REFUNDED)
    if not refunding and not any(e.type.startswith("refund.") for e in order.history):
        return None
    return {"refund_id": refund_id_for(order.order_id, order.refund_attempt), "error": order.refund_error}


@router.get(
    "/merchant/orders",
    summary="Your orders, newest first, filtered",
    tags=["merchant"],
    security=MERCHANT_KEY,
    openapi_extensions=query_parameters(OrderQuery),
    responses=documented(
        200, "a page of orders; follow next_cursor until null", OrderPage, errors=[400, 401, 403]
    ),
)
def get_orders() -> Response[str]:
    query = parse_query(router.current_event.query_string_parameters)
    listing = list_orders(merchant_id(router), query, adapters.orders(), settings().order_token_secret)
    return json_response(
        200,
        {"orders": [o.model_dump(mode="json") for o in listing.orders], "next_cursor": listing.next_cursor},
    )


@router.get(
    "/merchant/orders/<order_id>",
    summary="One of your orders, with its codes while DELIVERED (audited)",
    tags=["merchant"],
    security=MERCHANT_KEY,
    responses=documented(200, "the order", OrderDetail, errors=[401, 403, 404]),
)
def get_order(order_id: str) -> Response[str]:
    merchant = merchant_id(router)
    detail = order_detail(merchant, order_id, adapters.orders(), adapters.allocation(), adapters.merchants())
    order = detail.order
    payment = order.payment
    body = {
        **OrderSummary.of(order).model_dump(mode="json"),
        "expires_at": order.expires_at.isoformat(),
        "payment": (
            {
                "provider": payment.provider,
                "payment_id": payment.payment_id,
                "amount": payment.amount.model_dump(),
            }
            if payment is not None
            else None
        ),
        "refund": _refund_body(order),
        "events": [{"type": e.type, "at": e.at.isoformat(), "data": e.data} for e in order.history],
        "history_intact": detail.history_intact,
    }
    if detail.codes is not None:
        # Audit: who read which order's codes, and how many (never the codes themselves).
        logger.info(
            "order codes read",
            extra={
                "audit": "codes_read",
                "order_id": order.order_id,
                "merchant_id": merchant,
                "count": len(detail.codes),
            },
        )
        body["items"] = [{"code": code} for code in detail.codes]
    if order.sealed_input is not None or order.sealed_fulfilment is not None:
        cipher = adapters.merchants().cipher(merchant)
        if order.sealed_input is not None:  # personal data: who read whose, never the values
            logger.info("buyer input read", extra={"audit": "buyer_input_read", "order_id": order.order_id})
            body["buyer_input"] = open_input(order, cipher)
        if order.delivery == "manual" and (fulfilment := open_fulfilment(order, cipher)) is not None:
            body["fulfilment"] = fulfilment.model_dump()
    return json_response(200, body)


def learn_from_fraud(merchant: str, order: Order) -> None:
    """The order's payer, device, e-mail and client address onto the merchant's learned block lists
    (one audited change; the same values again change nothing), counted in FraudReported for its alarm."""
    values = blocked_values(order)  # as a dispute blocks them (shared/disputes.py)
    adapters.risk_rules().add_blocked(merchant, values, order.total.currency, why="fraud refund")
    observability.count_for_alarm("FraudReported", "merchant")


@router.post(
    "/merchant/orders/<order_id>/refund",
    summary="Refund a paid order through its provider",
    tags=["merchant"],
    security=MERCHANT_KEY,
    openapi_extensions=request_body("an optional reason", RefundBody),
    responses={
        **documented(
            202,
            "refund sent; REFUNDING until the provider confirms",
            RefundStarted,
            errors=[400, 401, 403, 404, 409, 415, 503],
        ),
        200: {"description": "refunded", "content": {"application/json": {"model": RefundStarted}}},
    },
)
def post_refund(order_id: str) -> Response[str]:
    merchant = merchant_id(router)
    raw = json_text(router.current_event)
    body = validate(RefundBody, parse_json(raw) if raw.strip() else {})
    ports = adapters.ports()
    order = refund_order(merchant, order_id, body.reason, ports, ports.clock())
    logger.info("refund requested", extra={"order_id": order.order_id, "status": order.status.value})
    if body.fraud:
        learn_from_fraud(merchant, order)
    return json_response(
        200 if order.status == Status.REFUNDED else 202,
        {
            "order_id": order.order_id,
            "status": order.status.value,
            "refund_id": refund_id_for(order.order_id, order.refund_attempt),
        },
    )
