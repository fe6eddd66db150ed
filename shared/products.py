"""Products a merchant sells, and the rules a checkout must respect."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.errors import Invalid
from shared.money import MAX_AMOUNT, Money

DeliveryMode = Literal["stock"]
# What reconciliation does with a paid order it could not deliver after its bounded re-drives.
UndeliverablePolicy = Literal["refund", "hold"]


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

    def total_for(self, quantity: int) -> Money:
        if self.price.amount * quantity > MAX_AMOUNT:
            raise Invalid("the total is larger than a payment can be", code="total_too_large")
        return self.price.times(quantity)

    def check_quantity(self, quantity: int) -> None:
        if quantity < 1 or quantity > self.max_per_order:
            raise Invalid(f"quantity must be between 1 and {self.max_per_order} for this product")


class StockLevels(BaseModel):
    """I4: available + reserved + sold + returned = imported."""

    available: int
    reserved: int
    sold: int
    returned: int
    imported: int
