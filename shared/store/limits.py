"""Caps on unpaid orders per buyer, exact under concurrency: a buyer key (hashed e-mail or client
address) has `cap` numbered tickets; a checkout holds one until its reservation expires or it is paid.

Taking a ticket is one conditional put (free = absent, or held past its `until`), so simultaneous
checkouts cannot exceed the cap. A ticket that is never given back (a crash) frees itself at `until`.
"""

import hashlib
import random
import time

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import DeleteError, PutError
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


def buyer_key(kind: str, value: str) -> str:
    return f"{kind}#{hashlib.sha256(value.strip().lower().encode()).hexdigest()}"


class LimitStore:
    def __init__(self) -> None:
        TicketItem.Meta.table_name = settings().limits_table

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
