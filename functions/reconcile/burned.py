"""Return burned slots: claimed by a checkout that crashed before writing its order (I4).

Only shards in the sparse `audit` index (their cursor moved since they were last settled) and
holds older than the grace period are read, so the audit's cost follows recent sales. Whether a
slot is still wanted is asked of the order the slot names, by key and strongly consistently:
never concluded from an index's silence (indexes lag writes on DynamoDB).
"""

from datetime import datetime

from shared.ports import OrderPort, StockUpkeepPort
from shared.store.stock.upkeep import Claimant, Claimants

GRACE_SECONDS = 300  # far longer than a claim-to-order-write gap; a snapshot younger than this waits


def claimants(orders: OrderPort) -> Claimants:
    """Read the named orders (one consistent BatchGetItem per 100) as the stock sees them."""

    def read(order_ids: set[str]) -> dict[str, Claimant]:
        return {
            order.order_id: Claimant(
                status=order.status,
                lists=frozenset((order.product_id, r.shard, n) for r in order.slots for n in r.slots()),
            )
            for order in orders.get_many(order_ids)
        }

    return read


def return_burned_slots(
    orders: OrderPort, upkeep: StockUpkeepPort, now: datetime, held_back: frozenset[str] = frozenset()
) -> int:
    """`held_back`: products the stock audit found a problem in this run. Their burned slots are
    returned as any (a crashed checkout's claim is one of the audit's findings, this step its fix), but
    their shards stay due, so the next run audits them again: a problem this step does not fix is
    reported run after run (the StockAudit alarm wants two in a row)."""
    read, at = claimants(orders), int(now.timestamp())
    returned = sum(
        upkeep.return_burned(product_id, shard, at, GRACE_SECONDS, read, keep_due=product_id in held_back)
        for product_id, shards in upkeep.shards_due().items()
        for shard in shards
    )
    return returned + upkeep.return_abandoned_holds(at, GRACE_SECONDS, read)
