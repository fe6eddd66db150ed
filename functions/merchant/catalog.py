"""Merchant use cases: create, change and list products, import their codes, read their stock levels."""

import json
from datetime import datetime
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from shared.buyer_input import MAX_FIELDS, InputField
from shared.cursors import read_cursor, sign_cursor
from shared.errors import BadInput, Invalid, MalformedJson, NotFound
from shared.http import empty_clears, validate
from shared.ids import is_id, new_id
from shared.money import Money
from shared.products import (
    DEFAULT_REVIEW_DEADLINE_MINUTES,
    MAX_CATEGORY_LENGTH,
    MAX_INSTRUCTIONS_LENGTH,
    MAX_PER_ORDER,
    MAX_PRICE_TIERS,
    MAX_REVIEW_DEADLINE_MINUTES,
    MAX_SALES_PER_CODE,
    DeliveryMode,
    GeneratedTerms,
    LicenseTerms,
    ManualTerms,
    PriceTier,
    Product,
    ReviewExpiryPolicy,
    TopupTerms,
    UndeliverablePolicy,
    broken_rule,
)
from shared.store.products import ProductStore
from shared.store.stock.allocation import Allocation
from shared.store.stock.items import NewCode

MAX_CODES_PER_REQUEST = 10_000
MAX_CODE_LENGTH = 512
MAX_DAILY_LIMIT = 1_000_000
MAX_LOW_STOCK_THRESHOLD = 1_000_000_000
PRODUCTS_CURSOR_PURPOSE: Final = b"miaofa:merchant-products-cursor:v1"


def _one_line(text: str) -> str:
    if not text.isprintable():
        raise ValueError("must not contain control characters or line breaks")
    return text


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


# The storefront's heading for the product (functions/storefront/pages.py): one line of text, surrounding
# blanks dropped; empty or blank is none (listed under "Other").
Category = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_CATEGORY_LENGTH),
    AfterValidator(_one_line),
]


class ProductRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    price: Money
    delivery: DeliveryMode = "stock"
    min_per_order: int = Field(default=1, strict=True, ge=1, le=MAX_PER_ORDER)
    max_per_order: int = Field(default=10, strict=True, ge=1, le=MAX_PER_ORDER)
    daily_limit_per_buyer: int | None = Field(default=None, strict=True, ge=1, le=MAX_DAILY_LIMIT)
    unpaid_limit_per_client: int | None = Field(default=None, strict=True, ge=1, le=MAX_DAILY_LIMIT)
    price_tiers: list[PriceTier] = Field(default=[], max_length=MAX_PRICE_TIERS)
    instructions: str = Field(default="", max_length=MAX_INSTRUCTIONS_LENGTH)
    low_stock_threshold: int = Field(default=0, strict=True, ge=0, le=MAX_LOW_STOCK_THRESHOLD)
    shards: int = Field(default=4, strict=True, ge=1, le=64)
    sales_per_code: int = Field(default=1, strict=True, ge=1, le=MAX_SALES_PER_CODE)
    email_codes: bool = Field(default=False, strict=True)
    active: bool = Field(default=True, strict=True)  # JSON's true or false, not 0 or "yes"
    when_undeliverable: UndeliverablePolicy = "refund"
    category: Annotated[
        Category | None, BeforeValidator(_blank_is_none), Field(json_schema_extra=empty_clears)
    ] = None
    review_deadline_minutes: int = Field(
        default=DEFAULT_REVIEW_DEADLINE_MINUTES, strict=True, ge=1, le=MAX_REVIEW_DEADLINE_MINUTES
    )
    when_review_expires: ReviewExpiryPolicy = "refund"
    buyer_input: tuple[InputField, ...] = Field(default=(), max_length=MAX_FIELDS)
    topup: TopupTerms | None = None
    manual: ManualTerms | None = None
    generated: GeneratedTerms | None = None
    license: LicenseTerms | None = None

    @model_validator(mode="after")
    def _rules_hold(self) -> "ProductRequest":
        if problem := broken_rule(self):
            raise ValueError(problem)
        return self


def create_product(
    merchant_id: str, request: ProductRequest, products: ProductStore, allocation: Allocation, now: datetime
) -> Product:
    product = Product.model_validate(
        {"product_id": new_id("prd"), "merchant_id": merchant_id, "created_at": now, **request.model_dump()}
    )
    if product.stocked:
        allocation.create_shards(product.product_id, product.shards)
    products.put_product(product)  # last: the product is visible only once its shards exist
    return product


def owned_product(merchant_id: str, product_id: str, products: ProductStore) -> Product:
    """The merchant's own product; another merchant's is indistinguishable from a missing one."""
    product = products.product(product_id) if is_id(product_id, "prd") else None
    if product is None or product.merchant_id != merchant_id:
        raise NotFound("no such product", code="product_not_found")
    return product


# Only daily_limit_per_buyer, unpaid_limit_per_client (no limit, the default) and category (none) may be
# set to null; shards, delivery and sales per code never change (the stock already imported is laid
# out by them).
_NOT_NULLABLE = (
    "name",
    "description",
    "price",
    "active",
    "min_per_order",
    "max_per_order",
    "price_tiers",
    "instructions",
    "low_stock_threshold",
    "when_undeliverable",
    "review_deadline_minutes",
    "when_review_expires",
    "email_codes",
    "buyer_input",
    "topup",
    "manual",
    "generated",
    "license",
)
_UNCHANGEABLE = ("shards", "delivery", "sales_per_code")


def _left_out_never_null(schema: dict[str, Any], fields: tuple[str, ...]) -> None:
    """The document as `_not_null` has it: each of `fields` may be left out (unchanged), never null."""
    for name in fields:
        field = schema.get("properties", {}).get(name)
        if not isinstance(field, dict) or "anyOf" not in field:
            continue
        kept = [option for option in field["anyOf"] if option != {"type": "null"}]
        field.pop("default", None)
        if len(kept) == 1:
            del field["anyOf"]
            field.update(kept[0])
        else:
            field["anyOf"] = kept


class ProductChange(BaseModel):
    """PATCH /merchant/products/{id}: the fields given are changed, the others kept."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,  # JSON types as they are: "no" is not false
        json_schema_extra=lambda schema: _left_out_never_null(schema, _NOT_NULLABLE),
    )

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    price: Money | None = None
    active: bool | None = None
    min_per_order: int | None = Field(default=None, ge=1, le=MAX_PER_ORDER)
    max_per_order: int | None = Field(default=None, ge=1, le=MAX_PER_ORDER)
    daily_limit_per_buyer: int | None = Field(default=None, ge=1, le=MAX_DAILY_LIMIT)
    unpaid_limit_per_client: int | None = Field(default=None, ge=1, le=MAX_DAILY_LIMIT)
    price_tiers: list[PriceTier] | None = Field(default=None, max_length=MAX_PRICE_TIERS)
    instructions: str | None = Field(default=None, max_length=MAX_INSTRUCTIONS_LENGTH)
    low_stock_threshold: int | None = Field(default=None, ge=0, le=MAX_LOW_STOCK_THRESHOLD)
    when_undeliverable: UndeliverablePolicy | None = None
    review_deadline_minutes: int | None = Field(default=None, ge=1, le=MAX_REVIEW_DEADLINE_MINUTES)
    when_review_expires: ReviewExpiryPolicy | None = None
    email_codes: bool | None = None
    category: Annotated[  # null or "": none
        Category | None, BeforeValidator(_blank_is_none), Field(json_schema_extra=empty_clears)
    ] = None
    buyer_input: list[InputField] | None = Field(default=None, max_length=MAX_FIELDS)
    topup: TopupTerms | None = None
    manual: ManualTerms | None = None
    generated: GeneratedTerms | None = None  # a new pattern or cap (the whole object)
    license: LicenseTerms | None = None  # new terms for the licenses issued from now on

    @model_validator(mode="before")
    @classmethod
    def _unchangeable(cls, data: Any) -> Any:
        """A field that cannot change is named as such (any other unknown field: extra_forbidden)."""
        for name in _UNCHANGEABLE:
            if isinstance(data, dict) and name in data:
                raise PydanticCustomError(
                    "unchangeable", "{field} cannot be changed once the product exists", {"field": name}
                )
        return data

    @field_validator(*_NOT_NULLABLE, mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null")
        return value

    def apply(self, product: Product) -> Product:
        """The product with this change made, or Invalid (422) naming the rule the result would break."""
        given = {name: getattr(self, name) for name in self.model_fields_set}
        if self.price_tiers is not None:
            given["price_tiers"] = tuple(self.price_tiers)
        if self.buyer_input is not None:
            given["buyer_input"] = tuple(self.buyer_input)
        changed = product.model_copy(update=given)
        if problem := broken_rule(changed):
            raise Invalid(problem)
        return Product.model_validate(changed.model_dump())  # model_copy does not validate; this does


def change_product(
    merchant_id: str, product_id: str, change: ProductChange, products: ProductStore
) -> Product:
    """Apply a change to the merchant's own product in one conditional write; a change that breaks a
    rule writes nothing, and another merchant's product is indistinguishable from a missing one."""
    missing = NotFound("no such product", code="product_not_found")

    def changed(product: Product) -> Product:
        if product.merchant_id != merchant_id:
            raise missing
        return change.apply(product)

    product = products.change_product(product_id, changed) if is_id(product_id, "prd") else None
    if product is None:
        raise missing
    return product


class ProductQuery(BaseModel):
    """The query string of GET /merchant/products."""

    model_config = ConfigDict(extra="forbid")

    active: bool | None = None
    limit: int = Field(default=50, ge=1, le=100)
    cursor: str | None = None

    @field_validator("active", mode="before")
    @classmethod
    def _true_or_false(cls, value: Any) -> Any:
        if value not in ("true", "false"):
            raise ValueError("must be true or false")
        return value == "true"


def parse_product_query(parameters: dict[str, str] | None) -> ProductQuery:
    """The listing's parameters; an empty one counts as absent, an unknown one is refused (422)."""
    given = {name: value for name, value in (parameters or {}).items() if value != ""}
    unknown = sorted(set(given) - set(ProductQuery.model_fields))
    if unknown:
        raise Invalid(f"unknown query parameter '{unknown[0][:40]}'", code="unknown_parameter")
    return validate(ProductQuery, given)


class ProductListing(BaseModel):
    products: list[Product]
    next_cursor: str | None


def sign_product_cursor(before: int, merchant_id: str, active: bool | None, secret: str) -> str:
    """An opaque cursor to the products listed before catalogue position `before`, valid only for
    this merchant and this filter."""
    binding = {"merchant": merchant_id, "active": active}
    return sign_cursor(PRODUCTS_CURSOR_PURPOSE, binding, str(before).encode(), secret)


def read_product_cursor(cursor: str, merchant_id: str, active: bool | None, secret: str) -> int:
    """The catalogue position a cursor stands for, or 400 invalid_cursor if this merchant with this
    filter was not given it."""
    binding = {"merchant": merchant_id, "active": active}
    payload = read_cursor(PRODUCTS_CURSOR_PURPOSE, binding, cursor, secret)
    if not payload.isdigit() or not payload.isascii():
        raise BadInput("cursor is not valid for this listing; start again without it", code="invalid_cursor")
    return int(payload)


def list_products(
    merchant_id: str, query: ProductQuery, products: ProductStore, secret: str
) -> ProductListing:
    """One page of the merchant's own products, newest first, and the cursor to the next (None at the end)."""
    before = read_product_cursor(query.cursor, merchant_id, query.active, secret) if query.cursor else None
    page = products.products_of(merchant_id, query.limit, before=before, active=query.active)
    resume = page.resume_before
    return ProductListing(
        products=page.products,
        next_cursor=sign_product_cursor(resume, merchant_id, query.active, secret) if resume else None,
    )


class Problem(BaseModel):
    line: int
    reason: str


class ParsedCodes(BaseModel):
    codes: list[NewCode]
    duplicate_lines: list[int]
    rejected: list[Problem]


def parse_codes(body: str, content_type: str) -> ParsedCodes:
    """One code per line (text/plain) or {"codes": [...]}; blank, over-long and repeated lines are reported."""
    if content_type.lower().startswith("application/json"):
        try:
            lines = json.loads(body)["codes"]
        except (ValueError, RecursionError, KeyError, TypeError):
            raise MalformedJson('body must be JSON {"codes": ["...", ...]}') from None
        if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
            raise Invalid("codes must be a list of strings", code="invalid_codes")
    else:
        # Only LF (with an optional CR) ends a line: splitlines() would also split a code on \f, \v, U+2028...
        lines = body.split("\n")
        lines = [line.removesuffix("\r") for line in (lines[:-1] if lines[-1] == "" else lines)]
    if len(lines) > MAX_CODES_PER_REQUEST:
        raise Invalid(
            f"at most {MAX_CODES_PER_REQUEST} codes per request; split the file", code="too_many_codes"
        )
    seen: set[str] = set()
    parsed = ParsedCodes(codes=[], duplicate_lines=[], rejected=[])
    for number, raw in enumerate(lines, start=1):
        code = raw.strip()
        if not code:
            parsed.rejected.append(Problem(line=number, reason="blank line"))
        elif len(code) > MAX_CODE_LENGTH:
            parsed.rejected.append(Problem(line=number, reason=f"longer than {MAX_CODE_LENGTH} characters"))
        elif not code.isprintable():
            parsed.rejected.append(Problem(line=number, reason="contains control characters"))
        elif code in seen:
            parsed.duplicate_lines.append(number)
        else:
            seen.add(code)
            parsed.codes.append(NewCode(line=number, code=code))
    return parsed
