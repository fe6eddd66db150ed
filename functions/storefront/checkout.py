"""Checkout: reserve stock with one conditional write (a stocked product), then create the order
PENDING_PAYMENT, the buyer's input (if the product asks for any) checked and sealed on it."""

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from shared import screening
from shared.access import token_hash
from shared.buyer_input import check_input
from shared.clients import client_key
from shared.errors import (
    AlreadyApplied,
    Invalid,
    NotFound,
    OutOfStock,
    ProviderDown,
    RiskBlocked,
    StateConflict,
    TooMany,
)
from shared.faults import checkpoint
from shared.idempotency import check_key
from shared.ids import new_id
from shared.orders import Order, SlotRange, Status, Ticket, chain_event, sealed_identity
from shared.ports import (
    AllocationPort,
    CheckoutScreen,
    Ciphers,
    LimitPort,
    OrderPort,
    ProductPort,
    ProviderLookup,
)
from shared.products import Product
from shared.providers import CURRENCIES, ProviderError
from shared.risk.engine import Decision
from shared.risk.signals import Signals, device_id
from shared.store.limits import buyer_key


class CheckoutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: str = Field(min_length=1, max_length=64)
    quantity: int = Field(strict=True)
    email: EmailStr = Field(max_length=254)
    provider: Literal["sandbox", "stripe", "alipay", "wechatpay"] = "sandbox"
    buyer_input: dict[str, Any] | None = None
    # The product page's device id (static/device.js; docs/risk.md "Device id"): opaque to the server,
    # used only by the merchant's risk rules. One that is not 1-128 printable ASCII counts as none.
    device: str | None = Field(default=None, max_length=512)


MAX_QUANTITY_HELD = 1 << 40  # no bound on a client's unpaid units (only the daily limit's room)


class Checkout(BaseModel):
    order: Order
    access_token: str
    pay_url: str | None  # None once the order is no longer waiting for its payment
    pay_kind: Literal["redirect", "qr"] = "redirect"


def idempotent_identity(key: str, secret: str) -> tuple[str, str]:
    """(order id, access token) for a checkout with this Idempotency-Key: a retry gets the same ones.

    Derived from the key under a server secret, so no token is stored and an order id does not let
    anyone check guesses of a key offline; the key itself is as sensitive as the token."""
    order = hmac.new(secret.encode(), b"order-id\0" + key.encode(), hashlib.sha256).digest()
    token = hmac.new(secret.encode(), b"access-token\0" + key.encode(), hashlib.sha256).digest()
    return f"ord_{order[:10].hex()}", base64.urlsafe_b64encode(token).decode().rstrip("=")


def request_fingerprint(request: CheckoutRequest) -> str:
    return hashlib.sha256(request.model_dump_json().encode()).hexdigest()


def checkout(
    request: CheckoutRequest,
    products: ProductPort,
    allocation: AllocationPort,
    orders: OrderPort,
    limits: LimitPort,
    now: datetime,
    reservation: timedelta,
    providers: ProviderLookup,
    public_base_url: str,
    idempotency_key: str | None = None,
    client: str = "",
    caps: tuple[int, int] = (3, 20),
    token_secret: str = "",
    unpaid_units: int = 20,
    ciphers: Ciphers | None = None,
    screen: CheckoutScreen | None = None,
    left: Callable[[Product], int | None] | None = None,
) -> Checkout:
    """Validate, screen, reserve, create. An error before the reservation leaves nothing behind (a
    refusal by the risk rules included: 403 `risk_blocked`); a retry with the same Idempotency-Key
    returns the same order (and a different body under that key is refused)."""
    check_key(idempotency_key)
    order_id, token = (
        idempotent_identity(idempotency_key, token_secret)
        if idempotency_key
        else (new_id("ord"), secrets.token_urlsafe(32))
    )
    fingerprint = request_fingerprint(request) if idempotency_key else None
    if idempotency_key and (existing := orders.get(order_id)):
        return _replay(existing, fingerprint, token, providers, public_base_url)
    # Up to PRODUCT_CACHE_SECONDS old (the product's partition would cap one product's sales): a change
    # applies within that time; the order keeps the total computed here and the payment binds to it.
    product = products.recent_product(request.product_id)
    if product is None or not product.active:
        raise NotFound("no such product", code="product_not_found")
    product.check_quantity(request.quantity)
    product.total_for(request.quantity)  # checked before any write: nothing is half-done after an error
    _within_cap(product, request.quantity, left)
    values = check_input(product.buyer_input, request.buyer_input)
    if providers(request.provider) is None:
        raise Invalid(
            f"payment provider '{request.provider}' is not configured for this shop", code="invalid_provider"
        )
    if product.price.currency not in CURRENCIES.get(request.provider, {product.price.currency}):
        raise Invalid(
            f"payment provider '{request.provider}' cannot take {product.price.currency}",
            code="currency_not_supported",
        )
    # Unpaid orders count against the client that placed them, never against an e-mail shop-wide:
    # somebody else's unpaid orders in your e-mail cannot lock you out (docs/operations.md "Limits").
    client = client_key(client) if client else ""
    device = device_id(request.device)
    decision = _screened(screen, product, request, order_id, client, device, now)
    buyer = [(buyer_key("email", f"{request.email}\0{client}"), caps[0])] + (
        [(buyer_key("client", client), caps[1])] if client else []
    )
    until, call = int((now + reservation).timestamp()), secrets.token_hex(8)  # this call's own hold
    tickets = _take_tickets(limits, buyer, order_id, until)
    created = False
    try:
        tickets.extend(
            _hold_units(limits, product, request, client, (order_id, call), until, unpaid_units, now)
        )
        checkpoint("checkout:after-limits")
        order, created = _reserve_and_create(
            request,
            product,
            allocation,
            orders,
            now,
            reservation,
            order_id,
            token,
            fingerprint,
            tickets,
            twin_may_exist=idempotency_key is not None,
            sealed_input=_seal(values, order_id, product.merchant_id, ciphers),
            origin=(client or None, device, decision),
        )
        checkpoint("checkout:after-order-created")
    finally:
        if not created:  # only an order created just now keeps the tickets and the hold it took
            for ticket in tickets:
                limits.give_back(ticket, order_id, call)
    if not created:  # a concurrent retry with the same key made it
        return _replay(order, fingerprint, token, providers, public_base_url)
    # The order holds its stock and tickets from here on, whether or not the provider answers now:
    # a retry with the same Idempotency-Key starts its payment, or it expires like any unpaid order.
    return _with_payment(order, token, providers, public_base_url)


def _within_cap(product: Product, quantity: int, left: Callable[[Product], int | None] | None) -> None:
    """A capped generated product that has made its cap (or would pass it with this order) is sold out:
    refused before the buyer pays. From the count as this process read it within PRODUCT_CACHE_SECONDS
    (the one item is not read per order: no hot key), for capped products only. Not a reservation:
    orders paid at once may still pass the cap together, and the delivery's exact count then gives the
    last ones the product's `when_undeliverable` (docs/licenses.md "Generated delivery")."""
    if product.cap is None or left is None:
        return
    remaining = left(product)
    if remaining is not None and quantity > remaining:
        raise OutOfStock(
            "sold out: this product makes no more codes"
            if remaining == 0
            else f"only {remaining} more can be made"
        )


def _screened(
    screen: CheckoutScreen | None,
    product: Product,
    request: CheckoutRequest,
    order_id: str,
    client: str,
    device: str | None,
    now: datetime,
) -> Decision | None:
    """The merchant's risk rules' decision about this checkout (None: not screened); 403 if they block
    it, before anything is taken or written but the counts."""
    if screen is None:
        return None
    signals = Signals(
        email=str(request.email),
        client=client or None,
        device=device,
        amount=product.total_for(request.quantity),
        quantity=request.quantity,
        product_id=product.product_id,
        history=None,
    )
    decision = screen(product.merchant_id, order_id, signals, now)
    if decision.action == "block":
        raise RiskBlocked(f"rsk_{order_id.removeprefix('ord_')}", screening.record(decision))
    return decision


def _seal(values: dict[str, str], order_id: str, merchant_id: str, ciphers: Ciphers | None) -> bytes | None:
    """The buyer's input sealed under the merchant's key, bound to this order (None: nothing asked)."""
    if not values:
        return None
    if ciphers is None:
        raise ValueError("buyer input to seal, and no cipher to seal it with")
    text = json.dumps(values, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return ciphers(merchant_id).encrypt(text, sealed_identity(order_id, "input"))


def _take_tickets(limits: LimitPort, buyer: list[tuple[str, int]], order_id: str, until: int) -> list[Ticket]:
    taken: list[Ticket] = []
    try:
        for key, cap in buyer:
            ticket = limits.take(key, cap, order_id, until)
            if ticket is None:
                raise TooMany(
                    "too many unpaid orders; pay or let one expire first", code="too_many_pending_orders"
                )
            taken.append(ticket)
    except Exception:  # refused, or failed (throttled): the tickets already taken go back
        for held in taken:
            limits.give_back(held, order_id)
        raise
    return taken


def _hold_units(
    limits: LimitPort,
    product: Product,
    request: CheckoutRequest,
    client: str,
    order: tuple[str, str],  # the order id, and this call's token for its hold
    until: int,
    unpaid_units: int,
    now: datetime,
) -> list[Ticket]:
    """Hold the units against what the client may hold unpaid of the product, and check the e-mail's
    daily limit: units paid today + this client's unpaid ones for the e-mail + these. 429 if either
    would be broken. Nothing is held without a client (a checkout not made over HTTP)."""
    room = None
    if (limit := product.daily_limit_per_buyer) is not None:
        room = limit - limits.paid_today(product.product_id, str(request.email), now.astimezone(UTC).date())
        if request.quantity > room:
            raise _daily_limit_reached(limit, now)
    bound = product.unpaid_bound(unpaid_units)
    if not client or (bound is None and room is None):
        return []
    held = limits.hold_units(
        product.product_id,
        client,
        str(request.email),
        *order,
        request.quantity,
        (bound if bound is not None else MAX_QUANTITY_HELD, room),
        until,
    )
    if held == "email":
        raise _daily_limit_reached(limit or 0, now)
    if held == "client":
        raise TooMany(
            f"this client may hold at most {bound} unpaid units of this product; pay or let an order "
            "expire first",
            code="unpaid_limit_reached",
            retry_after=max(1, until - int(now.timestamp())),
        )
    return [held]


def _daily_limit_reached(limit: int, now: datetime) -> TooMany:
    return TooMany(
        f"this e-mail may order at most {limit} of this product per day (UTC)",
        code="daily_limit_reached",
        retry_after=86_400 - int(now.timestamp()) % 86_400,  # the next UTC day
    )


def _reserve_and_create(
    request: CheckoutRequest,
    product: Product,
    allocation: AllocationPort,
    orders: OrderPort,
    now: datetime,
    reservation: timedelta,
    order_id: str,
    token: str,
    fingerprint: str | None,
    tickets: list[Ticket],
    twin_may_exist: bool,
    sealed_input: bytes | None = None,
    origin: tuple[str | None, str | None, Decision | None] = (None, None, None),
) -> tuple[Order, bool]:
    """Claim stock (a stocked product's) and write the order; (the order, True) if this call created
    it, else the order a concurrent retry with the same key created."""
    total = product.total_for(request.quantity)
    slots: list[SlotRange] = []
    if product.stocked:
        try:
            slots = allocation.claim(product.product_id, product.shards, request.quantity, order_id)
        except OutOfStock:
            if twin_may_exist and (twin := orders.get(order_id)):  # a concurrent retry took the stock
                return twin, False
            raise
        checkpoint("checkout:after-claim")
    client, device, decision = origin  # where it was placed from, and the risk rules' say (if any fired)
    data: dict[str, Any] = {"quantity": request.quantity}
    if decision is not None and decision.hits:
        data.update(screening.record(decision))
    created = chain_event(order_id, [], "order.created", now, data)
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
        request_hash=fingerprint,
        tickets=tickets,
        delivery=product.delivery,
        sealed_input=sealed_input,
        client=client,
        device=device,
    )

    def ours(written: Order) -> bool:  # this call's write (slots are empty unless stocked: the first event)
        return written.slots == slots and written.history[0].hash == created.hash

    try:
        orders.create(order)
    except AlreadyApplied:  # a concurrent retry with the same key got there first (or our answer was lost)
        winner = orders.get(order_id)
        assert winner is not None
        if ours(winner):  # our own write, found by the SDK's retry: it keeps what it took
            return winner, True
        if slots:
            allocation.release_unkept(product.product_id, slots, winner.slots, order_id)
        return winner, False
    except Exception:  # failed past the SDK's retries (throttled), yet an earlier attempt may have applied
        if (written := orders.get(order_id)) is not None and ours(written):
            return written, True
        # No order (read strongly consistently after every attempt answered): its tickets and count go
        # back, and its slots at once, so a throttling storm leaves no stock unsellable meanwhile.
        if slots:
            allocation.release(product.product_id, slots, order_id)
        raise
    return order, True


def _replay(
    order: Order, fingerprint: str | None, token: str, providers: ProviderLookup, public_base_url: str
) -> Checkout:
    if order.request_hash != fingerprint:
        raise Invalid("this Idempotency-Key was used for a different request", code="idempotency_key_reused")
    return _with_payment(order, token, providers, public_base_url)


def _with_payment(order: Order, token: str, providers: ProviderLookup, public_base_url: str) -> Checkout:
    """Start the payment at the order's provider: idempotent per order there (a replay gets the same
    payment). An order no longer unpaid starts nothing (no pay URL); a provider that fails is a 503
    to retry with the same Idempotency-Key."""
    provider = providers(order.provider)
    if order.status != Status.PENDING_PAYMENT:
        return Checkout(order=order, access_token=token, pay_url=None)
    if provider is None:
        raise StateConflict(f"payment provider '{order.provider}' is no longer configured for this shop")
    try:
        start = provider.start(order, return_url=f"{public_base_url}/o/{order.order_id}")
    except ProviderError as error:
        raise ProviderDown(
            f"the payment provider could not start the payment ({error}); retry with the same Idempotency-Key"
        ) from None
    return Checkout(order=order, access_token=token, pay_url=start.url, pay_kind=start.kind)
