"""Shop settings in memory, with the contract of shared/store/merchants.py's `versioned_shop` and
`set_shop`: a write against the current version moves it on by one; the same write sent again finds its
own values at the version it made and answers it again; any other is a VersionConflict; an unknown
merchant is NotFound (tests/integration/test_merchant_shop.py runs one scenario on both)."""

from shared.errors import NotFound, VersionConflict
from shared.shops import ShopSettings
from tests.fakes.hooks import Hooked, hooked


class FakeShopSettings(Hooked):
    def __init__(self) -> None:
        super().__init__()
        self.shops: dict[str, tuple[ShopSettings, int]] = {}

    @hooked
    def versioned_shop(self, merchant_id: str) -> tuple[ShopSettings, int]:
        if merchant_id not in self.shops:
            raise NotFound("no such merchant", code="shop_not_found")
        return self.shops[merchant_id]

    @hooked
    def set_shop(self, merchant_id: str, shop: ShopSettings, version: int) -> int:
        current, now = self.versioned_shop(merchant_id)
        if now != version and (now, current.model_dump()) != (version + 1, shop.model_dump()):
            raise VersionConflict(f"the shop's settings were changed since version {version} was read")
        self.shops[merchant_id] = (shop, version + 1)
        return version + 1

    # ---------- for tests ----------

    def add(self, merchant_id: str, name: str = "A shop") -> None:
        self.shops[merchant_id] = (ShopSettings(name=name), 0)
