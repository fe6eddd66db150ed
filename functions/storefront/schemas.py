"""What the buyer API answers, as models: each route builds its body from its model, and the OpenAPI
document describes the same model."""

from typing import Literal

from pydantic import BaseModel, ConfigDict

from shared.money import Money
from shared.orders import Status
from shared.products import PriceTier


class Delivery(BaseModel):
    mode: Literal["instant", "review", "manual"]
    eta_seconds: int


class PublicProduct(BaseModel):
    id: str
    name: str
    description: str
    price: Money
    available: int
    delivery: Delivery
    min_per_order: int
    max_per_order: int
    price_tiers: list[PriceTier]


class PaymentStart(BaseModel):
    provider: str
    url: str | None  # null once the order no longer waits for its payment (a replayed request)
    kind: Literal["redirect", "qr"]
    qr_svg: str | None = None  # kind "qr": the URL's QR code as an SVG element, for the page to draw


class OrderCreated(BaseModel):
    order_id: str
    access_token: str
    status: Status
    total: Money
    expires_at: str
    payment: PaymentStart


class Event(BaseModel):
    type: str
    at: str


class Item(BaseModel):
    code: str


class ProductRef(BaseModel):
    id: str
    name: str


class BuyerOrder(BaseModel):
    order_id: str
    status: Status
    product: ProductRef | None = None  # what was bought (left out if the product is gone)
    provider: str  # who takes the payment: sandbox, stripe, alipay, wechatpay
    quantity: int
    total: Money
    expires_at: str  # when an unpaid order's reservation ends
    events: list[Event]
    eta_seconds: int
    items: list[Item] | None = None  # once DELIVERED (left out before)
    instructions: str | None = None  # once DELIVERED (left out before)


class LookupAccepted(BaseModel):
    model_config = ConfigDict(frozen=True)  # one answer for every look-up

    status: str
    message: str
