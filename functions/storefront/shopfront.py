"""The storefront's listing: a shop's settings and its active products, each with the stock left,
grouped by category (docs/buyer-pages.md, "The shop's page")."""

from dataclasses import dataclass
from typing import Protocol

from shared.ids import is_id
from shared.ports import StockLevelPort
from shared.products import Product
from shared.shops import ShopSettings


class ShopReader(Protocol):
    """Shops' settings as recently read (shared/store/recent.py `RecentShops`)."""

    def shop(self, merchant_id: str) -> ShopSettings | None: ...


class Catalogue(Protocol):
    """A shop's active products as recently read (shared/store/products.py `recent_on_sale`)."""

    def recent_on_sale(self, merchant_id: str) -> list[Product]: ...


@dataclass(frozen=True)
class Offer:
    product: Product
    available: int


@dataclass(frozen=True)
class Group:
    category: str | None  # None: the products without one ("Other"), listed last
    offers: list[Offer]


@dataclass(frozen=True)
class Listing:
    merchant_id: str
    shop: ShopSettings
    groups: list[Group]


def shop_listing(
    merchant_id: str, shops: ShopReader, catalogue: Catalogue, levels: StockLevelPort
) -> Listing | None:
    """The shop's listing, or None for an id this shop never issued or a merchant that does not exist."""
    shop = shops.shop(merchant_id) if is_id(merchant_id, "mer") else None
    if shop is None:
        return None
    offers = [Offer(product, levels.available(product)) for product in catalogue.recent_on_sale(merchant_id)]
    return Listing(merchant_id, shop, grouped(offers))


def grouped(offers: list[Offer]) -> list[Group]:
    """Offers by category, categories by name, those without one last; each keeps its order (newest first)."""
    by_category: dict[str | None, list[Offer]] = {}
    for offer in offers:
        by_category.setdefault(offer.product.category, []).append(offer)
    named = sorted((c for c in by_category if c is not None), key=lambda c: (c.casefold(), c))
    return [Group(c, by_category[c]) for c in named] + (
        [Group(None, by_category[None])] if None in by_category else []
    )
