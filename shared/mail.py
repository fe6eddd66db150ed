"""Buyers' e-mail: the requests the storefront and delivery queue for the notify function, which
writes and sends the mail (functions/notify/mail.py). A request names what to write about, never
a code or a token; the mail itself carries a magic link (shared/links.py).

Queuing never fails what caused it: a delivered order stays delivered if its mail could not be
queued (logged), and the buyer can always ask for a look-up link.
"""

import logging
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.notify import NotifyQueue, notify_queue

logger = logging.getLogger(__name__)


class MailRequest(BaseModel):
    """`order`: the confirmation of a delivered order. `lookup`: the orders of an address, on request."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mail: Literal["order", "lookup"]
    order_id: str | None = Field(default=None, pattern=r"^ord_[0-9a-f]{20}$")
    email: str | None = Field(default=None, max_length=254)


def request(mail: MailRequest, queue: NotifyQueue | None = None) -> bool:
    """Queue a mail; False (logged, without the address) if it could not be."""
    try:
        (queue or notify_queue()).send_body(mail.model_dump_json(exclude_none=True))
    except Exception as error:
        logger.warning("mail not queued", extra={"mail": mail.mail, "error": type(error).__name__})
        return False
    return True
