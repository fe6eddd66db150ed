"""Stock: codes in numbered slots, spread over S shards per product (docs/allocation.md).

A shard item counts its slots: `filled` slots hold codes, `cursor` slots have been handed out,
`remaining` = filled - cursor. A checkout takes q slots with one conditional UpdateItem
(`remaining >= q`), so allocation costs O(1) requests whatever the stock size. Delivery binds
each reserved slot to the order, conditional on it being unbound (I1).
"""

import random
import time
import uuid
from collections.abc import Callable, Iterable, Sequence

from pydantic import BaseModel
from pynamodb.attributes import BinaryAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import DeleteError, PutError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from shared.codes import CodeCipher, slot_identity
from shared.errors import ImportInProgress, IntegrityViolation, OutOfStock
from shared.faults import checkpoint
from shared.orders import SlotRange
from shared.products import StockLevels
from shared.settings import settings
from shared.store.errors import condition_failed

IMPORT_LEASE_SECONDS = 300
RETURNED = "returned"
DUE = "due"  # the one value of the sparse `audit` and `held` index keys


class AuditIndex(GlobalSecondaryIndex["ShardItem"]):
    """Sparse: shards whose cursor moved since reconciliation last settled them (or that got codes)."""

    class Meta:
        index_name = "audit"
        projection = KeysOnlyProjection()

    audit_due = UnicodeAttribute(hash_key=True)
    pk = UnicodeAttribute(range_key=True)


class _StockModel(Model):
    class Meta:
        table_name: str | None = None

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class ShardItem(_StockModel):
    filled = NumberAttribute(default=0)
    cursor = NumberAttribute(default=0)
    remaining = NumberAttribute(default=0)
    # Burned-slot audit: slots below `settled_upto` are accounted for; `mark_cursor` is the cursor
    # as seen at `mark_at`, audited once that snapshot is older than the grace period.
    settled_upto = NumberAttribute(default=0)
    mark_cursor = NumberAttribute(null=True)
    mark_at = NumberAttribute(null=True)
    audit_due = UnicodeAttribute(null=True)
    audit_index = AuditIndex()


class SoldIndex(GlobalSecondaryIndex["SlotItem"]):
    """Sparse: only bound slots carry `sold_key`, so counting sold codes reads only those."""

    class Meta:
        index_name = "sold"
        projection = KeysOnlyProjection()

    sold_key = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class ReturnedIndex(GlobalSecondaryIndex["SlotItem"]):
    """Sparse: slots given back to stock (expired reservations), waiting to be claimed again."""

    class Meta:
        index_name = "returned"
        projection = KeysOnlyProjection()

    returned_key = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class HeldIndex(GlobalSecondaryIndex["SlotItem"]):
    """Sparse: returned slots claimed again but not yet bound, oldest first, across all products;
    a crashed claimant's are found here."""

    class Meta:
        index_name = "held"
        projection = KeysOnlyProjection()

    held_key = UnicodeAttribute(hash_key=True)
    held_at = NumberAttribute(range_key=True)


class SlotItem(_StockModel):
    sealed_code = BinaryAttribute(legacy_encoding=False)
    fingerprint = UnicodeAttribute()
    order_id = UnicodeAttribute(null=True)
    sold_key = UnicodeAttribute(null=True)
    # Who may bind this slot once it has been given back: "returned" while in the pool, then the
    # order that claimed it from the pool. Absent for slots reserved straight from a shard's cursor.
    holder = UnicodeAttribute(null=True)
    returned_key = UnicodeAttribute(null=True)
    held_key = UnicodeAttribute(null=True)
    held_at = NumberAttribute(null=True)
    sold_index = SoldIndex()
    returned_index = ReturnedIndex()
    held_index = HeldIndex()


class FingerprintItem(_StockModel):
    """Which slot holds a code with this keyed hash; makes duplicate imports detectable."""

    shard = NumberAttribute()
    slot = NumberAttribute()


class ImportLeaseItem(_StockModel):
    owner = UnicodeAttribute()
    until = NumberAttribute()


def _shard_key(shard: int) -> str:
    return f"shard#{shard:04d}"


def _slot_pk(product_id: str, shard: int) -> str:
    return f"{product_id}#slots#{shard}"


def _slot_sk(slot: int) -> str:
    return f"{slot:012d}"


def _fingerprint_pk(product_id: str) -> str:
    return f"{product_id}#fingerprints"


class NewCode(BaseModel):
    """A code from an import, with the line it came from."""

    line: int
    code: str


class StoreResult(BaseModel):
    added: int
    duplicate_lines: list[int]


class StockStore:
    def __init__(self) -> None:
        _StockModel.Meta.table_name = settings().stock_table
        for model in (ShardItem, SlotItem, FingerprintItem, ImportLeaseItem):
            model.Meta.table_name = settings().stock_table

    def create_shards(self, product_id: str, shards: int) -> None:
        for shard in range(shards):
            ShardItem(pk=product_id, sk=_shard_key(shard), filled=0, cursor=0, remaining=0).save(
                condition=ShardItem.pk.does_not_exist()
            )

    def _shards(self, product_id: str, shards: int, consistent: bool = False) -> list[ShardItem]:
        keys = [(product_id, _shard_key(k)) for k in range(shards)]
        found = {item.sk: item for item in ShardItem.batch_get(keys, consistent_read=consistent)}
        return [found[_shard_key(k)] for k in range(shards) if _shard_key(k) in found]

    def available(self, product_id: str, shards: int) -> int:
        fresh = sum(int(item.remaining) for item in self._shards(product_id, shards))
        return fresh + SlotItem.returned_index.count(product_id)

    def levels(self, product_id: str, shards: int) -> StockLevels:
        items = self._shards(product_id, shards)
        sold = sum(SlotItem.sold_index.count(f"{product_id}#{k}") for k in range(shards))
        return self._levels(items, sold, SlotItem.returned_index.count(product_id))

    @staticmethod
    def _levels(items: list[ShardItem], sold: int, pooled: int) -> StockLevels:
        handed_out = sum(int(item.cursor) for item in items)
        return StockLevels(
            available=sum(int(item.remaining) for item in items) + pooled,
            reserved=handed_out - sold - pooled,
            sold=sold,
            returned=0,
            imported=sum(int(item.filled) for item in items),
        )

    def claim(
        self, product_id: str, shards: int, quantity: int, order_id: str, avoid: Sequence[SlotRange] = ()
    ) -> list[SlotRange]:
        """Reserve `quantity` slots for `order_id`: from one shard when one holds enough (the common,
        O(1) case), else from returned slots and pieces of several shards, all or nothing.

        `avoid`: returned slots not to take (an order re-reserving never takes back its own old slots,
        so a late repeat of their release cannot touch the new reservation)."""
        for shard in random.sample(range(shards), shards):
            taken = self._take(product_id, shard, quantity)
            if taken:
                return [taken]
        returned = self._take_returned(product_id, quantity, order_id, avoid)
        items = sorted(self._shards(product_id, shards), key=lambda item: -int(item.remaining))
        fresh: list[SlotRange] = []
        if len(returned) + sum(int(item.remaining) for item in items) >= quantity:
            for item in items:
                needed = quantity - len(returned) - sum(p.count for p in fresh)
                taken = self._take(product_id, int(item.sk.split("#")[1]), min(needed, int(item.remaining)))
                if taken:
                    fresh.append(taken)
        if len(returned) + sum(p.count for p in fresh) == quantity:
            return returned + fresh
        self.release(product_id, returned, order_id)
        for piece in fresh:
            if not self._untake(product_id, piece):  # no longer its shard's last claim: return it instead
                self.release(product_id, [piece], order_id)
        raise OutOfStock("not enough stock left for this quantity")

    def shards_due(self) -> dict[str, list[int]]:
        """Shards to audit, by product: their cursor moved (or codes came) since they were last settled."""
        due: dict[str, list[int]] = {}
        for entry in ShardItem.audit_index.query(DUE):
            due.setdefault(entry.pk, []).append(int(entry.sk.split("#")[1]))
        return due

    def return_burned(
        self, product_id: str, shard: int, now: int, grace: int, held: Callable[[], set[tuple[int, int]]]
    ) -> int:
        """Return one shard's burned slots (claimed, then the claimant crashed before its order was written).

        A slot below a cursor snapshot older than `grace` seconds that is unbound, unheld and not
        in `held()` (the slots of the product's open orders) has no owner left: it goes back to stock.
        A shard with nothing handed out since its last snapshot leaves the `audit` index.
        Returns how many went back. Safe to run concurrently: every write is conditional."""
        item = ShardItem.get(product_id, _shard_key(shard), consistent_read=True)
        if item.mark_at is not None and now - int(item.mark_at) < grace:
            return 0
        settled, returned = int(item.settled_upto), 0
        if item.mark_at is not None:
            returned = self._return_unheld(product_id, shard, settled, int(item.mark_cursor), held)
            settled = int(item.mark_cursor)
        unchanged = (
            ShardItem.mark_at.does_not_exist()
            if item.mark_at is None
            else ShardItem.mark_at == int(item.mark_at)
        )
        actions: list[Action]
        if int(item.cursor) == settled and item.mark_at is not None:
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
            # A claim wound back since the read (`_untake`) lowered the cursor: a snapshot above it
            # would later return slots never handed out, which the cursor hands out again.
            condition = unchanged & (ShardItem.cursor >= int(item.cursor))
        try:
            item.update(actions=actions, condition=condition)
        except UpdateError as error:
            if not condition_failed(error):
                raise
        return returned

    def return_abandoned_holds(
        self, now: int, grace: int, held: Callable[[str], set[tuple[int, int]]]
    ) -> int:
        """Returned slots claimed again by a checkout (or late payment) that died before its order
        write: held longer than `grace` by an order that does not list them. Given back as that holder.
        `held(product_id)`: the slots the product's open orders hold."""
        returned = 0
        for entry in SlotItem.held_index.query(DUE, SlotItem.held_at <= now - grace):
            product_id, shard = entry.pk.rsplit("#slots#", 1)
            slot = SlotItem.get(entry.pk, entry.sk, consistent_read=True)
            number = int(entry.sk)
            if (
                slot.held_at is None
                or now - int(slot.held_at) < grace
                or (int(shard), number) in held(product_id)
            ):
                continue
            returned += self.release(
                product_id, [SlotRange(shard=int(shard), start=number, count=1)], str(slot.holder)
            )
        return returned

    def audit(self, product_id: str, shards: int) -> tuple[StockLevels, list[str]]:
        """I4 for one product: its levels, and what does not add up (empty when all is well).

        The counts come from sparse indexes, which lag writes by a moment: a single finding may be
        such a lag, a repeated one is not (the alarm waits for two runs)."""
        items = self._shards(product_id, shards, consistent=True)
        problems = [
            f"shard {k} is missing" for k in range(shards) if _shard_key(k) not in {i.sk for i in items}
        ]
        sold_total = 0
        for item in items:
            shard = int(item.sk.split("#")[1])
            filled, cursor, remaining = int(item.filled), int(item.cursor), int(item.remaining)
            sold = SlotItem.sold_index.count(f"{product_id}#{shard}")
            sold_total += sold
            if remaining != filled - cursor or min(filled, cursor, remaining) < 0:
                problems.append(f"shard {shard}: filled {filled}, handed out {cursor}, remaining {remaining}")
            if sold > cursor:
                problems.append(f"shard {shard}: {sold} sold but only {cursor} handed out")
        levels = self._levels(items, sold_total, SlotItem.returned_index.count(product_id))
        if min(levels.available, levels.reserved, levels.sold) < 0:
            problems.append(f"a level is negative: {levels.model_dump()}")
        return levels, problems

    def _return_unheld(
        self, product_id: str, shard: int, start: int, end: int, held: Callable[[], set[tuple[int, int]]]
    ) -> int:
        if end <= start:
            return 0
        query = SlotItem.query(
            _slot_pk(product_id, shard),
            SlotItem.sk.between(_slot_sk(start), _slot_sk(end - 1)),
            consistent_read=True,
        )
        unowned = [int(s.sk) for s in query if s.order_id is None and s.holder is None]
        if not unowned:
            return 0  # the common case: open orders' slots are read only when a candidate exists
        open_slots = held()
        burned = [SlotRange(shard=shard, start=n, count=1) for n in unowned if (shard, n) not in open_slots]
        return self.release(product_id, burned, order_id="")

    def _take_returned(
        self, product_id: str, quantity: int, order_id: str, avoid: Sequence[SlotRange]
    ) -> list[SlotRange]:
        """Claim up to `quantity` returned slots. The index may lag; the conditional write decides."""
        skip = {(_slot_pk(product_id, r.shard), _slot_sk(s)) for r in avoid for s in r.slots()}
        taken: list[SlotRange] = []
        for entry in SlotItem.returned_index.query(product_id):
            if len(taken) == quantity:
                break
            if (entry.pk, entry.sk) in skip:
                continue
            try:
                SlotItem(pk=entry.pk, sk=entry.sk).update(
                    actions=[
                        SlotItem.holder.set(order_id),
                        SlotItem.returned_key.remove(),
                        SlotItem.held_key.set(DUE),
                        SlotItem.held_at.set(int(time.time())),
                    ],
                    condition=(SlotItem.holder == RETURNED) & SlotItem.returned_key.exists(),
                )
            except UpdateError as error:
                if condition_failed(error):
                    continue
                raise
            taken.append(SlotRange(shard=int(entry.pk.rsplit("#", 1)[1]), start=int(entry.sk), count=1))
        return taken

    def release_unkept(
        self, product_id: str, claimed: Sequence[SlotRange], kept: Sequence[SlotRange], order_id: str
    ) -> int:
        """Release claimed slots except those the stored order holds (a write whose answer was lost
        may have recorded them after all)."""
        keep = {(r.shard, s) for r in kept for s in r.slots()}
        spare = [
            SlotRange(shard=r.shard, start=s, count=1)
            for r in claimed
            for s in r.slots()
            if (r.shard, s) not in keep
        ]
        return self.release(product_id, spare, order_id)

    def release(self, product_id: str, ranges: Sequence[SlotRange], order_id: str) -> int:
        """Give an order's unbound slots back to stock; returns how many went back.

        Idempotent and safe to repeat late: a slot goes back only while this order still holds it
        (never bound, and not re-claimed by another order since)."""
        released = 0
        for reserved in ranges:
            for slot in reserved.slots():
                try:
                    SlotItem(pk=_slot_pk(product_id, reserved.shard), sk=_slot_sk(slot)).update(
                        actions=[
                            SlotItem.holder.set(RETURNED),
                            SlotItem.returned_key.set(product_id),
                            SlotItem.held_key.remove(),
                            SlotItem.held_at.remove(),
                        ],
                        condition=SlotItem.fingerprint.exists()
                        & SlotItem.order_id.does_not_exist()
                        & (SlotItem.holder.does_not_exist() | (SlotItem.holder == order_id)),
                    )
                    released += 1
                except UpdateError as error:
                    if not condition_failed(error):
                        raise
        return released

    def _take(self, product_id: str, shard: int, quantity: int) -> SlotRange | None:
        if quantity <= 0:
            return None
        item = ShardItem(pk=product_id, sk=_shard_key(shard))
        try:
            item.update(
                actions=[
                    ShardItem.cursor.add(quantity),
                    ShardItem.remaining.add(-quantity),
                    ShardItem.audit_due.set(DUE),
                ],
                condition=ShardItem.remaining >= quantity,
            )
        except UpdateError as error:
            if condition_failed(error):
                return None
            raise
        return SlotRange(shard=shard, start=int(item.cursor) - quantity, count=quantity)

    def _untake(self, product_id: str, piece: SlotRange) -> bool:
        """Wind a fresh claim back while it is still its shard's last one (False if it is not).

        Never below the burned-slot audit's snapshot: slots it has seen handed out must not be
        handed out again from the cursor (the audit could return them to the pool as well)."""
        try:
            ShardItem(pk=product_id, sk=_shard_key(piece.shard)).update(
                actions=[ShardItem.cursor.add(-piece.count), ShardItem.remaining.add(piece.count)],
                condition=(ShardItem.cursor == piece.start + piece.count)
                & (ShardItem.mark_cursor.does_not_exist() | (ShardItem.mark_cursor <= piece.start)),
            )
        except UpdateError as error:
            if condition_failed(error):
                return False
            raise
        return True

    def bind(self, product_id: str, ranges: Sequence[SlotRange], order_id: str) -> None:
        """Bind each reserved slot to the order; a slot already bound to it is left as is (retry)."""
        for reserved in ranges:
            for slot in reserved.slots():
                item = SlotItem(pk=_slot_pk(product_id, reserved.shard), sk=_slot_sk(slot))
                try:
                    item.update(
                        actions=[
                            SlotItem.order_id.set(order_id),
                            SlotItem.sold_key.set(f"{product_id}#{reserved.shard}"),
                            SlotItem.held_key.remove(),
                            SlotItem.held_at.remove(),
                        ],
                        condition=SlotItem.fingerprint.exists()
                        & (SlotItem.order_id.does_not_exist() | (SlotItem.order_id == order_id))
                        & (SlotItem.holder.does_not_exist() | (SlotItem.holder == order_id)),
                    )
                except UpdateError as error:
                    if condition_failed(error):
                        raise IntegrityViolation(
                            f"slot {reserved.shard}/{slot} of {product_id} is missing or bound elsewhere"
                        ) from None
                    raise
                checkpoint("deliver:between-binds")

    def read_codes(
        self, product_id: str, ranges: Sequence[SlotRange], order_id: str, cipher: CodeCipher
    ) -> list[str]:
        """Decrypt the codes bound to an order (only slots bound to exactly this order), by exact key:
        a BatchGetItem reads just these slots, whatever else the product holds."""
        keys = [(r.shard, slot) for r in ranges for slot in r.slots()]
        found = {
            (item.pk, item.sk): item
            for item in SlotItem.batch_get(
                [(_slot_pk(product_id, shard), _slot_sk(slot)) for shard, slot in keys], consistent_read=True
            )
        }
        codes: list[str] = []
        for shard, slot in keys:
            item = found.get((_slot_pk(product_id, shard), _slot_sk(slot)))
            if item is None or item.order_id != order_id:
                raise IntegrityViolation(f"slot {shard}/{slot} read for an order it is not bound to")
            codes.append(cipher.decrypt(item.sealed_code, slot_identity(product_id, shard, slot)))
        return codes

    def add_codes(
        self, product_id: str, shards: int, codes: Sequence[NewCode], cipher: CodeCipher
    ) -> StoreResult:
        """Append codes under the product's import lease; codes already in stock are reported, not added.

        Slots are written past each shard's `filled` mark and counted only by the final shard update,
        so a crash part-way leaves uncounted slots that the next import overwrites.
        """
        owner = self._acquire_lease(product_id)
        try:
            # Consistent: a stale `filled` would place new codes over counted (even sold) slots.
            items = self._shards(product_id, shards, consistent=True)
            filled = {int(item.sk.split("#")[1]): int(item.filled) for item in items}
            fingerprints = {c.line: cipher.fingerprint(c.code) for c in codes}
            known = self._committed_fingerprints(product_id, set(fingerprints.values()), filled)
            fresh = [c for c in codes if fingerprints[c.line] not in known]
            duplicates = [c.line for c in codes if fingerprints[c.line] in known]
            placed = self._place(product_id, fresh, fingerprints, filled, cipher)
            self._commit(product_id, placed, filled)
            return StoreResult(added=len(fresh), duplicate_lines=duplicates)
        finally:
            self._release_lease(product_id, owner)

    def _committed_fingerprints(self, product_id: str, wanted: set[str], filled: dict[int, int]) -> set[str]:
        """Fingerprints held by counted slots. A fingerprint left by a crashed import may point past
        `filled`, or at a slot since reused by another code: both are stale, not duplicates."""
        keys = [(_fingerprint_pk(product_id), fp) for fp in wanted]
        candidates = [
            item
            for item in FingerprintItem.batch_get(keys, consistent_read=True)
            if int(item.slot) < filled.get(int(item.shard), 0)
        ]
        slot_keys = [(_slot_pk(product_id, int(c.shard)), _slot_sk(int(c.slot))) for c in candidates]
        held = {item.fingerprint for item in SlotItem.batch_get(slot_keys, consistent_read=True)}
        return {c.sk for c in candidates if c.sk in held}

    def _place(
        self,
        product_id: str,
        fresh: Iterable[NewCode],
        fingerprints: dict[int, str],
        filled: dict[int, int],
        cipher: CodeCipher,
    ) -> dict[int, int]:
        """Write slots and fingerprints round-robin over the shards; returns codes added per shard."""
        added = dict.fromkeys(filled, 0)
        order = sorted(filled, key=lambda k: filled[k])
        with SlotItem.batch_write() as slots, FingerprintItem.batch_write() as prints:
            for i, new in enumerate(fresh):
                shard = order[i % len(order)]
                slot = filled[shard] + added[shard]
                added[shard] += 1
                sealed = cipher.encrypt(new.code, slot_identity(product_id, shard, slot))
                fingerprint = fingerprints[new.line]
                slots.save(
                    SlotItem(
                        pk=_slot_pk(product_id, shard),
                        sk=_slot_sk(slot),
                        sealed_code=sealed,
                        fingerprint=fingerprint,
                    )
                )
                prints.save(
                    FingerprintItem(pk=_fingerprint_pk(product_id), sk=fingerprint, shard=shard, slot=slot)
                )
        return added

    def _commit(self, product_id: str, added: dict[int, int], filled: dict[int, int]) -> None:
        for shard, count in added.items():
            if count:
                ShardItem(pk=product_id, sk=_shard_key(shard)).update(
                    actions=[
                        ShardItem.filled.add(count),
                        ShardItem.remaining.add(count),
                        ShardItem.audit_due.set(DUE),
                    ],
                    condition=ShardItem.filled == filled[shard],
                )

    def _acquire_lease(self, product_id: str) -> str:
        owner, now = uuid.uuid4().hex, int(time.time())
        try:
            ImportLeaseItem(
                pk=product_id, sk="import-lease", owner=owner, until=now + IMPORT_LEASE_SECONDS
            ).save(condition=ImportLeaseItem.pk.does_not_exist() | (ImportLeaseItem.until < now))
        except PutError as error:
            if condition_failed(error):
                raise ImportInProgress(
                    "another stock import for this product is running; retry when it ends"
                ) from None
            raise
        return owner

    def _release_lease(self, product_id: str, owner: str) -> None:
        try:
            ImportLeaseItem(pk=product_id, sk="import-lease").delete(condition=ImportLeaseItem.owner == owner)
        except DeleteError as error:
            if not condition_failed(error):
                raise
