"""What a buyer types at checkout for a product delivered to an account (a game UID and server, a phone
number): the product declares the fields, checkout checks the values against them.

The values are personal data: the order keeps them sealed under the merchant's key (shared/codes.py),
they go to the merchant (audited) and to the merchant's upstream, and never into a log line or an
error message (an error names the field, never the value).

A merchant's `pattern` runs on buyers' text, so it runs under the `regex` module with a time limit:
a pattern that backtracks catastrophically refuses the value instead of stalling the checkout.
"""

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import regex
from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from shared.errors import Invalid

InputType = Literal["text", "number", "select", "email", "phone"]
MAX_FIELDS = 8
MAX_VALUE_LENGTH = 500
PATTERN_SECONDS = 0.05  # a merchant's pattern gets this long per value
_PHONE = regex.compile(r"\+?[0-9][0-9 -]{4,22}[0-9]")
_NUMBER = regex.compile(r"[0-9]{1,40}")

Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class InputField(BaseModel):
    """One field the product page asks for, labelled in both of the shop's languages."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")  # the key in buyer_input and to the upstream
    label: dict[Literal["zh-CN", "en"], Label]
    type: InputType = "text"
    required: bool = True
    pattern: str | None = Field(default=None, min_length=1, max_length=200)  # the whole value must match
    max_length: int = Field(default=100, ge=1, le=MAX_VALUE_LENGTH)
    options: tuple[Annotated[str, StringConstraints(min_length=1, max_length=100)], ...] = Field(
        default=(), max_length=50
    )
    confirm: bool = False  # the page asks for it twice (an account id typed wrong is a top-up lost)

    @field_validator("label")
    @classmethod
    def _both_languages(cls, label: dict[str, str]) -> dict[str, str]:
        if set(label) != {"zh-CN", "en"}:
            raise ValueError("label needs both 'zh-CN' and 'en'")
        return label

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                regex.compile(pattern)
            except regex.error as error:
                raise ValueError(f"pattern does not compile: {error}") from None
        return pattern

    @model_validator(mode="after")
    def _options_for_select(self) -> "InputField":
        if (self.type == "select") != bool(self.options):
            raise ValueError("options are required for a select field, and only for one")
        return self


def check_fields(fields: tuple[InputField, ...]) -> str | None:
    """What is wrong with a product's declared fields as a whole, or None."""
    if len(fields) > MAX_FIELDS:
        return f"buyer_input: at most {MAX_FIELDS} fields"
    names = [field.name for field in fields]
    if len(set(names)) != len(names):
        return "buyer_input: field names must be unique"
    return None


def _refuse(field: InputField, why: str) -> Invalid:
    return Invalid(f"buyer_input.{field.name}: {why}", code="invalid_buyer_input")


def _checked(field: InputField, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _refuse(field, "must be text")
    text = str(value).strip()
    if len(text) > field.max_length:
        raise _refuse(field, f"must be at most {field.max_length} characters")
    if not text.isprintable():
        raise _refuse(field, "must be one line without control characters")
    if field.type == "number" and not _NUMBER.fullmatch(text):
        raise _refuse(field, "must be digits only")
    if field.type == "phone" and not _PHONE.fullmatch(text):
        raise _refuse(field, "must be a phone number")
    if field.type == "select" and text not in field.options:
        raise _refuse(field, "must be one of the listed options")
    if field.type == "email":
        try:
            text = validate_email(text, check_deliverability=False).normalized
        except EmailNotValidError:
            raise _refuse(field, "must be an e-mail address") from None
    if field.pattern is not None:
        try:
            matched = regex.fullmatch(field.pattern, text, timeout=PATTERN_SECONDS)
        except TimeoutError:
            matched = None
        if matched is None:
            raise _refuse(field, "is not in the form the shop asks for")
    return text


def check_input(fields: tuple[InputField, ...], values: Mapping[str, Any] | None) -> dict[str, str]:
    """The buyer's values for a product's fields, checked and normalised; 422 `invalid_buyer_input`
    naming the first field that is missing, unknown or wrong."""
    values = values or {}
    known = {field.name for field in fields}
    if unknown := sorted(set(values) - known):
        raise Invalid(
            f"buyer_input.{unknown[0][:40]}: this product asks for no such field", code="invalid_buyer_input"
        )
    checked: dict[str, str] = {}
    for field in fields:
        value = values.get(field.name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if field.required:
                raise _refuse(field, "is required")
            continue
        checked[field.name] = _checked(field, value)
    return checked
