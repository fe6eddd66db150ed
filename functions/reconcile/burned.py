"""Return burned slots: claimed by a checkout that crashed before writing its order (I4)."""

from datetime import datetime
from functools import partial

from shared.orders import Status
from shared.store.orders import OrderStore
from shared.store.shop import ShopStore
from shared.store.stock import StockStore

GRACE_SECONDS = 300  # far longer than a claim-to-order-write gap; a snapshot younger than this waits
OPEN = (Status.PENDING_PAYMENT, Status.PAID, Status.EXPIRED)  # orders whose slots are still theirs


def return_burned_slots(shop: ShopStore, orders: OrderStore, stock: StockStore, now: datetime) -> int:
    held_by_product: dict[str, set[tuple[int, int]]] | None = None

    def held(product_id: str) -> set[tuple[int, int]]:
        nonlocal held_by_product
        if held_by_product is None:  # read once per run, and only if some shard is ready for audit
            held_by_product = {}
            for status in OPEN:
                for order_id in orders.due(
                    status, before=datetime.max.replace(tzinfo=now.tzinfo), limit=None
                ):
                    order = orders.get(order_id)
                    if order is not None:
                        slots = held_by_product.setdefault(order.product_id, set())
                        slots.update((r.shard, s) for r in order.slots for s in r.slots())
        return held_by_product.get(product_id, set())

    return sum(
        stock.return_burned(
            p.product_id, p.shards, int(now.timestamp()), GRACE_SECONDS, partial(held, p.product_id)
        )
        for p in shop.products()
    )
