"""The AWS SDK's retries, set once here for every client this shop makes (docs/decisions.md).

botocore's standard mode, the same in every AWS SDK: throttles and transient faults (a dropped
connection, a read timeout, a 5xx) are retried with jittered exponential backoff under a per-client
retry quota, so a throttling storm is not multiplied by retries. Three attempts in all: a throttled
checkout answers 503 within ~3 s of backoff, and the buyer's retry (or SQS redelivery) does the rest.
A retried write may have applied already (a lost answer): every write is safe to repeat (DESIGN.md).
"""

from typing import Any

import boto3
from botocore.config import Config

RETRIES: dict[str, Any] = {"mode": "standard", "total_max_attempts": 3}


def config() -> Config:
    """The botocore configuration every client of this shop is made with."""
    return Config(retries=dict(RETRIES))


def client(service: str) -> Any:
    """A new boto3 client for `service` with these retries (made on first use, kept while warm)."""
    return boto3.client(service, config=config())  # type: ignore[call-overload]
