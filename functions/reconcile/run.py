"""One reconciliation run: each step idempotent and conditional, so two runs at once do no harm.

A step that fails is logged and named in the report's `failed_steps`; the others still run, and
the handler fails the invocation afterwards so the ReconcileNotRunning alarm sees it.
"""

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from functions.reconcile.audit import audit_stock, orders_by_age
from functions.reconcile.burned import return_burned_slots
from functions.reconcile.expiry import expire_reservations
from functions.reconcile.lost_payments import recover_payments
from functions.reconcile.redrive import redrive_paid
from functions.reconcile.refunds import refund_orders, refund_owed_payments
from functions.reconcile.reviews import expire_reviews
from shared import adapters
from shared.ports import Ports
from shared.settings import Settings
from shared.settlement import apply_payment

logger = logging.getLogger(__name__)
PROVIDER_SHARE = 0.5  # of the run's time, at most, for calls to providers (questions and refunds)


def reconcile(
    config: Settings, now: datetime, seconds: float = 45.0, ports: Ports | None = None
) -> dict[str, Any]:
    """Run every step within about `seconds`; returns the report (counts, orders by age, stock audit).
    `ports`: the process's real ones unless given (shared/ports.py)."""
    ports = adapters.ports() if ports is None else ports
    orders, allocation, upkeep, products, queue = (
        ports.orders,
        ports.allocation,
        ports.upkeep,
        ports.products,
        ports.delivery,
    )
    retry_after = timedelta(seconds=config.redrive_after_seconds)
    apply = partial(apply_payment, ports=ports, now=now, redrive_after=retry_after)
    provider = ports.providers.provider
    # One budget for every step that calls providers: a provider that hangs (up to ~12 s a call,
    # shared/providers/http.py) cannot keep the run from its audit, clean-up and report.
    providers_end = time.monotonic() + seconds * PROVIDER_SHARE

    def out_of_time() -> bool:
        return time.monotonic() > providers_end

    report: dict[str, Any] = {"failed_steps": []}

    def step(name: str, work: Callable[[], Any], fallback: Any) -> Any:
        try:
            return work()
        except Exception:
            logger.exception("reconcile step failed", extra={"step": name})
            report["failed_steps"].append(name)
            return fallback

    report["payments_recovered"], report["providers_asked"] = step(
        "lost_payments",
        lambda: recover_payments(orders, provider, apply, now, out_of_time),
        (0, 0),
    )
    report["expired"], report["returned_slots"] = step(
        "expiry", lambda: expire_reservations(orders, allocation, now), (0, 0)
    )
    report["late_fulfilments"] = []
    report["redriven"], report["gave_up"] = step(
        "redrive",
        lambda: redrive_paid(
            orders,
            queue,
            products,
            allocation,
            now,
            retry_after,
            config.max_delivery_redrives,
            late=report["late_fulfilments"],
        ),
        (0, []),
    )
    report["reviews_expired"] = step("reviews", lambda: expire_reviews(ports, now, retry_after), [])
    # After the re-drives and the reviews, so an order given up on (or whose review expired) just now
    # is refunded in the same run.
    report["refunded"], report["refunds_waiting"] = step(
        "refunds", lambda: refund_orders(ports, now, out_of_time), (0, 0)
    )
    report["owed_refunded"] = step(
        "owed_payments",
        lambda: refund_owed_payments(
            ports.events, orders, provider, ports.providers.configured(), out_of_time
        ),
        0,
    )
    # The audit comes before the burned-slot step, which settles shards and drops them from its index
    # — but not a product's whose stock does not add up: it stays due, audited again next run.
    report["stock_problems"] = step(
        "stock_audit", lambda: audit_stock(products, upkeep, orders, None, now), {}
    )
    held_back = frozenset(report["stock_problems"])
    report["burned_returned"] = step(
        "burned_slots", lambda: return_burned_slots(orders, upkeep, now, held_back), 0
    )
    report["orders"] = step("orders_by_age", lambda: orders_by_age(orders, now), None)
    return report
