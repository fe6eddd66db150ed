"""Delivering a top-up order: one request to the merchant's upstream, never a blind second one.

Before each request the order's history gets a `topup.sent` note (one conditional write). An order
that has one was perhaps credited already, whatever happened to the answer (a timeout, a reset, a
crash of this function): the upstream's status for its idempotency key is asked first, and the request
is sent again only if the upstream says it never accepted it (`unknown`) or failed it retryably.
An answer that does not settle the order raises, so the delivery queue retries it with backoff; past
the order's retries reconciliation re-drives it, and past those it is held (docs/topup.md).
"""

import logging
import secrets
import time
from datetime import datetime, timedelta

from shared.errors import StateConflict
from shared.faults import checkpoint
from shared.fulfilment import open_input
from shared.orders import Order, Status
from shared.ports import Ports
from shared.settings import settings
from shared.topup import SENT, idempotency_key, settle_topup
from shared.upstream import TopupRequest, Upstream, UpstreamAnswer, send, status

logger = logging.getLogger(__name__)


# A request noted less than this (and the upstream's longest wait) ago may still be under way: another
# delivery of the same order (a duplicated message) waits instead of asking, so that it cannot take a
# request still travelling for one the upstream never got, and send a second.
LEASE = timedelta(seconds=5)


class InFlight(Exception):
    """Another delivery of this order may be waiting for the upstream's answer: retried later."""


class NoUpstream(Exception):
    """The product names no upstream the merchant has registered: retried, then re-driven, then held."""


def callback_url(order: Order, upstream_name: str) -> str:
    return f"{settings().public_base_url}/webhooks/upstream/{order.merchant_id}/{upstream_name}"


def deliver_topup(order: Order, ports: Ports, now: datetime) -> Status:
    """Credit a PAID top-up order at its upstream; returns its status afterwards (PAID while the
    upstream is processing). Raises to have the delivery retried. `now` is the order's clock (its
    notes, the lease); a request is signed at the wall clock's time, which the upstream checks."""
    product = ports.products.recent_product(order.product_id)
    terms = product.topup if product is not None else None
    config = ports.upstreams(order.merchant_id, terms.upstream) if terms is not None else None
    if terms is None or config is None:
        raise NoUpstream(f"order {order.order_id}: its product's upstream is not registered")
    upstream = Upstream(
        base_url=config.url,
        secret=config.secret,
        connect_timeout=config.connect_timeout_ms / 1000,
        read_timeout=config.read_timeout_ms / 1000,
    )
    key = idempotency_key(order)
    answer: UpstreamAnswer | None = None
    if (sent_at := last_sent(order)) is not None:
        if now - sent_at < LEASE + timedelta(seconds=upstream.longest_send_seconds()):
            raise InFlight(f"order {order.order_id}: a request to its upstream may still be under way")
        answer = status(upstream, key, int(time.time()))  # OutcomeUnknown: retried later, nothing sent
        if answer.status == "unknown" or (answer.status == "failed" and answer.retryable):
            answer = None  # never accepted, or failed with nothing applied: sending again is safe
    if answer is None:
        order, ours = _record_sent(order, ports, now)
        if not ours:  # changed meanwhile (another delivery's request, a callback): start again from it
            return deliver_topup(order, ports, now) if order.status == Status.PAID else order.status
        checkpoint("topup:after-sent-recorded", order.order_id)
        request = TopupRequest(
            idempotency_key=key,
            order_id=order.order_id,
            sku=terms.sku,
            quantity=order.quantity,
            fields=open_input(order, ports.ciphers(order.merchant_id)),
            callback_url=callback_url(order, terms.upstream),
        )
        answer = send(
            upstream, request, int(time.time())
        )  # OutcomeUnknown: retried later, asking the status first
    checkpoint("topup:after-answer", order.order_id)
    logger.info("upstream answered", extra={"order_id": order.order_id, "upstream_status": answer.status})
    return settle_topup(order, answer, ports, ports.clock())  # the answer's time, not the start's


def last_sent(order: Order) -> datetime | None:
    return next((event.at for event in reversed(order.history) if event.type == SENT), None)


def _record_sent(order: Order, ports: Ports, now: datetime) -> tuple[Order, bool]:
    """Note the request about to be sent; (the order, True) if the note written is this call's."""
    # `by` tells this call's note from another delivery's written at the same moment
    data = {
        "attempt": sum(1 for event in order.history if event.type == SENT) + 1,
        "by": secrets.token_hex(4),
    }
    try:
        return ports.orders.note(order, SENT, now, data), True
    except StateConflict:
        reread = ports.orders.get(order.order_id)
        if reread is None:
            raise
        last = reread.history[-1]
        return reread, (last.type, last.at, last.data) == (SENT, now, data)  # ours, its answer lost
