"""One reconciliation run: each step idempotent and conditional, so two runs at once do no harm."""

from datetime import datetime, timedelta
from functools import partial
from typing import Any

from functions.reconcile.audit import audit_stock, orders_by_age
from functions.reconcile.burned import return_burned_slots
from functions.reconcile.expiry import expire_reservations
from functions.reconcile.lost_payments import recover_payments
from functions.reconcile.redrive import redrive_paid
from functions.webhook.payment import apply_payment
from shared import adapters
from shared.providers import payment_query
from shared.settings import Settings


def reconcile(config: Settings, now: datetime) -> dict[str, Any]:
    """Run every step and return the report (counts, orders by age, stock audit findings)."""
    orders, stock, shop = adapters.orders(), adapters.stock(), adapters.shop()
    retry_after = timedelta(seconds=config.redrive_after_seconds)
    apply = partial(
        apply_payment,
        orders=orders,
        events=adapters.payment_events(),
        queue=adapters.delivery_queue(),
        stock=stock,
        shop=shop,
        limits=adapters.limits(),
        now=now,
        redrive_after=retry_after,
    )
    recovered, asked = recover_payments(orders, payment_query, apply, now)
    expired, returned = expire_reservations(orders, stock, now)
    redriven, gave_up = redrive_paid(
        orders, adapters.delivery_queue(), shop, stock, now, retry_after, config.max_delivery_redrives
    )
    audit = audit_stock(shop, stock, sorted(stock.shards_due()))  # before the burned-slot step settles them
    burned = return_burned_slots(orders, stock, now)
    return {
        "payments_recovered": recovered,
        "providers_asked": asked,
        "expired": expired,
        "returned_slots": returned,
        "redriven": redriven,
        "gave_up": gave_up,
        "burned_returned": burned,
        "stock_problems": audit,
        "orders": orders_by_age(orders, now),
    }
