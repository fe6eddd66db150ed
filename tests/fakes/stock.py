"""The stock table in memory, with the contracts of shared/store/stock/: numbered slots in shards, a
cursor per shard that hands them out, a pool of returned slots; a claim is all or nothing
(OutOfStock), a release gives back only slots the order still holds unbound, a bind refuses a slot
that is missing or another order's (IntegrityViolation, I1), and codes are sealed per slot with the
merchant's cipher as the real import seals them.

Simplifications, each invisible to a use case: a claim tries the shards in order (the real store
picks them at random); stock removal (fenced slots) is not modelled; the audit reads every slot each
run (the real one reads only what moved since the last)."""

from collections.abc import Sequence
from dataclasses import dataclass

from shared.codes import CodeCipher, slot_identity
from shared.errors import IntegrityViolation, OutOfStock
from shared.faults import checkpoint
from shared.orders import SlotRange
from shared.ports import Clock
from shared.products import Product, StockLevels
from shared.store.stock.items import REMOVED, RETURNED
from shared.store.stock.upkeep import Claimant, Claimants
from tests.fakes.hooks import Hooked, hooked

NOT_ORDERS = (None, RETURNED, REMOVED)
AUDIT_LOOKAHEAD = 8  # slots past the cursor the audit reads, as the real one


@dataclass
class FakeSlot:
    """One slot: its sealed code, who holds it (an order id, RETURNED while pooled, or None: never
    handed out, or handed out and never named) and which order it is bound to."""

    sealed: bytes
    fingerprint: str
    holder: str | None = None
    order_id: str | None = None
    held_at: int | None = None
    from_pool: bool = False  # held again from the pool (the real `held` index lists it)


@dataclass
class _Shard:
    filled: int = 0
    cursor: int = 0
    audit_due: bool = False  # in the sparse `audit` index
    settled_upto: int = 0
    mark: tuple[int, int] | None = None  # the burned-slot step's snapshot: (cursor, when)
    audited_upto: int = 0  # how far the stock audit has read
    watch: tuple[int, ...] = ()  # slots its last run must read again: open holds and problems (as the real)

    @property
    def remaining(self) -> int:
        return self.filled - self.cursor


class FakeAllocation(Hooked):
    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self._clock = clock
        self.shards: dict[tuple[str, int], _Shard] = {}
        self.slots: dict[tuple[str, int, int], FakeSlot] = {}

    # ---------- the port (shared/ports.py, AllocationPort) ----------

    @hooked
    def claim(
        self, product_id: str, shards: int, quantity: int, order_id: str, avoid: Sequence[SlotRange] = ()
    ) -> list[SlotRange]:
        for shard in range(shards):
            taken = self._take(product_id, shard, quantity, order_id)
            if taken:
                return [taken]
        items = sorted(
            (k for k in range(shards) if (product_id, k) in self.shards),
            key=lambda k: -self.shards[(product_id, k)].remaining,
        )
        spread = sum(self.shards[(product_id, k)].remaining for k in items)
        if spread < quantity and spread + len(self._pooled(product_id)) < quantity:
            raise OutOfStock("not enough stock left for this quantity")
        fresh: list[SlotRange] = []
        for shard in items:
            needed = quantity - sum(p.count for p in fresh)
            taken = self._take(
                product_id, shard, min(needed, self.shards[(product_id, shard)].remaining), order_id
            )
            if taken:
                fresh.append(taken)
                checkpoint("claim:between-pieces")
        needed = quantity - sum(p.count for p in fresh)
        have = {self.slots[(product_id, p.shard, n)].fingerprint for p in fresh for n in p.slots()}
        returned = self._take_returned(product_id, needed, order_id, avoid, have)
        if len(returned) == needed:
            return fresh + returned
        self.release(product_id, returned, order_id)
        for piece in fresh:
            checkpoint("claim:giving-back")
            if not self._untake(product_id, piece, order_id):
                self.release(product_id, [piece], order_id)
        raise OutOfStock("not enough stock left for this quantity")

    @hooked
    def release(self, product_id: str, ranges: Sequence[SlotRange], order_id: str) -> int:
        released = 0
        for reserved in ranges:
            for number in reserved.slots():
                slot = self.slots.get((product_id, reserved.shard, number))
                if slot is None or slot.order_id is not None or slot.holder not in (None, order_id):
                    continue
                slot.holder, slot.held_at, slot.from_pool = RETURNED, None, False
                released += 1
        return released

    @hooked
    def release_unkept(
        self, product_id: str, claimed: Sequence[SlotRange], kept: Sequence[SlotRange], order_id: str
    ) -> int:
        keep = {(r.shard, s) for r in kept for s in r.slots()}
        spare = [
            SlotRange(shard=r.shard, start=s, count=1)
            for r in claimed
            for s in r.slots()
            if (r.shard, s) not in keep
        ]
        return self.release(product_id, spare, order_id)

    @hooked
    def bind(self, product_id: str, ranges: Sequence[SlotRange], order_id: str) -> None:
        for reserved in ranges:
            for number in reserved.slots():
                slot = self.slots.get((product_id, reserved.shard, number))
                if (
                    slot is None
                    or slot.order_id not in (None, order_id)
                    or slot.holder not in (None, order_id)
                ):
                    raise IntegrityViolation(
                        f"slot {reserved.shard}/{number} of {product_id} is missing or bound elsewhere"
                    )
                slot.order_id, slot.held_at, slot.from_pool = order_id, None, False
                checkpoint("deliver:between-binds")

    @hooked
    def read_codes(
        self, product_id: str, ranges: Sequence[SlotRange], order_id: str, cipher: CodeCipher
    ) -> list[str]:
        codes: list[str] = []
        for reserved in ranges:
            for number in reserved.slots():
                slot = self.slots.get((product_id, reserved.shard, number))
                if slot is None or slot.order_id != order_id:
                    raise IntegrityViolation(
                        f"slot {reserved.shard}/{number} read for an order it is not bound to"
                    )
                codes.append(cipher.decrypt(slot.sealed, slot_identity(product_id, reserved.shard, number)))
        return codes

    # ---------- for tests ----------

    def add_codes(
        self, product_id: str, codes: Sequence[str], cipher: CodeCipher, shards: int = 1, copies: int = 1
    ) -> None:
        """Import codes as the merchant API would: each sealed in its own slot, spread over the shards
        round-robin; a reusable code (`copies` > 1) fills that many slots."""
        for shard in range(shards):
            self.shards.setdefault((product_id, shard), _Shard())
        for copy in range(copies):
            for index, code in enumerate(codes):
                shard = (index + copy) % shards
                item = self.shards[(product_id, shard)]
                sealed = cipher.encrypt(code, slot_identity(product_id, shard, item.filled))
                self.slots[(product_id, shard, item.filled)] = FakeSlot(sealed, cipher.fingerprint(code))
                item.filled += 1
                item.audit_due = True

    def available(self, product_id: str, shards: int) -> int:
        fresh = sum(
            self.shards[(product_id, k)].remaining for k in range(shards) if (product_id, k) in self.shards
        )
        return fresh + len(self._pooled(product_id))

    def levels(self, product_id: str) -> StockLevels:
        """I4's counts, as the merchant API reports them: available + reserved + sold = imported."""
        items = [item for (product, _), item in self.shards.items() if product == product_id]
        slots = [slot for (product, _, _), slot in self.slots.items() if product == product_id]
        sold = sum(slot.order_id is not None for slot in slots)
        pooled = len(self._pooled(product_id))
        return StockLevels(
            available=sum(item.remaining for item in items) + pooled,
            reserved=sum(item.cursor for item in items) - sold - pooled,
            sold=sold,
            returned=0,
            imported=sum(item.filled for item in items),
        )

    def held_by(self, order_id: str) -> list[tuple[str, int, int]]:
        """(product, shard, slot) of every slot the order holds and has not bound."""
        return sorted(k for k, s in self.slots.items() if s.holder == order_id and s.order_id is None)

    def bound_to(self, order_id: str) -> list[tuple[str, int, int]]:
        return sorted(k for k, s in self.slots.items() if s.order_id == order_id)

    # ---------- as the real store does it ----------

    def _pooled(self, product_id: str) -> list[tuple[str, int, int]]:
        return sorted(
            k
            for k, s in self.slots.items()
            if k[0] == product_id and s.holder == RETURNED and s.order_id is None
        )

    def _now(self) -> int:
        return int(self._clock().timestamp())

    def _take(self, product_id: str, shard: int, quantity: int, order_id: str) -> SlotRange | None:
        item = self.shards.get((product_id, shard))
        if quantity <= 0 or item is None or item.remaining < quantity:
            return None
        piece = SlotRange(shard=shard, start=item.cursor, count=quantity)
        item.cursor += quantity
        item.audit_due = True
        checkpoint("claim:after-take")
        if self._stamp(product_id, piece, order_id):
            return piece
        self.release(product_id, [piece], order_id)
        return None

    def _stamp(self, product_id: str, piece: SlotRange, order_id: str) -> bool:
        for number in piece.slots():
            slot = self.slots.get((product_id, piece.shard, number))
            if slot is None or slot.order_id is not None or slot.holder not in (None, order_id):
                return False
            slot.holder, slot.held_at = order_id, self._now()
        return True

    def _untake(self, product_id: str, piece: SlotRange, order_id: str) -> bool:
        """Wind a fresh claim back while it is its shard's last one, never below the audit's snapshot."""
        item = self.shards[(product_id, piece.shard)]
        if item.cursor != piece.start + piece.count or (item.mark is not None and item.mark[0] > piece.start):
            return False
        for number in piece.slots():
            slot = self.slots[(product_id, piece.shard, number)]
            if slot.holder == order_id and slot.order_id is None:
                slot.holder, slot.held_at = None, None
        item.cursor -= piece.count
        return True

    def _take_returned(
        self, product_id: str, quantity: int, order_id: str, avoid: Sequence[SlotRange], codes: set[str]
    ) -> list[SlotRange]:
        skip = {(r.shard, s) for r in avoid for s in r.slots()}
        have = set(codes)
        taken: list[SlotRange] = []
        if quantity <= 0:
            return taken
        for key in self._pooled(product_id):
            slot = self.slots[key]
            if (key[1], key[2]) in skip or slot.fingerprint in have:
                continue
            slot.holder, slot.held_at, slot.from_pool = order_id, self._now(), True
            have.add(slot.fingerprint)
            taken.append(SlotRange(shard=key[1], start=key[2], count=1))
            if len(taken) == quantity:
                break
        return taken


class FakeUpkeep(Hooked):
    """Reconciliation's upkeep of the fake stock (shared/store/stock/upkeep.py): the same snapshot and
    grace periods before a burned slot goes back, the same findings in the same words."""

    def __init__(self, allocation: FakeAllocation) -> None:
        super().__init__()
        self._stock = allocation

    @hooked
    def shards_due(self) -> dict[str, list[int]]:
        due: dict[str, list[int]] = {}
        for (product_id, shard), item in sorted(self._stock.shards.items()):
            if item.audit_due:
                due.setdefault(product_id, []).append(shard)
        return due

    @hooked
    def return_burned(
        self, product_id: str, shard: int, now: int, grace: int, claimants: Claimants, keep_due: bool = False
    ) -> int:
        item = self._stock.shards[(product_id, shard)]
        if item.mark is not None and now - item.mark[1] < grace:
            return 0
        settled, returned = item.settled_upto, 0
        if item.mark is not None:
            returned = self._return_unheld(product_id, shard, settled, item.mark[0], claimants)
            settled = item.mark[0]
        if (
            not keep_due
            and item.cursor == settled
            and item.mark is not None
            and self._audited(product_id, shard, settled)
        ):
            item.settled_upto, item.mark, item.audit_due = settled, None, False
        else:
            item.settled_upto, item.mark = settled, (item.cursor, now)
        return returned

    @hooked
    def return_abandoned_holds(self, now: int, grace: int, claimants: Claimants) -> int:
        held = [
            (key, slot)
            for key, slot in sorted(self._stock.slots.items())
            if slot.from_pool
            and slot.held_at is not None
            and now - slot.held_at >= grace
            and slot.holder not in NOT_ORDERS
            and slot.order_id is None
        ]
        found = claimants({str(slot.holder) for _, slot in held}) if held else {}
        returned = 0
        for (product_id, shard, number), slot in held:
            claimant = found.get(str(slot.holder))
            if claimant is None or not claimant.keeps(product_id, shard, number):
                spot = SlotRange(shard=shard, start=number, count=1)
                returned += self._stock.release(product_id, [spot], str(slot.holder))
        return returned

    @hooked
    def audit(
        self, product_id: str, shards: int, claimants: Claimants | None = None, now: int = 0, grace: int = 300
    ) -> list[str]:
        problems = [
            f"shard {k} is missing" for k in range(shards) if (product_id, k) not in self._stock.shards
        ]
        if claimants is None:
            return problems  # the counters always add up here
        for shard in range(shards):
            if (product_id, shard) in self._stock.shards:
                problems += self._audit_slots(product_id, shard, claimants, now, grace)
        return problems

    @hooked
    def audit_holds(self, claimants: Claimants, now: int, grace: int) -> dict[str, list[str]]:
        held = [
            (key, slot)
            for key, slot in sorted(self._stock.slots.items())
            if slot.from_pool
            and slot.held_at is not None
            and now - slot.held_at >= 2 * grace
            and slot.order_id is None
            and slot.holder not in NOT_ORDERS
        ]
        found = claimants({str(slot.holder) for _, slot in held}) if held else {}
        problems: dict[str, list[str]] = {}
        for (product_id, shard, number), slot in held:
            claimant = found.get(str(slot.holder))
            if claimant is None or not claimant.keeps(product_id, shard, number):
                problems.setdefault(product_id, []).append(
                    f"shard {shard} slot {number}: pooled slot held by {slot.holder}, which does not hold it"
                )
        return problems

    # ---------- as the real store does it ----------

    def _audited(self, product_id: str, shard: int, cursor: int) -> bool:
        """The audit has read up to `cursor` and its last run watches nothing (no slot held by an open
        order, none with a problem): until then the shard stays in the `audit` index."""
        item = self._stock.shards[(product_id, shard)]
        if item.audited_upto < cursor:
            return cursor == 0
        return not item.watch

    def _return_unheld(self, product_id: str, shard: int, start: int, end: int, claimants: Claimants) -> int:
        unbound = [
            (number, slot)
            for number in range(start, end)
            if (slot := self._stock.slots.get((product_id, shard, number))) is not None
            and slot.order_id is None
            and slot.holder not in (RETURNED, REMOVED)
        ]
        named = {str(slot.holder) for _, slot in unbound if slot.holder is not None}
        found = claimants(named) if named else {}
        returned = 0
        for number, slot in unbound:
            spot = SlotRange(shard=shard, start=number, count=1)
            if slot.holder is None:  # handed out by the cursor, never named: its claimant died at once
                returned += self._stock.release(product_id, [spot], "")
                continue
            claimant = found.get(slot.holder)
            if claimant is None or not claimant.keeps(product_id, shard, number):
                returned += self._stock.release(product_id, [spot], slot.holder)
        return returned

    def _audit_slots(
        self, product_id: str, shard: int, claimants: Claimants, now: int, grace: int
    ) -> list[str]:
        item = self._stock.shards[(product_id, shard)]
        numbers = range(0, min(item.filled, item.cursor + AUDIT_LOOKAHEAD))
        slots = {n: self._stock.slots.get((product_id, shard, n)) for n in numbers}
        names = {
            str(s.order_id or s.holder)
            for s in slots.values()
            if s is not None and (s.order_id or s.holder) not in NOT_ORDERS
        }
        found = claimants(names) if names else {}
        problems: list[str] = []
        watch: list[int] = []
        for number, slot in slots.items():
            where = f"shard {shard} slot {number}"
            if slot is None:
                problems.append(f"{where}: missing below the {item.filled} slots the shard counts")
            elif number >= item.cursor:
                if slot.order_id is not None or slot.holder is not None:
                    problems.append(
                        f"{where}: taken ({slot.order_id or slot.holder}) but above the cursor {item.cursor}"
                    )
            else:
                problem = _classify(product_id, shard, number, slot, found, item.settled_upto, now, grace)
                problems += [f"{where}: {problem}"] if problem is not None else []
                if problem is not None or (slot.order_id is None and slot.holder not in (RETURNED, REMOVED)):
                    watch.append(number)
        item.audited_upto, item.watch = max(item.audited_upto, item.cursor), tuple(watch)
        return problems


def _classify(
    product_id: str,
    shard: int,
    number: int,
    slot: FakeSlot,
    found: dict[str, Claimant],
    settled: int,
    now: int,
    grace: int,
) -> str | None:
    """What is wrong with a slot below the cursor, or None (the real store's words)."""
    if slot.order_id is not None:
        bound = found.get(slot.order_id)
        if bound is None or (product_id, shard, number) not in bound.lists:
            return f"bound to {slot.order_id}, which does not list it"
        others = _standing_on(found, product_id, shard, number, besides=slot.order_id)
        return f"bound to {slot.order_id} and listed by {', '.join(others)} as well" if others else None
    if slot.holder == REMOVED:
        return None
    if slot.holder == RETURNED:
        others = _standing_on(found, product_id, shard, number, besides="")
        return f"pooled, yet listed by {', '.join(others)}" if others else None
    if slot.holder is None:
        return None if number >= settled else "handed out, held by no order, never returned (lost)"
    others = _standing_on(found, product_id, shard, number, besides=slot.holder)
    if others:
        return f"held by {slot.holder} and listed by {', '.join(others)} as well"
    claimant = found.get(slot.holder)
    if claimant is not None and claimant.keeps(product_id, shard, number):
        return None
    if slot.held_at is not None and now - slot.held_at < 2 * grace:
        return None
    why = "does not exist" if claimant is None else f"is {claimant.status.value} without holding it"
    return f"held by {slot.holder}, which {why} (lost)"


def _standing_on(
    found: dict[str, Claimant], product_id: str, shard: int, number: int, besides: str
) -> list[str]:
    return sorted(
        o for o, c in found.items() if o != besides and c.lists_as_its_own(product_id, shard, number)
    )


class FakeLevels(Hooked):
    """Stock levels as the fake stock has them now (the real ones may be PRODUCT_CACHE_SECONDS old)."""

    def __init__(self, allocation: FakeAllocation) -> None:
        super().__init__()
        self._stock = allocation

    @hooked
    def available(self, product: Product) -> int:
        return self._stock.available(product.product_id, product.shards)

    @hooked
    def left(self, product: Product) -> int | None:
        return self.available(product) if product.stocked else None  # no fake counts codes made
