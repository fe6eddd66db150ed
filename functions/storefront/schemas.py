"""What the buyer API answers, as models: each route builds its body from its model, and the OpenAPI
document describes the same model."""

from typing import Literal

from pydantic import BaseModel, ConfigDict

from shared.buyer_input import InputField
from shared.money import Money
from shared.orders import Status
from shared.products import DeliveryMode, PriceTier


class Delivery(BaseModel):
    mode: Literal["instant", "review", "manual"]
    eta_seconds: int  # manual: the time the shop promises
    kind: DeliveryMode = "stock"  # from stock, a top-up, by hand, codes made per order, licenses


class PublicProduct(BaseModel):
    id: str
    name: str
    description: str
    price: Money
    available: int | None  # null: not counted (only stock is: the other modes are never sold out)
    delivery: Delivery
    min_per_order: int
    max_per_order: int
    price_tiers: list[PriceTier]
    buyer_input: list[InputField] = []  # what checkout asks the buyer for (POST /api/orders buyer_input)


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
    items: list[Item] | None = None  # once DELIVERED (left out before); a license order's: its license keys
    instructions: str | None = None  # once DELIVERED (left out before)
    delivery: DeliveryMode = "stock"  # from stock, a top-up, by hand, codes made per order, licenses
    promise_minutes: int | None = None  # manual: what the shop promised, shown while it is waited for
    text: str | None = None  # manual, once DELIVERED: what the merchant wrote
    receipt: str | None = None  # topup, once DELIVERED: the upstream's receipt
    # IN_REVIEW by the risk rules: when the shop's time to decide ends, and what happens then unless it
    # decided (docs/risk.md "Reviews"); left out for any other order (a held order has no deadline).
    review_until: str | None = None
    review_expires_to: Literal["refund", "deliver"] | None = None


class LookupAccepted(BaseModel):
    model_config = ConfigDict(frozen=True)  # one answer for every look-up

    status: str
    message: str
