"""Merchant use cases on orders: list them (filters, signed cursors) and read one (with its codes).

A cursor is the position the last page stopped at, signed under the server secret together with
the merchant and the filters it was issued for: it cannot be edited into another position, used by
another merchant, or carried over to other filters."""

import json
import re
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationInfo, field_validator

from shared.cursors import read_cursor as verified_cursor
from shared.cursors import sign_cursor as signed_cursor
from shared.errors import BadInput, Invalid, NotFound
from shared.fulfilment import open_fulfilment
from shared.http import validate
from shared.ids import is_id
from shared.orders import Order, OrderSummary, Status
from shared.ports import OrderPort
from shared.store.merchants import MerchantStore
from shared.store.orders import OrderFilter, OrderPosition, OrderStore
from shared.store.stock.allocation import Allocation

CURSOR_PURPOSE: Final = b"miaofa:merchant-orders-cursor:v1"
QUERY_PARAMETERS: Final = frozenset({"status", "product_id", "email", "from", "to", "limit", "cursor"})
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
_UNENCODED_PLUS = re.compile(r"(?<=\d) (?=\d{2}:\d{2}$)")  # "+08:00" sent unencoded arrives as " 08:00"


def _rfc3339(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    value = _UNENCODED_PLUS.sub("+", value)
    if not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 time with its offset, e.g. 2024-05-01T00:00:00Z")
    try:
        return datetime.fromisoformat(value.upper()).astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
        raise ValueError("is out of range") from None


class OrderQuery(BaseModel):
    """The query string of GET /merchant/orders."""

    model_config = ConfigDict(extra="forbid")

    status: Status | None = None
    product_id: str | None = Field(default=None, min_length=1, max_length=64)
    email: EmailStr | None = Field(default=None, max_length=254)
    created_from: datetime | None = Field(default=None, alias="from")
    created_to: datetime | None = Field(default=None, alias="to")
    limit: int = Field(default=50, ge=1, le=100)
    cursor: str | None = None

    _parse_times = field_validator("created_from", "created_to", mode="before")(_rfc3339)

    @field_validator("created_to")
    @classmethod
    def _after_from(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("created_from")
        if value is not None and start is not None and value <= start:
            raise ValueError("must be later than 'from'")
        return value

    def filters(self) -> OrderFilter:
        return OrderFilter(
            status=self.status,
            product_id=self.product_id,
            email=str(self.email).lower() if self.email is not None else None,
            created_from=self.created_from,
            created_to=self.created_to,
        )


def parse_query(parameters: dict[str, str] | None) -> OrderQuery:
    """The listing's parameters; an empty one counts as absent, an unknown one is refused (422)."""
    given = {name: value for name, value in (parameters or {}).items() if value != ""}
    unknown = sorted(set(given) - QUERY_PARAMETERS)
    if unknown:
        raise Invalid(f"unknown query parameter '{unknown[0][:40]}'", code="unknown_parameter")
    return validate(OrderQuery, given)


class OrderListing(BaseModel):
    orders: list[OrderSummary]
    next_cursor: str | None


def _binding(merchant_id: str, filters: OrderFilter) -> dict[str, Any]:
    return {"merchant": merchant_id, "filters": filters.model_dump(mode="json")}


def sign_cursor(position: OrderPosition, merchant_id: str, filters: OrderFilter, secret: str) -> str:
    """An opaque cursor for resuming after `position`, valid only for this merchant and these filters."""
    payload = json.dumps(
        [position.created_at.astimezone(UTC).isoformat(timespec="microseconds"), position.order_id],
        separators=(",", ":"),
    ).encode()
    return signed_cursor(CURSOR_PURPOSE, _binding(merchant_id, filters), payload, secret)


def read_cursor(cursor: str, merchant_id: str, filters: OrderFilter, secret: str) -> OrderPosition:
    """The position a cursor stands for, or 400 invalid_cursor if this merchant with these filters was
    not given it."""
    payload = verified_cursor(CURSOR_PURPOSE, _binding(merchant_id, filters), cursor, secret)
    refused = BadInput("cursor is not valid for this listing; start again without it", code="invalid_cursor")
    try:
        created_at, order_id = json.loads(payload)
        position = OrderPosition(created_at=datetime.fromisoformat(created_at), order_id=order_id)
    except (ValueError, TypeError):
        raise refused from None
    if position.created_at.tzinfo is None or not is_id(position.order_id, "ord"):
        raise refused
    return position


def list_orders(merchant_id: str, query: OrderQuery, orders: OrderStore, secret: str) -> OrderListing:
    """One page of the merchant's own orders, newest first, and the cursor to the next (None at the end)."""
    filters = query.filters()
    after = read_cursor(query.cursor, merchant_id, filters, secret) if query.cursor else None
    page = orders.for_merchant(merchant_id, filters, query.limit, after)
    resume = page.resume_after
    return OrderListing(
        orders=page.orders,
        next_cursor=sign_cursor(resume, merchant_id, filters, secret) if resume is not None else None,
    )


def owned_order(merchant_id: str, order_id: str, orders: OrderPort) -> Order:
    """The merchant's own order; another merchant's is indistinguishable from a missing one."""
    order = orders.get(order_id) if is_id(order_id, "ord") else None
    if order is None or order.merchant_id != merchant_id:
        raise NotFound("no such order", code="order_not_found")
    return order


class OrderDetail(BaseModel):
    order: Order
    history_intact: bool
    codes: list[str] | None  # only once DELIVERED


def order_detail(
    merchant_id: str, order_id: str, orders: OrderStore, allocation: Allocation, merchants: MerchantStore
) -> OrderDetail:
    """One of the merchant's orders with its verified history and, once delivered, its codes."""
    order = owned_order(merchant_id, order_id, orders)
    codes = None
    if order.status == Status.DELIVERED:
        cipher = merchants.cipher(order.merchant_id)
        if order.delivery in ("generated", "license"):  # made for the order, sealed on it
            fulfilment = open_fulfilment(order, cipher)
            codes = fulfilment.codes if fulfilment is not None else []
        else:
            codes = allocation.read_codes(order.product_id, order.slots, order.order_id, cipher)
    return OrderDetail(order=order, history_intact=orders.history_intact(order.order_id), codes=codes)
