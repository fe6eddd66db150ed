"""One settings model, read from the environment once per process."""

from functools import lru_cache
from typing import Any, Final

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Secrets that only local mode may use; anywhere else they are refused at start-up.
DEVELOPMENT_SECRETS = {"", "dev", "test", "secret", "changeme", "local-sandbox-secret"}
MIN_SECRET_LENGTH = 16

# Write shards of the index keys every order writes (shared/store/shards.py, docs/allocation.md "Hot
# keys"). A DynamoDB partition takes ~1,000 writes/s; per order, a `due` partition gets 2 writes (the
# entry put, then removed or moved), a merchant's list partition 3 (put, then status PAID and
# DELIVERED), a `held` one 2 per pooled slot, an `audit` one at most 1 per claim (keyed by product
# and stock shard, so it spreads less evenly). These counts keep the hottest partition of every index
# under its limit at 50,000 orders/s shop-wide; bench/capacity.py computes it from these values.
# Only ever raise them: an entry under a shard beyond a lowered count is never read again.
INDEX_SHARDS: Final = {
    "due_shards": 128,
    "merchant_order_shards": 192,
    "held_shards": 128,
    "audit_shards": 128,
}
# The embedded AWS walks the whole table for every index query, so locally (unless set) each index
# has this many shards: the same code path, fewer queries.
LOCAL_INDEX_SHARDS: Final = 1


# The per-client token buckets' settings (shared/store/rate.py), rate and burst per route group.
CLIENT_BUCKET_SETTINGS: Final = (
    "CHECKOUTS_PER_CLIENT_MINUTE",
    "CHECKOUT_BURST_PER_CLIENT",
    "LOOKUPS_PER_CLIENT_MINUTE",
    "LOOKUP_BURST_PER_CLIENT",
    "POLLS_PER_CLIENT_MINUTE",
    "POLL_BURST_PER_CLIENT",
    "LICENSE_CALLS_PER_CLIENT_MINUTE",
    "LICENSE_CALL_BURST_PER_CLIENT",
)


def _index_shards(name: str) -> Any:
    return lambda data: LOCAL_INDEX_SHARDS if data.get("local_mode") else INDEX_SHARDS[name]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True)

    orders_table: str = Field(alias="ORDERS_TABLE")
    stock_table: str = Field(alias="STOCK_TABLE")
    shop_table: str = Field(alias="SHOP_TABLE")
    payment_events_table: str = Field(alias="PAYMENT_EVENTS_TABLE")
    limits_table: str = Field(alias="LIMITS_TABLE")
    ops_table: str = Field(alias="OPS_TABLE")
    # Licenses and merchants' license signing keys (shared/store/licenses.py, docs/licenses.md).
    licenses_table: str = Field(default="", alias="LICENSES_TABLE")
    delivery_queue_url: str = Field(alias="DELIVERY_QUEUE_URL")
    notify_queue_url: str = Field(default="", alias="NOTIFY_QUEUE_URL")
    codes_key_id: str = Field(alias="CODES_KEY_ID")
    public_base_url: str = Field(alias="PUBLIC_BASE_URL")
    sandbox_secret: str = Field(default="", alias="SANDBOX_SECRET")
    sandbox_pay_url: str = Field(default="", alias="SANDBOX_PAY_URL")
    sandbox_api_url: str = Field(default="", alias="SANDBOX_API_URL")
    order_token_secret: str = Field(default="", alias="ORDER_TOKEN_SECRET")
    # Name or ARN of the Secrets Manager secret with the Stripe / Alipay / WeChat Pay credentials
    # (shared/providers/config.py); empty: only the sandbox.
    payment_providers_secret: str = Field(default="", alias="PAYMENT_PROVIDERS_SECRET")
    local_mode: bool = Field(default=False, alias="MIAOFA_LOCAL")
    reservation_minutes: int = Field(default=15, ge=1, le=24 * 60, alias="RESERVATION_MINUTES")
    redrive_after_seconds: int = Field(default=120, ge=10, alias="REDRIVE_AFTER_SECONDS")
    max_delivery_redrives: int = Field(default=5, ge=1, le=100, alias="MAX_DELIVERY_REDRIVES")
    # A delivery batch (functions/deliver/batch.py, docs/operations.md "Delivery timeouts"): retries an
    # order gets before its message is dead-lettered; receives after which a message is handed back
    # as a fresh copy (below the queue's maxReceiveCount); the most one order may take, so no order
    # starts with less of the invocation left.
    delivery_retries: int = Field(default=5, ge=1, le=100, alias="DELIVERY_RETRIES")
    delivery_hand_back_after: int = Field(default=5, ge=2, le=1000, alias="DELIVERY_HAND_BACK_AFTER")
    delivery_order_seconds: float = Field(default=6, gt=0, le=900, alias="DELIVERY_ORDER_SECONDS")
    payment_query_after_seconds: int = Field(default=120, ge=10, alias="PAYMENT_QUERY_AFTER_SECONDS")
    max_pending_per_email: int = Field(default=3, ge=1, alias="MAX_PENDING_PER_EMAIL")
    max_pending_per_client: int = Field(default=20, ge=1, alias="MAX_PENDING_PER_CLIENT")
    # Units of one product one client may hold unpaid, unless the product sets its own
    # (unpaid_limit_per_client); never below the product's max_per_order; 0: only products that set
    # their own are bounded. docs/operations.md "Limits".
    unpaid_units_per_client: int = Field(default=20, ge=0, alias="UNPAID_UNITS_PER_CLIENT")
    lookups_per_email_hour: int = Field(default=3, ge=1, alias="LOOKUPS_PER_EMAIL_HOUR")
    lookups_per_client_hour: int = Field(default=10, ge=1, alias="LOOKUPS_PER_CLIENT_HOUR")
    # Token buckets per client address (an IPv6 /64) on the buyer routes (shared/store/rate.py,
    # docs/operations.md "Limits and throttles"): requests a minute sustained after a burst; 0 a
    # minute: no bucket on those routes. A buyer whose order page polls, or who checks out by hand,
    # stays far below them; a script flooding a route does not.
    checkouts_per_client_minute: int = Field(default=60, ge=0, alias="CHECKOUTS_PER_CLIENT_MINUTE")
    checkout_burst_per_client: int = Field(default=20, ge=1, alias="CHECKOUT_BURST_PER_CLIENT")
    lookups_per_client_minute: int = Field(default=20, ge=0, alias="LOOKUPS_PER_CLIENT_MINUTE")
    lookup_burst_per_client: int = Field(default=10, ge=1, alias="LOOKUP_BURST_PER_CLIENT")
    polls_per_client_minute: int = Field(default=600, ge=0, alias="POLLS_PER_CLIENT_MINUTE")
    poll_burst_per_client: int = Field(default=120, ge=1, alias="POLL_BURST_PER_CLIENT")
    # The public license routes (activate, deactivate, validate, the published keys; docs/licenses.md):
    # the merchant's software calls them once per start or so, a script guessing licenses far more.
    license_calls_per_client_minute: int = Field(default=60, ge=0, alias="LICENSE_CALLS_PER_CLIENT_MINUTE")
    license_call_burst_per_client: int = Field(default=30, ge=1, alias="LICENSE_CALL_BURST_PER_CLIENT")
    # How long a signed activation lasts (at most the license's own expiry): the software activates
    # again (the same machine counts once) before it ends, and so learns of a revocation.
    activation_days: int = Field(default=30, ge=1, le=3650, alias="ACTIVATION_DAYS")
    # The order page's WebSocket (docs/push.md): who watches which order, and the management API the
    # functions post to (`https://{api}.execute-api.{region}.amazonaws.com/live` on AWS); both set on
    # the socket and push functions only. Connections per client address (an IPv6 /64) and per order
    # are capped exactly (a refused one falls back to polling), messages per connection are a token
    # bucket, and a connection is forgotten after at most SOCKET_CONNECTION_SECONDS (API Gateway's
    # longest connection is 2 hours), should its $disconnect be lost.
    connections_table: str = Field(default="", alias="CONNECTIONS_TABLE")
    websocket_endpoint: str = Field(default="", alias="WEBSOCKET_ENDPOINT")
    socket_connections_per_client: int = Field(default=20, ge=1, alias="SOCKET_CONNECTIONS_PER_CLIENT")
    socket_connections_per_order: int = Field(default=5, ge=1, le=100, alias="SOCKET_CONNECTIONS_PER_ORDER")
    socket_connection_seconds: int = Field(default=7200, ge=60, le=86_400, alias="SOCKET_CONNECTION_SECONDS")
    # The sender of buyers' mail (a verified SES identity); empty: no mail is sent (logged).
    mail_from: str = Field(default="", alias="MAIL_FROM")
    # Where the order page watches its order (docs/push.md): the WebSocket API's stage URL, `wss://…/live`
    # on AWS, the local runtime's ws_url locally; empty: the page polls. Only a plain URL, as it goes
    # into the page's Content-Security-Policy.
    websocket_url: str = Field(
        default="",
        pattern=r"^(wss?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?)?$",
        alias="WEBSOCKET_URL",
    )
    # The shop `GET /` shows (a merchant id; the local runtime's demo merchant); empty: `/` says no
    # shop is set. Every shop is also at `/s/{merchant_id}` (docs/buyer-pages.md).
    default_shop: str = Field(default="", pattern=r"^(mer_[0-9a-f]{20})?$", alias="DEFAULT_SHOP")
    # How long a process (a Lambda container) keeps what it read of an item every order would read
    # (shared/store/recent.py): the product and its stock level, and the merchant's webhook. One
    # partition then sees at most containers ÷ seconds reads of it whatever the order rate
    # (docs/allocation.md "Hot keys"), and a merchant's change reaches buyers and webhooks within it
    # (docs/merchant-api.md "How soon a change applies"). 0: read every time.
    product_cache_seconds: float = Field(default=1, ge=0, le=60, alias="PRODUCT_CACHE_SECONDS")
    webhook_cache_seconds: float = Field(default=1, ge=0, le=60, alias="WEBHOOK_CACHE_SECONDS")
    # How long a process keeps a merchant's license keyring (shared/store/license_keys.py): a rotation
    # reaches every signer within it, and a key rotated out may be retired only after it.
    license_key_cache_seconds: float = Field(default=30, ge=0, le=300, alias="LICENSE_KEY_CACHE_SECONDS")
    due_shards: int = Field(default_factory=_index_shards("due_shards"), ge=1, le=1000, alias="DUE_SHARDS")
    merchant_order_shards: int = Field(
        default_factory=_index_shards("merchant_order_shards"), ge=1, le=1000, alias="MERCHANT_ORDER_SHARDS"
    )
    held_shards: int = Field(default_factory=_index_shards("held_shards"), ge=1, le=1000, alias="HELD_SHARDS")
    audit_shards: int = Field(
        default_factory=_index_shards("audit_shards"), ge=1, le=1000, alias="AUDIT_SHARDS"
    )

    @model_validator(mode="after")
    def _no_development_secrets_in_the_cloud(self) -> "Settings":
        """Outside local mode a sandbox secret is either absent (sandbox off) or strong, and the order
        token secret is strong."""
        if self.local_mode:
            return self
        token_secret = self.order_token_secret.strip().lower()
        if token_secret in DEVELOPMENT_SECRETS or len(token_secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                "ORDER_TOKEN_SECRET is empty, short or a development default; refused outside local mode"
            )
        if not (self.sandbox_secret or self.sandbox_pay_url):
            return self
        secret = self.sandbox_secret.strip().lower()
        if secret in DEVELOPMENT_SECRETS or len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                "SANDBOX_SECRET is empty, short or a development default; refused outside local mode"
            )
        return self


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The process's settings (Lambda: one read per cold start)."""
    return Settings()  # type: ignore[call-arg]
