"""The shop's products and each merchant's catalogue of them.

A merchant's products are listed newest first through the merchant's catalogue: a counter item
hands each new product a position (one atomic ADD), and one small item per position names the
product. The table has no index, so a page is two batch reads of at most `limit` items each,
whatever the number of merchants or products."""

import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.exceptions import UpdateError
from pynamodb.models import Model

from shared.buyer_input import InputField
from shared.errors import StateConflict
from shared.money import Money
from shared.products import (
    DEFAULT_REVIEW_DEADLINE_MINUTES,
    GeneratedTerms,
    LicenseTerms,
    ManualTerms,
    PriceTier,
    Product,
    TopupTerms,
)
from shared.settings import settings
from shared.store.errors import condition_failed
from shared.store.recent import Recent


class _CatalogModel(Model):
    class Meta:
        table_name: str | None = None

    pk = UnicodeAttribute(hash_key=True)


class TierAttribute(MapAttribute[str, Any]):
    min_quantity = NumberAttribute()
    price_amount = NumberAttribute()  # in the product's currency


class ProductItem(_CatalogModel):
    merchant_id = UnicodeAttribute()
    name = UnicodeAttribute()
    description = UnicodeAttribute()
    price_amount = NumberAttribute()
    currency = UnicodeAttribute()
    delivery = UnicodeAttribute()
    max_per_order = NumberAttribute()
    shards = NumberAttribute()
    active = BooleanAttribute()
    created_at = UTCDateTimeAttribute()
    when_undeliverable = UnicodeAttribute(null=True)
    # Added with the merchant API (issue 6): absent on older products, which read as the defaults.
    min_per_order = NumberAttribute(null=True)
    daily_limit_per_buyer = NumberAttribute(null=True)
    unpaid_limit_per_client = NumberAttribute(null=True)  # issue 15: absent reads as the shop default
    price_tiers = ListAttribute(of=TierAttribute, null=True)
    instructions = UnicodeAttribute(null=True)
    low_stock_threshold = NumberAttribute(null=True)
    sales_per_code = NumberAttribute(null=True)
    email_codes = BooleanAttribute(null=True)
    category = UnicodeAttribute(null=True)  # issue 18: absent on older products, listed under "Other"
    # Issue 20: absent on older products, which read as the defaults (24 h, refund).
    review_deadline_minutes = NumberAttribute(null=True)
    when_review_expires = UnicodeAttribute(null=True)
    # Issue 19, each as JSON: the fields a buyer fills in, and a top-up's or a manual product's terms.
    buyer_input = UnicodeAttribute(null=True)
    topup = UnicodeAttribute(null=True)
    manual = UnicodeAttribute(null=True)
    # Issue 21, each as JSON: a generated product's pattern and cap, a license product's terms.
    generated = UnicodeAttribute(null=True)
    license = UnicodeAttribute(null=True)
    version = NumberAttribute(null=True)  # bumped by every change; a change is conditional on it


class CatalogHeadItem(_CatalogModel):
    """`catalog#<merchant>`: how many catalogue positions the merchant's products have taken."""

    taken = NumberAttribute()


class CatalogEntryItem(_CatalogModel):
    """`catalog#<merchant>#<position>`: the product created at that position."""

    product_id = UnicodeAttribute()


class ProductPage(BaseModel):
    products: list[Product]
    resume_before: int | None  # list the positions below this one next; None: nothing left


# Attributes a PATCH may change (shards, delivery, merchant and creation time never change).
_CHANGEABLE = (
    "name",
    "description",
    "price_amount",
    "currency",
    "active",
    "min_per_order",
    "max_per_order",
    "daily_limit_per_buyer",
    "unpaid_limit_per_client",
    "price_tiers",
    "instructions",
    "low_stock_threshold",
    "when_undeliverable",
    "category",
    "review_deadline_minutes",
    "when_review_expires",
    "buyer_input",
    "topup",
    "manual",
    "generated",
    "license",
)
_CHANGE_ATTEMPTS = 5
_BATCH = 100  # DynamoDB's BatchGetItem limit
_SCAN_BUDGET = 500  # catalogue positions one filtered page reads at most before it returns what it has
# The storefront lists at most this many of a shop's active products (the newest), so one listing
# costs a bounded number of reads (docs/buyer-pages.md, "The shop's page").
MAX_LISTED = 50


class ProductStore:
    def __init__(self) -> None:
        for model in (_CatalogModel, ProductItem, CatalogHeadItem, CatalogEntryItem):
            model.Meta.table_name = settings().shop_table
        self._products: Recent[str, Product | None] = Recent(settings().product_cache_seconds)
        self._listings: Recent[str, ProductPage] = Recent(settings().product_cache_seconds)

    def put_product(self, product: Product) -> None:
        """Store a new product at the next position of its merchant's catalogue. A crash before the
        last write leaves at most a position naming no product, which listings skip."""
        head = CatalogHeadItem(pk=f"catalog#{product.merchant_id}")
        head.update(actions=[CatalogHeadItem.taken.add(1)])
        CatalogEntryItem(
            pk=_entry_key(product.merchant_id, int(head.taken)), product_id=product.product_id
        ).save()
        ProductItem(
            pk=f"product#{product.product_id}",
            merchant_id=product.merchant_id,
            delivery=product.delivery,
            shards=product.shards,
            sales_per_code=product.sales_per_code,
            created_at=product.created_at,
            **_changeable(product),
        ).save(condition=ProductItem.pk.does_not_exist())

    def product(self, product_id: str, consistent: bool = False) -> Product | None:
        try:
            item = ProductItem.get(f"product#{product_id}", consistent_read=consistent)
        except ProductItem.DoesNotExist:
            return None
        return _to_product(item)

    def recent_product(self, product_id: str) -> Product | None:
        """The product as this process read it less than PRODUCT_CACHE_SECONDS ago (read if not): for
        selling, pages and telling, never for the merchant API or for settling money or stock later."""
        return self._products.get(product_id, lambda: self.product(product_id))

    def recent_on_sale(self, merchant_id: str, before: int | None = None) -> ProductPage:
        """A page of the merchant's active products, newest first, at catalogue positions below
        `before` (at most MAX_LISTED, found within one filtered page's bounded read), as this process
        read it less than PRODUCT_CACHE_SECONDS ago: the storefront's listing and its further pages."""
        key = merchant_id if before is None else f"{merchant_id}#{before}"
        return self._listings.get(
            key, lambda: self.products_of(merchant_id, MAX_LISTED, before=before, active=True)
        )

    def change_product(self, product_id: str, change: Callable[[Product], Product]) -> Product | None:
        """Apply `change` to the stored product and write what it changed in one write, conditional on
        the product being unchanged since it was read (re-read and re-applied if it was). None if there
        is no such product; whatever `change` raises propagates with nothing written."""
        for _ in range(_CHANGE_ATTEMPTS):
            try:
                item = ProductItem.get(f"product#{product_id}", consistent_read=True)
            except ProductItem.DoesNotExist:
                return None
            before = _to_product(item)
            after = change(before)
            old, new = _changeable(before), _changeable(after)
            actions = [
                getattr(ProductItem, name).set(new[name])
                if new[name] is not None
                else getattr(ProductItem, name).remove()
                for name in _CHANGEABLE
                if _comparable(new[name]) != _comparable(old[name])
            ]
            if not actions:
                return after
            version = None if item.version is None else int(item.version)
            unchanged = (
                ProductItem.version.does_not_exist() if version is None else ProductItem.version == version
            )
            try:
                item.update(
                    actions=[*actions, ProductItem.version.set((version or 0) + 1)],
                    condition=unchanged & (ProductItem.merchant_id == after.merchant_id),
                )
            except UpdateError as error:
                if condition_failed(error):
                    continue  # changed by someone else meanwhile: apply the change to what is there now
                raise
            return _to_product(item)
        raise StateConflict(
            "the product kept changing while this change was made; retry", code="product_changed"
        )

    def products_of(
        self, merchant_id: str, limit: int, before: int | None = None, active: bool | None = None
    ) -> ProductPage:
        """The merchant's products newest first, at catalogue positions below `before`; with `active`,
        only those. A filtered page reads at most a bounded number of positions, so it may hold fewer
        than `limit` products and still have a `resume_before`."""
        try:
            count = int(CatalogHeadItem.get(f"catalog#{merchant_id}", consistent_read=True).taken)
        except CatalogHeadItem.DoesNotExist:
            count = 0
        position = min(count, before - 1) if before is not None else count  # the next position to read
        found: list[Product] = []
        read = 0
        while position >= 1 and len(found) < limit and read < _SCAN_BUDGET:
            wanted = _BATCH if active is not None else limit - len(found)
            positions = list(range(position, max(0, position - wanted), -1))
            entries = {
                int(entry.pk.rsplit("#", 1)[1]): entry.product_id
                for entry in CatalogEntryItem.batch_get(
                    [_entry_key(merchant_id, p) for p in positions], consistent_read=True
                )
            }
            products = {
                item.pk.removeprefix("product#"): _to_product(item)
                for item in ProductItem.batch_get(
                    [f"product#{product_id}" for product_id in set(entries.values())], consistent_read=True
                )
            }
            read += len(positions)
            for p in positions:
                product = products.get(entries.get(p, ""))
                position = p - 1
                if product is None or product.merchant_id != merchant_id:
                    continue  # a position whose product was never written (a crash between writes)
                if active is None or product.active == active:
                    found.append(product)
                    if len(found) == limit:
                        break
        return ProductPage(products=found, resume_before=position + 1 if position >= 1 else None)


def _entry_key(merchant_id: str, position: int) -> str:
    return f"catalog#{merchant_id}#{position:012d}"


def _changeable(product: Product) -> dict[str, Any]:
    """The product's changeable attributes as stored (None: the attribute is absent)."""
    return {
        "name": product.name,
        "description": product.description,
        "price_amount": product.price.amount,
        "currency": product.price.currency,
        "active": product.active,
        "min_per_order": product.min_per_order,
        "max_per_order": product.max_per_order,
        "daily_limit_per_buyer": product.daily_limit_per_buyer,
        "unpaid_limit_per_client": product.unpaid_limit_per_client,
        "price_tiers": [
            TierAttribute(min_quantity=tier.min_quantity, price_amount=tier.price.amount)
            for tier in product.price_tiers
        ],
        "instructions": product.instructions,
        "low_stock_threshold": product.low_stock_threshold,
        "when_undeliverable": product.when_undeliverable,
        "email_codes": product.email_codes,
        "category": product.category,
        "review_deadline_minutes": product.review_deadline_minutes,
        "when_review_expires": product.when_review_expires,
        "buyer_input": _json([field.model_dump(mode="json") for field in product.buyer_input] or None),
        "topup": _json(product.topup and product.topup.model_dump(mode="json")),
        "manual": _json(product.manual and product.manual.model_dump(mode="json")),
        "generated": _json(product.generated and product.generated.model_dump(mode="json")),
        "license": _json(product.license and product.license.model_dump(mode="json")),
    }


def _json(value: Any) -> str | None:
    return (
        None
        if value is None
        else json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    )


def _comparable(value: Any) -> Any:
    if isinstance(value, list):
        return [(int(tier.min_quantity), int(tier.price_amount)) for tier in value]
    return value


def _to_product(item: ProductItem) -> Product:
    currency = item.currency
    return Product(
        product_id=item.pk.removeprefix("product#"),
        merchant_id=item.merchant_id,
        name=item.name,
        description=item.description,
        price=Money(amount=int(item.price_amount), currency=currency),
        delivery=item.delivery,  # type: ignore[arg-type]
        max_per_order=int(item.max_per_order),
        shards=int(item.shards),
        active=bool(item.active),
        created_at=item.created_at,
        when_undeliverable=item.when_undeliverable or "refund",  # type: ignore[arg-type]
        min_per_order=int(item.min_per_order or 1),
        daily_limit_per_buyer=None if item.daily_limit_per_buyer is None else int(item.daily_limit_per_buyer),
        unpaid_limit_per_client=None
        if item.unpaid_limit_per_client is None
        else int(item.unpaid_limit_per_client),
        price_tiers=tuple(
            PriceTier(
                min_quantity=int(tier.min_quantity),
                price=Money(amount=int(tier.price_amount), currency=currency),
            )
            for tier in item.price_tiers or []
        ),
        instructions=item.instructions or "",
        low_stock_threshold=int(item.low_stock_threshold or 0),
        sales_per_code=int(item.sales_per_code or 1),
        email_codes=bool(item.email_codes),
        category=item.category,
        review_deadline_minutes=int(item.review_deadline_minutes or DEFAULT_REVIEW_DEADLINE_MINUTES),
        when_review_expires=item.when_review_expires or "refund",  # type: ignore[arg-type]
        buyer_input=tuple(InputField.model_validate(field) for field in json.loads(item.buyer_input or "[]")),
        topup=TopupTerms.model_validate_json(item.topup) if item.topup else None,
        manual=ManualTerms.model_validate_json(item.manual) if item.manual else None,
        generated=GeneratedTerms.model_validate_json(item.generated) if item.generated else None,
        license=LicenseTerms.model_validate_json(item.license) if item.license else None,
    )
