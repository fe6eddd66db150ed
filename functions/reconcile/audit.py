"""What reconciliation reports: orders in each non-final state by age, and the stock audit (I4)."""

import logging
from collections import Counter
from datetime import datetime
from typing import Any

from functions.reconcile.burned import GRACE_SECONDS, claimants
from shared.orders import Status
from shared.ports import OrderPort, ProductPort, StockUpkeepPort

logger = logging.getLogger(__name__)
OUTSTANDING = (Status.PENDING_PAYMENT, Status.PAID, Status.IN_REVIEW, Status.EXPIRED, Status.REFUNDING)
AGES = ((60, "under_1m"), (300, "1m_5m"), (900, "5m_15m"), (3600, "15m_1h"), (86400, "1h_1d"))
STUCK_AFTER_SECONDS = 300  # a paid order delivers within a second; five minutes means something broke


def _bucket(age: int) -> str:
    return next((name for limit, name in AGES if age < limit), "over_1d")


def orders_by_age(orders: OrderPort, now: datetime) -> dict[str, Any]:
    """Per non-final state: how many orders, the oldest's age, and counts by age (from the `due` index)."""
    report: dict[str, Any] = {}
    for status in OUTSTANDING:
        ages = [
            max(0, int(now.timestamp()) - (entry.status_at or entry.due_at))
            for entry in orders.outstanding(status)
        ]
        by_age = dict(Counter(_bucket(age) for age in ages))
        report[status.value] = {"count": len(ages), "oldest_seconds": max(ages, default=0), "by_age": by_age}
        if status == Status.PAID:  # the stuck-orders alarm's metric
            report[status.value]["stuck"] = sum(age >= STUCK_AFTER_SECONDS for age in ages)
    return report


def audit_stock(
    products: ProductPort,
    upkeep: StockUpkeepPort,
    orders: OrderPort,
    product_ids: list[str] | None,
    now: datetime,
) -> dict[str, list[str]]:
    """I4 for the products named, or (None, as a run audits) for each product whose stock moved since it
    was last settled and each the shop-wide check of holds names: what does not add up, by product
    (checked against the slots there and the orders they name, docs/allocation.md "Stock audit")."""
    read, at = claimants(orders), int(now.timestamp())
    holds = upkeep.audit_holds(read, at, GRACE_SECONDS)
    if product_ids is None:
        product_ids = sorted(set(upkeep.shards_due()) | set(holds))
    problems = {p: found for p, found in holds.items() if p in product_ids}
    for product_id in product_ids:
        product = products.product(product_id)
        if product is None:
            problems[product_id] = ["stock without a product"]
            logger.error(
                "stock audit found a problem",
                extra={"product_id": product_id, "problems": problems[product_id]},
            )
            continue
        found = upkeep.audit(product_id, product.shards, read, at, GRACE_SECONDS) + problems.get(
            product_id, []
        )
        if found:
            problems[product_id] = found
            logger.error("stock audit found a problem", extra={"product_id": product_id, "problems": found})
    return problems
