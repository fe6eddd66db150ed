"""A merchant's upstreams (docs/topup.md): where its top-up products are credited, and the secret
requests and answers are signed with, sealed with the merchant's code cipher as webhook secrets are.

A merchant registers upstreams through its API, so their secrets cannot live in the shop-wide provider
secret (Secrets Manager, set by an operator); sealed per merchant they are as safe: KMS wraps the key."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, SecretStr
from pynamodb.attributes import BinaryAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.models import Model

from shared.settings import settings
from shared.store.merchants import MerchantStore
from shared.store.recent import Recent


class UpstreamConfig(BaseModel):
    """One of a merchant's upstreams, its secret opened (never in a repr or a log line)."""

    model_config = ConfigDict(frozen=True)

    merchant_id: str
    name: str
    url: str  # the base URL: {url}/topups, {url}/topups/{key}
    secret: SecretStr
    connect_timeout_ms: int
    read_timeout_ms: int
    updated_at: datetime


class UpstreamItem(Model):
    class Meta:
        table_name: str | None = None

    pk = UnicodeAttribute(hash_key=True)  # upstream#<merchant>#<name>
    url = UnicodeAttribute()
    sealed_secret = BinaryAttribute(legacy_encoding=False)
    connect_timeout_ms = NumberAttribute()
    read_timeout_ms = NumberAttribute()
    updated_at = UTCDateTimeAttribute()


def _key(merchant_id: str, name: str) -> str:
    return f"upstream#{merchant_id}#{name}"


def _identity(merchant_id: str, name: str) -> bytes:
    """Associated data binding a sealed secret to its upstream's item."""
    return f"upstream-secret/{merchant_id}/{name}".encode()


class UpstreamStore:
    def __init__(self, merchants: MerchantStore) -> None:
        UpstreamItem.Meta.table_name = settings().shop_table
        self._merchants = merchants
        self._recent: Recent[tuple[str, str], UpstreamConfig | None] = Recent(
            settings().webhook_cache_seconds
        )

    def put_upstream(self, config: UpstreamConfig) -> UpstreamConfig:
        """Register (or replace) one upstream, in one write."""
        cipher = self._merchants.cipher(config.merchant_id)
        UpstreamItem(
            pk=_key(config.merchant_id, config.name),
            url=config.url,
            sealed_secret=cipher.encrypt(
                config.secret.get_secret_value(), _identity(config.merchant_id, config.name)
            ),
            connect_timeout_ms=config.connect_timeout_ms,
            read_timeout_ms=config.read_timeout_ms,
            updated_at=config.updated_at,
        ).save()
        return config

    def upstream(self, merchant_id: str, name: str) -> UpstreamConfig | None:
        try:
            item = UpstreamItem.get(_key(merchant_id, name), consistent_read=True)
        except UpstreamItem.DoesNotExist:
            return None
        secret = self._merchants.cipher(merchant_id).decrypt(item.sealed_secret, _identity(merchant_id, name))
        return UpstreamConfig(
            merchant_id=merchant_id,
            name=name,
            url=item.url,
            secret=SecretStr(secret),
            connect_timeout_ms=int(item.connect_timeout_ms),
            read_timeout_ms=int(item.read_timeout_ms),
            updated_at=item.updated_at,
        )

    def recent_upstream(self, merchant_id: str, name: str) -> UpstreamConfig | None:
        """As this process read it less than WEBHOOK_CACHE_SECONDS ago (read if not): for deliveries."""
        return self._recent.get((merchant_id, name), lambda: self.upstream(merchant_id, name))

    def delete_upstream(self, merchant_id: str, name: str) -> None:
        UpstreamItem(pk=_key(merchant_id, name)).delete()
