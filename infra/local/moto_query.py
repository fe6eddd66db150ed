"""moto's DynamoDB `Query` at the cost of the partition it names, as on DynamoDB.

moto 5.2.6 (`moto/dynamodb/models/table.py`, `Table.query`) finds a query's candidates by walking
every item of the table (`self.all_items()`, sorted), for a query on the table and on an index
alike, so the local runtime slowed with its data (reconcile at 100,000 orders: 26.8 s). This patch
hands moto's own `Table.query` only the candidates: the items of the named partition, or for an
index on another attribute the items whose value of it is the one asked (a posting list per
attribute, built on the first query of such an index). They come in the order `all_items()` would
give them, and moto's code then checks the key, sorts, pages, filters, projects and counts as
always, so every answer is moto's own (tests/integration/test_moto_query.py compares the two).

A posting list is kept current by the paths every write goes through: `Table.put_item` (put, batch,
transaction, PartiQL, the first write of an update), `Table.delete_item`, and
`DynamoDBBackend.update_item`, which changes an item in place. An outdated entry can only add a
candidate, which moto's own key check drops. Another moto version, whose internals may differ,
gets no patch (one line on stderr) and a failing test.
"""

import sys
import threading
from collections.abc import Iterator
from typing import Any

import moto
from moto.dynamodb.exceptions import ResourceNotFoundException
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table

KNOWN_MOTO = "5.2.6"  # the moto whose Table.query and write paths this was written against

Key = tuple[DynamoType, DynamoType | None]  # an item's primary key: (hash, range or None)

MOTO: dict[str, Any] = {  # moto's own: the patch calls them, the tests compare with them
    "query": Table.query,
    "all_items": Table.all_items,
    "put_item": Table.put_item,
    "delete_item": Table.delete_item,
    "update_item": DynamoDBBackend.update_item,
}
_installed = False
_lock = threading.RLock()
_presented = threading.local()  # (table, candidates) that one query on this thread sees as its table


def mismatch() -> str | None:
    """Why this moto cannot be patched, or None."""
    if moto.__version__ != KNOWN_MOTO:
        return f"moto {moto.__version__} is not {KNOWN_MOTO}, which infra/local/moto_query.py knows"
    return None


def install() -> bool:
    """Patch moto's query path (idempotent); False, with one line on stderr, if moto is not the one known."""
    global _installed
    if _installed:
        return True
    reason = mismatch()
    if reason:
        print(f"miaofa: {reason}; local queries walk the whole table", file=sys.stderr)
        return False
    Table.query = _query  # type: ignore[method-assign]
    Table.all_items = _all_items  # type: ignore[method-assign]
    Table.put_item = _put_item  # type: ignore[method-assign]
    Table.delete_item = _delete_item  # type: ignore[method-assign]
    DynamoDBBackend.update_item = _update_item  # type: ignore[method-assign]
    _installed = True
    return True


def _item_at(table: Table, key: Key) -> Item | None:
    hash_key, range_key = key
    found = table.items.get(hash_key)  # .get: `items` is a defaultdict, indexing would add a partition
    if table.range_key_attr is not None:
        found = found.get(range_key) if isinstance(found, dict) else None
    return found if isinstance(found, Item) else None


def _every_item(table: Table) -> Iterator[Item]:
    for partition in list(table.items.values()):
        yield from (partition.values() if isinstance(partition, dict) else [partition])


def _value(item: Item | None, attribute: str) -> tuple[str, Any] | None:
    """A snapshot of the item's attribute, comparable as moto compares: a DynamoType can change in place."""
    value = item.attrs.get(attribute) if item is not None else None
    return None if value is None else (value.type, value.cast_value)


class _Postings:
    """Where each value of one attribute is in one table: value -> primary keys, and back."""

    def __init__(self, table: Table, attribute: str) -> None:
        self.attribute = attribute
        self.keys: dict[Any, set[Key]] = {}
        self.value_of: dict[Key, Any] = {}
        self.anywhere: set[Key] = set()  # values that cannot be looked up (maps, sets): always candidates
        for item in _every_item(table):
            self.refresh((item.hash_key, item.range_key), item)

    def refresh(self, key: Key, item: Item | None) -> None:
        old = self.value_of.pop(key, None)
        if old is not None:
            self.keys[old].discard(key)
            if not self.keys[old]:
                del self.keys[old]
        self.anywhere.discard(key)
        value = _value(item, self.attribute)
        if value is None:
            return
        try:
            self.keys.setdefault(value, set()).add(key)
        except TypeError:
            self.anywhere.add(key)
            return
        self.value_of[key] = value

    def holding(self, value: tuple[str, Any]) -> set[Key]:
        return self.keys.get(value, set()) | self.anywhere


def _postings(table: Table) -> dict[str, _Postings]:
    """The table's posting lists by attribute; on the table, so moto's copies of it carry them."""
    return table.__dict__.setdefault("_miaofa_postings", {})


def _refresh(table: Table, key: Key) -> None:
    with _lock:
        postings = _postings(table).values()
        if postings:
            item = _item_at(table, key)
            for posting in postings:
                posting.refresh(key, item)


def _candidates(
    table: Table, hash_key: DynamoType | None, index_name: str | None, conditions: list[Any] | None
) -> list[Item] | None:
    """The items a query can match, in `all_items()` order; None when only moto's walk will do."""
    if index_name is None:
        attribute, value = table.hash_key_attr, hash_key
    else:
        index = {i.name: i for i in table.all_indexes()}.get(index_name)
        hashes = [k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"] if index else []
        if len(hashes) != 1 or [name for name, _ in conditions or []] != hashes:
            return None  # an unknown index (moto's error), a multi-attribute key: moto's way
        attribute, value = hashes[0], conditions[0][1]  # type: ignore[index]
    if value is None:
        return None
    try:
        if attribute == table.hash_key_attr:
            partition = table.items.get(value)
            found = list(partition.values()) if isinstance(partition, dict) else [partition]
        else:
            with _lock:
                postings = _postings(table)
                if attribute not in postings:
                    postings[attribute] = _Postings(table, attribute)
                keys = postings[attribute].holding((value.type, value.cast_value))
                found = [_item_at(table, key) for key in keys]
    except TypeError:  # a value that cannot be a key: moto's walk answers (or refuses) it
        return None
    items = [item for item in found if isinstance(item, Item)]
    items.sort(key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key)  # all_items()'s order
    return items


def _query(
    self: Table,
    hash_key: DynamoType | None,
    range_comparison: str | None,
    range_objs: list[DynamoType],
    limit: int,
    exclusive_start_key: dict[str, Any],
    scan_index_forward: bool,
    projection_expressions: list[list[str]] | None,
    index_name: str | None = None,
    consistent_read: bool = False,
    filter_expression: Any = None,
    hash_key_conditions: list[tuple[str, DynamoType]] | None = None,
    range_key_conditions: list[tuple[str, str, list[DynamoType]]] | None = None,
    **filter_kwargs: Any,
) -> tuple[list[Item], int, dict[str, Any] | None]:
    """moto's `Table.query`, over the candidates instead of the whole table."""
    candidates = _candidates(self, hash_key, index_name, hash_key_conditions)
    _presented.view = None if candidates is None else (self, candidates)
    try:
        return MOTO["query"](
            self,
            hash_key,
            range_comparison,
            range_objs,
            limit,
            exclusive_start_key,
            scan_index_forward,
            projection_expressions,
            index_name,
            consistent_read,
            filter_expression,
            hash_key_conditions=hash_key_conditions,
            range_key_conditions=range_key_conditions,
            **filter_kwargs,
        )
    finally:
        _presented.view = None


def _all_items(self: Table) -> list[Item]:
    view = getattr(_presented, "view", None)
    if view is not None and view[0] is self:
        return list(view[1])
    return MOTO["all_items"](self)


def _put_item(self: Table, *args: Any, **kwargs: Any) -> Item:
    item: Item = MOTO["put_item"](self, *args, **kwargs)
    _refresh(self, (item.hash_key, item.range_key))
    return item


def _delete_item(self: Table, hash_key: DynamoType, range_key: DynamoType | None) -> Item | None:
    item: Item | None = MOTO["delete_item"](self, hash_key, range_key)
    _refresh(self, (hash_key, range_key if self.range_key_attr is not None else None))
    return item


def _update_item(
    self: DynamoDBBackend, table_name: str, key: dict[str, Any], *args: Any, **kwargs: Any
) -> Item:
    try:
        return MOTO["update_item"](self, table_name, key, *args, **kwargs)
    finally:  # also after a failure: moto may have changed the item before it
        try:
            table = self.get_table(table_name)
        except ResourceNotFoundException:
            table = None
        if table is not None:
            try:
                range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
                _refresh(table, (DynamoType(key[table.hash_key_attr]), range_key))
            except (KeyError, TypeError, AttributeError):  # a key of another shape: rebuild when next asked
                with _lock:
                    _postings(table).clear()
