"""Buyers' e-mail: the requests the storefront and delivery queue for the notify function
(shared/queues.py, request_mail), which writes and sends the mail (functions/notify/mail.py). A request
names what to write about, never a code or a token; the mail itself carries a magic link
(shared/links.py).
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class MailRequest(BaseModel):
    """`order`: the confirmation of a delivered order. `lookup`: the orders of an address, on request
    (only `order_id`, if it names one, and only if it was placed with that address)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mail: Literal["order", "lookup"]
    order_id: str | None = Field(default=None, pattern=r"^ord_[0-9a-f]{20}$")
    email: str | None = Field(default=None, max_length=254)
