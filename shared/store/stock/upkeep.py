"""Reconciliation's upkeep of the stock: return burned slots (claimed by a checkout that died before
its order was written, or claimed again from the pool and abandoned) and audit every slot handed out
against the orders that name it (I4, docs/allocation.md "Stock audit").

Whether a slot is still wanted is asked of the order it names, strongly consistently (`Claimants`),
never concluded from an index's silence. Every write is conditional, so two runs at once do no harm.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from pynamodb.exceptions import UpdateError
from pynamodb.expressions.update import Action

from shared.orders import SlotRange, Status
from shared.settings import settings
from shared.store.errors import condition_failed
from shared.store.shards import index_partitions, read_every
from shared.store.stock.allocation import Allocation
from shared.store.stock.items import (
    REMOVED,
    RETURNED,
    AuditStateItem,
    ShardItem,
    SlotItem,
    get_all,
    product_of_shard,
    read_shards,
    shard_item_key,
    shard_number,
    slot_pk,
    slot_sk,
    use_stock_table,
)


@dataclass(frozen=True)
class Claimant:
    """An order as the stock sees it, read strongly consistently: the slots it lists, its status."""

    status: Status
    lists: frozenset[tuple[str, int, int]]  # (product, shard, slot)

    def keeps(self, product_id: str, shard: int, slot: int) -> bool:
        """Whether an unbound slot is still this order's: it lists it and may yet bind or release it."""
        return self.status in HOLDING and (product_id, shard, slot) in self.lists

    def lists_as_its_own(self, product_id: str, shard: int, slot: int) -> bool:
        """Whether it lists the slot and stands on it (holding it, or delivered from it)."""
        return self.status in HOLDING | DELIVERED_FROM and (product_id, shard, slot) in self.lists


# Orders by id -> what each is (an id with no order is left out); one BatchGetItem, never an index.
Claimants = Callable[[set[str]], dict[str, Claimant]]
HOLDING = frozenset({Status.PENDING_PAYMENT, Status.PAID, Status.IN_REVIEW})
DELIVERED_FROM = frozenset({Status.DELIVERED, Status.CLAIMED, Status.REPLACED})
AUDIT_LOOKAHEAD = 8  # slots past the cursor the audit reads: a taken one there is counter drift
_SLOT_STATE = ["pk", "sk", "fingerprint", "order_id", "holder", "held_at", "returned_key", "sold_key"]
_NOT_ORDERS = (None, RETURNED, REMOVED)


class StockUpkeep:
    """What reconciliation does to the stock: burned slots back to it, and the audit (I4)."""

    def __init__(self, allocation: Allocation) -> None:
        use_stock_table()
        self._allocation = allocation  # gives slots back as their holder would

    def shards_due(self) -> dict[str, list[int]]:
        """Shards to audit, by product: their cursor moved (or codes came) since they were last settled."""
        due: dict[str, list[int]] = {}
        for entry in read_every(ShardItem.audit_index.query, index_partitions(settings().audit_shards)):
            due.setdefault(product_of_shard(entry.pk), []).append(shard_number(entry))
        return due

    def return_burned(
        self, product_id: str, shard: int, now: int, grace: int, claimants: Claimants, keep_due: bool = False
    ) -> int:
        """Return one shard's burned slots (claimed, then the claimant crashed before its order was written).

        A slot below a cursor snapshot older than `grace` seconds that is unbound and whose claimant
        (named in the slot, read strongly consistently through `claimants`) does not hold it — no such
        order, an order that does not list it, or one past holding stock — goes back to stock.
        A shard with nothing handed out since its last snapshot, and nothing the stock audit still
        watches, leaves the `audit` index — unless `keep_due` (the audit found its product wrong: the
        next run audits it again). Returns how many went back. Safe to run concurrently:
        every write is conditional."""
        item = ShardItem.get(*shard_item_key(product_id, shard), consistent_read=True)
        if item.mark_at is not None and now - int(item.mark_at) < grace:
            return 0
        settled, returned = int(item.settled_upto), 0
        if item.mark_at is not None:
            returned = self._return_unheld(product_id, shard, settled, int(item.mark_cursor), claimants)
            settled = int(item.mark_cursor)
        unchanged = (
            ShardItem.mark_at.does_not_exist()
            if item.mark_at is None
            else ShardItem.mark_at == int(item.mark_at)
        )
        actions: list[Action]
        if (
            not keep_due
            and int(item.cursor) == settled
            and item.mark_at is not None
            and self._audited(product_id, shard, settled)
        ):
            # Everything handed out is accounted for; the next claim puts the shard back in the index.
            actions = [
                ShardItem.settled_upto.set(settled),
                ShardItem.mark_at.remove(),
                ShardItem.audit_due.remove(),
            ]
            # An import meanwhile (`filled` moved) keeps the shard in the index for its audit.
            condition = unchanged & (ShardItem.cursor == settled) & (ShardItem.filled == int(item.filled))
        else:
            actions = [
                ShardItem.settled_upto.set(settled),
                ShardItem.mark_cursor.set(int(item.cursor)),
                ShardItem.mark_at.set(now),
            ]
            # A claim wound back since the read (`Allocation._untake`) lowered the cursor: a snapshot above it
            # would later return slots never handed out, which the cursor hands out again.
            condition = unchanged & (ShardItem.cursor >= int(item.cursor))
        try:
            item.update(actions=actions, condition=condition)
        except UpdateError as error:
            if not condition_failed(error):
                raise
        return returned

    def return_abandoned_holds(self, now: int, grace: int, claimants: Claimants) -> int:
        """Returned slots claimed again by a checkout (or late payment) that died before its order
        write: held longer than `grace` by an order that does not hold them (read strongly
        consistently, never concluded from an index's silence). Given back as that holder."""
        held: list[tuple[str, int, SlotItem]] = []
        old_enough = SlotItem.held_at <= now - grace
        partitions = index_partitions(settings().held_shards)
        for entry in read_every(lambda key: SlotItem.held_index.query(key, old_enough), partitions):
            product_id, shard_text = entry.pk.rsplit("#slots#", 1)
            try:
                slot = SlotItem.get(entry.pk, entry.sk, consistent_read=True)
            except SlotItem.DoesNotExist:
                continue
            if slot.held_at is None or now - int(slot.held_at) < grace or slot.holder in (None, RETURNED):
                continue
            held.append((product_id, int(shard_text), slot))
        found = claimants({str(slot.holder) for _, _, slot in held}) if held else {}
        returned = 0
        for product_id, shard, slot in held:
            claimant = found.get(str(slot.holder))
            if claimant is None or not claimant.keeps(product_id, shard, int(slot.sk)):
                spot = SlotRange(shard=shard, start=int(slot.sk), count=1)
                returned += self._allocation.release(product_id, [spot], str(slot.holder))
        return returned

    def audit(
        self, product_id: str, shards: int, claimants: Claimants | None = None, now: int = 0, grace: int = 300
    ) -> list[str]:
        """I4 for one product, against the slots actually there: what does not add up (empty when all
        is well). Without `claimants`, only the shards' counters are checked.

        Every slot below a shard's cursor must be exactly one of: bound to an order that lists it,
        pooled (or removed), held by an open order that lists it, or within the grace period of a
        claim; none above the cursor may be taken, and no two orders may stand on one slot.
        Incremental: each run reads only the slots handed out since the last one and those it
        still watches (held by open orders), so its cost follows sales, not stock. A finding that is
        a moment's race (a claim between two reads) goes away at the next run; the alarm waits for two."""
        items = read_shards(product_id, shards, consistent=True)
        problems = [
            f"shard {k} is missing" for k in range(shards) if k not in {shard_number(i) for i in items}
        ]
        for item in items:
            shard = shard_number(item)
            filled, cursor, remaining = int(item.filled), int(item.cursor), int(item.remaining)
            fenced = int(item.fenced or 0)
            if remaining + fenced != filled - cursor or min(filled, cursor, remaining, fenced) < 0:
                problems.append(
                    f"shard {shard}: filled {filled}, handed out {cursor}, remaining {remaining}, fenced {fenced}"
                )
            if fenced:  # a removal moves codes for a moment; one still fenced at the next run crashed
                problems.append(f"shard {shard}: {fenced} slots fenced by an unfinished stock removal")
            elif claimants is not None:
                problems += self._audit_slots(product_id, item, claimants, now, grace)
        return problems

    def _audit_slots(
        self, product_id: str, item: ShardItem, claimants: Claimants, now: int, grace: int
    ) -> list[str]:
        """One shard's slots handed out since the last run, and those the audit still watches."""
        shard, cursor, filled = shard_number(item), int(item.cursor), int(item.filled)
        settled = int(item.settled_upto)
        try:
            state = AuditStateItem.get(product_id, f"audit#{shard:04d}", consistent_read=True)
        except AuditStateItem.DoesNotExist:
            state = AuditStateItem(pk=product_id, sk=f"audit#{shard:04d}", upto=0, watch=[])
        upto = min(int(state.upto), cursor)
        pk = slot_pk(product_id, shard)
        slots: dict[int, SlotItem] = {}
        end = min(filled, cursor + AUDIT_LOOKAHEAD)  # a few past the cursor: taken ones there mean drift
        watched = [n for n in cast(list[int], state.watch) if n < upto]
        # By key (the slot numbers are known), without the sealed codes: the audit never needs one.
        keys = [(pk, slot_sk(n)) for n in [*range(upto, end), *watched]]
        slots.update((int(s.sk), s) for s in get_all(SlotItem, keys, _SLOT_STATE))
        names = {
            str(s.order_id or s.holder) for s in slots.values() if (s.order_id or s.holder) not in _NOT_ORDERS
        }
        found = claimants(names) if names else {}
        problems: list[str] = []
        watch: list[int] = []
        for number in sorted(set(watched) | set(range(upto, end))):
            slot = slots.get(number)
            where = f"shard {shard} slot {number}"
            if slot is None:
                problems.append(f"{where}: missing below the {filled} slots the shard counts")
                continue
            if number >= cursor:
                if slot.order_id is not None or slot.holder is not None:
                    problems.append(
                        f"{where}: taken ({slot.order_id or slot.holder}) but above the cursor {cursor}"
                    )
                continue
            found_problem, still_open = _classify(product_id, shard, number, slot, found, settled, now, grace)
            problems += [f"{where}: {found_problem}"] if found_problem else []
            if still_open:
                watch.append(number)
        AuditStateItem(pk=product_id, sk=f"audit#{shard:04d}", upto=max(upto, cursor), watch=watch).save()
        return problems

    def audit_holds(self, claimants: Claimants, now: int, grace: int) -> dict[str, list[str]]:
        """Pooled slots claimed again, shop-wide, by product: each older than twice the grace period
        (the burned-slot step returns abandoned ones after one) must be held by an open order that
        lists it. Reads only holds that old, which are few when all is well."""
        held = []
        old_enough = SlotItem.held_at <= now - 2 * grace
        partitions = index_partitions(settings().held_shards)
        for entry in read_every(lambda key: SlotItem.held_index.query(key, old_enough), partitions):
            try:
                held.append(SlotItem.get(entry.pk, entry.sk, consistent_read=True))
            except SlotItem.DoesNotExist:
                continue
        held = [
            s for s in held if s.order_id is None and s.holder not in _NOT_ORDERS and s.held_at is not None
        ]
        found = claimants({str(s.holder) for s in held}) if held else {}
        problems: dict[str, list[str]] = {}
        for slot in held:
            product_id, shard = slot.pk.rsplit("#slots#", 1)
            claimant = found.get(str(slot.holder))
            if (now - int(slot.held_at)) >= 2 * grace and (
                claimant is None or not claimant.keeps(product_id, int(shard), int(slot.sk))
            ):
                problems.setdefault(product_id, []).append(
                    f"shard {shard} slot {int(slot.sk)}: pooled slot held by {slot.holder}, which does not hold it"
                )
        return problems

    def _audited(self, product_id: str, shard: int, cursor: int) -> bool:
        """Whether the stock audit has seen every slot up to `cursor` and watches none: until then the
        shard stays in the `audit` index."""
        try:
            state = AuditStateItem.get(product_id, f"audit#{shard:04d}", consistent_read=True)
        except AuditStateItem.DoesNotExist:
            return cursor == 0
        return int(state.upto) >= cursor and not state.watch

    def _return_unheld(self, product_id: str, shard: int, start: int, end: int, claimants: Claimants) -> int:
        if end <= start:
            return 0
        pk = slot_pk(product_id, shard)
        slots = get_all(SlotItem, [(pk, slot_sk(n)) for n in range(start, end)], _SLOT_STATE)
        unbound = [s for s in slots if s.order_id is None and s.holder not in (RETURNED, REMOVED)]
        named = {str(s.holder) for s in unbound if s.holder is not None}
        found = claimants(named) if named else {}  # the common case: only claims of open orders
        returned = 0
        for slot in unbound:
            number, holder = int(slot.sk), slot.holder
            if holder is None:  # handed out by the cursor, never named: its claimant died at once
                returned += self._allocation.release(
                    product_id, [SlotRange(shard=shard, start=number, count=1)], ""
                )
                continue
            claimant = found.get(str(holder))
            if claimant is None or not claimant.keeps(product_id, shard, number):
                spot = SlotRange(shard=shard, start=number, count=1)
                returned += self._allocation.release(product_id, [spot], str(holder))
        return returned


def _classify(
    product_id: str,
    shard: int,
    number: int,
    slot: SlotItem,
    found: dict[str, Claimant],
    settled: int,
    now: int,
    grace: int,
) -> tuple[str | None, bool]:
    """(what is wrong with a slot below the cursor or None, whether the audit must read it again)."""
    if slot.order_id is not None:
        bound = found.get(str(slot.order_id))
        if bound is None or (product_id, shard, number) not in bound.lists:
            return f"bound to {slot.order_id}, which does not list it", True
        others = _standing_on(found, product_id, shard, number, besides=str(slot.order_id))
        return (
            (f"bound to {slot.order_id} and listed by {', '.join(others)} as well", True)
            if others
            else (None, False)
        )
    if slot.holder == REMOVED:
        return None, False
    if slot.holder == RETURNED:
        others = _standing_on(found, product_id, shard, number, besides="")
        return (f"pooled, yet listed by {', '.join(others)}", True) if others else (None, False)
    if slot.holder is None:  # handed out, never named: the burned-slot step returns it once settled
        return (
            (None, True)
            if number >= settled
            else ("handed out, held by no order, never returned (lost)", True)
        )
    holder = str(slot.holder)
    others = _standing_on(found, product_id, shard, number, besides=holder)
    if others:
        return f"held by {holder} and listed by {', '.join(others)} as well", True
    claimant = found.get(holder)
    if claimant is not None and claimant.keeps(product_id, shard, number):
        return None, True  # an open order's: read again until it is bound or released
    if slot.held_at is not None and now - int(slot.held_at) < 2 * grace:
        return None, True  # a claim the burned-slot step has not judged yet
    why = "does not exist" if claimant is None else f"is {claimant.status.value} without holding it"
    return f"held by {holder}, which {why} (lost)", True


def _standing_on(
    found: dict[str, Claimant], product_id: str, shard: int, number: int, besides: str
) -> list[str]:
    """Orders read this run, other than `besides`, that list the slot as theirs."""
    return sorted(
        o for o, c in found.items() if o != besides and c.lists_as_its_own(product_id, shard, number)
    )
