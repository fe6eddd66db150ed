"""Products a merchant sells, and the rules a checkout must respect."""

from collections.abc import Sequence
from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared import generated
from shared.buyer_input import InputField, check_fields
from shared.errors import Invalid
from shared.licenses.license import DEFAULT_PREFIX, ENTITLEMENT, MAX_ENTITLEMENTS, MAX_MACHINES
from shared.licenses.text import PREFIX
from shared.money import MAX_AMOUNT, Money

# stock: codes imported beforehand; topup: credited to the buyer's account by the merchant's upstream
# (docs/topup.md); manual: the merchant fulfils each paid order by hand, within a promised time;
# generated: a fresh code per unit made from the merchant's pattern when the order is paid; license: a
# license key per unit signed with the merchant's key (docs/licenses.md).
DeliveryMode = Literal["stock", "topup", "manual", "generated", "license"]
# What reconciliation does with a paid order it could not deliver after its bounded re-drives.
UndeliverablePolicy = Literal["refund", "hold"]
# What reconciliation does with an order the risk engine sent to review that its merchant did not
# decide within the product's `review_deadline_minutes` (functions/reconcile/reviews.py).
ReviewExpiryPolicy = Literal["refund", "deliver"]

MAX_PER_ORDER = 100  # the largest quantity any product may allow in one order
MAX_PRICE_TIERS = 20
MAX_INSTRUCTIONS_LENGTH = 2000
MAX_SALES_PER_CODE = 10_000  # a reusable code is sold at most this many times
MAX_CATEGORY_LENGTH = 50  # the storefront groups a shop's products under it
DEFAULT_REVIEW_DEADLINE_MINUTES = 24 * 60
MAX_REVIEW_DEADLINE_MINUTES = 30 * 24 * 60
MAX_GENERATED_CAP = 1_000_000_000
# A license's expiry must fit its format's 32-bit time (to 2106): 10,000 days from any year before 2078.
MAX_VALID_DAYS = 10_000


class PriceTier(BaseModel):
    """Wholesale: from `min_quantity` units on, each unit costs `price`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_quantity: int = Field(strict=True, ge=2, le=MAX_PER_ORDER)
    price: Money


class TopupTerms(BaseModel):
    """Which of the merchant's upstreams credits the order, and what it calls the product there."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    upstream: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    sku: str = Field(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$")


class ManualTerms(BaseModel):
    """A hand-fulfilled product's promise to the buyer, and when the product's policy takes over."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    promise_minutes: int = Field(default=30, strict=True, ge=1, le=7 * 24 * 60)  # shown to the buyer
    deadline_minutes: int = Field(default=24 * 60, strict=True, ge=1, le=30 * 24 * 60)  # then the policy


class GeneratedTerms(BaseModel):
    """A generated product's code pattern (shared/generated.py) and how many codes may ever be made."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pattern: str = Field(min_length=1, max_length=generated.MAX_PATTERN_LENGTH)
    cap: int | None = Field(default=None, strict=True, ge=1, le=MAX_GENERATED_CAP)  # None: no cap

    @field_validator("pattern")
    @classmethod
    def _makes_codes(cls, pattern: str) -> str:
        generated.validate(pattern)  # 422 invalid_code_pattern, naming the broken rule
        return pattern

    def example(self) -> str:
        """A code the pattern could make, as a merchant sees it when saving the product."""
        return generated.generate(self.pattern)


class LicenseTerms(BaseModel):
    """What a license product's keys grant (docs/licenses.md "What a license says")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    entitlements: tuple[str, ...] = Field(default=(), max_length=MAX_ENTITLEMENTS)
    max_machines: int = Field(strict=True, ge=1, le=MAX_MACHINES)
    valid_days: int | None = Field(default=None, strict=True, ge=1, le=MAX_VALID_DAYS)  # None: never expires
    # 1-12 of A-Z 0-9, starting with a letter: part of what is signed
    prefix: str = Field(default=DEFAULT_PREFIX, pattern=f"^{PREFIX.pattern}$")

    @field_validator("entitlements")
    @classmethod
    def _entitlements(cls, entitlements: tuple[str, ...]) -> tuple[str, ...]:
        for entitlement in entitlements:
            if not ENTITLEMENT.fullmatch(entitlement):
                raise ValueError(
                    f"each entitlement is 1-32 characters of A-Z a-z 0-9 . _ : -, not {entitlement!r}"
                )
        if len(set(entitlements)) != len(entitlements):
            raise ValueError("an entitlement is listed twice")
        return entitlements


class Terms(Protocol):
    """What a product's selling rules are made of (a stored product, or a merchant's request for one)."""

    @property
    def price(self) -> Money: ...
    @property
    def min_per_order(self) -> int: ...
    @property
    def max_per_order(self) -> int: ...
    @property
    def daily_limit_per_buyer(self) -> int | None: ...
    @property
    def unpaid_limit_per_client(self) -> int | None: ...
    @property
    def price_tiers(self) -> Sequence[PriceTier]: ...
    @property
    def delivery(self) -> DeliveryMode: ...
    @property
    def buyer_input(self) -> Sequence[InputField]: ...
    @property
    def topup(self) -> TopupTerms | None: ...
    @property
    def manual(self) -> ManualTerms | None: ...
    @property
    def generated(self) -> GeneratedTerms | None: ...
    @property
    def license(self) -> LicenseTerms | None: ...


def unit_price(terms: Terms, quantity: int) -> Money:
    """The tier with the largest min_quantity at or below `quantity`, else the product's price."""
    price = terms.price
    for tier in terms.price_tiers:
        if tier.min_quantity <= quantity:
            price = tier.price
    return price


def broken_rule(terms: Terms) -> str | None:
    """The first selling rule these terms break, in words naming the fields, or None."""
    if terms.min_per_order > terms.max_per_order:
        return "min_per_order must not be larger than max_per_order"
    if terms.daily_limit_per_buyer is not None and terms.daily_limit_per_buyer < terms.min_per_order:
        return "daily_limit_per_buyer must be at least min_per_order, or nobody could buy"
    if terms.unpaid_limit_per_client is not None and terms.unpaid_limit_per_client < terms.min_per_order:
        return "unpaid_limit_per_client must be at least min_per_order, or nobody could buy"
    if (problem := _broken_delivery(terms)) is not None:
        return problem
    previous = None
    for tier in terms.price_tiers:
        if tier.price.currency != terms.price.currency:
            return f"price_tiers: every price must be in the product's currency ({terms.price.currency})"
        if previous is not None and tier.min_quantity <= previous.min_quantity:
            return "price_tiers must be sorted by min_quantity, each larger than the one before"
        if tier.price.amount >= (previous or terms).price.amount:
            return "price_tiers: each price must be lower than the price before it"
        if tier.min_quantity > terms.max_per_order:
            return f"price_tiers: min_quantity {tier.min_quantity} is above max_per_order, so no order reaches it"
        previous = tier
    largest = max(
        unit_price(terms, quantity).amount * quantity
        for quantity in range(terms.min_per_order, terms.max_per_order + 1)
    )
    if largest > MAX_AMOUNT:
        return "price × quantity up to max_per_order is larger than a payment can be"
    return None


def _broken_delivery(terms: Terms) -> str | None:
    if (terms.delivery == "topup") != (terms.topup is not None):
        return "topup {upstream, sku} is required for delivery 'topup', and only for it"
    if (terms.delivery == "manual") != (terms.manual is not None):
        return "manual {promise_minutes, deadline_minutes} is required for delivery 'manual', and only for it"
    if (terms.delivery == "generated") != (terms.generated is not None):
        return "generated {pattern, cap} is required for delivery 'generated', and only for it"
    if (terms.delivery == "license") != (terms.license is not None):
        return "license {entitlements, max_machines, valid_days, prefix} is required for delivery 'license', and only for it"
    if terms.manual is not None and terms.manual.deadline_minutes < terms.manual.promise_minutes:
        return "manual.deadline_minutes must not be shorter than manual.promise_minutes"
    if terms.delivery == "topup" and not terms.buyer_input:
        return "a topup product needs buyer_input: the account the upstream credits"
    return check_fields(tuple(terms.buyer_input))


class Product(BaseModel):
    model_config = ConfigDict(frozen=True)

    product_id: str
    merchant_id: str
    name: str
    description: str
    price: Money
    delivery: DeliveryMode
    max_per_order: int = Field(ge=1)
    shards: int = Field(ge=1)
    active: bool
    created_at: datetime
    when_undeliverable: UndeliverablePolicy = "refund"
    min_per_order: int = Field(default=1, ge=1)
    daily_limit_per_buyer: int | None = Field(default=None, ge=1)  # units paid per buyer e-mail per UTC day
    # Units one client (an IPv4 address, an IPv6 /64) may hold unpaid; None: the shop's default
    # (UNPAID_UNITS_PER_CLIENT, at least max_per_order). See docs/operations.md "Limits".
    unpaid_limit_per_client: int | None = Field(default=None, ge=1)
    price_tiers: tuple[PriceTier, ...] = ()
    instructions: str = ""  # shown to the buyer once the order is delivered, never before
    low_stock_threshold: int = Field(default=0, ge=0)  # 0: no stock.low webhook
    # How many times each imported code is sold: 1 (one code, one order: I1), or more for a reusable
    # code (a shared account, a download key). Stock is counted in sales: each code fills that many slots.
    sales_per_code: int = Field(default=1, ge=1)
    # The confirmation e-mail carries only a link to the order page, unless the merchant opts in.
    email_codes: bool = False
    # The storefront's heading this product is listed under; None: "Other" (functions/storefront).
    category: str | None = None
    # How long a risk review waits for its merchant (docs/risk.md "Reviews"), and what then.
    review_deadline_minutes: int = Field(
        default=DEFAULT_REVIEW_DEADLINE_MINUTES, ge=1, le=MAX_REVIEW_DEADLINE_MINUTES
    )
    when_review_expires: ReviewExpiryPolicy = "refund"
    buyer_input: tuple[InputField, ...] = ()  # what the buyer types at checkout (shared/buyer_input.py)
    topup: TopupTerms | None = None  # delivery "topup" only
    manual: ManualTerms | None = None  # delivery "manual" only
    generated: GeneratedTerms | None = None  # delivery "generated" only
    license: LicenseTerms | None = None  # delivery "license" only

    @property
    def stocked(self) -> bool:
        """Whether orders take slots of imported stock (no stock is counted for the other modes: a
        topup, manual, generated or license product is never sold out)."""
        return self.delivery == "stock"

    @property
    def cap(self) -> int | None:
        """How many codes a generated product may ever make (None: no cap, or not generated)."""
        return self.generated.cap if self.generated is not None else None

    def unit_price(self, quantity: int) -> Money:
        return unit_price(self, quantity)

    def total_for(self, quantity: int) -> Money:
        unit = self.unit_price(quantity)
        if unit.amount * quantity > MAX_AMOUNT:
            raise Invalid("the total is larger than a payment can be", code="total_too_large")
        return unit.times(quantity)

    def unpaid_bound(self, shop_default: int) -> int | None:
        """Units one client may hold unpaid of this product (None: no bound, the shop default is 0)."""
        if self.unpaid_limit_per_client is not None:
            return self.unpaid_limit_per_client
        return max(shop_default, self.max_per_order) if shop_default else None

    def check_quantity(self, quantity: int) -> None:
        if quantity < self.min_per_order or quantity > self.max_per_order:
            raise Invalid(
                f"quantity must be between {self.min_per_order} and {self.max_per_order} for this product"
            )


class StockLevels(BaseModel):
    """I4: available + reserved + sold + returned = imported."""

    available: int
    reserved: int
    sold: int
    returned: int
    imported: int
