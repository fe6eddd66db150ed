"""Caps on unpaid orders per buyer, exact under concurrency: a buyer key (hashed e-mail or client
address) has `cap` numbered tickets; a checkout holds one until its reservation expires or it is paid.

Taking a ticket is one conditional put (free = absent, or held past its `until`), so simultaneous
checkouts cannot exceed the cap. A ticket that is never given back (a crash) frees itself at `until`.

What one client may hold of a product unpaid is bounded in units (`hold_units`): one item per
(product, client) lists the unpaid orders' units with their `until`; a checkout reads it and writes it
back with its own entry, conditional on the version it read, so simultaneous checkouts of one client
cannot exceed the bound. An entry past its `until` counts no more (a crash cannot leak a hold).

Per-buyer daily limits on a product are counters of units paid: one item per (product, buyer e-mail,
UTC day of the order), and a payment adds its order's quantity with one conditional update that holds
only if the sum stays within the limit (`count_paid`). Order look-ups are capped per hour the same
way (`take_hourly`).

Every write here is safe to repeat (DESIGN.md): the SDK retries a request whose answer was lost,
after it applied. Each call writes a token with its change — the ticket's `taker`, the hold's entry
key `<order>#<call>`, a token added to a counter's `tokens` set (a fresh one per look-up; the order id
for a paid count, so every copy of one payment counts it once) — and its condition lets that token's
own retry through (a ticket), refuses it on the version (a hold, whose next read finds its entry) or
refuses it (a counter, which then reads back whether its token is in). Taking back removes exactly
what the token added. Tokens stay in a counter for its day or hour, at most
MAX_COUNTED of them (an item holds 400 KB): past that, the counter refuses as if full.
"""

import calendar
import hashlib
import json
import random
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UnicodeSetAttribute
from pynamodb.exceptions import DeleteError, PutError, UpdateError
from pynamodb.expressions.condition import size
from pynamodb.models import Model

from shared.errors import Busy
from shared.orders import Ticket
from shared.settings import settings
from shared.store.errors import condition_failed

MAX_COUNTED = 1000  # payments (or look-ups) one counter counts in its day (or hour)
HOLD_SK = "units"  # the sort key of a client's unit holds on a product; a Ticket with it names one
# How long a hold tries read-and-write rounds when the same client's checkouts collide (buyers behind
# one address in a flash sale), each after a jittered pause growing to HOLD_PAUSE_SECONDS: colliding
# writers spread out instead of meeting again, and each round lets at least one of them through. A
# time, not a count of rounds: on a loaded machine (or a slow store) rounds take longer, not fewer win.
HOLD_SECONDS = 3.0
HOLD_PAUSE_SECONDS = 0.05


class TicketItem(Model):
    class Meta:
        table_name: str | None = None

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    holder = UnicodeAttribute()
    taker = UnicodeAttribute(null=True)  # the taking call's token: its SDK retry finds the ticket its own
    until = NumberAttribute()
    expires = NumberAttribute()  # TTL, a day after `until`: only housekeeping, never relied on


class HoldsItem(Model):
    """`unpaid#<product>#<client>`: the units each unpaid order of one client holds of a product."""

    class Meta:
        table_name: str | None = None

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)  # HOLD_SK
    # JSON: {<order>#<call>: [units, until, e-mail key]}; a few dozen entries at most (the bound / units)
    holds = UnicodeAttribute()
    version = NumberAttribute()  # every write is conditional on the version it read
    expires = NumberAttribute()  # TTL, a day after the latest `until`: only housekeeping


@dataclass(frozen=True)
class Holds:
    """What a client holds unpaid of a product, as read."""

    pk: str
    version: int
    entries: dict[str, tuple[int, int, str]]  # <order>#<call> -> (units, until, e-mail key), live ones only

    def units(self, email: str | None = None) -> int:
        return sum(units for units, _, mail in self.entries.values() if email is None or mail == email)


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


def hold_ticket(product_id: str, client: str) -> Ticket:
    """The Ticket an order keeps for its unit hold, given back like the others when it is paid."""
    return Ticket(pk=f"unpaid#{product_id}#{buyer_key('client', client)}", sk=HOLD_SK)


def buyer_key(kind: str, value: str) -> str:
    return f"{kind}#{hashlib.sha256(value.strip().lower().encode()).hexdigest()}"


class LimitStore:
    def __init__(self) -> None:
        TicketItem.Meta.table_name = settings().limits_table
        DailyCountItem.Meta.table_name = settings().limits_table
        HoldsItem.Meta.table_name = settings().limits_table

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

    def give_back(self, ticket: Ticket, order_id: str, call: str | None = None) -> None:
        """Free a ticket (or the order's unit hold: only the hold of the checkout call `call`, if
        given) if this order still holds it (idempotent)."""
        if ticket.sk == HOLD_SK:
            return self._unhold(ticket.pk, order_id, call)
        try:
            TicketItem(pk=ticket.pk, sk=ticket.sk).delete(condition=TicketItem.holder == order_id)
        except DeleteError as error:
            if not condition_failed(error):
                raise

    def holds(self, product_id: str, client: str, now: int) -> Holds:
        """What `client` holds unpaid of the product (strongly consistent)."""
        pk = hold_ticket(product_id, client).pk
        try:
            item = HoldsItem.get(pk, HOLD_SK, consistent_read=True)
        except HoldsItem.DoesNotExist:
            return Holds(pk=pk, version=0, entries={})
        entries = {order: (int(u), int(t), str(e)) for order, (u, t, e) in json.loads(item.holds).items()}
        return Holds(pk, int(item.version), {order: h for order, h in entries.items() if h[1] > now})

    def hold_units(
        self,
        product_id: str,
        client: str,
        email: str,
        order_id: str,
        call: str,
        units: int,
        bounds: tuple[int, int | None],
        until: int,
    ) -> Ticket | Literal["client", "email"]:
        """Hold `units` of the product for `order_id` until `until`, if what `client` holds unpaid of it
        stays within `bounds[0]` units and, of that, what it holds for `email` within `bounds[1]` (None:
        no e-mail bound); else the bound it would break, nothing held. A read and one conditional
        write; a write that collides with the same client's other checkout reads and tries again.

        The entry is the call's own (`<order>#<call>`): twin checkouts with one Idempotency-Key each
        hold theirs, and the one that does not create the order gives back only its own."""
        mail, entry = buyer_key("email", email), f"{order_id}#{call}"
        for _ in _rounds():
            held = self.holds(product_id, client, int(time.time()))
            if entry in held.entries:  # this very write, retried by the SDK after its answer was lost
                return hold_ticket(product_id, client)
            if held.units() + units > bounds[0]:
                return "client"
            if bounds[1] is not None and held.units(mail) + units > bounds[1]:
                return "email"
            if self._write_holds(held, {**held.entries, entry: (units, until, mail)}):
                return hold_ticket(product_id, client)
        raise Busy("this client's checkouts keep colliding; retry in a moment")

    def _unhold(self, pk: str, order_id: str, call: str | None) -> None:
        """Remove the order's entries (only the call's own, given `call`), expired ones with them."""
        for _ in _rounds():
            try:
                item = HoldsItem.get(pk, HOLD_SK, consistent_read=True)
            except HoldsItem.DoesNotExist:
                return
            now, entries = int(time.time()), json.loads(item.holds)
            gone = {
                k for k in entries if (k == f"{order_id}#{call}" if call else k.startswith(f"{order_id}#"))
            }
            if not gone:
                return
            kept = {
                k: (int(u), int(t), str(e)) for k, (u, t, e) in entries.items() if k not in gone and t > now
            }
            if self._write_holds(Holds(pk, int(item.version), kept), kept):
                return
        raise Busy("this client's checkouts keep colliding; retry in a moment")

    @staticmethod
    def _write_holds(read: Holds, entries: dict[str, tuple[int, int, str]]) -> bool:
        """Write the holds back if nobody wrote since `read` (False: somebody did, read again)."""
        latest = max((until for _, until, _ in entries.values()), default=int(time.time()))
        item = HoldsItem(
            pk=read.pk,
            sk=HOLD_SK,
            holds=json.dumps(entries, separators=(",", ":")),
            version=read.version + 1,
            expires=latest + 86_400,
        )
        try:
            item.save(
                condition=HoldsItem.version.does_not_exist()
                if read.version == 0
                else HoldsItem.version == read.version
            )
        except PutError as error:
            if condition_failed(error):
                return False  # another write came first (or ours did, its answer lost: read again)
            raise
        return True

    def paid_today(self, product_id: str, email: str, day: date) -> int:
        """Units this e-mail has paid for of the product in orders made on `day` (UTC)."""
        try:
            item = DailyCountItem.get(
                f"daily#{product_id}#{buyer_key('email', email)}", day.isoformat(), consistent_read=True
            )
        except DailyCountItem.DoesNotExist:
            return 0
        return int(item.units)

    def count_paid(
        self, product_id: str, email: str, day: date, units: int, limit: int, order_id: str
    ) -> bool:
        """Count a paid order's units against its e-mail's daily limit for `day` (the order's UTC day),
        if the total stays within `limit`; False (nothing counted) if it would not. Keyed by the order:
        counting it again (a retried payment) finds it counted and answers True."""
        pk, sk = f"daily#{product_id}#{buyer_key('email', email)}", day.isoformat()
        expires = calendar.timegm((day + timedelta(days=3)).timetuple())
        # A write failing past the SDK's retries takes nothing back: the order id is shared by every
        # copy of the payment, and the one that counted may be another. The payment is retried.
        count = DailyCount(pk=pk, sk=sk, units=units, token=order_id)
        return _add_within(count, limit, expires, take_back_on_error=False)

    def take_hourly(self, key: str, limit: int, now: int) -> bool:
        """Count one request of `key` (a buyer_key) in the current hour; False (nothing counted) once
        `limit` were counted this hour."""
        hour = now // 3600
        count = DailyCount(pk=f"hourly#{key}", sk=str(hour), units=1, token=secrets.token_hex(8))
        return _add_within(count, limit, (hour + 2) * 3600)


def _rounds() -> Iterator[int]:
    """A hold's rounds until HOLD_SECONDS have passed (at least one), each but the first after a random
    pause, longer each round."""
    deadline = time.monotonic() + HOLD_SECONDS
    attempt = 0
    while attempt == 0 or time.monotonic() < deadline:
        if attempt:
            time.sleep(random.uniform(0, min(HOLD_PAUSE_SECONDS, 0.005 * 2**attempt)))  # noqa: S311 - jitter
        yield attempt
        attempt += 1


def _add_within(count: DailyCount, limit: int, expires: int, take_back_on_error: bool = True) -> bool:
    """Add a call's units and token to a counter if its total stays within `limit` (one conditional
    update); a retry of an update that applied is refused, and finds its token. A write failing past
    the SDK's retries takes back what it may have applied (by its token), unless told not to."""
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
            if take_back_on_error:
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
