"""What one risk decision may use (docs/risk.md "Signals"): the buyer's e-mail and its domain, the
client, the device, the payer at the provider and the card's country (both known at payment only),
the amount, quantity and product, the buyer's history with the shop, and velocity counts. The
caller builds it from the request and the store's one batched read (shared/risk/counters.py); the
engine reads nothing else.

A decision never records a personal value as it is: `signals_used` turns the signals into keyed
hashes (HMAC-SHA256 under a server secret, bound to the merchant, truncated), so an order's history
says which e-mail or payer it was to whoever holds the value, and to nobody else.
"""

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.clients import client_key
from shared.money import Money

SignalKind = Literal["email", "email_domain", "client", "device", "payer", "card_country"]
VelocityKind = Literal["email", "client", "device", "payer"]
Window = Literal[10, 60, 1440]  # minutes
Stage = Literal["checkout", "payment"]

WINDOWS: tuple[Window, ...] = (10, 60, 1440)
VELOCITY_KINDS: tuple[VelocityKind, ...] = ("email", "client", "device", "payer")
PAYMENT_ONLY: frozenset[SignalKind] = frozenset({"payer", "card_country"})  # the provider tells them
DIGEST_HEX = 32  # a hash in a record: 128 bits, no collision among any shop's buyers
MAX_EMAIL = 254
MAX_DEVICE = 128
MAX_PAYER = 200

_DOMAIN_LABEL = re.compile(r"[a-z0-9\u00a1-\uffff]([a-z0-9\u00a1-\uffff-]{0,61}[a-z0-9\u00a1-\uffff])?")
_DEVICE = re.compile(rf"[\x21-\x7e]{{1,{MAX_DEVICE}}}")
_PAYER = re.compile(rf"[a-z][a-z0-9]{{0,19}}:[\x21-\x7e]{{1,{MAX_PAYER}}}")
_COUNTRY = re.compile(r"[A-Z]{2}")
DISPOSABLE_LIST = Path(__file__).with_name("disposable_domains.txt")

# ---------- one value of each kind, normalised (signals and the rules' lists share these) ----------


def normal_email(text: str) -> str:
    """An e-mail address lower-cased and stripped; ValueError if it is not one."""
    email = text.strip().lower()
    local, at, domain = email.rpartition("@")
    if (
        not at
        or not local
        or len(email) > MAX_EMAIL
        or any(c.isspace() or not c.isprintable() for c in email)
    ):
        raise ValueError("not an e-mail address")
    normal_domain(domain)
    return email


def normal_domain(text: str) -> str:
    """A domain name lower-cased, without a trailing dot; ValueError if it is not one."""
    domain = text.strip().lower().removesuffix(".")
    labels = domain.split(".")
    if len(domain) > 253 or len(labels) < 2 or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels):
        raise ValueError("not a domain name")
    return domain


def normal_client(text: str) -> str:
    """A client as shared/clients.py keys it (IPv4 as is, IPv6 by its /64), or a network of them
    (`203.0.113.0/24`; an IPv6 network narrower than a /64 widens to its /64, the unit clients are
    counted in); ValueError for anything else."""
    text = text.strip()
    try:
        ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        return client_key(text)
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError("not an IP address or network") from None
    if network.version == 6 and network.prefixlen > 64:
        network = network.supernet(new_prefix=64)
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


def normal_device(text: str) -> str:
    """A device id as the product page sends it: 1-128 printable ASCII characters, kept as they are."""
    if not _DEVICE.fullmatch(text):
        raise ValueError(f"not a device id (1-{MAX_DEVICE} printable ASCII characters)")
    return text


def normal_payer(text: str) -> str:
    """`<provider>:<the provider's id of the payer>` (`alipay:2088…`, `wechatpay:<openid>`,
    `stripe:<card fingerprint>`): the id kept as it is (providers' ids are case-sensitive)."""
    text = text.strip()
    if not _PAYER.fullmatch(text):
        raise ValueError("not a payer ('<provider>:<id>', the provider in lower case)")
    return text


def normal_country(text: str) -> str:
    """An ISO 3166-1 alpha-2 country code, upper-cased."""
    code = text.strip().upper()
    if not _COUNTRY.fullmatch(code):
        raise ValueError("not a two-letter country code")
    return code


NORMAL: dict[SignalKind, Callable[[str], str]] = {
    "email": normal_email,
    "email_domain": normal_domain,
    "client": normal_client,
    "device": normal_device,
    "payer": normal_payer,
    "card_country": normal_country,
}


def device_id(raw: str | None) -> str | None:
    """The device id a request carries, or None if it carries none or one not in the expected form:
    the page's value is the buyer's to forge, so a bad one is no device, never an error."""
    if raw is None:
        return None
    try:
        return normal_device(raw)
    except ValueError:
        return None


# ---------- disposable e-mail domains ----------


@cache
def disposable_domains() -> frozenset[str]:
    """The bundled list (shared/risk/disposable_domains.txt): one domain a line, `#` comments."""
    lines = DISPOSABLE_LIST.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


def parents(domain: str) -> Iterator[str]:
    """`a.b.example.com`, then `b.example.com`, then `example.com`: a domain and each domain above it."""
    labels = domain.split(".")
    for start in range(len(labels) - 1):
        yield ".".join(labels[start:])


def is_disposable(domain: str) -> bool:
    """Whether a domain, or a domain above it, is a known throw-away mail service."""
    listed = disposable_domains()
    return any(name in listed for name in parents(domain))


# ---------- the signals ----------


class Velocity(BaseModel):
    """Orders in a sliding window, this order included, and their total in the order's currency."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    orders: int = Field(ge=0, strict=True)
    amount: int = Field(ge=0, strict=True)  # minor units of the order's currency


class History(BaseModel):
    """The buyer's past with this shop, known by their e-mail: orders paid and orders refunded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    paid_orders: int = Field(default=0, ge=0, strict=True)  # before this order
    refunds: int = Field(default=0, ge=0, strict=True)

    @property
    def first_order(self) -> bool:
        return self.paid_orders == 0


# (kind, the signal's value, window in minutes): the order's counts in that window (counters.py)
VelocityKey = tuple[VelocityKind, str, Window]


class Signals(BaseModel):
    """Everything one decision may use. `payer` and `card_country` exist at payment only; `device`
    only if the page sent one; `velocity` holds what the store counted for the rules that ask."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    email: str
    client: str | None = None
    device: str | None = None
    payer: str | None = None
    card_country: str | None = None
    amount: Money
    quantity: int = Field(ge=1, strict=True)
    product_id: str = Field(min_length=1, max_length=64)
    history: History | None = History()  # None: not known here (no payer account to read it from)
    velocity: dict[VelocityKey, Velocity] = {}

    @field_validator("email")
    @classmethod
    def _email(cls, email: str) -> str:
        return normal_email(email)

    @field_validator("client")
    @classmethod
    def _client(cls, client: str | None) -> str | None:
        return (client_key(client) or None) if client is not None else None

    @field_validator("device", mode="before")
    @classmethod
    def _device(cls, device: object) -> object:
        return device_id(device) if isinstance(device, str) else device

    @field_validator("payer")
    @classmethod
    def _payer(cls, payer: str | None) -> str | None:
        return normal_payer(payer) if payer is not None else None

    @field_validator("card_country")
    @classmethod
    def _country(cls, country: str | None) -> str | None:
        return normal_country(country) if country is not None else None

    @model_validator(mode="after")
    def _counts_are_this_orders(self) -> "Signals":
        for kind, value, _ in self.velocity:
            if self.value(kind) != value:
                raise ValueError(f"velocity: a count for another {kind} than this order's")
        return self

    @property
    def email_domain(self) -> str:
        return self.email.rpartition("@")[2]

    @property
    def disposable_domain(self) -> bool:
        return is_disposable(self.email_domain)

    def value(self, kind: SignalKind) -> str | None:
        """The order's value of a signal kind, or None if the order has none (yet)."""
        if kind == "email_domain":
            return self.email_domain
        value: str | None = getattr(self, kind)
        return value


# ---------- what a decision records: keyed hashes, never the values ----------


@dataclass(frozen=True)
class Fingerprints:
    """Keyed hashes of one merchant's personal values. The key is derived from a server secret and
    the merchant's id, so a hash means nothing without the secret, and two merchants' hashes of one
    e-mail differ (their records cannot be joined). A new secret starts every counter afresh."""

    key: bytes = field(repr=False)

    @classmethod
    def for_merchant(cls, secret: str, merchant_id: str) -> "Fingerprints":
        if not secret:
            raise ValueError("a secret is required: hashes under an empty key are found by trying values")
        return cls(
            hmac.new(secret.encode(), b"miaofa-risk\0" + merchant_id.encode(), hashlib.sha256).digest()
        )

    def of(self, kind: str, value: str) -> str:
        """The hash of a value of a kind: the first 32 hex digits of HMAC-SHA256(key, kind NUL value)."""
        return hmac.new(self.key, f"{kind}\0{value}".encode(), hashlib.sha256).hexdigest()[:DIGEST_HEX]


class CountUsed(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: VelocityKind
    window: Window
    orders: int
    amount: int


class SignalsUsed(BaseModel):
    """The signals as a decision records them: personal values as `Fingerprints` hashes."""

    model_config = ConfigDict(frozen=True)

    email: str
    email_domain: str
    disposable_domain: bool
    client: str | None
    device: str | None
    payer: str | None
    card_country: str | None
    amount: Money
    quantity: int
    product_id: str
    paid_orders: int | None
    refunds: int | None
    velocity: tuple[CountUsed, ...]


def signals_used(signals: Signals, fingerprints: Fingerprints) -> SignalsUsed:
    """The signals with every personal value (e-mail, its domain, client, device, payer) hashed."""

    def hashed(kind: SignalKind) -> str | None:
        value = signals.value(kind)
        return fingerprints.of(kind, value) if value is not None else None

    counts = (
        CountUsed(kind=kind, window=window, orders=count.orders, amount=count.amount)
        for (kind, _, window), count in signals.velocity.items()
    )
    return SignalsUsed(
        email=fingerprints.of("email", signals.email),
        email_domain=fingerprints.of("email_domain", signals.email_domain),
        disposable_domain=signals.disposable_domain,
        client=hashed("client"),
        device=hashed("device"),
        payer=hashed("payer"),
        card_country=signals.card_country,
        amount=signals.amount,
        quantity=signals.quantity,
        product_id=signals.product_id,
        paid_orders=signals.history.paid_orders if signals.history is not None else None,
        refunds=signals.history.refunds if signals.history is not None else None,
        velocity=tuple(sorted(counts, key=lambda c: (VELOCITY_KINDS.index(c.kind), c.window))),
    )
