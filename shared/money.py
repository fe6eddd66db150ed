"""Money: integer minor units with an ISO 4217 currency. Never floats."""

from pydantic import BaseModel, ConfigDict, Field

MAX_AMOUNT = 10**12


class Money(BaseModel):
    model_config = ConfigDict(frozen=True, strict=True)

    amount: int = Field(ge=0, le=MAX_AMOUNT)
    currency: str = Field(pattern=r"^[A-Z]{3}$")

    def times(self, quantity: int) -> "Money":
        return Money(amount=self.amount * quantity, currency=self.currency)
