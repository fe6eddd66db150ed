"""Merchant use cases: create a product, import its codes, read its stock levels."""

import json
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.errors import Invalid, MalformedJson, NotFound
from shared.money import MAX_AMOUNT, Money
from shared.products import Product, UndeliverablePolicy
from shared.store.shop import ShopStore, is_id, new_id
from shared.store.stock import NewCode, StockStore

MAX_CODES_PER_REQUEST = 10_000
MAX_CODE_LENGTH = 512


class ProductRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    price: Money
    delivery: Literal["stock"] = "stock"
    max_per_order: int = Field(default=10, ge=1, le=100)
    shards: int = Field(default=4, ge=1, le=64)
    active: bool = True
    when_undeliverable: UndeliverablePolicy = "refund"

    @model_validator(mode="after")
    def _largest_order_is_payable(self) -> "ProductRequest":
        if self.price.amount * self.max_per_order > MAX_AMOUNT:
            raise ValueError("price × max_per_order is larger than a payment can be")
        return self


def create_product(
    merchant_id: str, request: ProductRequest, shop: ShopStore, stock: StockStore, now: datetime
) -> Product:
    product = Product(
        product_id=new_id("prd"), merchant_id=merchant_id, created_at=now, **request.model_dump()
    )
    stock.create_shards(product.product_id, product.shards)
    shop.put_product(product)  # last: the product is visible only once its shards exist
    return product


def owned_product(merchant_id: str, product_id: str, shop: ShopStore) -> Product:
    """The merchant's own product; another merchant's is indistinguishable from a missing one."""
    product = shop.product(product_id) if is_id(product_id, "prd") else None
    if product is None or product.merchant_id != merchant_id:
        raise NotFound("no such product", code="product_not_found")
    return product


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
