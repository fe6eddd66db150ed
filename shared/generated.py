"""Generated codes: a fresh code per order line from the merchant's pattern, e.g. `GIFT-XXXX-XXXX-9999`.

The pattern language (docs/licenses.md "Generated codes"), one character of the code per position:
`X` a letter or digit, `A` a letter, `9` a digit, `\\` makes the next character literal (`\\X` is an
X), and any other printable ASCII character but a space is itself. Letters and digits come from
alphabets without look-alikes (no 0 O 1 I L), except `9`, which is any digit, as merchants expect.
Every position is drawn on its own and uniformly from a CSPRNG; a pattern must give at least
`MIN_ENTROPY_BITS` bits, so that the codes a shop has made cannot be found by guessing.

A code is never stored in plaintext: uniqueness per product rests on `fingerprint`, a keyed hash.
"""

import hashlib
import hmac
import math
import random
import secrets
from dataclasses import dataclass

from shared.errors import Invalid

SAFE_LETTERS = "ABCDEFGHJKMNPQRSTUVWXYZ"  # A-Z without I, L, O (23)
DIGITS = "0123456789"
SAFE_ALPHANUMERIC = "23456789" + SAFE_LETTERS  # without 0 1 I L O (31)
CLASSES = {"X": SAFE_ALPHANUMERIC, "A": SAFE_LETTERS, "9": DIGITS}
ESCAPE = "\\"

MIN_ENTROPY_BITS = 40
MAX_CODE_LENGTH = 64
MAX_PATTERN_LENGTH = 2 * MAX_CODE_LENGTH  # every character escaped
PATTERN_ERROR = "invalid_code_pattern"
CSPRNG = secrets.SystemRandom()  # the operating system's generator; it keeps no state of its own


@dataclass(frozen=True)
class Pattern:
    """A parsed pattern: one alphabet per position of the code (a literal is an alphabet of one)."""

    text: str
    positions: tuple[str, ...]

    @property
    def entropy_bits(self) -> float:
        return sum(math.log2(len(alphabet)) for alphabet in self.positions)

    def generate(self, rng: random.Random) -> str:
        return "".join(
            alphabet if len(alphabet) == 1 else rng.choice(alphabet) for alphabet in self.positions
        )

    def matches(self, code: str) -> bool:
        """True if the pattern could have made `code`."""
        return len(code) == len(self.positions) and all(
            c in a for c, a in zip(code, self.positions, strict=True)
        )


def parse(pattern: str) -> Pattern:
    """The pattern's positions, checked for syntax only (not for length or entropy)."""
    if not pattern:
        raise Invalid("the code pattern is empty; e.g. GIFT-XXXX-XXXX-9999", code=PATTERN_ERROR)
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise Invalid(f"the code pattern is longer than {MAX_PATTERN_LENGTH} characters", code=PATTERN_ERROR)
    positions: list[str] = []
    escaped = False
    for index, char in enumerate(pattern):
        if not "!" <= char <= "~":
            raise Invalid(
                f"the code pattern has {char!r} at position {index + 1}: a code is made of printable "
                "ASCII characters, without spaces",
                code=PATTERN_ERROR,
            )
        if escaped:
            positions.append(char)
            escaped = False
        elif char == ESCAPE:
            escaped = True
        else:
            positions.append(CLASSES.get(char, char))
    if escaped:
        raise Invalid(
            "the code pattern ends with a lone '\\': it makes the character after it literal (e.g. '\\X' for an X)",
            code=PATTERN_ERROR,
        )
    return Pattern(pattern, tuple(positions))


def validate(pattern: str) -> Pattern:
    """The parsed pattern, if it makes codes short enough and hard enough to guess (422 if not)."""
    parsed = parse(pattern)
    if len(parsed.positions) > MAX_CODE_LENGTH:
        raise Invalid(
            f"the code pattern makes codes of {len(parsed.positions)} characters; at most {MAX_CODE_LENGTH}",
            code=PATTERN_ERROR,
        )
    bits = parsed.entropy_bits
    if bits < MIN_ENTROPY_BITS:
        more = math.ceil((MIN_ENTROPY_BITS - bits) / math.log2(len(SAFE_ALPHANUMERIC)))
        raise Invalid(
            f"the code pattern gives {bits:.1f} bits of randomness; at least {MIN_ENTROPY_BITS} are needed so "
            f"that codes cannot be guessed (each X adds 4.95, A 4.52, 9 3.32): add {more} more X, for instance",
            code=PATTERN_ERROR,
        )
    return parsed


def entropy_bits(pattern: str) -> float:
    """How many bits of randomness each code of the pattern has (log2 of how many codes it can make)."""
    return parse(pattern).entropy_bits


def generate(pattern: str, rng: random.Random = CSPRNG) -> str:
    """A fresh code of the pattern, every position drawn uniformly from its class by `rng` (a CSPRNG)."""
    return validate(pattern).generate(rng)


def fingerprint_message(product_id: str, code: str) -> str:
    """What `fingerprint` hashes: a merchant's CodeCipher.fingerprint of it is the same keyed hash."""
    return f"generated\x00{product_id}\x00{code}"


def fingerprint(product_id: str, code: str, key: bytes) -> str:
    """The keyed hash (HMAC-SHA256, hex) a generated code is made unique under, per product."""
    if len(key) < 32:
        raise ValueError("a fingerprint key has at least 256 bits")
    return hmac.new(key, fingerprint_message(product_id, code).encode(), hashlib.sha256).hexdigest()
