"""The ids this shop issues (`<prefix>_<20 hex digits>`) and the hash an API key is stored under."""

import hashlib
import re
import secrets


def key_hash(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def is_id(value: str, prefix: str) -> bool:
    """True for ids this shop issues (`new_id`); anything else is refused before any look-up."""
    return re.fullmatch(rf"{prefix}_[0-9a-f]{{20}}", value) is not None
