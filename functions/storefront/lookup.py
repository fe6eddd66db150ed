"""Order look-up by e-mail, or by order number and e-mail: the caller learns nothing (always 202, the
same answer and the same work for any address and any number); the address's owner gets a mail with
a magic link to each of its orders, or to the one order named if it was placed with that address.

Capped per hour: per client address (429, which says nothing about the e-mail) and per e-mail
(silently: no more mail this hour, so the look-up cannot be used to flood an inbox)."""

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from functions.storefront.schemas import LookupAccepted
from shared.clients import client_key
from shared.errors import TooMany
from shared.mail import MailRequest
from shared.ports import LimitPort, NotifyPort
from shared.queues import request_mail
from shared.store.limits import buyer_key

ACCEPTED = LookupAccepted(
    status="accepted", message="If this address has orders here, a link to them is on its way."
)


class LookupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr = Field(max_length=254)
    order_id: str | None = Field(default=None, pattern=r"^ord_[0-9a-f]{20}$")  # the order number, if known


def request_lookup(
    request: LookupRequest,
    client: str,
    limits: LimitPort,
    caps: tuple[int, int],
    now: int,
    queue: NotifyPort,
) -> LookupAccepted:
    """`caps`: (mails per e-mail, look-ups per client address) per hour."""
    per_email, per_client = caps
    if not limits.take_hourly(buyer_key("lookup-client", client_key(client)), per_client, now):
        raise TooMany(
            "too many order look-ups from this address; try again within the hour",
            retry_after=3600 - now % 3600,  # the next hour's count
        )
    email = str(request.email)
    if limits.take_hourly(buyer_key("lookup-email", email), per_email, now):
        request_mail(MailRequest(mail="lookup", email=email, order_id=request.order_id), queue)
    return ACCEPTED
