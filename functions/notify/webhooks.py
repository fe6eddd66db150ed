"""Sending one notification to its merchant's webhook: signed, once per attempt, retried by SQS.

The signature is Stripe's scheme: `Miaofa-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
"<t>.<body>")>`. A failed attempt (no answer, or anything but 2xx) is retried by the notify queue
after an exponential backoff (BACKOFF_BASE_SECONDS × 2^(attempt-1), at most MAX_BACKOFF_SECONDS);
after MAX_ATTEMPTS the queue dead-letters it (template.yaml, NotifyQueue's maxReceiveCount).

Each attempt resolves the URL's host again, checks every address with the rule the URL was set with
(shared/notify.py webhook_target) and connects to those addresses only, never to a later DNS answer
(rebinding: shared/outbound.py); a host that is no longer public fails the attempt (ProviderRefused),
retried as any other.
"""

import hashlib
import hmac
from enum import StrEnum
from functools import cache

import urllib3

from shared.notify import MerchantWebhook, Notification
from shared.outbound import PinnedPools
from shared.providers.http import call
from shared.settings import settings
from shared.store.webhooks import WebhookStore

BACKOFF_BASE_SECONDS = 30
MAX_BACKOFF_SECONDS = 15 * 60
MAX_ATTEMPTS = 8  # NotifyQueue's maxReceiveCount: the attempt after which SQS dead-letters
TIMEOUT = urllib3.Timeout(connect=2, read=5)
SUCCESS = tuple(range(200, 300))


class Sent(StrEnum):
    SENT = "sent"
    NO_WEBHOOK = "no_webhook"  # the merchant has none (or turned it off): nothing to do
    NOT_WANTED = "not_wanted"  # the merchant's webhook does not take this event type


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The Miaofa-Signature header's value for `body` sent at `timestamp`."""
    signed = f"{timestamp}.".encode() + body
    return f"t={timestamp},v1={hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()}"


def retry_delay(attempt: int) -> int:
    """Seconds before the next attempt after attempt number `attempt` (1, 2, ...) failed; 0 after
    the last one, so SQS dead-letters it at once instead of after another backoff."""
    if attempt >= MAX_ATTEMPTS:
        return 0
    return int(min(MAX_BACKOFF_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempt - 1)))


@cache
def pool() -> PinnedPools:
    # No retries here: each attempt is one request, the queue does the retrying (with backoff).
    return PinnedPools(
        settings().local_mode,
        who="merchant webhook",
        timeout=TIMEOUT,
        retries=urllib3.Retry(total=0, redirect=0, raise_on_status=False),
    )


def send(notification: Notification, webhooks: WebhookStore, http: PinnedPools, now: int) -> Sent:
    """POST the notification to its merchant's webhook, connecting only to the addresses its host was
    just checked to have; raises (ProviderError) for any failure, ProviderRefused for a host that is not
    (or no longer) public."""
    webhook = webhooks.recent_webhook(notification.merchant_id)
    if webhook is None:
        return Sent.NO_WEBHOOK
    if not webhook.wants(notification.type):
        return Sent.NOT_WANTED
    body = notification.body()
    pinned, request_target = http.pool_for(webhook.url)
    call(
        pinned,
        "merchant webhook",
        "POST",
        request_target,
        _headers(webhook, notification, body, now),
        body,
        SUCCESS,
    )
    return Sent.SENT


def _headers(webhook: MerchantWebhook, notification: Notification, body: bytes, now: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "miaofa-webhooks/1",
        "Miaofa-Signature": signature(webhook.secret.get_secret_value(), body, now),
        "Miaofa-Event-Id": notification.event_id,
        "Miaofa-Event-Type": notification.type,
        "Idempotency-Key": notification.event_id,
    }
