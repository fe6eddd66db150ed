"""What the merchant API answers, as models: the OpenAPI document's schemas for these routes."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from shared.buyer_input import InputField
from shared.fulfilment import Fulfilment
from shared.money import Money
from shared.notify import EventType
from shared.orders import OrderSummary, Status
from shared.products import (
    DeliveryMode,
    GeneratedTerms,
    LicenseTerms,
    ManualTerms,
    PriceTier,
    ReviewExpiryPolicy,
    StockLevels,
    TopupTerms,
    UndeliverablePolicy,
)
from shared.shops import ShopSettings


class MerchantProduct(BaseModel):
    id: str
    name: str
    description: str
    price: Money
    delivery: DeliveryMode
    active: bool
    created_at: datetime
    min_per_order: int
    max_per_order: int
    daily_limit_per_buyer: int | None
    unpaid_limit_per_client: int | None
    price_tiers: list[PriceTier]
    instructions: str
    low_stock_threshold: int
    when_undeliverable: UndeliverablePolicy
    sales_per_code: int
    email_codes: bool
    category: str | None  # the storefront's heading; null: "Other"
    review_deadline_minutes: int  # how long a risk review waits for you
    when_review_expires: ReviewExpiryPolicy  # then: refunded, or delivered
    buyer_input: list[InputField]  # what the buyer fills in at checkout
    topup: TopupTerms | None  # delivery "topup": the upstream and its SKU
    manual: ManualTerms | None  # delivery "manual": the promised time and the deadline
    generated: GeneratedTerms | None  # delivery "generated": the code pattern and the cap
    license: LicenseTerms | None  # delivery "license": what each license grants
    # delivery "generated", in the answer to creating the product or changing it: a code its pattern
    # could make (made for you to look at, never sold)
    example: str | None = None


class ProductPage(BaseModel):
    products: list[MerchantProduct]
    next_cursor: str | None


class Problem(BaseModel):
    line: int
    reason: str


class CodeList(BaseModel):
    """The JSON form of a stock body (the other is text/plain, one code per line)."""

    codes: list[str]


class StockImported(BaseModel):
    added: int
    duplicates: int
    rejected: int
    problems: list[Problem]


class CodesMade(BaseModel):
    cap: int | None = Field(description="how many codes may ever be made (null: no cap)")
    made: int | None = Field(
        description="codes made so far, counted against the cap (null: no cap, not counted)"
    )
    left: int | None = Field(description="cap - made: how many more buyers may order (null: no cap)")


class ProductStock(StockLevels):
    generated: CodesMade | None = Field(
        default=None, description="a generated product's codes made (only for one: it has no stock to count)"
    )


class StockRemoved(BaseModel):
    removed: int
    not_found: list[int]
    not_available: list[int]


class OrderPage(BaseModel):
    orders: list[OrderSummary]
    next_cursor: str | None


class Payment(BaseModel):
    provider: str
    payment_id: str
    amount: Money


class Refund(BaseModel):
    refund_id: str
    error: str | None


class OrderEvent(BaseModel):
    type: str
    at: datetime
    data: dict[str, Any]


class Item(BaseModel):
    code: str


class OrderDetail(OrderSummary):
    expires_at: datetime
    payment: Payment | None
    refund: Refund | None
    events: list[OrderEvent]
    history_intact: bool
    items: list[Item] | None = None  # while DELIVERED
    buyer_input: dict[str, str] | None = None  # what the buyer filled in (reading it is audited)
    fulfilment: Fulfilment | None = None  # a manual order's delivery, once fulfilled


class RefundStarted(BaseModel):
    order_id: str
    status: Status
    refund_id: str


class Webhook(BaseModel):
    url: str
    events: list[EventType]


class WebhookSet(Webhook):
    secret: str  # shown in this answer only


class Shop(ShopSettings):
    """The shop's settings, with the merchant's id (read-only: not taken by PUT) and their version
    (0 until first set; one more at every write: PUT it back to refuse a write over another's)."""

    merchant_id: str
    version: int = Field(description="0 until first set; one more at every write")
