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
from dataclasses import dataclass
from functools import partial
from typing import TypeVar, cast

from pydantic import BaseModel
from pynamodb.attributes import BinaryAttribute, ListAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import DeleteError, PutError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from shared.codes import CodeCipher, slot_identity
from shared.errors import BadInput, ImportInProgress, IntegrityViolation, Invalid, OutOfStock
from shared.faults import checkpoint
from shared.orders import SlotRange, Status
from shared.products import StockLevels
from shared.settings import settings
from shared.store.errors import condition_failed, retried
from shared.store.shards import audit_partition, held_partition, index_partitions, read_every

IMPORT_LEASE_SECONDS = 300
REGISTRY_LEASE_SECONDS = 30  # the merchant's code registry: held for one chunk's read and write
REGISTRY_WAIT_SECONDS = 10
REMOVAL_ATTEMPTS = 50  # per shard; an attempt fails only when a checkout took a slot meanwhile
PARALLEL = 8  # requests a removal keeps in flight (shards are independent; so are look-up groups)
LOOKUP_GROUP = 500  # keys per parallel look-up (five BatchGetItem requests)
Result = TypeVar("Result")
_Item = TypeVar("_Item", bound="_StockModel")
RETURNED = "returned"
REMOVED = "removed"  # holder (and fingerprint) of a slot whose code the merchant took out of stock


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
    # The last claim's token and where it ended: a claim retried after a lost answer finds itself.
    last_claim = UnicodeAttribute(null=True)
    last_end = NumberAttribute(null=True)
    last_removal = UnicodeAttribute(null=True)  # the same, for a removal's shrink (`_remove_fresh`)
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


class AuditStateItem(_StockModel):
    """The stock audit's place in one shard (`pk=<product>`, `sk=audit#NNNN`): every slot below
    `upto` was found where it belongs, except the `watch` ones, still held, that it reads again."""

    upto = NumberAttribute(default=0)
    watch = ListAttribute(of=NumberAttribute, default=list)


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


class CodeOwnerItem(_StockModel):
    """Which of a merchant's products a code is in (`pk=code#<keyed hash>`, `sk=owner`): the hash key is
    the merchant's own, so this is one namespace per merchant, and a code is in one product at most.
    Written only under the merchant's registry lease (`_own`)."""

    product = UnicodeAttribute()


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


def _shard_item(product_id: str, shard: int) -> tuple[str, str]:
    """A shard item's key: each shard is its own partition (one partition takes ~1,000 writes/s, so
    a product's S shards under one partition key would cap it there whatever S)."""
    return f"{product_id}#{_shard_key(shard)}", "shard"


def _shard_of(item: "ShardItem") -> int:
    return int(item.pk.rsplit("#", 1)[1])


def _product_of_shard(pk: str) -> str:
    return pk.rsplit("#shard#", 1)[0]


def _slot_pk(product_id: str, shard: int) -> str:
    return f"{product_id}#slots#{shard}"


def _slot_sk(slot: int) -> str:
    return f"{slot:012d}"


def _fingerprint_pk(product_id: str) -> str:
    return f"{product_id}#fingerprints"


def _chunk_key(product_id: str, import_id: str, chunk: int) -> tuple[str, str]:
    return f"{product_id}#imports", f"{import_id}#{chunk:07d}"


AUDIT_LOOKAHEAD = 8  # slots past the cursor the audit reads: a taken one there is counter drift
_SLOT_STATE = ["pk", "sk", "fingerprint", "order_id", "holder", "held_at", "returned_key", "sold_key"]
_NOT_ORDERS = (None, RETURNED, REMOVED)


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


def _code_of(fingerprint: str) -> str:
    """The code a copy's fingerprint stands for (`<hash>.n` -> `<hash>`)."""
    return fingerprint.split(".", 1)[0]


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
        for model in (
            ShardItem,
            SlotItem,
            FingerprintItem,
            ImportLeaseItem,
            CodeOwnerItem,
            ImportChunkItem,
            RemovalItem,
            AuditStateItem,
        ):
            model.Meta.table_name = settings().stock_table

    def create_shards(self, product_id: str, shards: int) -> None:
        for shard in range(shards):
            ShardItem(*_shard_item(product_id, shard), filled=0, cursor=0, remaining=0).save(
                condition=ShardItem.pk.does_not_exist()
            )

    def _shards(self, product_id: str, shards: int, consistent: bool = False) -> list[ShardItem]:
        keys = [_shard_item(product_id, k) for k in range(shards)]
        found = {_shard_of(item): item for item in ShardItem.batch_get(keys, consistent_read=consistent)}
        return [found[k] for k in range(shards) if k in found]

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
            taken = self._take(product_id, shard, quantity, order_id)
            if taken:
                return [taken]
        # Stock spread thin: fresh pieces of several shards, then returned slots for the rest (never a
        # second copy of a code the order already has, so a reusable code is not sold twice to one order).
        items = sorted(self._shards(product_id, shards), key=lambda item: -int(item.remaining))
        spread = sum(int(item.remaining) for item in items)
        if spread < quantity and spread + SlotItem.returned_index.count(product_id) < quantity:
            raise OutOfStock("not enough stock left for this quantity")  # sold out: nothing taken
        fresh: list[SlotRange] = []
        for item in items:
            needed = quantity - sum(p.count for p in fresh)
            taken = self._take(product_id, _shard_of(item), min(needed, int(item.remaining)), order_id)
            if taken:
                fresh.append(taken)
                checkpoint("claim:between-pieces")
        needed = quantity - sum(p.count for p in fresh)
        have = self._codes_in(product_id, fresh) if needed else set()
        returned = self._take_returned(product_id, needed, order_id, avoid, have)
        if len(returned) == needed:
            return fresh + returned
        self.release(product_id, returned, order_id)
        for piece in fresh:
            checkpoint("claim:giving-back")
            if not self._untake(product_id, piece, order_id):  # not its shard's last claim: return it instead
                self.release(product_id, [piece], order_id)
        raise OutOfStock("not enough stock left for this quantity")

    def _codes_in(self, product_id: str, pieces: Sequence[SlotRange]) -> set[str]:
        """The codes (by fingerprint, every copy as one) in these slots; read only on the rare pool path."""
        keys = [(_slot_pk(product_id, p.shard), _slot_sk(n)) for p in pieces for n in p.slots()]
        if not keys:
            return set()
        return {_code_of(s.fingerprint) for s in _get_all(SlotItem, keys, ["pk", "sk", "fingerprint"])}

    def shards_due(self) -> dict[str, list[int]]:
        """Shards to audit, by product: their cursor moved (or codes came) since they were last settled."""
        due: dict[str, list[int]] = {}
        for entry in read_every(ShardItem.audit_index.query, index_partitions(settings().audit_shards)):
            due.setdefault(_product_of_shard(entry.pk), []).append(_shard_of(entry))
        return due

    def return_burned(self, product_id: str, shard: int, now: int, grace: int, claimants: "Claimants") -> int:
        """Return one shard's burned slots (claimed, then the claimant crashed before its order was written).

        A slot below a cursor snapshot older than `grace` seconds that is unbound and whose claimant
        (named in the slot, read strongly consistently through `claimants`) does not hold it — no such
        order, an order that does not list it, or one past holding stock — goes back to stock.
        A shard with nothing handed out since its last snapshot, and nothing the stock audit still
        watches, leaves the `audit` index. Returns how many went back. Safe to run concurrently:
        every write is conditional."""
        item = ShardItem.get(*_shard_item(product_id, shard), consistent_read=True)
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
            int(item.cursor) == settled
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
            # A claim wound back since the read (`_untake`) lowered the cursor: a snapshot above it
            # would later return slots never handed out, which the cursor hands out again.
            condition = unchanged & (ShardItem.cursor >= int(item.cursor))
        try:
            item.update(actions=actions, condition=condition)
        except UpdateError as error:
            if not condition_failed(error):
                raise
        return returned

    def return_abandoned_holds(self, now: int, grace: int, claimants: "Claimants") -> int:
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
                returned += self.release(product_id, [spot], str(slot.holder))
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
        items = self._shards(product_id, shards, consistent=True)
        problems = [f"shard {k} is missing" for k in range(shards) if k not in {_shard_of(i) for i in items}]
        for item in items:
            shard = _shard_of(item)
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
        shard, cursor, filled = _shard_of(item), int(item.cursor), int(item.filled)
        settled = int(item.settled_upto)
        try:
            state = AuditStateItem.get(product_id, f"audit#{shard:04d}", consistent_read=True)
        except AuditStateItem.DoesNotExist:
            state = AuditStateItem(pk=product_id, sk=f"audit#{shard:04d}", upto=0, watch=[])
        upto = min(int(state.upto), cursor)
        pk = _slot_pk(product_id, shard)
        slots: dict[int, SlotItem] = {}
        end = min(filled, cursor + AUDIT_LOOKAHEAD)  # a few past the cursor: taken ones there mean drift
        watched = [n for n in cast(list[int], state.watch) if n < upto]
        # By key (the slot numbers are known), without the sealed codes: the audit never needs one.
        keys = [(pk, _slot_sk(n)) for n in [*range(upto, end), *watched]]
        slots.update((int(s.sk), s) for s in _get_all(SlotItem, keys, _SLOT_STATE))
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

    def _return_unheld(
        self, product_id: str, shard: int, start: int, end: int, claimants: "Claimants"
    ) -> int:
        if end <= start:
            return 0
        pk = _slot_pk(product_id, shard)
        slots = _get_all(SlotItem, [(pk, _slot_sk(n)) for n in range(start, end)], _SLOT_STATE)
        unbound = [s for s in slots if s.order_id is None and s.holder not in (RETURNED, REMOVED)]
        named = {str(s.holder) for s in unbound if s.holder is not None}
        found = claimants(named) if named else {}  # the common case: only claims of open orders
        returned = 0
        for slot in unbound:
            number, holder = int(slot.sk), slot.holder
            if holder is None:  # handed out by the cursor, never named: its claimant died at once
                returned += self.release(product_id, [SlotRange(shard=shard, start=number, count=1)], "")
                continue
            claimant = found.get(str(holder))
            if claimant is None or not claimant.keeps(product_id, shard, number):
                spot = SlotRange(shard=shard, start=number, count=1)
                returned += self.release(product_id, [spot], str(holder))
        return returned

    def _take_returned(
        self,
        product_id: str,
        quantity: int,
        order_id: str,
        avoid: Sequence[SlotRange],
        codes: set[str] | None = None,
    ) -> list[SlotRange]:
        """Claim up to `quantity` returned slots, at most one copy of each code, none of `codes`.
        The index may lag; the conditional write decides. Safe to repeat: a retry whose first attempt
        applied finds the slot held by this order already."""
        skip = {(_slot_pk(product_id, r.shard), _slot_sk(s)) for r in avoid for s in r.slots()}
        have = set(codes or ())
        taken: list[SlotRange] = []
        if quantity <= 0:
            return taken
        for entry in SlotItem.returned_index.query(product_id):
            if (entry.pk, entry.sk) in skip:
                continue
            try:
                slot = SlotItem.get(
                    entry.pk, entry.sk, consistent_read=True, attributes_to_get=["fingerprint"]
                )
            except SlotItem.DoesNotExist:
                continue
            if _code_of(slot.fingerprint) in have:
                continue
            try:
                SlotItem(pk=entry.pk, sk=entry.sk).update(
                    actions=[
                        SlotItem.holder.set(order_id),
                        SlotItem.returned_key.remove(),
                        SlotItem.held_key.set(held_partition(entry.pk, entry.sk, settings().held_shards)),
                        SlotItem.held_at.set(int(time.time())),
                    ],
                    condition=((SlotItem.holder == RETURNED) & SlotItem.returned_key.exists())
                    | ((SlotItem.holder == order_id) & SlotItem.order_id.does_not_exist()),
                )
            except UpdateError as error:
                if condition_failed(error):
                    continue
                raise
            have.add(_code_of(slot.fingerprint))
            taken.append(SlotRange(shard=int(entry.pk.rsplit("#", 1)[1]), start=int(entry.sk), count=1))
            if len(taken) == quantity:
                break
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

    def _take(self, product_id: str, shard: int, quantity: int, order_id: str) -> SlotRange | None:
        """Hand out `quantity` slots from a shard's cursor and name `order_id` in each (`_stamp`).

        Safe to repeat: the write records a token and refuses a second time, so an SDK retry after a
        lost answer finds its first attempt (`last_claim`, `last_end`) instead of taking more slots."""
        if quantity <= 0:
            return None
        token = uuid.uuid4().hex
        item = ShardItem(*_shard_item(product_id, shard))
        try:
            item.update(
                actions=[
                    ShardItem.cursor.add(quantity),
                    ShardItem.remaining.add(-quantity),
                    ShardItem.last_claim.set(token),
                    ShardItem.last_end.set(ShardItem.cursor + quantity),
                    ShardItem.audit_due.set(audit_partition(product_id, shard, settings().audit_shards)),
                ],
                condition=(ShardItem.remaining >= quantity)
                & (ShardItem.last_claim.does_not_exist() | (ShardItem.last_claim != token)),
            )
            end = int(item.cursor)
        except UpdateError as error:
            if not condition_failed(error):
                raise
            if not retried(error):
                return None  # refused at its first attempt: no stock here (no read on a sold-out shard)
            # Refused on a retry: no stock here, or the first attempt applied and only its answer was lost.
            seen = ShardItem.get(*_shard_item(product_id, shard), consistent_read=True)
            if seen.last_claim != token:
                return None  # (a later claim may have overwritten the token: then the slots are burned)
            end = int(seen.last_end)
        piece = SlotRange(shard=shard, start=end - quantity, count=quantity)
        checkpoint("claim:after-take")
        if self._stamp(product_id, piece, order_id):
            return piece
        self.release(product_id, [piece], order_id)
        return None

    def _stamp(self, product_id: str, piece: SlotRange, order_id: str) -> bool:
        """Name the claimant in each slot of a fresh claim, so that reconciliation asks the order itself
        (a strongly consistent read), never an index, whether the slot is still wanted.

        False if reconciliation returned one of them first (a claimant stalled past the grace period):
        the caller gives the claim back. Safe to repeat."""
        at = int(time.time())
        for slot in piece.slots():
            try:
                SlotItem(pk=_slot_pk(product_id, piece.shard), sk=_slot_sk(slot)).update(
                    actions=[SlotItem.holder.set(order_id), SlotItem.held_at.set(at)],
                    condition=SlotItem.fingerprint.exists()
                    & SlotItem.order_id.does_not_exist()
                    & (SlotItem.holder.does_not_exist() | (SlotItem.holder == order_id)),
                )
            except UpdateError as error:
                if condition_failed(error):
                    return False
                raise
        return True

    def _untake(self, product_id: str, piece: SlotRange, order_id: str) -> bool:
        """Wind a fresh claim back while it is still its shard's last one (False if it is not).

        Never below the burned-slot audit's snapshot: slots it has seen handed out must not be
        handed out again from the cursor (the audit could return them to the pool as well).
        The slots lose their claimant's name first, so the cursor can hand them out again.
        Safe to repeat: a retry whose first attempt applied finds its token."""
        for slot in piece.slots():
            try:
                SlotItem(pk=_slot_pk(product_id, piece.shard), sk=_slot_sk(slot)).update(
                    actions=[SlotItem.holder.remove(), SlotItem.held_at.remove()],
                    condition=(SlotItem.holder == order_id) & SlotItem.order_id.does_not_exist(),
                )
            except UpdateError as error:
                if not condition_failed(error):
                    raise
        token = f"back:{uuid.uuid4().hex}"
        try:
            ShardItem(*_shard_item(product_id, piece.shard)).update(
                actions=[
                    ShardItem.cursor.add(-piece.count),
                    ShardItem.remaining.add(piece.count),
                    ShardItem.last_claim.set(token),
                ],
                condition=(ShardItem.cursor == piece.start + piece.count)
                & (ShardItem.mark_cursor.does_not_exist() | (ShardItem.mark_cursor <= piece.start)),
            )
        except UpdateError as error:
            if not condition_failed(error):
                raise
            if not retried(error):
                return False
            seen = ShardItem.get(*_shard_item(product_id, piece.shard), consistent_read=True)
            return seen.last_claim == token
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
            filled = {_shard_of(item): int(item.filled) for item in items}
            prints = {c.line: copy_fingerprints(cipher.fingerprint(c.code), copies) for c in codes}
            known = self._committed_fingerprints(
                product_id, {fp for line in prints.values() for fp in line}, filled
            )
            fresh = [new for new in codes if not any(fp in known for fp in prints[new.line])]
            elsewhere = self._own(product_id, {new.line: prints[new.line][0] for new in fresh}, cipher)
            added, duplicates, wanted = 0, [], []
            for new in codes:
                sources = {known[fp] for fp in prints[new.line] if fp in known}
                if (sources and (source is None or sources != {source})) or new.line in elsewhere:
                    duplicates.append(new.line)
                    continue
                added += 1
                wanted += [(new, copy, fp) for copy, fp in enumerate(prints[new.line]) if fp not in known]
            placed = self._place(product_id, wanted, filled, cipher, source)
            self._commit(product_id, placed, filled)
            return StoreResult(added=added, duplicate_lines=duplicates)
        finally:
            self._release_lease(product_id, owner)

    def _own(self, product_id: str, fingerprints: dict[int, str], cipher: CodeCipher) -> set[int]:
        """Register each new code (line -> fingerprint) as this product's, merchant-wide; the lines whose
        code another product of the merchant holds (refused: two products would sell it twice).

        Under the merchant's registry lease (read, decide, write: moments), so two products' imports
        cannot both take one code, and in batches: 25 codes a write. An entry whose product no longer
        holds the code (removed, or a crashed import) is taken over. A retry finds its own entries."""
        lease = (f"registry#{cipher.fingerprint('code-registry')}", "lease")  # one per merchant
        owner = self._wait_for_lease(lease)
        try:
            wanted = {fingerprint: line for line, fingerprint in fingerprints.items()}
            keys = [(f"code#{fingerprint}", "owner") for fingerprint in wanted]
            entries = {item.pk.removeprefix("code#"): item for item in _get_all(CodeOwnerItem, keys)}
            refused: set[int] = set()
            mine: list[str] = []
            for fingerprint, line in wanted.items():
                entry = entries.get(fingerprint)
                if entry is not None and entry.product == product_id:
                    continue
                if entry is not None and self._holds(str(entry.product), fingerprint):
                    refused.add(line)
                else:
                    mine.append(fingerprint)
            with CodeOwnerItem.batch_write() as batch:
                for fingerprint in mine:
                    batch.save(CodeOwnerItem(f"code#{fingerprint}", "owner", product=product_id))
            return refused
        finally:
            self._release(lease, owner)

    def _holds(self, product_id: str, fingerprint: str) -> bool:
        """Whether a product holds a code (its first copy) in a counted slot, or may be importing it."""
        try:
            lease = ImportLeaseItem.get(product_id, "import-lease", consistent_read=True)
            if int(lease.until) >= int(time.time()):
                return True  # mid-import: its slots may not be counted yet
        except ImportLeaseItem.DoesNotExist:
            pass
        try:
            pointer = FingerprintItem.get(_fingerprint_pk(product_id), fingerprint, consistent_read=True)
            shard = ShardItem.get(*_shard_item(product_id, int(pointer.shard)), consistent_read=True)
            slot = SlotItem.get(
                _slot_pk(product_id, int(pointer.shard)), _slot_sk(int(pointer.slot)), consistent_read=True
            )
        except (FingerprintItem.DoesNotExist, ShardItem.DoesNotExist, SlotItem.DoesNotExist):
            return False
        return int(pointer.slot) < int(shard.filled) and slot.fingerprint == fingerprint

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
                ShardItem(*_shard_item(product_id, shard)).update(
                    actions=[
                        ShardItem.filled.add(count),
                        ShardItem.remaining.add(count),
                        ShardItem.audit_due.set(audit_partition(product_id, shard, settings().audit_shards)),
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
                _shard_of(item): item for item in self._shards(product_id, shards, consistent=True)
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
            if not condition_failed(error):
                raise
            # Refused on a retry: the first attempt may have applied, its answer lost (under the
            # lease, no one else removes from this product meanwhile).
            if not retried(error):
                return False
            seen = SlotItem.get(_slot_pk(product_id, shard), _slot_sk(slot), consistent_read=True)
            if seen.holder != REMOVED or seen.sold_key != _removed_key(product_id):
                return False
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
            item = ShardItem.get(*_shard_item(product_id, shard), consistent_read=True)
            for slot in [n for n in targets if n < int(item.cursor)]:
                late.append(targets.pop(slot))
            if not targets:
                break
            plan = RemovalPlan(shard=shard, before=int(item.filled), targets=sorted(targets))
            RemovalItem(pk=_removal_pk(product_id), sk=_shard_key(shard), plan=plan.model_dump_json()).save()
            token = uuid.uuid4().hex
            try:
                # One write settles the counts: the shard ends at `after`, and until the codes have
                # moved the cursor can hand out only the slots below the first target. Its token lets
                # an SDK retry after a lost answer find it applied (a refusal would leave it fenced).
                item.update(
                    actions=[
                        ShardItem.last_removal.set(token),
                        ShardItem.filled.add(-len(plan.targets)),
                        ShardItem.remaining.add(-(plan.before - plan.base)),
                        ShardItem.fenced.set(plan.after - plan.base),
                        ShardItem.removed.add(len(plan.targets)),
                        ShardItem.audit_due.set(audit_partition(product_id, shard, settings().audit_shards)),
                    ],
                    condition=(ShardItem.filled == plan.before)
                    & (ShardItem.cursor <= plan.base)
                    & (ShardItem.fenced.does_not_exist() | (ShardItem.fenced == 0)),
                )
            except UpdateError as error:
                if not condition_failed(error):
                    raise
                shard_key = _shard_item(product_id, shard)
                if (
                    not retried(error)
                    or ShardItem.get(*shard_key, consistent_read=True).last_removal != token
                ):
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
        item = ShardItem.get(*_shard_item(product_id, plan.shard), consistent_read=True)
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
                    shard = _shard_of(item)
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
        owner = self._take_lease((product_id, "import-lease"), IMPORT_LEASE_SECONDS)
        if owner is None:
            raise ImportInProgress(
                "another stock import, removal or export for this product is running; retry when it ends"
            )
        return owner

    def _release_lease(self, product_id: str, owner: str) -> None:
        self._release((product_id, "import-lease"), owner)

    def _wait_for_lease(self, key: tuple[str, str]) -> str:
        """A short lease (the merchant's code registry): wait for it a few seconds, then 409."""
        deadline = time.monotonic() + REGISTRY_WAIT_SECONDS
        while (owner := self._take_lease(key, REGISTRY_LEASE_SECONDS)) is None:
            if time.monotonic() > deadline:
                raise ImportInProgress("another import of this merchant's codes is registering them; retry")
            time.sleep(0.05)  # held for moments by another import; polled until the deadline
        return owner

    @staticmethod
    def _take_lease(key: tuple[str, str], seconds: int) -> str | None:
        """Hold a lease for `seconds`; None if another holds it. Safe to repeat: a retry after a lost
        answer finds its own token."""
        owner, now = uuid.uuid4().hex, int(time.time())
        try:
            ImportLeaseItem(*key, owner=owner, until=now + seconds).save(
                condition=ImportLeaseItem.pk.does_not_exist()
                | (ImportLeaseItem.until < now)
                | (ImportLeaseItem.owner == owner)
            )
        except PutError as error:
            if condition_failed(error):
                return None
            raise
        return owner

    @staticmethod
    def _release(key: tuple[str, str], owner: str) -> None:
        try:
            ImportLeaseItem(*key).delete(condition=ImportLeaseItem.owner == owner)
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
