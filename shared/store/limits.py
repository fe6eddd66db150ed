"""Caps on unpaid orders per buyer, exact under concurrency: a buyer key (hashed e-mail or client
address) has `cap` numbered tickets; a checkout holds one until its reservation expires or it is paid.

Taking a ticket is one conditional put (free = absent, or held past its `until`), so simultaneous
checkouts cannot exceed the cap. A ticket that is never given back (a crash) frees itself at `until`.

Per-buyer daily limits on a product are counters: one item per (product, buyer e-mail, UTC day)
counts the units ordered, and a checkout adds its quantity with one conditional update that holds
only if the sum stays within the limit, so simultaneous checkouts cannot exceed it. Order look-ups
are capped per hour the same way (`take_hourly`).
"""

import calendar
import hashlib
import random
import time
from dataclasses import dataclass
from datetime import date, timedelta

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import DeleteError, PutError, UpdateError
from pynamodb.models import Model

from shared.orders import Ticket
from shared.settings import settings
from shared.store.errors import condition_failed


class TicketItem(Model):
    class Meta:
        table_name: str | None = None

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    holder = UnicodeAttribute()
    until = NumberAttribute()
    expires = NumberAttribute()  # TTL, a day after `until`: only housekeeping, never relied on


class DailyCountItem(Model):  # also the hourly counters (`take_hourly`)
    class Meta:
        table_name: str | None = None

    pk = UnicodeAttribute(hash_key=True)  # daily#<product>#<buyer key>
    sk = UnicodeAttribute(range_key=True)  # the UTC day, YYYY-MM-DD
    units = NumberAttribute()
    expires = NumberAttribute()  # TTL, two days after the day ends: only housekeeping


@dataclass(frozen=True)
class DailyCount:
    """Units one checkout added to a buyer's count for a product and day (to give back if it fails)."""

    pk: str
    sk: str
    units: int


def buyer_key(kind: str, value: str) -> str:
    return f"{kind}#{hashlib.sha256(value.strip().lower().encode()).hexdigest()}"


class LimitStore:
    def __init__(self) -> None:
        TicketItem.Meta.table_name = settings().limits_table
        DailyCountItem.Meta.table_name = settings().limits_table

    def take(self, key: str, cap: int, order_id: str, until: int) -> Ticket | None:
        """Hold one of the key's `cap` tickets for `order_id` until `until`; None if all are held."""
        now, start = int(time.time()), random.randrange(cap)  # noqa: S311 - spreads tickets, not a secret
        for i in range(cap):
            sk = f"{(start + i) % cap:06d}"
            try:
                TicketItem(pk=key, sk=sk, holder=order_id, until=until, expires=until + 86_400).save(
                    condition=TicketItem.pk.does_not_exist() | (TicketItem.until < now)
                )
            except PutError as error:
                if condition_failed(error):
                    continue
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
        return DailyCount(pk=pk, sk=sk, units=units) if _add_within(pk, sk, units, limit, expires) else None

    def take_hourly(self, key: str, limit: int, now: int) -> bool:
        """Count one request of `key` (a buyer_key) in the current hour; False (nothing counted) once
        `limit` were counted this hour."""
        hour = now // 3600
        return _add_within(f"hourly#{key}", str(hour), 1, limit, (hour + 2) * 3600)

    def uncount_daily(self, count: DailyCount) -> None:
        """Give back what a checkout added, when it failed before its order existed (call once)."""
        try:
            DailyCountItem(pk=count.pk, sk=count.sk).update(
                actions=[DailyCountItem.units.add(-count.units)],
                condition=DailyCountItem.units >= count.units,
            )
        except UpdateError as error:
            if not condition_failed(error):
                raise

    def counted_daily(self, product_id: str, email: str, day: date) -> int:
        """Units this e-mail has ordered of the product on `day` (UTC)."""
        try:
            item = DailyCountItem.get(
                f"daily#{product_id}#{buyer_key('email', email)}", day.isoformat(), consistent_read=True
            )
        except DailyCountItem.DoesNotExist:
            return 0
        return int(item.units)


def _add_within(pk: str, sk: str, units: int, limit: int, expires: int) -> bool:
    """Add `units` to a counter if its total stays within `limit` (one conditional update)."""
    if units > limit:
        return False
    try:
        DailyCountItem(pk=pk, sk=sk).update(
            actions=[DailyCountItem.units.add(units), DailyCountItem.expires.set(expires)],
            condition=DailyCountItem.units.does_not_exist() | (DailyCountItem.units <= limit - units),
        )
    except UpdateError as error:
        if condition_failed(error):
            return False
        raise
    return True
