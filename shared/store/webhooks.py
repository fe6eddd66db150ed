"""The merchant's webhook (shared/notify.py): where its events go, and the secret they are signed
with, sealed with the merchant's code cipher."""

from pynamodb.attributes import BinaryAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.models import Model

from shared.notify import MerchantWebhook
from shared.orders import utcnow
from shared.settings import settings
from shared.store.merchants import MerchantStore
from shared.store.recent import Recent


class WebhookItem(Model):
    class Meta:
        table_name: str | None = None

    pk = UnicodeAttribute(hash_key=True)
    url = UnicodeAttribute()
    events = UnicodeAttribute()  # space-separated event types
    sealed_secret = BinaryAttribute(legacy_encoding=False)
    updated_at = UTCDateTimeAttribute()


class WebhookStore:
    def __init__(self, merchants: MerchantStore) -> None:
        WebhookItem.Meta.table_name = settings().shop_table
        self._merchants = merchants  # whose ciphers seal the secrets
        self._webhooks: Recent[str, MerchantWebhook | None] = Recent(settings().webhook_cache_seconds)

    def put_webhook(
        self, merchant_id: str, url: str, events: tuple[str, ...], secret: str
    ) -> MerchantWebhook:
        """Set (or replace, rotating its secret) the merchant's webhook, in one write."""
        item = WebhookItem(
            pk=f"webhook#{merchant_id}",
            url=url,
            events=" ".join(events),
            sealed_secret=self._merchants.cipher(merchant_id).encrypt(secret, _webhook_identity(merchant_id)),
            updated_at=utcnow(),
        )
        item.save()
        return _to_webhook(merchant_id, item, secret)

    def webhook(self, merchant_id: str) -> MerchantWebhook | None:
        """The merchant's webhook with its secret opened, or None if it has none."""
        try:
            item = WebhookItem.get(f"webhook#{merchant_id}", consistent_read=True)
        except WebhookItem.DoesNotExist:
            return None
        secret = self._merchants.cipher(merchant_id).decrypt(
            item.sealed_secret, _webhook_identity(merchant_id)
        )
        return _to_webhook(merchant_id, item, secret)

    def recent_webhook(self, merchant_id: str) -> MerchantWebhook | None:
        """The merchant's webhook as this process read it less than WEBHOOK_CACHE_SECONDS ago (read if
        not): for sending events; a PUT or DELETE reaches them within that time."""
        return self._webhooks.get(merchant_id, lambda: self.webhook(merchant_id))

    def delete_webhook(self, merchant_id: str) -> None:
        """Turn the merchant's webhook off (nothing is sent any more); no webhook is no change."""
        WebhookItem(pk=f"webhook#{merchant_id}").delete()


def _webhook_identity(merchant_id: str) -> bytes:
    """Associated data binding a sealed webhook secret to its merchant's webhook item."""
    return f"webhook-secret/{merchant_id}".encode()


def _to_webhook(merchant_id: str, item: WebhookItem, secret: str) -> MerchantWebhook:
    return MerchantWebhook.model_validate(
        {
            "merchant_id": merchant_id,
            "url": item.url,
            "events": tuple(item.events.split()),
            "secret": secret,
            "updated_at": item.updated_at,
        }
    )
