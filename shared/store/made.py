"""Codes made per order (docs/licenses.md "Generated delivery"): one item per generated code, keyed by its
fingerprint, so a code is made for one order of its product at most; and a product's cap, counted exactly.

Both live in the stock table. A code's item is its own partition (`gen#<product>#<fingerprint>`), so a
product's deliveries spread over as many partitions as codes (no hot key); the item names the order
and the unit it was made for, never the code. A capped product has one counter item (`gen#<product>`,
`made`), taken with one conditional UpdateItem per order: exact under concurrency, and bounded by what
one item takes (~1,000 orders/s for that product; an uncapped product writes no shared item).
"""

from datetime import datetime

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import PutError, UpdateError

from shared.settings import settings
from shared.store.errors import condition_failed
from shared.store.stock.items import _StockModel, use_stock_table

CODE_SK = "code"
COUNT_SK = "made"


class MadeCodeItem(_StockModel):
    """`gen#<product>#<fingerprint>`: the generated code with this keyed hash was made for this unit."""

    order_id = UnicodeAttribute()
    unit = NumberAttribute()  # 0 .. quantity - 1
    at = UTCDateTimeAttribute()


class MadeCountItem(_StockModel):
    """`gen#<product>`, `made`: how many codes a capped product has made (or reserved the making of)."""

    made = NumberAttribute(default=0)
    last_take = UnicodeAttribute(null=True)  # the last take's token: a retried take finds itself


def code_key(product_id: str, fingerprint: str) -> tuple[str, str]:
    return f"gen#{product_id}#{fingerprint}", CODE_SK


def count_key(product_id: str) -> tuple[str, str]:
    return f"gen#{product_id}", COUNT_SK


class MadeCodes:
    """Generated codes' uniqueness and a capped product's count."""

    def __init__(self) -> None:
        use_stock_table()
        for model in (MadeCodeItem, MadeCountItem):
            model.Meta.table_name = settings().stock_table

    def record(self, product_id: str, fingerprint: str, order_id: str, unit: int, at: datetime) -> bool:
        """Record a freshly drawn code as made for the order's unit: True if it is now (or was already:
        a retry whose answer was lost) that unit's, False if another order or unit has it (draw again)."""
        try:
            MadeCodeItem(*code_key(product_id, fingerprint), order_id=order_id, unit=unit, at=at).save(
                condition=MadeCodeItem.pk.does_not_exist()
            )
            return True
        except PutError as error:
            if not condition_failed(error):
                raise
        found = MadeCodeItem.get(*code_key(product_id, fingerprint), consistent_read=True)
        return (found.order_id, int(found.unit)) == (order_id, unit)

    def take(self, product_id: str, cap: int, units: int, order_id: str) -> bool:
        """Count the order's `units` more codes made, if that keeps the product at or below `cap`; False
        (nothing counted) if it would not. One conditional write, its token the order id: refused when
        this order's take is the last one counted — the SDK's retry of a write whose answer was lost, or
        a retried delivery that counted before it failed — and then found to be this order's (True).
        Another order's take in between such a first attempt and its retry lets the retry count the
        order again: units lost from the cap, never codes past it (docs/licenses.md)."""
        if units > cap:
            return False
        try:
            MadeCountItem(*count_key(product_id)).update(
                actions=[MadeCountItem.made.add(units), MadeCountItem.last_take.set(order_id)],
                condition=(MadeCountItem.made.does_not_exist() | (MadeCountItem.made <= cap - units))
                & (MadeCountItem.last_take.does_not_exist() | (MadeCountItem.last_take != order_id)),
            )
            return True
        except UpdateError as error:
            if not condition_failed(error):
                raise
        seen = self._count(product_id)
        return seen is not None and seen.last_take == order_id

    def made(self, product_id: str) -> int:
        """How many codes the capped product has counted (0 before its first)."""
        seen = self._count(product_id)
        return int(seen.made) if seen is not None else 0

    @staticmethod
    def _count(product_id: str) -> MadeCountItem | None:
        try:
            return MadeCountItem.get(*count_key(product_id), consistent_read=True)
        except MadeCountItem.DoesNotExist:
            return None
