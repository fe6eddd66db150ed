"""Per-client token buckets on the public buyer routes (docs/operations.md "Limits and throttles"),
kept as GCRA: one item per (route group, client) holds `tat`, the theoretical arrival time (ms) at
which the client's bucket is full again. A request is admitted if afterwards `tat` is at most `burst`
intervals ahead of now; admitting moves `tat` on by one interval. The limits table holds the items.

An idle client (`tat` past: a full bucket) costs one conditional UpdateItem that sets `tat` to now
plus an interval; a busy one (`tat` ahead) one that adds an interval if the burst allows it. The
process remembers the last `tat` it saw of a client to try the likely write first (a wrong guess
costs a second write). A refused request reads the item for its Retry-After, and the process then
refuses that client from memory until it may be admitted again: a flood costs no further writes
here. Nothing is lost by it: `tat` only grows, so the store would refuse those requests too.

Every write is safe to repeat (DESIGN.md): it also sets `last` to the call's own token, and neither
condition holds for it twice (an applied idle write leaves `tat` ahead; the busy write wants another
token). So the SDK's retry of a write that applied is refused, and the read finds the call's token:
admitted, charged once. Only if another request of the same client wrote between the lost answer and
the retry is the token gone; the call is then charged as a new request (one interval more).

Clients are keyed by an HMAC of their client key (shared/clients.py) under ORDER_TOKEN_SECRET, never
by the address itself (an IPv4 address hashed without a key is found by trying them all); a new
secret starts every bucket afresh, which costs nothing.
"""

import hashlib
import hmac
import math
import secrets
import threading
from collections.abc import Hashable
from dataclasses import dataclass

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.models import Model

from shared.errors import TooMany
from shared.settings import settings
from shared.store.errors import condition_failed

KEPT = 10_000  # clients one process remembers (refusals, last `tat` seen); past it the oldest go
ROUNDS = 3  # write-and-read rounds when other requests of the same client keep changing its bucket
SK = "bucket"


class RateItem(Model):
    class Meta:
        table_name: str | None = None

    pk = UnicodeAttribute(hash_key=True)  # rate#<group>#<HMAC of the client key>
    sk = UnicodeAttribute(range_key=True)
    tat = NumberAttribute()  # ms since the epoch: when the bucket is full again
    last = UnicodeAttribute(null=True)  # the token of the write that last admitted a request
    expires = NumberAttribute()  # TTL, an hour after the bucket is full again: housekeeping only


@dataclass(frozen=True)
class Bucket:
    """`per_minute` requests a minute sustained, after a burst of `burst`; 0 a minute: no bucket."""

    per_minute: int
    burst: int

    @property
    def interval_ms(self) -> int:
        return max(1, round(60_000 / self.per_minute))

    def wait_ms(self, tat: int, now_ms: int) -> int:
        """How long a request at `now_ms` waits before its bucket admits it (0: admitted now)."""
        return max(0, tat - (self.burst - 1) * self.interval_ms - now_ms)


class _Kept:
    """At most `most` values by key, the oldest put first out (a container's memory of clients)."""

    def __init__(self, most: int) -> None:
        self._most, self._lock = most, threading.Lock()
        self._values: dict[Hashable, float] = {}

    def get(self, key: Hashable) -> float | None:
        with self._lock:
            return self._values.get(key)

    def put(self, key: Hashable, value: float) -> None:
        with self._lock:
            self._values.pop(key, None)
            self._values[key] = value
            if len(self._values) > self._most:
                del self._values[next(iter(self._values))]


class RateStore:
    def __init__(self, secret: str, kept: int = KEPT) -> None:
        RateItem.Meta.table_name = settings().limits_table
        self._secret = secret.encode()
        self._refused = _Kept(kept)  # (pk, bucket) -> when the client may be admitted (s since epoch)
        self._seen = _Kept(kept)  # pk -> the client's `tat` as last written or read here

    def key(self, group: str, client: str) -> str:
        """The partition key of `client`'s bucket for `group`: the client key only as an HMAC."""
        digest = hmac.new(self._secret, f"rate:{client}".encode(), hashlib.sha256).hexdigest()
        return f"rate#{group}#{digest}"

    def admit(self, group: str, client: str, bucket: Bucket, now: float) -> None:
        """Take a token of `client`'s bucket for `group` at `now` (s since the epoch), or TooMany."""
        wait = self.take(group, client, bucket, now)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise TooMany(
                f"too many requests; retry in {seconds} s", code="rate_limited", retry_after=seconds
            )

    def take(self, group: str, client: str, bucket: Bucket, now: float) -> float:
        """Take a token of `client`'s bucket for `group` at `now`: 0 if taken, else the seconds until
        one would be (nothing is taken)."""
        if bucket.per_minute <= 0:
            return 0
        pk = self.key(group, client)
        until = self._refused.get((pk, bucket))
        if until is not None and until > now:
            return until - now
        now_ms, token = int(now * 1000), secrets.token_hex(8)
        busy = (self._seen.get(pk) or 0) > now_ms
        for _ in range(ROUNDS):
            for write in (_busy, _idle) if busy else (_idle, _busy):
                tat = write(pk, bucket, now_ms, token)
                if tat is not None:
                    self._seen.put(pk, tat)
                    return 0
            try:
                item = RateItem.get(pk, SK, consistent_read=True)
            except RateItem.DoesNotExist:
                busy = False  # expired between the writes and the read: an idle client again
                continue
            self._seen.put(pk, int(item.tat))
            if item.last == token:  # this call's write applied; the answer was lost, the retry refused
                return 0
            if wait_ms := bucket.wait_ms(int(item.tat), now_ms):
                self._refused.put((pk, bucket), now + wait_ms / 1000)
                return wait_ms / 1000
            busy = item.tat > now_ms  # the bucket moved between the writes: try again as it is now
        return bucket.interval_ms / 1000  # contended past ROUNDS: a flood of its own; not remembered


def _idle(pk: str, bucket: Bucket, now_ms: int, token: str) -> int | None:
    """A full bucket's first token: `tat` becomes now plus an interval. None if `tat` is ahead."""
    tat = now_ms + bucket.interval_ms
    return _update(
        pk,
        bucket,
        now_ms,
        token,
        RateItem.tat.set(tat),
        RateItem.tat.does_not_exist() | (RateItem.tat <= now_ms),
    )


def _busy(pk: str, bucket: Bucket, now_ms: int, token: str) -> int | None:
    """A token of a bucket in use: `tat` moves on by an interval if it stays within the burst. None if
    the bucket is full (`tat` past) or empty, or this call's write already applied."""
    latest = now_ms + (bucket.burst - 1) * bucket.interval_ms
    return _update(
        pk,
        bucket,
        now_ms,
        token,
        RateItem.tat.set(RateItem.tat + bucket.interval_ms),
        (RateItem.tat > now_ms) & (RateItem.tat <= latest) & ~(RateItem.last == token),
    )


def _update(
    pk: str, bucket: Bucket, now_ms: int, token: str, move: Action, condition: Condition
) -> int | None:
    """One conditional UpdateItem of the bucket: its new `tat`, or None if the condition failed."""
    expires = (now_ms + bucket.burst * bucket.interval_ms) // 1000 + 3600
    item = RateItem(pk=pk, sk=SK)
    try:
        item.update(
            actions=[move, RateItem.last.set(token), RateItem.expires.set(expires)], condition=condition
        )
    except UpdateError as error:
        if condition_failed(error):
            return None
        raise  # throttled past the SDK's retries: the handler answers 503 busy
    return int(item.tat)
