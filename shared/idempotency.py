"""Idempotency-Keys. A checkout's key derives its order id and access token (functions/storefront/
checkout.py), so whoever guesses a key and the body it came with holds the order: a key must be
random, at least MIN_BITS of it, as far as can be told from the key alone.

The estimate is conservative and has no dictionary: each symbol of the key is worth log2 of the
smallest standard alphabet that holds the whole key, over the shortest block the key repeats.

| the key is made of | alphabet | not counted |
|---|---|---|
| a UUID (8-4-4-4-12 hexadecimal digits) | its random bits: 122 for a v4, 0 for any other version | |
| digits | 10 | `-` (groups) |
| hexadecimal digits, either case | 16 | `-` (groups) |
| letters, digits, `-` `_` `+` `/` (base64url, base64) | 64 | trailing `=` (padding) |
| anything else | 95 (printable ASCII; other characters count as no more) | |

So base64url of 16 random bytes (22 symbols: 132) and hex of 16 random bytes (32 digits: 128) pass,
and so do longer ones; `order-1`, `12345`, a timestamp, a counter or a UUID do not (a v4 has 122
random bits; a v1, v6 or v7 is mostly a clock, and a v3 or v5 a hash of a name). A UUID written
without its hyphens is 32 hex digits and passes: from the key alone it cannot be told apart. (Hex of 16
random bytes that happens to hold only 0-9, 1 time in 3.4 million, reads as a decimal number, 106 bits,
and is refused: the client sends another key.) A key must also vary: its characters,
and the steps between neighbouring ones, each spread over at least VARIETY_BITS (length × the entropy
of their own distribution), so `aaaa…b` and `abcdefgh…` are refused however long they are. Random
keys clear that floor: a UUID's spread is ~115 bits, base64url of 16 bytes ~90 (none under 70 in
millions tried). A long made-up phrase can still pass: the rule stops short, counter-like and
repetitive keys; only a random generator makes a key as hard to guess as the token it stands for.
"""

import math
import re
import string
from collections import Counter
from collections.abc import Sequence

from shared.errors import Invalid

MAX_LENGTH = 255
MIN_BITS = 128
UUID4_BITS = 122  # a version 4 UUID: 128 bits less its version (4) and variant (2)
VARIETY_BITS = 64
_UUID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_DECIMAL = frozenset(string.digits)
_HEX = frozenset(string.hexdigits)
_BASE64 = frozenset(string.ascii_letters + string.digits + "-_+/")


def estimated_bits(key: str) -> float:
    """A conservative estimate of the randomness in `key`, in bits (the table above)."""
    grouped = key.replace("-", "")
    if _UUID.fullmatch(key):
        return UUID4_BITS if key[14] == "4" and key[19].lower() in "89ab" else 0.0
    if grouped and set(grouped) <= _DECIMAL:
        symbols, alphabet = grouped, 10
    elif grouped and set(grouped) <= _HEX:
        symbols, alphabet = grouped, 16
    elif set(padded := key.rstrip("=")) <= _BASE64:
        symbols, alphabet = padded, 64
    else:
        symbols, alphabet = key, 95
    if _spread(symbols) < VARIETY_BITS or _spread(_steps(symbols)) < VARIETY_BITS:
        return 0.0
    return len(symbols[: _period(symbols)]) * math.log2(alphabet)


def check_key(key: str | None) -> None:
    """Refuse (422 `invalid_idempotency_key`) an Idempotency-Key that is malformed or guessable; None
    is no key."""
    if key is None:
        return
    if not (0 < len(key) <= MAX_LENGTH and key.isprintable()):
        raise Invalid(
            f"Idempotency-Key must be 1 to {MAX_LENGTH} printable characters", code="invalid_idempotency_key"
        )
    if estimated_bits(key) < MIN_BITS:
        raise Invalid(
            f"Idempotency-Key must be random, with at least {MIN_BITS} bits: use 16+ random bytes in "
            "base64url or hex (a UUID has at most 122); a short, counted or repetitive key would let "
            "others guess the order",
            code="invalid_idempotency_key",
        )


def _spread(values: Sequence[object]) -> float:
    """len × the Shannon entropy of the values' own distribution: how much they vary, in bits."""
    counts, total = Counter(values).values(), len(values)
    return -sum(n * math.log2(n / total) for n in counts)


def _steps(symbols: str) -> list[int]:
    return [ord(b) - ord(a) for a, b in zip(symbols, symbols[1:], strict=False)]


def _period(symbols: str) -> int:
    """The length of the shortest block that, repeated at least twice, makes `symbols` (its own length
    if none does; a last copy may be cut short)."""
    n = len(symbols)
    blocks = range(1, n // 2 + 1)
    return next((p for p in blocks if all(symbols[i] == symbols[i % p] for i in range(n))), n)
