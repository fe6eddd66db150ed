"""Taking codes out of a product's stock (`StockChanges.remove_codes` decides which).

A fresh code (not handed out yet) leaves its shard: the codes of the shard's last slots move down
into the removed ones' slots and `filled` shrinks, so the cursor never meets a gap. A removal plans
each shard first (`RemovalItem`), so whoever takes the product's lease next finishes one that
crashed part-way. A code in the returned pool is marked removed where it lies.
"""

import uuid

from pydantic import BaseModel
from pynamodb.exceptions import UpdateError

from shared.codes import CodeCipher, slot_identity
from shared.errors import IntegrityViolation
from shared.settings import settings
from shared.store.errors import condition_failed, retried
from shared.store.shards import audit_partition
from shared.store.stock.items import (
    REMOVED,
    RETURNED,
    FingerprintItem,
    RemovalItem,
    ShardItem,
    SlotItem,
    fingerprint_pk,
    removal_pk,
    removed_key,
    shard_item_key,
    shard_key,
    slot_pk,
    slot_sk,
)

REMOVAL_ATTEMPTS = 50  # per shard; an attempt fails only when a checkout took a slot meanwhile


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


class StockRemoval:
    """Removals from one product's shards and returned pool; run under the product's import lease."""

    def remove_returned(self, product_id: str, shard: int, slot: int, fingerprint: str) -> bool:
        """Remove a code from the returned pool, where it lies; False if a checkout took it first.

        The slot keeps no code; `sold_key = <product>#removed` counts it (levels, audit) in the same write."""
        try:
            SlotItem(pk=slot_pk(product_id, shard), sk=slot_sk(slot)).update(
                actions=[
                    SlotItem.holder.set(REMOVED),
                    SlotItem.fingerprint.set(REMOVED),
                    SlotItem.sold_key.set(removed_key(product_id)),
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
            seen = SlotItem.get(slot_pk(product_id, shard), slot_sk(slot), consistent_read=True)
            if seen.holder != REMOVED or seen.sold_key != removed_key(product_id):
                return False
        FingerprintItem(pk=fingerprint_pk(product_id), sk=fingerprint).delete()
        return True

    def remove_fresh(
        self, product_id: str, shard: int, targets: dict[int, int], cipher: CodeCipher
    ) -> tuple[list[int], list[int]]:
        """Remove fresh slots (slot -> line) from a shard: (lines removed, lines handed out meanwhile)."""
        late: list[int] = []
        targets = dict(targets)
        for _ in range(REMOVAL_ATTEMPTS):
            if not targets:
                break
            item = ShardItem.get(*shard_item_key(product_id, shard), consistent_read=True)
            for slot in [n for n in targets if n < int(item.cursor)]:
                late.append(targets.pop(slot))
            if not targets:
                break
            plan = RemovalPlan(shard=shard, before=int(item.filled), targets=sorted(targets))
            RemovalItem(pk=removal_pk(product_id), sk=shard_key(shard), plan=plan.model_dump_json()).save()
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
                item_key = shard_item_key(product_id, shard)
                if not retried(error) or ShardItem.get(*item_key, consistent_read=True).last_removal != token:
                    continue  # a checkout took slots meanwhile: read again, without the ones it took
            self._finish_removal(product_id, plan, cipher)
            return sorted(targets.values()), late
        RemovalItem(pk=removal_pk(product_id), sk=shard_key(shard)).delete()
        if targets:  # each failed attempt drops the slots a checkout took, so this means a bug
            raise IntegrityViolation(f"shard {shard} of {product_id} kept refusing its removal")
        return [], late

    def finish_removals(self, product_id: str, shards: int, cipher: CodeCipher) -> None:
        """Finish any removal that crashed part-way (run by every holder of the lease, first).
        By key, one per shard: a Query would cost the embedded AWS a scan of the whole table."""
        keys = [(removal_pk(product_id), shard_key(k)) for k in range(shards)]
        for pending in RemovalItem.batch_get(keys, consistent_read=True):
            self._finish_removal(product_id, RemovalPlan.model_validate_json(pending.plan), cipher)

    def _finish_removal(self, product_id: str, plan: RemovalPlan, cipher: CodeCipher) -> None:
        """Move the kept codes into the removed slots, lift the fence, drop the shard's old last slots.

        Idempotent: the kept codes stay in the old last slots until the fence is lifted."""
        item = ShardItem.get(*shard_item_key(product_id, plan.shard), consistent_read=True)
        fenced = int(item.fenced or 0)
        if int(item.filled) == plan.before and not fenced:  # the shrink never happened
            RemovalItem(pk=removal_pk(product_id), sk=shard_key(plan.shard)).delete()
            return
        if int(item.filled) != plan.after:
            raise IntegrityViolation(
                f"shard {plan.shard} of {product_id} has {item.filled} slots; its removal planned {plan.after}"
            )
        pk = slot_pk(product_id, plan.shard)
        if fenced:
            moves = plan.moves
            kept = {
                int(s.sk): s
                for s in SlotItem.batch_get([(pk, slot_sk(a)) for a, _ in moves], consistent_read=True)
            }
            pointers = {
                p.sk: p
                for p in FingerprintItem.batch_get(
                    [(fingerprint_pk(product_id), kept[a].fingerprint) for a, _ in moves],
                    consistent_read=True,
                )
            }
            with SlotItem.batch_write() as slots, FingerprintItem.batch_write() as prints:
                for old, new in moves:
                    code = cipher.decrypt(kept[old].sealed_code, slot_identity(product_id, plan.shard, old))
                    fingerprint = kept[old].fingerprint
                    sealed = cipher.encrypt(code, slot_identity(product_id, plan.shard, new))
                    slots.save(SlotItem(pk=pk, sk=slot_sk(new), sealed_code=sealed, fingerprint=fingerprint))
                    source = pointers[fingerprint].source if fingerprint in pointers else None
                    prints.save(
                        FingerprintItem(
                            pk=fingerprint_pk(product_id),
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
                slots.delete(SlotItem(pk=pk, sk=slot_sk(slot)))
        RemovalItem(pk=removal_pk(product_id), sk=shard_key(plan.shard)).delete()
