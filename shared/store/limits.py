"""Caps on unpaid orders per buyer, exact under concurrency: a buyer key (hashed e-mail or client
address) has `cap` numbered tickets; a checkout holds one until its reservation expires or it is paid.

Taking a ticket is one conditional put (free = absent, or held past its `until`), so simultaneous
checkouts cannot exceed the cap. A ticket that is never given back (a crash) frees itself at `until`.

Per-buyer daily limits on a product are counters: one item per (product, buyer e-mail, UTC day)
counts the units ordered, and a checkout adds its quantity with one conditional update that holds
only if the sum stays within the limit, so simultaneous checkouts cannot exceed it. Order look-ups
are capped per hour the same way (`take_hourly`).

Every write here is safe to repeat (DESIGN.md): the SDK retries a request whose answer was lost,
after it applied. Each call writes a fresh token with its change — the ticket's `taker`, a token
added to the counter's `tokens` set — and its condition lets that token's own retry through (a
ticket) or refuses it (a counter, which then reads back whether its token is in). Taking back
removes exactly what the token added. Tokens stay in a counter for its day or hour, at most
MAX_COUNTED of them (an item holds 400 KB): past that, the counter refuses as if full.
"""

import calendar
import hashlib
import random
import secrets
import time
from dataclasses import dataclass
from datetime import date, timedelta

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UnicodeSetAttribute
from pynamodb.exceptions import DeleteError, PutError, UpdateError
from pynamodb.expressions.condition import size
from pynamodb.models import Model

from shared.orders import Ticket
from shared.settings import settings
from shared.store.errors import condition_failed

MAX_COUNTED = 1000  # checkouts (or look-ups) one counter counts in its day (or hour)


class TicketItem(Model):
    class Meta:
        table_name: str | None = None

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    holder = UnicodeAttribute()
    taker = UnicodeAttribute(null=True)  # the taking call's token: its SDK retry finds the ticket its own
    until = NumberAttribute()
    expires = NumberAttribute()  # TTL, a day after `until`: only housekeeping, never relied on


class DailyCountItem(Model):  # also the hourly counters (`take_hourly`)
    class Meta:
        table_name: str | None = None

    pk = UnicodeAttribute(hash_key=True)  # daily#<product>#<buyer key>
    sk = UnicodeAttribute(range_key=True)  # the UTC day, YYYY-MM-DD
    units = NumberAttribute()
    tokens = UnicodeSetAttribute(null=True)  # one per call counted: a retried write finds its own
    expires = NumberAttribute()  # TTL, two days after the day ends: only housekeeping


@dataclass(frozen=True)
class DailyCount:
    """What one call adds to a counter (a checkout's units for a buyer, product and day; one look-up
    in an hour), under the call's own token: given back by that token if the checkout fails."""

    pk: str
    sk: str
    units: int
    token: str


def buyer_key(kind: str, value: str) -> str:
    return f"{kind}#{hashlib.sha256(value.strip().lower().encode()).hexdigest()}"


class LimitStore:
    def __init__(self) -> None:
        TicketItem.Meta.table_name = settings().limits_table
        DailyCountItem.Meta.table_name = settings().limits_table

    def take(self, key: str, cap: int, order_id: str, until: int) -> Ticket | None:
        """Hold one of the key's `cap` tickets for `order_id` until `until`; None if all are held."""
        now, start = int(time.time()), random.randrange(cap)  # noqa: S311 - spreads tickets, not a secret
        token = secrets.token_hex(8)
        for i in range(cap):
            sk = f"{(start + i) % cap:06d}"
            ticket = TicketItem(
                pk=key, sk=sk, holder=order_id, taker=token, until=until, expires=until + 86_400
            )
            try:
                ticket.save(
                    condition=TicketItem.pk.does_not_exist()
                    | (TicketItem.until < now)
                    | (TicketItem.taker == token)  # this very put, retried after its answer was lost
                )
            except PutError as error:
                if condition_failed(error):
                    continue
                _drop(key, sk, token)  # it may have applied before its answer was lost
                raise
            return Ticket(pk=key, sk=sk)
        return None

    def give_back(self, ticket: Ticket, order_id: str) -> None:
        """Free a ticket if this order still holds it (idempotent)."""
        try:
            TicketItem(pk=ticket.pk, sk=ticket.sk).delete(condition=TicketItem.holder == order_id)
        except DeleteError as error:
            if not condition_failed(error):
                raise

    def count_daily(
        self, product_id: str, email: str, day: date, units: int, limit: int
    ) -> DailyCount | None:
        """Add `units` to what this e-mail ordered of the product on `day` (UTC), if the total stays
        within `limit`; None (nothing added) if it would not."""
        pk, sk = f"daily#{product_id}#{buyer_key('email', email)}", day.isoformat()
        expires = calendar.timegm((day + timedelta(days=3)).timetuple())
        count = DailyCount(pk=pk, sk=sk, units=units, token=secrets.token_hex(8))
        return count if _add_within(count, limit, expires) else None

    def take_hourly(self, key: str, limit: int, now: int) -> bool:
        """Count one request of `key` (a buyer_key) in the current hour; False (nothing counted) once
        `limit` were counted this hour."""
        hour = now // 3600
        count = DailyCount(pk=f"hourly#{key}", sk=str(hour), units=1, token=secrets.token_hex(8))
        return _add_within(count, limit, (hour + 2) * 3600)

    def uncount_daily(self, count: DailyCount) -> None:
        """Give back what a checkout added, when it failed before its order existed (idempotent)."""
        _take_back(count)

    def counted_daily(self, product_id: str, email: str, day: date) -> int:
        """Units this e-mail has ordered of the product on `day` (UTC)."""
        try:
            item = DailyCountItem.get(
                f"daily#{product_id}#{buyer_key('email', email)}", day.isoformat(), consistent_read=True
            )
        except DailyCountItem.DoesNotExist:
            return 0
        return int(item.units)


def _add_within(count: DailyCount, limit: int, expires: int) -> bool:
    """Add a call's units and token to a counter if its total stays within `limit` (one conditional
    update); a retry of an update that applied is refused, and finds its token."""
    if count.units > limit:
        return False
    item = DailyCountItem(pk=count.pk, sk=count.sk)
    try:
        item.update(
            actions=[
                DailyCountItem.units.add(count.units),
                DailyCountItem.tokens.add({count.token}),
                DailyCountItem.expires.set(expires),
            ],
            condition=(DailyCountItem.units.does_not_exist() | (DailyCountItem.units <= limit - count.units))
            & (
                DailyCountItem.tokens.does_not_exist()
                | (~DailyCountItem.tokens.contains(count.token) & (size(DailyCountItem.tokens) < MAX_COUNTED))
            ),
        )
    except UpdateError as error:
        if not condition_failed(error):
            _take_back(count)  # it may have applied before its answer was lost
            raise
        # Refused: over the limit, or this very update applied and only its answer was lost.
        try:
            seen = DailyCountItem.get(count.pk, count.sk, consistent_read=True, attributes_to_get=["tokens"])
        except DailyCountItem.DoesNotExist:
            return False
        return count.token in (seen.tokens or set())
    return True


def _take_back(count: DailyCount) -> None:
    """Remove a call's units and token from its counter, if its token is there (safe to repeat)."""
    try:
        DailyCountItem(pk=count.pk, sk=count.sk).update(
            actions=[DailyCountItem.units.add(-count.units), DailyCountItem.tokens.delete({count.token})],
            condition=DailyCountItem.tokens.contains(count.token),
        )
    except UpdateError as error:
        if not condition_failed(error):
            raise


def _drop(key: str, sk: str, token: str) -> None:
    """Free a ticket if this token's put took it (safe to repeat)."""
    try:
        TicketItem(pk=key, sk=sk).delete(condition=TicketItem.taker == token)
    except DeleteError as error:
        if not condition_failed(error):
            raise
