"""Leases in the stock table: a product's import lease (one import, removal or export of its stock at
a time) and the merchant's code registry lease (held for moments by each import chunk)."""

import time
import uuid

from pynamodb.exceptions import DeleteError, PutError

from shared.errors import ImportInProgress
from shared.store.errors import condition_failed
from shared.store.stock.items import ImportLeaseItem

IMPORT_LEASE_SECONDS = 300
REGISTRY_LEASE_SECONDS = 30  # the merchant's code registry: held for one chunk's read and write
REGISTRY_WAIT_SECONDS = 10


def acquire_import_lease(product_id: str) -> str:
    owner = take_lease((product_id, "import-lease"), IMPORT_LEASE_SECONDS)
    if owner is None:
        raise ImportInProgress(
            "another stock import, removal or export for this product is running; retry when it ends"
        )
    return owner


def release_import_lease(product_id: str, owner: str) -> None:
    release_lease((product_id, "import-lease"), owner)


def import_under_way(product_id: str) -> bool:
    """Whether someone holds the product's import lease now (its slots may not be counted yet)."""
    try:
        lease = ImportLeaseItem.get(product_id, "import-lease", consistent_read=True)
    except ImportLeaseItem.DoesNotExist:
        return False
    return int(lease.until) >= int(time.time())


def wait_for_lease(key: tuple[str, str]) -> str:
    """A short lease (the merchant's code registry): wait for it a few seconds, then 409."""
    deadline = time.monotonic() + REGISTRY_WAIT_SECONDS
    while (owner := take_lease(key, REGISTRY_LEASE_SECONDS)) is None:
        if time.monotonic() > deadline:
            raise ImportInProgress("another import of this merchant's codes is registering them; retry")
        time.sleep(0.05)  # held for moments by another import; polled until the deadline
    return owner


def take_lease(key: tuple[str, str], seconds: int) -> str | None:
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


def release_lease(key: tuple[str, str], owner: str) -> None:
    try:
        ImportLeaseItem(*key).delete(condition=ImportLeaseItem.owner == owner)
    except DeleteError as error:
        if not condition_failed(error):
            raise
