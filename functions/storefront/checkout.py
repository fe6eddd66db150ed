"""Checkout: reserve stock with one conditional write, then create the order PENDING_PAYMENT."""

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from shared.errors import Invalid, NotFound
from shared.faults import checkpoint
from shared.orders import Order, Status, chain_event
from shared.store.orders import OrderStore
from shared.store.shop import ShopStore, new_id
from shared.store.stock import StockStore


class CheckoutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: str = Field(min_length=1, max_length=64)
    quantity: int = Field(strict=True)
    email: EmailStr = Field(max_length=254)
    provider: Literal["sandbox", "stripe", "alipay", "wechatpay"] = "sandbox"
    buyer_input: dict[str, Any] | None = None


class Checkout(BaseModel):
    order: Order
    access_token: str
    pay_url: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(order: Order, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(order.access_token_hash, token_hash(token or ""))


def checkout(
    request: CheckoutRequest,
    shop: ShopStore,
    stock: StockStore,
    orders: OrderStore,
    now: datetime,
    reservation: timedelta,
    sandbox_pay_url: str,
    public_base_url: str,
) -> Checkout:
    """Validate, reserve, create. An error before the reservation leaves nothing behind."""
    product = shop.product(request.product_id)
    if product is None or not product.active:
        raise NotFound("no such product", code="product_not_found")
    product.check_quantity(request.quantity)
    total = product.total_for(request.quantity)  # before any write: nothing is half-done after an error
    if request.provider != "sandbox" or not sandbox_pay_url:
        raise Invalid(
            f"payment provider '{request.provider}' is not configured for this shop", code="invalid_provider"
        )
    order_id, token = new_id("ord"), secrets.token_urlsafe(32)
    slots = stock.claim(product.product_id, product.shards, request.quantity, order_id)
    checkpoint("checkout:after-claim")
    created = chain_event(order_id, [], "order.created", now, {"quantity": request.quantity})
    order = Order(
        order_id=order_id,
        merchant_id=product.merchant_id,
        product_id=product.product_id,
        quantity=request.quantity,
        total=total,
        email=str(request.email),
        provider=request.provider,
        status=Status.PENDING_PAYMENT,
        access_token_hash=token_hash(token),
        created_at=now,
        expires_at=now + reservation,
        slots=slots,
        history=[created],
    )
    orders.create(order)
    checkpoint("checkout:after-order-created")
    query = urlencode(
        {
            "order_id": order.order_id,
            "amount": order.total.amount,
            "currency": order.total.currency,
            "return_url": f"{public_base_url}/o/{order.order_id}",
        }
    )
    return Checkout(order=order, access_token=token, pay_url=f"{sandbox_pay_url}?{query}")
