"""The stock table: its items, their indexes and key layout, and the reads every stock job shares.

Slots of a product's shard live under `<product>#slots#<shard>`, one item a slot; each shard is
counted by its own shard item (`<product>#shard#NNNN`); a code's keyed hash points at its slot
(`<product>#fingerprints`). How allocation, stock changes and reconciliation use them: the package
docstring (shared/store/stock/__init__.py) and docs/allocation.md.
"""

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

from pydantic import BaseModel
from pynamodb.attributes import BinaryAttribute, ListAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from shared.settings import settings

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
    last_removal = UnicodeAttribute(null=True)  # the same, for a removal's shrink (`remove_fresh`)
    # Stock removal (`StockChanges.remove_codes`): the slots [filled - fenced, filled) wait for a code
    # moved into them and cannot be handed out meanwhile (`remaining` leaves them out); `removed`
    # counts the codes taken out of this shard's fresh slots.
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
    source = UnicodeAttribute(null=True)  # the import chunk that added the code (`StockChanges.add_codes`)


class AuditStateItem(_StockModel):
    """The stock audit's place in one shard (`pk=<product>`, `sk=audit#NNNN`): every slot below
    `upto` was found where it belongs, except the `watch` ones, still held, that it reads again."""

    upto = NumberAttribute(default=0)
    watch = ListAttribute(of=NumberAttribute, default=list)


class CodeOwnerItem(_StockModel):
    """Which of a merchant's products a code is in (`pk=code#<keyed hash>`, `sk=owner`): the hash key is
    the merchant's own, so this is one namespace per merchant, and a code is in one product at most.
    Written only under the merchant's registry lease (`StockChanges._own`)."""

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
    lease next finishes a removal that crashed part-way (`StockRemoval.finish_removals`)."""

    plan = UnicodeAttribute()  # RemovalPlan as JSON


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


class ExportPage(BaseModel):
    codes: list[str]
    next: str | None  # where the next page starts (opaque), None after the last


def shard_key(shard: int) -> str:
    return f"shard#{shard:04d}"


def shard_item_key(product_id: str, shard: int) -> tuple[str, str]:
    """A shard item's key: each shard is its own partition (one partition takes ~1,000 writes/s, so
    a product's S shards under one partition key would cap it there whatever S)."""
    return f"{product_id}#{shard_key(shard)}", "shard"


def shard_number(item: ShardItem) -> int:
    return int(item.pk.rsplit("#", 1)[1])


def product_of_shard(pk: str) -> str:
    return pk.rsplit("#shard#", 1)[0]


def slot_pk(product_id: str, shard: int) -> str:
    return f"{product_id}#slots#{shard}"


def slot_sk(slot: int) -> str:
    return f"{slot:012d}"


def fingerprint_pk(product_id: str) -> str:
    return f"{product_id}#fingerprints"


def chunk_key(product_id: str, import_id: str, chunk: int) -> tuple[str, str]:
    return f"{product_id}#imports", f"{import_id}#{chunk:07d}"


def code_of(fingerprint: str) -> str:
    """The code a copy's fingerprint stands for (`<hash>.n` -> `<hash>`)."""
    return fingerprint.split(".", 1)[0]


def copy_fingerprints(fingerprint: str, copies: int) -> list[str]:
    """The fingerprints of a code's copies (a reusable product sells each code `copies` times): copy 0
    under the code's own keyed hash, so a single-use product's stock is unchanged, copy n under `<hash>.n`."""
    return [fingerprint] + [f"{fingerprint}.{n}" for n in range(1, copies)]


def removal_pk(product_id: str) -> str:
    return f"{product_id}#removals"


def removed_key(product_id: str) -> str:
    return f"{product_id}#removed"


def use_stock_table() -> None:
    """Point every stock model at the stock table (each stock job does, when it is built)."""
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


def read_shards(product_id: str, shards: int, consistent: bool = False) -> list[ShardItem]:
    """A product's shard items, by key (one BatchGetItem), in shard order."""
    keys = [shard_item_key(product_id, k) for k in range(shards)]
    found = {shard_number(item): item for item in ShardItem.batch_get(keys, consistent_read=consistent)}
    return [found[k] for k in range(shards) if k in found]


def in_parallel(tasks: Sequence[Callable[[], Result]]) -> list[Result]:
    """Run independent tasks at once; their results in order (the first failure is raised once all end)."""
    if len(tasks) <= 1:
        return [task() for task in tasks]
    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(tasks))) as pool:
        futures = [pool.submit(task) for task in tasks]
        return [future.result() for future in futures]


def get_all(
    model: type[_Item], keys: Sequence[tuple[str, str]], attributes: list[str] | None = None
) -> list[_Item]:
    """Consistent BatchGetItem of many keys, groups of them at once."""
    groups = [keys[n : n + LOOKUP_GROUP] for n in range(0, len(keys), LOOKUP_GROUP)]
    found = in_parallel([partial(_get_group, model, group, attributes) for group in groups])
    return [item for part in found for item in part]


def _get_group(
    model: type[_Item], keys: Sequence[tuple[str, str]], attributes: list[str] | None
) -> list[_Item]:
    return list(model.batch_get(keys, consistent_read=True, attributes_to_get=attributes))
