"""What an order carries sealed under its merchant's key (shared/codes.py): the buyer's input at
checkout, and what a merchant fulfilled a manual order with. Each is bound to its order and purpose,
so a sealed value copied to another order, or into the other attribute, does not open."""

import json

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.codes import CodeCipher
from shared.orders import Order, sealed_identity

MAX_TEXT_LENGTH = 5000
MAX_CODE_LENGTH = 1100  # a license key with 16 entitlements is 1,053 characters (docs/licenses.md)


class Fulfilment(BaseModel):
    """A manual order's delivery: a text for the buyer, codes, or both (codes: one per unit)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT_LENGTH)
    codes: list[str] = Field(default=[], max_length=100)

    @model_validator(mode="after")
    def _something(self) -> "Fulfilment":
        if self.text is None and not self.codes:
            raise ValueError("give a text, codes, or both")
        if any(not code.strip() or len(code) > MAX_CODE_LENGTH for code in self.codes):
            raise ValueError(f"each code must be 1 to {MAX_CODE_LENGTH} characters, not blank")
        return self


def seal_fulfilment(fulfilment: Fulfilment, order_id: str, cipher: CodeCipher) -> bytes:
    return cipher.encrypt(fulfilment.model_dump_json(), sealed_identity(order_id, "fulfilment"))


def open_fulfilment(order: Order, cipher: CodeCipher) -> Fulfilment | None:
    if order.sealed_fulfilment is None:
        return None
    text = cipher.decrypt(order.sealed_fulfilment, sealed_identity(order.order_id, "fulfilment"))
    return Fulfilment.model_validate_json(text)


def open_input(order: Order, cipher: CodeCipher) -> dict[str, str]:
    """The buyer's checked input ({} if the product asked for none)."""
    if order.sealed_input is None:
        return {}
    values: dict[str, str] = json.loads(
        cipher.decrypt(order.sealed_input, sealed_identity(order.order_id, "input"))
    )
    return values
