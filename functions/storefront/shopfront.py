"""The storefront's listing: a shop's settings and a page of its active products, each with the stock
left (a stocked one's), grouped by category (docs/buyer-pages.md, "The shop's page")."""

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Protocol

from shared.ids import is_id
from shared.ports import StockLevelPort
from shared.products import Product
from shared.shops import ShopSettings
from shared.store.products import ProductPage


class ShopReader(Protocol):
    """Shops' settings as recently read (shared/store/recent.py `RecentShops`)."""

    def shop(self, merchant_id: str) -> ShopSettings | None: ...


class Catalogue(Protocol):
    """A shop's active products as recently read (shared/store/products.py `recent_on_sale`): a page
    of them newest first, below a catalogue position."""

    def recent_on_sale(self, merchant_id: str, before: int | None = None) -> ProductPage: ...


@dataclass(frozen=True)
class Offer:
    product: Product
    available: int | None  # None: not counted (a top-up or manual product is never sold out)


@dataclass(frozen=True)
class Group:
    category: str | None  # None: the products without one ("Other"), listed last
    offers: list[Offer]


@dataclass(frozen=True)
class Listing:
    merchant_id: str
    shop: ShopSettings
    groups: list[Group]
    more: str | None = None  # the cursor of the next page ("more products"); None: nothing older
    paged: bool = False  # a later page (it links back to the newest)


_CURSOR = re.compile(r"p([1-9][0-9]{0,11})")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]{1,24}")


def cursor(before: int) -> str:
    """The opaque `?after=` of the page that lists the catalogue positions below `before`."""
    return base64.urlsafe_b64encode(f"p{before}".encode()).decode().rstrip("=")


def position(after: str | None) -> int | None:
    """The catalogue position an `?after=` cursor names; None (the first page) for none or a malformed one."""
    if not after or not _BASE64URL.fullmatch(after):
        return None
    try:
        text = base64.urlsafe_b64decode(after + "=" * (-len(after) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    found = _CURSOR.fullmatch(text)
    return int(found.group(1)) if found else None


def shop_listing(
    merchant_id: str,
    shops: ShopReader,
    catalogue: Catalogue,
    levels: StockLevelPort,
    after: str | None = None,
) -> Listing | None:
    """The shop's listing (the page `after` names, else its newest products), or None for an id this
    shop never issued or a merchant that does not exist."""
    shop = shops.shop(merchant_id) if is_id(merchant_id, "mer") else None
    if shop is None:
        return None
    before = position(after)
    page = catalogue.recent_on_sale(merchant_id, before)
    offers = [Offer(product, levels.left(product)) for product in page.products]
    more = cursor(page.resume_before) if page.resume_before is not None else None
    return Listing(merchant_id, shop, grouped(offers), more=more, paged=before is not None)


def grouped(offers: list[Offer]) -> list[Group]:
    """Offers by category, categories by name, those without one last; each keeps its order (newest first)."""
    by_category: dict[str | None, list[Offer]] = {}
    for offer in offers:
        by_category.setdefault(offer.product.category, []).append(offer)
    named = sorted((c for c in by_category if c is not None), key=lambda c: (c.casefold(), c))
    return [Group(c, by_category[c]) for c in named] + (
        [Group(None, by_category[None])] if None in by_category else []
    )
