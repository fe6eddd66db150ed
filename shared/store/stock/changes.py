"""The merchant's changes to a product's stock: resumable imports in chunks, removing unsold codes,
exporting them. Each runs under the product's import lease (`leases.py`) and first finishes any
removal that crashed part-way (`removal.py`); a chunk's answer is recorded once, so a retried chunk
answers the same.
"""

import base64
import json
import time
import zlib
from collections.abc import Sequence
from functools import partial

from pynamodb.exceptions import PutError, UpdateError

from shared.codes import CodeCipher, slot_identity
from shared.errors import BadInput, ImportInProgress, Invalid
from shared.faults import checkpoint
from shared.settings import settings
from shared.store.errors import condition_failed
from shared.store.shards import audit_partition
from shared.store.stock.items import (
    RETURNED,
    CodeOwnerItem,
    ExportPage,
    FingerprintItem,
    ImportChunkItem,
    NewCode,
    RemovalResult,
    ShardItem,
    SlotItem,
    StoreResult,
    chunk_key,
    copy_fingerprints,
    fingerprint_pk,
    get_all,
    in_parallel,
    read_shards,
    shard_item_key,
    shard_number,
    slot_pk,
    slot_sk,
    use_stock_table,
)
from shared.store.stock.leases import (
    acquire_import_lease,
    import_under_way,
    release_import_lease,
    release_lease,
    wait_for_lease,
)
from shared.store.stock.removal import StockRemoval


class StockChanges:
    """A product's stock as its merchant changes it: import, remove, export."""

    def __init__(self) -> None:
        use_stock_table()
        self._removal = StockRemoval()

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
        owner = acquire_import_lease(product_id)
        try:
            self._removal.finish_removals(product_id, shards, cipher)
            # Consistent: a stale `filled` would place new codes over counted (even sold) slots.
            items = read_shards(product_id, shards, consistent=True)
            filled = {shard_number(item): int(item.filled) for item in items}
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
            release_import_lease(product_id, owner)

    def _own(self, product_id: str, fingerprints: dict[int, str], cipher: CodeCipher) -> set[int]:
        """Register each new code (line -> fingerprint) as this product's, merchant-wide; the lines whose
        code another product of the merchant holds (refused: two products would sell it twice).

        Under the merchant's registry lease (read, decide, write: moments), so two products' imports
        cannot both take one code, and in batches: 25 codes a write. An entry whose product no longer
        holds the code (removed, or a crashed import) is taken over. A retry finds its own entries."""
        lease = (f"registry#{cipher.fingerprint('code-registry')}", "lease")  # one per merchant
        owner = wait_for_lease(lease)
        try:
            wanted = {fingerprint: line for line, fingerprint in fingerprints.items()}
            keys = [(f"code#{fingerprint}", "owner") for fingerprint in wanted]
            entries = {item.pk.removeprefix("code#"): item for item in get_all(CodeOwnerItem, keys)}
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
            release_lease(lease, owner)

    def _holds(self, product_id: str, fingerprint: str) -> bool:
        """Whether a product holds a code (its first copy) in a counted slot, or may be importing it."""
        if import_under_way(product_id):
            return True  # mid-import: its slots may not be counted yet
        try:
            pointer = FingerprintItem.get(fingerprint_pk(product_id), fingerprint, consistent_read=True)
            shard = ShardItem.get(*shard_item_key(product_id, int(pointer.shard)), consistent_read=True)
            slot = SlotItem.get(
                slot_pk(product_id, int(pointer.shard)), slot_sk(int(pointer.slot)), consistent_read=True
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
        keys = [(fingerprint_pk(product_id), fp) for fp in wanted]
        candidates = [
            item
            for item in FingerprintItem.batch_get(keys, consistent_read=True)
            if int(item.slot) < filled.get(int(item.shard), 0)
        ]
        slot_keys = [(slot_pk(product_id, int(c.shard)), slot_sk(int(c.slot))) for c in candidates]
        held = {
            (item.pk, item.sk, item.fingerprint)
            for item in SlotItem.batch_get(slot_keys, consistent_read=True)
        }
        return {
            c.sk: c.source
            for c in candidates
            if (slot_pk(product_id, int(c.shard)), slot_sk(int(c.slot)), c.sk) in held
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
                        pk=slot_pk(product_id, shard),
                        sk=slot_sk(slot),
                        sealed_code=sealed,
                        fingerprint=fingerprint,
                    )
                )
                prints.save(
                    FingerprintItem(
                        pk=fingerprint_pk(product_id), sk=fingerprint, shard=shard, slot=slot, source=source
                    )
                )
        return added

    def _commit(self, product_id: str, added: dict[int, int], filled: dict[int, int]) -> None:
        for shard, count in added.items():
            if count:
                ShardItem(*shard_item_key(product_id, shard)).update(
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
        pk, sk = chunk_key(product_id, import_id, chunk)
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
        pk, sk = chunk_key(product_id, import_id, chunk)
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
        bound codes stay. Every step is safe to crash after (`RemovalItem`, `StockRemoval.finish_removals`).
        A line counts as removed when any copy of its code was; as not available when copies of it
        are in stock but none could be removed."""
        owner = acquire_import_lease(product_id)
        try:
            self._removal.finish_removals(product_id, shards, cipher)
            prints = {c.line: copy_fingerprints(cipher.fingerprint(c.code), copies) for c in codes}
            located = self._locate(product_id, {fp for line in prints.values() for fp in line})
            shard_items = {
                shard_number(item): item for item in read_shards(product_id, shards, consistent=True)
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
                        done = self._removal.remove_returned(product_id, shard, slot, fingerprint)
                        (removed if done else kept).add(line)
                    else:
                        kept.add(line)
            # Shards share nothing, so they are removed from at once (a 10,000-code removal within
            # the API's 29 s).
            done = in_parallel(
                [
                    partial(self._removal.remove_fresh, product_id, shard, targets, cipher)
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
            release_import_lease(product_id, owner)

    def _locate(self, product_id: str, wanted: set[str]) -> dict[str, tuple[int, int, SlotItem]]:
        """Where each fingerprint's code is (shard, slot, the slot as read), if a slot holds it."""
        keys = [(fingerprint_pk(product_id), fp) for fp in wanted]
        pointers = get_all(FingerprintItem, keys)
        slot_keys = [(slot_pk(product_id, int(p.shard)), slot_sk(int(p.slot))) for p in pointers]
        # Without the sealed codes: a removal needs to know where each code is, never what it is.
        unsealed = ["pk", "sk", "fingerprint", "order_id", "holder"]
        slots = {(s.pk, s.sk): s for s in get_all(SlotItem, slot_keys, unsealed)}
        located: dict[str, tuple[int, int, SlotItem]] = {}
        for pointer in pointers:
            slot = slots.get((slot_pk(product_id, int(pointer.shard)), slot_sk(int(pointer.slot))))
            if slot is not None and slot.fingerprint == pointer.sk:
                located[pointer.sk] = (int(pointer.shard), int(pointer.slot), slot)
        return located

    # ---- exporting unsold codes
    def export_codes(
        self, product_id: str, shards: int, cipher: CodeCipher, start: str | None, limit: int
    ) -> ExportPage:
        """One page of the codes still available (fresh slots shard by shard, then the returned pool),
        decrypted. `start`: the previous page's `next`. Under the lease, so no removal is half-way."""
        position = _decode_position(start)
        owner = acquire_import_lease(product_id)
        try:
            self._removal.finish_removals(product_id, shards, cipher)
            codes: list[str] = []
            if position.get("pool") is None:
                for item in read_shards(product_id, shards, consistent=True):
                    shard = shard_number(item)
                    if shard < position.get("shard", 0):
                        continue
                    after = position.get("slot", -1) if shard == position.get("shard") else -1
                    low, high = max(int(item.cursor), after + 1), int(item.filled) - 1
                    if low > high:
                        continue
                    for slot in SlotItem.query(
                        slot_pk(product_id, shard),
                        SlotItem.sk.between(slot_sk(low), slot_sk(high)),
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
            release_import_lease(product_id, owner)


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
