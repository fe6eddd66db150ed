"""Stock: codes in numbered slots, spread over S shards per product (docs/allocation.md).

A shard item counts its slots: `filled` slots hold codes, `cursor` slots have been handed out,
`remaining` = filled - cursor. A checkout takes q slots with one conditional UpdateItem
(`remaining >= q`), so allocation costs O(1) requests whatever the stock size. Delivery binds
each reserved slot to the order, conditional on it being unbound (I1).
"""

import base64
import json
import random
import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

from pydantic import BaseModel
from pynamodb.attributes import BinaryAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import DeleteError, PutError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from shared.codes import CodeCipher, slot_identity
from shared.errors import BadInput, ImportInProgress, IntegrityViolation, Invalid, OutOfStock
from shared.faults import checkpoint
from shared.orders import SlotRange
from shared.products import StockLevels
from shared.settings import settings
from shared.store.errors import condition_failed

IMPORT_LEASE_SECONDS = 300
REMOVAL_ATTEMPTS = 50  # per shard; an attempt fails only when a checkout took a slot meanwhile
PARALLEL = 8  # requests a removal keeps in flight (shards are independent; so are look-up groups)
LOOKUP_GROUP = 500  # keys per parallel look-up (five BatchGetItem requests)
Result = TypeVar("Result")
_Item = TypeVar("_Item", bound="_StockModel")
RETURNED = "returned"
REMOVED = "removed"  # holder (and fingerprint) of a slot whose code the merchant took out of stock
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
    # Stock removal (`remove_codes`): the slots [filled - fenced, filled) wait for a code moved into
    # them and cannot be handed out meanwhile (`remaining` leaves them out); `removed` counts the
    # codes taken out of this shard's fresh slots.
    fenced = NumberAttribute(null=True)
    removed = NumberAttribute(null=True)
    audit_index = AuditIndex()


class SoldIndex(GlobalSecondaryIndex["SlotItem"]):
    """Sparse: only slots that left the stock carry `sold_key`, so counting them reads only those:
    `<product>#<shard>` for a slot bound to an order, `<product>#removed` for a returned slot the
    merchant removed."""

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
    source = UnicodeAttribute(null=True)  # the import chunk that added the code (`add_codes`)


class ImportLeaseItem(_StockModel):
    owner = UnicodeAttribute()
    until = NumberAttribute()


class ImportChunkItem(_StockModel):
    """One chunk of a resumable import: a keyed hash of the request it was taken for, and its answer."""

    digest = UnicodeAttribute()
    answer = BinaryAttribute(null=True, legacy_encoding=False)  # zlib-compressed JSON
    at = NumberAttribute()


class RemovalItem(_StockModel):
    """A removal's plan for one shard, kept until its codes have moved: whoever takes the product's
    lease next finishes a removal that crashed part-way (`_finish_removals`)."""

    plan = UnicodeAttribute()  # RemovalPlan as JSON


def _shard_key(shard: int) -> str:
    return f"shard#{shard:04d}"


def _slot_pk(product_id: str, shard: int) -> str:
    return f"{product_id}#slots#{shard}"


def _slot_sk(slot: int) -> str:
    return f"{slot:012d}"


def _fingerprint_pk(product_id: str) -> str:
    return f"{product_id}#fingerprints"


def _chunk_key(product_id: str, import_id: str, chunk: int) -> tuple[str, str]:
    return f"{product_id}#imports", f"{import_id}#{chunk:07d}"


def copy_fingerprints(fingerprint: str, copies: int) -> list[str]:
    """The fingerprints of a code's copies (a reusable product sells each code `copies` times): copy 0
    under the code's own keyed hash, so a single-use product's stock is unchanged, copy n under `<hash>.n`."""
    return [fingerprint] + [f"{fingerprint}.{n}" for n in range(1, copies)]


def _removal_pk(product_id: str) -> str:
    return f"{product_id}#removals"


def _removed_key(product_id: str) -> str:
    return f"{product_id}#removed"


class NewCode(BaseModel):
    """A code from an import, with the line it came from."""

    line: int
    code: str


class StoreResult(BaseModel):
    added: int
    duplicate_lines: list[int]


class RemovalResult(BaseModel):
    """Lines (of the removal request) whose code was removed, is not in stock, or is reserved or sold."""

    removed: list[int]
    not_found: list[int]
    not_available: list[int]


class RemovalPlan(BaseModel):
    """Removing `targets` (fresh slots) from a shard of `before` slots: the codes the shard keeps in
    its last slots move down into the targets below `after`, then the shard ends at `after`."""

    shard: int
    before: int
    targets: list[int]

    @property
    def after(self) -> int:
        return self.before - len(self.targets)

    @property
    def moves(self) -> list[tuple[int, int]]:
        """(from, to): the kept codes of the shard's last slots, each into a target below `after`."""
        gone = set(self.targets)
        kept = [n for n in range(self.after, self.before) if n not in gone]
        return list(zip(kept, [n for n in self.targets if n < self.after], strict=True))

    @property
    def base(self) -> int:
        """The first slot that cannot be handed out until the moves are done."""
        return self.moves[0][1] if self.moves else self.after


class ExportPage(BaseModel):
    codes: list[str]
    next: str | None  # where the next page starts (opaque), None after the last


class StockStore:
    def __init__(self) -> None:
        _StockModel.Meta.table_name = settings().stock_table
        for model in (ShardItem, SlotItem, FingerprintItem, ImportLeaseItem, ImportChunkItem, RemovalItem):
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
        fresh = sum(int(item.remaining) + int(item.fenced or 0) for item in self._shards(product_id, shards))
        return fresh + SlotItem.returned_index.count(product_id)

    def levels(self, product_id: str, shards: int) -> StockLevels:
        items = self._shards(product_id, shards)
        sold = sum(SlotItem.sold_index.count(f"{product_id}#{k}") for k in range(shards))
        removed = SlotItem.sold_index.count(_removed_key(product_id))
        return self._levels(items, sold, SlotItem.returned_index.count(product_id), removed)

    @staticmethod
    def _levels(items: list[ShardItem], sold: int, pooled: int, removed_pooled: int = 0) -> StockLevels:
        """Removed codes leave `imported`: fresh ones by the shard's `filled`, returned ones (below the
        cursor) by `removed_pooled`, so available + reserved + sold + returned = imported still holds."""
        handed_out = sum(int(item.cursor) for item in items)
        return StockLevels(
            available=sum(int(item.remaining) + int(item.fenced or 0) for item in items) + pooled,
            reserved=handed_out - sold - pooled - removed_pooled,
            sold=sold,
            returned=0,
            imported=sum(int(item.filled) for item in items) - removed_pooled,
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
            fenced = int(item.fenced or 0)
            sold = SlotItem.sold_index.count(f"{product_id}#{shard}")
            sold_total += sold
            if remaining + fenced != filled - cursor or min(filled, cursor, remaining, fenced) < 0:
                problems.append(
                    f"shard {shard}: filled {filled}, handed out {cursor}, remaining {remaining}, fenced {fenced}"
                )
            if sold > cursor:
                problems.append(f"shard {shard}: {sold} sold but only {cursor} handed out")
            if fenced:  # a removal moves codes for a moment; one still fenced at the next run crashed
                problems.append(f"shard {shard}: {fenced} slots fenced by an unfinished stock removal")
        removed = SlotItem.sold_index.count(_removed_key(product_id))
        levels = self._levels(items, sold_total, SlotItem.returned_index.count(product_id), removed)
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
        self,
        product_id: str,
        shards: int,
        codes: Sequence[NewCode],
        cipher: CodeCipher,
        source: str | None = None,
        copies: int = 1,
    ) -> StoreResult:
        """Append codes under the product's import lease; codes already in stock are reported, not added.
        `copies`: how many slots each code fills (a reusable product's sales per code).

        Slots are written past each shard's `filled` mark and counted only by the final shard update,
        so a crash part-way leaves uncounted slots that the next import overwrites.
        `source` names the import chunk: codes in stock that this same chunk added (a retry after a
        crash that lost its answer) count as added again, not as duplicates, so the answer repeats;
        their copies that no shard counted yet (the crash came between two shards' updates) are added.
        """
        owner = self._acquire_lease(product_id)
        try:
            self._finish_removals(product_id, shards, cipher)
            # Consistent: a stale `filled` would place new codes over counted (even sold) slots.
            items = self._shards(product_id, shards, consistent=True)
            filled = {int(item.sk.split("#")[1]): int(item.filled) for item in items}
            prints = {c.line: copy_fingerprints(cipher.fingerprint(c.code), copies) for c in codes}
            known = self._committed_fingerprints(
                product_id, {fp for line in prints.values() for fp in line}, filled
            )
            added, duplicates, wanted = 0, [], []
            for new in codes:
                sources = {known[fp] for fp in prints[new.line] if fp in known}
                if sources and (source is None or sources != {source}):
                    duplicates.append(new.line)
                    continue
                added += 1
                wanted += [(new, copy, fp) for copy, fp in enumerate(prints[new.line]) if fp not in known]
            placed = self._place(product_id, wanted, filled, cipher, source)
            self._commit(product_id, placed, filled)
            return StoreResult(added=added, duplicate_lines=duplicates)
        finally:
            self._release_lease(product_id, owner)

    def _committed_fingerprints(
        self, product_id: str, wanted: set[str], filled: dict[int, int]
    ) -> dict[str, str | None]:
        """Fingerprints held by counted slots, with the import chunk that added each. A fingerprint
        left by a crashed import may point past `filled`, or at a slot since reused by another code
        (or removed): both are stale, not duplicates."""
        keys = [(_fingerprint_pk(product_id), fp) for fp in wanted]
        candidates = [
            item
            for item in FingerprintItem.batch_get(keys, consistent_read=True)
            if int(item.slot) < filled.get(int(item.shard), 0)
        ]
        slot_keys = [(_slot_pk(product_id, int(c.shard)), _slot_sk(int(c.slot))) for c in candidates]
        held = {
            (item.pk, item.sk, item.fingerprint)
            for item in SlotItem.batch_get(slot_keys, consistent_read=True)
        }
        return {
            c.sk: c.source
            for c in candidates
            if (_slot_pk(product_id, int(c.shard)), _slot_sk(int(c.slot)), c.sk) in held
        }

    def _place(
        self,
        product_id: str,
        wanted: Sequence[tuple[NewCode, int, str]],
        filled: dict[int, int],
        cipher: CodeCipher,
        source: str | None = None,
    ) -> dict[int, int]:
        """Write slots and fingerprints for (code, copy, fingerprint): the n-th code's copy c in the
        (n + c)-th emptiest shard, round-robin, so a reusable code's sales spread over every shard,
        and one shard's consecutive slots hold other codes where there are others. Copies first
        (all codes' copy 0, then copy 1, ...). Returns slots added per shard."""
        added = dict.fromkeys(filled, 0)
        order = sorted(filled, key=lambda k: filled[k])
        index = {line: n for n, line in enumerate(dict.fromkeys(new.line for new, _, _ in wanted))}
        with SlotItem.batch_write() as slots, FingerprintItem.batch_write() as prints:
            for new, copy, fingerprint in sorted(wanted, key=lambda w: (w[1], index[w[0].line])):
                shard = order[(index[new.line] + copy) % len(order)]
                slot = filled[shard] + added[shard]
                added[shard] += 1
                sealed = cipher.encrypt(new.code, slot_identity(product_id, shard, slot))
                slots.save(
                    SlotItem(
                        pk=_slot_pk(product_id, shard),
                        sk=_slot_sk(slot),
                        sealed_code=sealed,
                        fingerprint=fingerprint,
                    )
                )
                prints.save(
                    FingerprintItem(
                        pk=_fingerprint_pk(product_id), sk=fingerprint, shard=shard, slot=slot, source=source
                    )
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
                checkpoint("import:between-shards")

    # ---- resumable imports: one answer per (import id, chunk)
    def claim_chunk(self, product_id: str, import_id: str, chunk: int, digest: str) -> dict | None:
        """Take (import id, chunk) for the request with this keyed hash: None if it is to be imported
        now, its recorded answer if it was answered before. Another request under the same key is
        refused (422 `import_chunk_reused`) before anything is written."""
        pk, sk = _chunk_key(product_id, import_id, chunk)
        for _ in range(2):
            try:
                found = ImportChunkItem.get(pk, sk, consistent_read=True)
            except ImportChunkItem.DoesNotExist:
                try:
                    ImportChunkItem(pk=pk, sk=sk, digest=digest, at=int(time.time())).save(
                        condition=ImportChunkItem.pk.does_not_exist()
                    )
                    return None
                except PutError as error:
                    if not condition_failed(error):
                        raise
                    continue  # another request took it a moment ago: read what it took it for
            if found.digest != digest:
                raise Invalid(
                    f"chunk {chunk} of import {import_id} was sent before with another body; "
                    "resend that body, or start a new import id",
                    code="import_chunk_reused",
                )
            # Taken but unanswered: an earlier attempt died (or is running; the lease tells).
            return _unpack(found.answer) if found.answer is not None else None
        raise ImportInProgress("this import chunk is being taken by another request; retry")

    def record_chunk(self, product_id: str, import_id: str, chunk: int, digest: str, answer: dict) -> dict:
        """Keep the chunk's answer; returns the answer that stands (the first one recorded)."""
        pk, sk = _chunk_key(product_id, import_id, chunk)
        try:
            ImportChunkItem(pk=pk, sk=sk).update(
                actions=[ImportChunkItem.answer.set(_pack(answer))],
                condition=(ImportChunkItem.digest == digest) & ImportChunkItem.answer.does_not_exist(),
            )
            return answer
        except UpdateError as error:
            if not condition_failed(error):
                raise
        recorded = ImportChunkItem.get(pk, sk, consistent_read=True)
        return _unpack(recorded.answer) if recorded.answer is not None else answer

    # ---- removing unsold codes
    def remove_codes(
        self, product_id: str, shards: int, codes: Sequence[NewCode], cipher: CodeCipher, copies: int = 1
    ) -> RemovalResult:
        """Take codes that are still available out of stock, under the product's import lease; of a
        reusable product's code (`copies` > 1), every copy still available.

        A fresh code (not handed out yet) leaves its shard: the shard's last slots' codes move down
        into the removed ones' slots and `filled` shrinks, so the cursor never meets a gap. A code
        given back to stock (the returned pool) is marked removed where it is. Reserved, sold and
        bound codes stay. Every step is safe to crash after (`RemovalItem`, `_finish_removals`).
        A line counts as removed when any copy of its code was; as not available when copies of it
        are in stock but none could be removed."""
        owner = self._acquire_lease(product_id)
        try:
            self._finish_removals(product_id, shards, cipher)
            prints = {c.line: copy_fingerprints(cipher.fingerprint(c.code), copies) for c in codes}
            located = self._locate(product_id, {fp for line in prints.values() for fp in line})
            shard_items = {
                int(item.sk.split("#")[1]): item for item in self._shards(product_id, shards, consistent=True)
            }
            removed: set[int] = set()
            kept: set[int] = set()
            # shard -> slot -> line. Their fingerprints stay: pointing at a slot that now holds another
            # code (or past `filled`), they are stale, which every reader checks (`_locate`).
            fresh: dict[int, dict[int, int]] = {}
            for line, fingerprints in prints.items():
                for fingerprint in fingerprints:
                    found = located.get(fingerprint)
                    item = shard_items.get(found[0]) if found else None
                    if found is None or item is None or found[1] >= int(item.filled):
                        continue
                    shard, slot, held = found
                    if slot >= int(item.cursor) and held.order_id is None and held.holder is None:
                        fresh.setdefault(shard, {})[slot] = line
                    elif held.holder == RETURNED and held.order_id is None:
                        done = self._remove_returned(product_id, shard, slot, fingerprint)
                        (removed if done else kept).add(line)
                    else:
                        kept.add(line)
            # Shards share nothing, so they are removed from at once (a 10,000-code removal within
            # the API's 29 s).
            done = _in_parallel(
                [
                    partial(self._remove_fresh, product_id, shard, targets, cipher)
                    for shard, targets in fresh.items()
                ]
            )
            for gone, late in done:
                removed.update(gone)
                kept.update(late)
            return RemovalResult(
                removed=sorted(removed),
                not_found=sorted(prints.keys() - removed - kept),
                not_available=sorted(kept - removed),
            )
        finally:
            self._release_lease(product_id, owner)

    def _locate(self, product_id: str, wanted: set[str]) -> dict[str, tuple[int, int, SlotItem]]:
        """Where each fingerprint's code is (shard, slot, the slot as read), if a slot holds it."""
        keys = [(_fingerprint_pk(product_id), fp) for fp in wanted]
        pointers = _get_all(FingerprintItem, keys)
        slot_keys = [(_slot_pk(product_id, int(p.shard)), _slot_sk(int(p.slot))) for p in pointers]
        # Without the sealed codes: a removal needs to know where each code is, never what it is.
        unsealed = ["pk", "sk", "fingerprint", "order_id", "holder"]
        slots = {(s.pk, s.sk): s for s in _get_all(SlotItem, slot_keys, unsealed)}
        located: dict[str, tuple[int, int, SlotItem]] = {}
        for pointer in pointers:
            slot = slots.get((_slot_pk(product_id, int(pointer.shard)), _slot_sk(int(pointer.slot))))
            if slot is not None and slot.fingerprint == pointer.sk:
                located[pointer.sk] = (int(pointer.shard), int(pointer.slot), slot)
        return located

    def _remove_returned(self, product_id: str, shard: int, slot: int, fingerprint: str) -> bool:
        """Remove a code from the returned pool, where it lies; False if a checkout took it first.

        The slot keeps no code; `sold_key = <product>#removed` counts it (levels, audit) in the same write."""
        try:
            SlotItem(pk=_slot_pk(product_id, shard), sk=_slot_sk(slot)).update(
                actions=[
                    SlotItem.holder.set(REMOVED),
                    SlotItem.fingerprint.set(REMOVED),
                    SlotItem.sold_key.set(_removed_key(product_id)),
                    SlotItem.returned_key.remove(),
                    SlotItem.sealed_code.remove(),
                ],
                condition=(SlotItem.holder == RETURNED)
                & SlotItem.returned_key.exists()
                & SlotItem.order_id.does_not_exist()
                & (SlotItem.fingerprint == fingerprint),
            )
        except UpdateError as error:
            if condition_failed(error):
                return False
            raise
        FingerprintItem(pk=_fingerprint_pk(product_id), sk=fingerprint).delete()
        return True

    def _remove_fresh(
        self, product_id: str, shard: int, targets: dict[int, int], cipher: CodeCipher
    ) -> tuple[list[int], list[int]]:
        """Remove fresh slots (slot -> line) from a shard: (lines removed, lines handed out meanwhile)."""
        late: list[int] = []
        targets = dict(targets)
        for _ in range(REMOVAL_ATTEMPTS):
            if not targets:
                break
            item = ShardItem.get(product_id, _shard_key(shard), consistent_read=True)
            for slot in [n for n in targets if n < int(item.cursor)]:
                late.append(targets.pop(slot))
            if not targets:
                break
            plan = RemovalPlan(shard=shard, before=int(item.filled), targets=sorted(targets))
            RemovalItem(pk=_removal_pk(product_id), sk=_shard_key(shard), plan=plan.model_dump_json()).save()
            try:
                # One write settles the counts: the shard ends at `after`, and until the codes have
                # moved the cursor can hand out only the slots below the first target.
                item.update(
                    actions=[
                        ShardItem.filled.add(-len(plan.targets)),
                        ShardItem.remaining.add(-(plan.before - plan.base)),
                        ShardItem.fenced.set(plan.after - plan.base),
                        ShardItem.removed.add(len(plan.targets)),
                        ShardItem.audit_due.set(DUE),
                    ],
                    condition=(ShardItem.filled == plan.before)
                    & (ShardItem.cursor <= plan.base)
                    & (ShardItem.fenced.does_not_exist() | (ShardItem.fenced == 0)),
                )
            except UpdateError as error:
                if not condition_failed(error):
                    raise
                continue  # a checkout took slots meanwhile: read again, without the ones it took
            self._finish_removal(product_id, plan, cipher)
            return sorted(targets.values()), late
        RemovalItem(pk=_removal_pk(product_id), sk=_shard_key(shard)).delete()
        if targets:  # each failed attempt drops the slots a checkout took, so this means a bug
            raise IntegrityViolation(f"shard {shard} of {product_id} kept refusing its removal")
        return [], late

    def _finish_removals(self, product_id: str, shards: int, cipher: CodeCipher) -> None:
        """Finish any removal that crashed part-way (run by every holder of the lease, first).
        By key, one per shard: a Query would cost the embedded AWS a scan of the whole table."""
        keys = [(_removal_pk(product_id), _shard_key(k)) for k in range(shards)]
        for pending in RemovalItem.batch_get(keys, consistent_read=True):
            self._finish_removal(product_id, RemovalPlan.model_validate_json(pending.plan), cipher)

    def _finish_removal(self, product_id: str, plan: RemovalPlan, cipher: CodeCipher) -> None:
        """Move the kept codes into the removed slots, lift the fence, drop the shard's old last slots.

        Idempotent: the kept codes stay in the old last slots until the fence is lifted."""
        item = ShardItem.get(product_id, _shard_key(plan.shard), consistent_read=True)
        fenced = int(item.fenced or 0)
        if int(item.filled) == plan.before and not fenced:  # the shrink never happened
            RemovalItem(pk=_removal_pk(product_id), sk=_shard_key(plan.shard)).delete()
            return
        if int(item.filled) != plan.after:
            raise IntegrityViolation(
                f"shard {plan.shard} of {product_id} has {item.filled} slots; its removal planned {plan.after}"
            )
        pk = _slot_pk(product_id, plan.shard)
        if fenced:
            moves = plan.moves
            kept = {
                int(s.sk): s
                for s in SlotItem.batch_get([(pk, _slot_sk(a)) for a, _ in moves], consistent_read=True)
            }
            pointers = {
                p.sk: p
                for p in FingerprintItem.batch_get(
                    [(_fingerprint_pk(product_id), kept[a].fingerprint) for a, _ in moves],
                    consistent_read=True,
                )
            }
            with SlotItem.batch_write() as slots, FingerprintItem.batch_write() as prints:
                for old, new in moves:
                    code = cipher.decrypt(kept[old].sealed_code, slot_identity(product_id, plan.shard, old))
                    fingerprint = kept[old].fingerprint
                    sealed = cipher.encrypt(code, slot_identity(product_id, plan.shard, new))
                    slots.save(SlotItem(pk=pk, sk=_slot_sk(new), sealed_code=sealed, fingerprint=fingerprint))
                    source = pointers[fingerprint].source if fingerprint in pointers else None
                    prints.save(
                        FingerprintItem(
                            pk=_fingerprint_pk(product_id),
                            sk=fingerprint,
                            shard=plan.shard,
                            slot=new,
                            source=source,
                        )
                    )
            item.update(
                actions=[ShardItem.remaining.add(fenced), ShardItem.fenced.set(0)],
                condition=ShardItem.fenced == fenced,
            )
        with SlotItem.batch_write() as slots:  # the old last slots: moved copies and removed codes
            for slot in range(plan.after, plan.before):
                slots.delete(SlotItem(pk=pk, sk=_slot_sk(slot)))
        RemovalItem(pk=_removal_pk(product_id), sk=_shard_key(plan.shard)).delete()

    # ---- exporting unsold codes
    def export_codes(
        self, product_id: str, shards: int, cipher: CodeCipher, start: str | None, limit: int
    ) -> ExportPage:
        """One page of the codes still available (fresh slots shard by shard, then the returned pool),
        decrypted. `start`: the previous page's `next`. Under the lease, so no removal is half-way."""
        position = _decode_position(start)
        owner = self._acquire_lease(product_id)
        try:
            self._finish_removals(product_id, shards, cipher)
            codes: list[str] = []
            if position.get("pool") is None:
                for item in self._shards(product_id, shards, consistent=True):
                    shard = int(item.sk.split("#")[1])
                    if shard < position.get("shard", 0):
                        continue
                    after = position.get("slot", -1) if shard == position.get("shard") else -1
                    low, high = max(int(item.cursor), after + 1), int(item.filled) - 1
                    if low > high:
                        continue
                    for slot in SlotItem.query(
                        _slot_pk(product_id, shard),
                        SlotItem.sk.between(_slot_sk(low), _slot_sk(high)),
                        consistent_read=True,
                    ):
                        number = int(slot.sk)
                        if slot.order_id is not None or slot.holder is not None:
                            continue
                        codes.append(
                            cipher.decrypt(slot.sealed_code, slot_identity(product_id, shard, number))
                        )
                        if len(codes) == limit:
                            return ExportPage(
                                codes=codes, next=_encode_position({"shard": shard, "slot": number})
                            )
                position = {"pool": None}
            last = position.get("pool")
            start_key = (
                {"pk": {"S": last[0]}, "sk": {"S": last[1]}, "returned_key": {"S": product_id}}
                if last
                else None
            )
            for entry in SlotItem.returned_index.query(product_id, last_evaluated_key=start_key):
                slot = SlotItem.get(entry.pk, entry.sk, consistent_read=True)
                if slot.holder == RETURNED and slot.order_id is None:
                    shard = int(entry.pk.rsplit("#", 1)[1])
                    identity = slot_identity(product_id, shard, int(entry.sk))
                    codes.append(cipher.decrypt(slot.sealed_code, identity))
                    if len(codes) == limit:
                        return ExportPage(codes=codes, next=_encode_position({"pool": [entry.pk, entry.sk]}))
            return ExportPage(codes=codes, next=None)
        finally:
            self._release_lease(product_id, owner)

    def _acquire_lease(self, product_id: str) -> str:
        owner, now = uuid.uuid4().hex, int(time.time())
        try:
            ImportLeaseItem(
                pk=product_id, sk="import-lease", owner=owner, until=now + IMPORT_LEASE_SECONDS
            ).save(condition=ImportLeaseItem.pk.does_not_exist() | (ImportLeaseItem.until < now))
        except PutError as error:
            if condition_failed(error):
                raise ImportInProgress(
                    "another stock import, removal or export for this product is running; retry when it ends"
                ) from None
            raise
        return owner

    def _release_lease(self, product_id: str, owner: str) -> None:
        try:
            ImportLeaseItem(pk=product_id, sk="import-lease").delete(condition=ImportLeaseItem.owner == owner)
        except DeleteError as error:
            if not condition_failed(error):
                raise


def _pack(answer: dict) -> bytes:
    return zlib.compress(json.dumps(answer, separators=(",", ":")).encode())


def _unpack(packed: bytes) -> dict:
    return dict(json.loads(zlib.decompress(packed)))


def _encode_position(position: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_position(token: str | None) -> dict:
    """An export page's start, as `_encode_position` wrote it; anything else is 400 `invalid_cursor`."""
    if token is None:
        return {}
    try:
        position = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        valid = isinstance(position, dict) and (
            (set(position) == {"shard", "slot"} and all(type(position[k]) is int for k in position))
            or (
                set(position) == {"pool"}
                and isinstance(position["pool"], list)
                and len(position["pool"]) == 2
                and all(isinstance(part, str) for part in position["pool"])
            )
        )
    except (ValueError, RecursionError):
        valid = False
    if not valid:
        raise BadInput(
            "cursor is not one this export handed out; start again without it", code="invalid_cursor"
        )
    return dict(position)


def _in_parallel(tasks: Sequence[Callable[[], Result]]) -> list[Result]:
    """Run independent tasks at once; their results in order (the first failure is raised once all end)."""
    if len(tasks) <= 1:
        return [task() for task in tasks]
    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(tasks))) as pool:
        futures = [pool.submit(task) for task in tasks]
        return [future.result() for future in futures]


def _get_all(
    model: type[_Item], keys: Sequence[tuple[str, str]], attributes: list[str] | None = None
) -> list[_Item]:
    """Consistent BatchGetItem of many keys, groups of them at once."""
    groups = [keys[n : n + LOOKUP_GROUP] for n in range(0, len(keys), LOOKUP_GROUP)]
    found = _in_parallel([partial(_get_group, model, group, attributes) for group in groups])
    return [item for part in found for item in part]


def _get_group(
    model: type[_Item], keys: Sequence[tuple[str, str]], attributes: list[str] | None
) -> list[_Item]:
    return list(model.batch_get(keys, consistent_read=True, attributes_to_get=attributes))
