"""Merchant use case: set the shop's settings, against the version the merchant read (optimistic
concurrency), or over whatever is there when it sends none (the last write wins)."""

from typing import Protocol

from shared.errors import Busy, VersionConflict
from shared.shops import ShopChange, ShopSettings

# Writes that find another one came between their read and their write before the last-write-wins
# PUT gives up (503 busy): each retry reads again, so only a stream of concurrent writes gets there.
LAST_WRITE_ATTEMPTS = 5


class ShopSettingsStore(Protocol):
    """What the use case needs of shared/store/merchants.py's MerchantStore."""

    def versioned_shop(self, merchant_id: str) -> tuple[ShopSettings, int]: ...

    def set_shop(self, merchant_id: str, shop: ShopSettings, version: int) -> int: ...


def set_shop(merchant_id: str, change: ShopChange, store: ShopSettingsStore) -> tuple[ShopSettings, int]:
    """The settings as set and their new version; VersionConflict if `change.version` is not the
    current one. Without a version, the current one is read and written against: the version stays
    a value each write sets (safe to send again), never a counter a repeated request adds to twice."""
    settings = change.settings()
    if change.version is not None:
        return settings, store.set_shop(merchant_id, settings, change.version)
    for _ in range(LAST_WRITE_ATTEMPTS):
        _, version = store.versioned_shop(merchant_id)
        try:
            return settings, store.set_shop(merchant_id, settings, version)
        except VersionConflict:
            continue  # another write came between the read and this one: this one goes over it
    raise Busy("the shop's settings are being changed by other requests right now; retry in a moment")
