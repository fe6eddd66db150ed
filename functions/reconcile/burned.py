"""Return burned slots: claimed by a checkout that crashed before writing its order (I4).

Only shards in the sparse `audit` index (their cursor moved since they were last settled) and
holds older than the grace period are read, so the audit's cost follows recent sales.
"""

from datetime import datetime
from functools import partial

from shared.orders import Status
from shared.store.orders import OrderStore
from shared.store.stock import StockStore

GRACE_SECONDS = 300  # far longer than a claim-to-order-write gap; a snapshot younger than this waits
OPEN = (Status.PENDING_PAYMENT, Status.PAID, Status.IN_REVIEW, Status.EXPIRED)  # slots still theirs


class OpenSlots:
    """The slots open orders hold, by product: read once per run, and only if some audit needs them."""

    def __init__(self, orders: OrderStore) -> None:
        self._orders = orders
        self._by_product: dict[str, set[tuple[int, int]]] | None = None

    def __call__(self, product_id: str) -> set[tuple[int, int]]:
        if self._by_product is None:
            self._by_product = {}
            for status in OPEN:
                for entry in self._orders.outstanding(status):
                    order = self._orders.get(entry.order_id)
                    if order is not None:
                        slots = self._by_product.setdefault(order.product_id, set())
                        slots.update((r.shard, s) for r in order.slots for s in r.slots())
        return self._by_product.get(product_id, set())


def return_burned_slots(orders: OrderStore, stock: StockStore, now: datetime) -> int:
    held, at = OpenSlots(orders), int(now.timestamp())
    returned = sum(
        stock.return_burned(product_id, shard, at, GRACE_SECONDS, partial(held, product_id))
        for product_id, shards in stock.shards_due().items()
        for shard in shards
    )
    return returned + stock.return_abandoned_holds(at, GRACE_SECONDS, held)
