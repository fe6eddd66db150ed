"""Allocation, the hot path: a checkout claims slots, a late payment claims again, an order that
will not deliver releases them, a delivery binds them and reads their codes (docs/allocation.md).

A claim takes q slots from a shard's cursor with one conditional UpdateItem (`remaining >= q`),
then names its order in each slot, so reconciliation asks that order, never an index, whether the
slot is still wanted. Every write is conditional and safe to repeat after a lost answer.
"""

import random
import time
import uuid
from collections.abc import Sequence

from pynamodb.exceptions import UpdateError

from shared.codes import CodeCipher, slot_identity
from shared.errors import IntegrityViolation, OutOfStock
from shared.faults import checkpoint
from shared.orders import SlotRange
from shared.products import StockLevels
from shared.settings import settings
from shared.store.errors import condition_failed, retried
from shared.store.shards import audit_partition, held_partition
from shared.store.stock.items import (
    RETURNED,
    ShardItem,
    SlotItem,
    code_of,
    get_all,
    read_shards,
    removed_key,
    shard_item_key,
    shard_number,
    slot_pk,
    slot_sk,
    use_stock_table,
)


class Allocation:
    """A product's slots as orders take, give back and bind them."""

    def __init__(self) -> None:
        use_stock_table()

    def create_shards(self, product_id: str, shards: int) -> None:
        for shard in range(shards):
            ShardItem(*shard_item_key(product_id, shard), filled=0, cursor=0, remaining=0).save(
                condition=ShardItem.pk.does_not_exist()
            )

    def available(self, product_id: str, shards: int) -> int:
        fresh = sum(int(item.remaining) + int(item.fenced or 0) for item in read_shards(product_id, shards))
        return fresh + SlotItem.returned_index.count(product_id)

    def levels(self, product_id: str, shards: int) -> StockLevels:
        items = read_shards(product_id, shards)
        sold = sum(SlotItem.sold_index.count(f"{product_id}#{k}") for k in range(shards))
        removed = SlotItem.sold_index.count(removed_key(product_id))
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
        items = sorted(read_shards(product_id, shards), key=lambda item: -int(item.remaining))
        spread = sum(int(item.remaining) for item in items)
        if spread < quantity and spread + SlotItem.returned_index.count(product_id) < quantity:
            raise OutOfStock("not enough stock left for this quantity")  # sold out: nothing taken
        fresh: list[SlotRange] = []
        for item in items:
            needed = quantity - sum(p.count for p in fresh)
            taken = self._take(product_id, shard_number(item), min(needed, int(item.remaining)), order_id)
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
        keys = [(slot_pk(product_id, p.shard), slot_sk(n)) for p in pieces for n in p.slots()]
        if not keys:
            return set()
        return {code_of(s.fingerprint) for s in get_all(SlotItem, keys, ["pk", "sk", "fingerprint"])}

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
        skip = {(slot_pk(product_id, r.shard), slot_sk(s)) for r in avoid for s in r.slots()}
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
            if code_of(slot.fingerprint) in have:
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
            have.add(code_of(slot.fingerprint))
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
                    SlotItem(pk=slot_pk(product_id, reserved.shard), sk=slot_sk(slot)).update(
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
        item = ShardItem(*shard_item_key(product_id, shard))
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
            seen = ShardItem.get(*shard_item_key(product_id, shard), consistent_read=True)
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
                SlotItem(pk=slot_pk(product_id, piece.shard), sk=slot_sk(slot)).update(
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
                SlotItem(pk=slot_pk(product_id, piece.shard), sk=slot_sk(slot)).update(
                    actions=[SlotItem.holder.remove(), SlotItem.held_at.remove()],
                    condition=(SlotItem.holder == order_id) & SlotItem.order_id.does_not_exist(),
                )
            except UpdateError as error:
                if not condition_failed(error):
                    raise
        token = f"back:{uuid.uuid4().hex}"
        try:
            ShardItem(*shard_item_key(product_id, piece.shard)).update(
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
            seen = ShardItem.get(*shard_item_key(product_id, piece.shard), consistent_read=True)
            return seen.last_claim == token
        return True

    def bind(self, product_id: str, ranges: Sequence[SlotRange], order_id: str) -> None:
        """Bind each reserved slot to the order; a slot already bound to it is left as is (retry)."""
        for reserved in ranges:
            for slot in reserved.slots():
                item = SlotItem(pk=slot_pk(product_id, reserved.shard), sk=slot_sk(slot))
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
                [(slot_pk(product_id, shard), slot_sk(slot)) for shard, slot in keys], consistent_read=True
            )
        }
        codes: list[str] = []
        for shard, slot in keys:
            item = found.get((slot_pk(product_id, shard), slot_sk(slot)))
            if item is None or item.order_id != order_id:
                raise IntegrityViolation(f"slot {shard}/{slot} read for an order it is not bound to")
            codes.append(cipher.decrypt(item.sealed_code, slot_identity(product_id, shard, slot)))
        return codes
