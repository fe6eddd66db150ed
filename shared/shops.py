"""A merchant's shop as buyers see it: its name, logo, contact, announcement, support e-mail and the
language its pages start in. Rules only; the settings live on the merchant's item
(shared/store/merchants.py), with a version that every write of them moves on by one."""

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
)

from shared.http import empty_clears

Language = Literal["zh-CN", "en"]
DEFAULT_LANGUAGE: Language = "zh-CN"
MAX_NAME = 100
MAX_URL = 2048
MAX_CONTACT = 200
MAX_ANNOUNCEMENT = 2000
MAX_VERSION = 2**53 - 1  # JSON's exact integers: every client reads it back as it was written


def _printable(text: str) -> str:
    if any(not c.isprintable() for c in text):
        raise ValueError("must not contain control characters or line breaks")
    return text


def _paragraphs(text: str) -> str:
    text = text.replace("\r\n", "\n")
    if any(not c.isprintable() and c != "\n" for c in text):
        raise ValueError("must not contain control characters other than line breaks")
    return text


def _https_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("must be an https:// URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry a user name or password")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise ValueError("must not contain spaces or control characters")
    return url


def _blank_is_none(value: object) -> object:
    """An empty or blank optional text clears the field."""
    return None if isinstance(value, str) and not value.strip() else value


def _stripped(longest: int) -> StringConstraints:
    """Text stripped of surrounding blanks, 1 to `longest` characters."""
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=longest)


ShopName = Annotated[str, _stripped(MAX_NAME), AfterValidator(_printable)]
LogoUrl = Annotated[str, _stripped(MAX_URL), AfterValidator(_https_url)]
Contact = Annotated[str, _stripped(MAX_CONTACT), AfterValidator(_printable)]
Announcement = Annotated[str, _stripped(MAX_ANNOUNCEMENT), AfterValidator(_paragraphs)]
Cleared = (BeforeValidator(_blank_is_none), Field(json_schema_extra=empty_clears))


class ShopSettings(BaseModel):
    """What `PUT /merchant/shop` takes and `GET /merchant/shop` answers (with the merchant's id).
    An optional text sent empty clears it."""

    model_config = ConfigDict(extra="forbid")

    name: ShopName
    logo_url: Annotated[LogoUrl | None, *Cleared] = None
    contact: Annotated[Contact | None, *Cleared] = None
    announcement: Annotated[Announcement | None, *Cleared] = None
    support_email: Annotated[EmailStr | None, *Cleared] = None
    default_language: Language = DEFAULT_LANGUAGE


class ShopChange(ShopSettings):
    """What `PUT /merchant/shop` takes: the settings, and the `version` they were read at (from `GET
    /merchant/shop`); the write is refused (409 `version_conflict`) if another came since. Without
    it, the last write wins."""

    version: int | None = Field(
        default=None,
        strict=True,
        ge=0,
        le=MAX_VERSION,
        description="the version GET answered: 409 version_conflict if another write came since",
    )

    def settings(self) -> ShopSettings:
        """The settings alone, without the version."""
        return ShopSettings.model_construct(**self.model_dump(exclude={"version"}))


def check_name(name: str) -> str:
    """A shop name as the settings take it (for `miaofa-ops merchants create --name`); ValueError if not."""
    return ShopSettings(name=name).name
