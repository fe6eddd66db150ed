"""Money: integer minor units with an ISO 4217 currency. Never floats."""

from pydantic import BaseModel, ConfigDict, Field

MAX_AMOUNT = 10**12


class Money(BaseModel):
    model_config = ConfigDict(frozen=True, strict=True)

    amount: int = Field(ge=0, le=MAX_AMOUNT)
    currency: str = Field(pattern=r"^[A-Z]{3}$")

    def times(self, quantity: int) -> "Money":
        return Money(amount=self.amount * quantity, currency=self.currency)


# ISO 4217 minor-unit digits where they are not 2 (providers that speak in major units need them).
MINOR_DIGITS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "UGX": 0, "BHD": 3, "KWD": 3, "JOD": 3}


def from_major(text: str, currency: str) -> Money:
    """`"19.99"` CNY -> 1999: exact decimal text in major units (Alipay's amounts), never through a float.

    Raises ValueError for anything but digits with at most the currency's number of decimals."""
    digits = MINOR_DIGITS.get(currency, 2)
    whole, dot, fraction = text.partition(".")
    if (
        not whole.isdigit()
        or not whole.isascii()
        or (dot and not (fraction.isdigit() and fraction.isascii()))
    ):
        raise ValueError("amount is not a plain decimal number")
    if len(fraction) > digits or (dot and not fraction):
        raise ValueError(f"amount has more than {digits} decimals")
    return Money(amount=int(whole) * 10**digits + int(fraction.ljust(digits, "0") or 0), currency=currency)


def to_major(money: Money) -> str:
    """1999 CNY -> `"19.99"` (the inverse of from_major)."""
    digits = MINOR_DIGITS.get(money.currency, 2)
    if digits == 0:
        return str(money.amount)
    whole, fraction = divmod(money.amount, 10**digits)
    return f"{whole}.{fraction:0{digits}d}"


def display(money: Money) -> str:
    """1999 CNY -> `"19.99 CNY"`: as pages and mails show an amount."""
    return f"{to_major(money)} {money.currency}"
