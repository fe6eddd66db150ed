"""Merchant routes: the risk rules (docs/risk.md "Rules API") and the review queue ("Reviews")."""

from datetime import datetime, timedelta
from typing import Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import BaseModel, ConfigDict, Field

from functions.merchant.reviews import Review, approve, list_reviews, reject
from functions.merchant.routing import MERCHANT_KEY, logger, merchant_id
from shared import adapters
from shared.errors import Invalid
from shared.http import (
    documented,
    json_response,
    json_text,
    parse_json,
    query_parameters,
    request_body,
    validate,
)
from shared.orders import OrderSummary, Status
from shared.refunds import refund_id_for
from shared.risk import RiskRules, parse_rules
from shared.settings import settings

router = Router()


class RiskRulesAnswer(RiskRules):
    """The rules document (PUT it back, changed, with its `version`) and whether it is the defaults
    (nothing stored yet: version 0)."""

    defaults: bool = Field(description="true: nothing stored yet, these are the defaults (version 0)")


class RulesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$", description="the defaults' amounts in it")


class InReview(OrderSummary):
    entered_at: datetime  # when it entered review
    why: Literal["risk", "held"]  # the risk engine asked; or held for a person, undeliverable
    due_at: datetime | None  # a risk review: when the product's policy applies; held: never
    decision: dict[str, Any]  # the history entry's data: the engine's decision, or why it was held


class Reviews(BaseModel):
    reviews: list[InReview]


class Decided(BaseModel):
    order_id: str
    decision: Literal["approved", "rejected"]
    status: Status  # where the order is now
    refund_id: str | None = None  # rejected: the refund's id at the provider


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=200)


def _rules_body(rules: RiskRules, defaults: bool) -> dict[str, Any]:
    return {**rules.model_dump(mode="json"), "defaults": defaults}


@router.get(
    "/merchant/risk/rules",
    summary="Your risk rules (the defaults, version 0, until you set them)",
    tags=["merchant"],
    security=MERCHANT_KEY,
    openapi_extensions=query_parameters(RulesQuery),
    responses=documented(200, "the rules document", RiskRulesAnswer, errors=[401, 403]),
)
def get_rules() -> Response[str]:
    given = {k: v for k, v in (router.current_event.query_string_parameters or {}).items() if v != ""}
    query = validate(RulesQuery, given)
    rules, defaults = adapters.risk_rules().rules_or_defaults(merchant_id(router), query.currency)
    return json_response(200, _rules_body(rules, defaults))


@router.put(
    "/merchant/risk/rules",
    summary="Set your risk rules: the whole document, with the `version` read",
    description="422 `invalid_risk_rules` naming the field; 409 `version_conflict` if another write "
    "came since the version read (nothing written). The same document sent again is not a conflict.",
    tags=["merchant"],
    security=MERCHANT_KEY,
    openapi_extensions=request_body(
        "the rules document (`defaults`, as GET answers it, is ignored)", RiskRules
    ),
    responses=documented(200, "the rules as stored", RiskRulesAnswer, errors=[400, 401, 403, 409, 415]),
)
def put_rules() -> Response[str]:
    merchant = merchant_id(router)
    raw = json_text(router.current_event)
    if not raw.strip():  # the document is optional in the OpenAPI sense only: there is no default to set
        raise Invalid("the body is the rules document, a JSON object", code="invalid_risk_rules")
    document = parse_json(raw)
    if isinstance(document, dict) and isinstance(document.get("defaults"), bool):
        document = {k: v for k, v in document.items() if k != "defaults"}  # GET's answer, sent back
    if not isinstance(document, dict):
        raise Invalid("the body is the rules document, a JSON object", code="invalid_risk_rules")
    rules = parse_rules(document)
    stored = adapters.risk_rules().put_rules(merchant, rules, rules.version)
    logger.info(
        "risk rules set",
        extra={"audit": "risk_rules_set", "version": stored.version, "rules": len(stored.rules)},
    )
    return json_response(200, _rules_body(stored, False))


def _in_review(review: Review) -> dict[str, Any]:
    return {
        **OrderSummary.of(review.order).model_dump(mode="json"),
        "entered_at": review.entered.at.isoformat(),
        "why": "risk" if review.due_at is not None else "held",
        "due_at": review.due_at.isoformat() if review.due_at is not None else None,
        "decision": review.entered.data,
    }


@router.get(
    "/merchant/reviews",
    summary="Your orders in review, the longest waiting first",
    tags=["merchant"],
    security=MERCHANT_KEY,
    responses=documented(200, "up to 100 orders in review", Reviews, errors=[401, 403]),
)
def get_reviews() -> Response[str]:
    reviews = list_reviews(merchant_id(router), adapters.orders())
    return json_response(200, {"reviews": [_in_review(review) for review in reviews]})


@router.post(
    "/merchant/reviews/<order_id>/approve",
    summary="Approve an order in review: it is delivered",
    description="Sent again, answers as the first time (the order's status as it is now).",
    tags=["merchant"],
    security=MERCHANT_KEY,
    responses=documented(200, "approved; sent to delivery", Decided, errors=[401, 403, 404, 409]),
)
def post_approve(order_id: str) -> Response[str]:
    ports = adapters.ports()
    redrive_after = timedelta(seconds=settings().redrive_after_seconds)
    order = approve(merchant_id(router), order_id, ports, ports.clock(), redrive_after)
    logger.info("review approved", extra={"order_id": order.order_id, "status": order.status.value})
    body = Decided(order_id=order.order_id, decision="approved", status=order.status)
    return json_response(200, body.model_dump(mode="json"))


@router.post(
    "/merchant/reviews/<order_id>/reject",
    summary="Reject an order in review: it is refunded",
    description="Sent again, answers as the first time (the order's status as it is now).",
    tags=["merchant"],
    security=MERCHANT_KEY,
    openapi_extensions=request_body("an optional reason", RejectBody),
    responses=documented(
        200,
        "rejected; the refund sent (REFUNDING until the provider confirms)",
        Decided,
        errors=[400, 401, 403, 404, 409, 415, 503],
    ),
)
def post_reject(order_id: str) -> Response[str]:
    raw = json_text(router.current_event) if router.current_event.body else ""
    body = validate(RejectBody, parse_json(raw) if raw.strip() else {})
    ports = adapters.ports()
    order = reject(merchant_id(router), order_id, body.reason, ports, ports.clock())
    logger.info("review rejected", extra={"order_id": order.order_id, "status": order.status.value})
    answer = Decided(
        order_id=order.order_id,
        decision="rejected",
        status=order.status,
        refund_id=refund_id_for(order.order_id, order.refund_attempt),
    )
    return json_response(200, answer.model_dump(mode="json"))
