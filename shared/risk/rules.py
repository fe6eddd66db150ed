"""A merchant's risk rules as data: the JSON document of `GET/PUT /merchant/risk/rules`, validated
here, stored as one item (docs/risk.md "Rules").

Every rule has an `id` (the merchant's, or made from its content when first sent, then kept), an
`action` (allow, review or block) taken when it fires, a `score` (0-100) it adds to the order's
score, and `dry_run`: a dry-run rule is evaluated and recorded, and changes nothing. The document's
`review_at` and `block_at` turn the score into an action too. What the engine does with them:
shared/risk/engine.py.

The document stays small (one DynamoDB item holds 400 KB; this one at most MAX_DOCUMENT_BYTES of
JSON), so it is read with the counters in one batched read and parsed in well under a millisecond.
"""

import hashlib
import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from shared.errors import Invalid
from shared.money import Money
from shared.risk.signals import NORMAL, SignalKind, VelocityKind, Window, parents

Action = Literal["allow", "review", "block"]
RuleType = Literal[
    "list", "velocity", "amount", "quantity", "first_order", "disposable_email", "past_refunds"
]

MAX_RULES = 50
MAX_LIST_VALUES = 1000  # entries in one list rule
MAX_VALUES = 2000  # entries in all the lists together
MAX_DOCUMENT_BYTES = 48_000  # the document as JSON: one item read in the checkout's batched read
MAX_VERSION = 2**53 - 1  # JSON's exact integers
MAX_LEARNED = 500  # entries a learned block list keeps (`with_blocked`); the oldest go first
STORED = "stored"  # validation context: a document read back from the store (`stored_rules`)

RuleId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,47}$")]
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]


def _id_optional(schema: dict[str, Any]) -> None:
    """In the published schema a rule's `id` may be left out (one is made from its content)."""
    schema["required"] = [name for name in schema.get("required", []) if name != "id"]


class _Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra=_id_optional)

    id: RuleId
    action: Action
    score: int = Field(default=0, ge=0, le=100, strict=True)
    dry_run: bool = Field(default=False, strict=True)
    note: Note | None = None  # the merchant's own words on why the rule is there

    @model_validator(mode="before")
    @classmethod
    def _generated_id(cls, data: Any) -> Any:
        """A rule sent without an id gets one made from its content: the same rule sent again (a
        retried PUT) gets the same id; once stored, it keeps it whatever changes."""
        if isinstance(data, dict) and "id" not in data:
            content = json.dumps({k: v for k, v in data.items() if k != "id"}, sort_keys=True, default=str)
            data = {**data, "id": f"{cls.type_name()}-{hashlib.sha256(content.encode()).hexdigest()[:8]}"}
        return data

    @classmethod
    def type_name(cls) -> str:
        return str(cls.model_fields["type"].annotation.__args__[0])  # type: ignore[union-attr] # a Literal


class ListRule(_Rule):
    """Fires when the order's value of `kind` is one of `values`: a block, review or allow list. An
    `email_domain` entry covers its subdomains; a `client` entry may be a network (`198.51.100.0/24`,
    `2001:db8::/48`)."""

    type: Literal["list"]
    kind: SignalKind
    values: tuple[str, ...] = Field(default=(), max_length=MAX_LIST_VALUES)

    @field_validator("values", mode="before")
    @classmethod
    def _not_too_many(cls, values: Any) -> Any:
        return _at_most(values, MAX_LIST_VALUES, "entries")

    @field_validator("values")
    @classmethod
    def _normalised(cls, values: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        kind = info.data.get("kind")
        if kind is None:
            return values  # the kind's own error is reported
        if info.context and info.context.get(STORED):
            return values  # normalised when written (`RiskRules.stored`)
        kept: dict[str, None] = {}
        for index, value in enumerate(values):
            try:
                kept[NORMAL[kind](value)] = None
            except ValueError as error:
                raise ValueError(f"entry {index}: {error}") from None  # never the value: it may be personal
        return tuple(kept)


class VelocityRule(_Rule):
    """Fires when the orders (this one included) from one e-mail, client, device or payer within the
    last `window` minutes are more than `max_orders`, or add up to more than `max_amount`."""

    type: Literal["velocity"]
    kind: VelocityKind
    window: Window
    max_orders: int | None = Field(default=None, ge=1, le=100_000, strict=True)
    max_amount: Money | None = None

    @model_validator(mode="after")
    def _a_threshold(self) -> "VelocityRule":
        if self.max_orders is None and self.max_amount is None:
            raise ValueError("max_orders, max_amount: set one of them, or both")
        return self


class AmountRule(_Rule):
    """Fires when the order's total is above `above` (an order in another currency: not evaluated)."""

    type: Literal["amount"]
    above: Money


class QuantityRule(_Rule):
    """Fires when the order is for more than `above` units."""

    type: Literal["quantity"]
    above: int = Field(ge=1, le=100_000, strict=True)


class FirstOrderRule(_Rule):
    """Fires when the buyer's e-mail has no paid order at this shop yet and the total is above `above`."""

    type: Literal["first_order"]
    above: Money


class DisposableEmailRule(_Rule):
    """Fires when the e-mail's domain is a throw-away mail service (shared/risk/disposable_domains.txt)."""

    type: Literal["disposable_email"]


class PastRefundsRule(_Rule):
    """Fires when at least `at_least` of the buyer's earlier orders at this shop were refunded."""

    type: Literal["past_refunds"]
    at_least: int = Field(ge=1, le=10_000, strict=True)


Rule = Annotated[
    ListRule
    | VelocityRule
    | AmountRule
    | QuantityRule
    | FirstOrderRule
    | DisposableEmailRule
    | PastRefundsRule,
    Field(discriminator="type"),
]
RULE_TYPES: frozenset[str] = frozenset(RuleType.__args__)  # type: ignore[attr-defined]


def address_number(text: str) -> tuple[int, int, int]:
    """(IP version, prefix length, address as a number) of an address or a network as normalised
    here; OSError if it is neither. Through the C parser: a thousand networks compile in a blink."""
    address, _, prefix = text.partition("/")
    family, bits = (socket.AF_INET6, 128) if ":" in address else (socket.AF_INET, 32)
    number = int.from_bytes(socket.inet_pton(family, address), "big")
    return (6 if bits == 128 else 4), int(prefix) if prefix else bits, number


@dataclass(frozen=True)
class Listed:
    """One list's values compiled for a look-up in constant time (a client's networks: one set per
    prefix length, so a thousand networks cost a handful of set look-ups)."""

    kind: SignalKind
    exact: frozenset[str]
    networks: tuple[tuple[int, int, frozenset[int]], ...] = ()  # (IP version, prefix length, networks)

    @classmethod
    def of(cls, rule: ListRule) -> "Listed":
        grouped: dict[tuple[int, int], set[int]] = {}
        for value in rule.values if rule.kind == "client" else ():
            if "/" in value:
                version, prefix, number = address_number(value)
                grouped.setdefault((version, prefix), set()).add(number)
        networks = tuple(
            (version, prefix, frozenset(found)) for (version, prefix), found in sorted(grouped.items())
        )
        return cls(rule.kind, frozenset(rule.values), networks)

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, str):
            return False
        if self.kind == "email_domain":
            return any(domain in self.exact for domain in parents(value))
        if value in self.exact:
            return True
        if not self.networks:
            return False
        try:
            version, length, number = address_number(value)  # an IPv4 address, or an IPv6 /64 (a client key)
        except (OSError, ValueError):
            return False  # a client keyed as given (not an address) is in no network
        bits = 128 if version == 6 else 32
        return any(
            same == version and prefix <= length and number >> (bits - prefix) << (bits - prefix) in found
            for same, prefix, found in self.networks
        )


class RiskRules(BaseModel):
    """A merchant's rules document. `version` is the one it was read at: the store writes a change
    as `version + 1`, conditional on the version read, and each decision records the version it used."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(default=0, ge=0, le=MAX_VERSION, strict=True)
    review_at: int | None = Field(default=60, ge=1, le=100, strict=True)  # score from which to review
    block_at: int | None = Field(default=90, ge=1, le=100, strict=True)  # score from which to block
    rules: tuple[Rule, ...] = Field(default=(), max_length=MAX_RULES)
    _listed: dict[str, Listed] = PrivateAttr(default_factory=dict)

    @field_validator("rules", mode="before")
    @classmethod
    def _not_too_many(cls, rules: Any) -> Any:
        return _at_most(rules, MAX_RULES, "rules")

    @model_validator(mode="after")
    def _whole(self, info: ValidationInfo) -> "RiskRules":
        if self.review_at is not None and self.block_at is not None and self.review_at > self.block_at:
            raise ValueError("review_at must not be above block_at")
        seen: set[str] = set()
        for index, rule in enumerate(self.rules):
            if rule.id in seen:
                raise ValueError(f"rules[{index}].id: another rule has the id '{rule.id}' (ids are unique)")
            seen.add(rule.id)
            if rule.id.startswith("learned-") and not (
                isinstance(rule, ListRule) and rule.action == "block" and rule.id == learned_id(rule.kind)
            ):
                raise ValueError(
                    f"rules[{index}].id: ids 'learned-<kind>' are kept for the block lists disputes and "
                    "fraud refunds fill (a list rule of that kind, action block)"
                )
        entries = sum(len(rule.values) for rule in self.rules if isinstance(rule, ListRule))
        if entries > MAX_VALUES:
            raise ValueError(f"rules: {entries} list entries in all; at most {MAX_VALUES}")
        if info.context and info.context.get(STORED):
            return self  # within the limit when it was written
        size = len(self.model_dump_json())
        if size > MAX_DOCUMENT_BYTES:
            raise PydanticCustomError(
                "document_too_large",
                "the document is {size} bytes as JSON; at most {limit}: remove list entries or rules",
                {"size": size, "limit": MAX_DOCUMENT_BYTES},
            )
        return self

    def model_post_init(self, context: Any, /) -> None:
        self._listed = {rule.id: Listed.of(rule) for rule in self.rules if isinstance(rule, ListRule)}

    def listed(self, rule: ListRule) -> Listed:
        """A list rule's values, compiled (once, when the document is read)."""
        return self._listed[rule.id]


def _at_most(items: Any, most: int, what: str) -> Any:
    """Refuses a list longer than `most` before a single item of it is validated."""
    if isinstance(items, list | tuple) and len(items) > most:
        raise ValueError(f"at most {most} {what}, not {len(items)}")
    return items


def stored_rules(text: str | bytes) -> RiskRules:
    """A rules document as the store wrote it (JSON, validated when it was put): its lists are not
    normalised again, so a full document parses in about a millisecond, not ten."""
    return RiskRules.model_validate_json(text, context={STORED: True})


def parse_rules(document: Any) -> RiskRules:
    """A rules document from its JSON value; 422 `invalid_risk_rules` naming the first field that is
    wrong (`rules[2].window: ...`), never a list's value."""
    try:
        return RiskRules.model_validate(document)
    except ValidationError as error:
        problems = error.errors(include_url=False, include_input=False)
        first = problems[0]
        message = first["msg"].removeprefix("Value error, ")
        if first["loc"]:  # a problem of the whole document names its fields itself
            message = f"{where(first['loc'])}: {message}"
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more)"
        raise Invalid(message, code="invalid_risk_rules") from None


def where(location: tuple[int | str, ...]) -> str:
    """A pydantic location as the merchant wrote it: `rules[2].window` (the rule's type, which
    pydantic puts in the path of a tagged rule, left out)."""
    path = ""
    for index, part in enumerate(location):
        if isinstance(part, int):
            path += f"[{part}]"
        elif not (part in RULE_TYPES and index > 0 and isinstance(location[index - 1], int)):
            path += f".{part}" if path else part
    return path


def learned_id(kind: SignalKind) -> str:
    return f"learned-{kind}"


def with_blocked(rules: RiskRules, values: Mapping[SignalKind, str | None]) -> RiskRules:
    """The rules after a dispute or a fraud refund: each value (None: that kind unknown) on the
    learned block list of its kind (rule `learned-<kind>`, added if missing), and off every allow list
    of that kind. The version stays the one read (the store writes the change conditional on it).
    When a list or the document is full, the oldest learned entries make room."""
    found = {kind: NORMAL[kind](value) for kind, value in values.items() if value is not None}
    kept: list[dict[str, Any]] = []
    for rule in rules.rules:
        document = rule.model_dump(mode="json")
        if isinstance(rule, ListRule) and rule.kind in found and rule.action == "allow":
            document["values"] = [v for v in rule.values if v != found[rule.kind]]
        kept.append(document)
    for kind, value in found.items():
        learned = next((d for d in kept if d["id"] == learned_id(kind)), None)
        if learned is not None and (learned["type"], learned.get("kind"), learned["action"]) != (
            "list",
            kind,
            "block",
        ):
            raise ValueError(
                f"rule '{learned_id(kind)}' is kept for learned blocks but is not a {kind} block list"
            )
        if learned is None:
            learned = {"id": learned_id(kind), "type": "list", "kind": kind, "action": "block", "score": 100}
            learned["note"] = "added when an order was disputed or refunded as fraud"
            kept.append(learned)
        learned["values"] = [*(v for v in learned.get("values", []) if v != value), value][-MAX_LEARNED:]
    learned_lists = [d for d in kept if d["id"] in {learned_id(kind) for kind in found}]
    while True:
        try:
            return RiskRules.model_validate({**rules.model_dump(mode="json"), "rules": kept})
        except ValidationError as error:
            longest = max(learned_lists, key=lambda d: len(d["values"]))
            too_full = {p["type"] for p in error.errors()} <= {"document_too_large", "value_error"}
            if not too_full or len(longest["values"]) <= 1:
                raise
            del longest["values"][0]
