"""Merchants and their code keys: each merchant's codes are sealed with its own data key, which
KMS seals in turn; its API keys are kept as hashes only (shared/store/keys.py). The merchant's item
also holds its shop's settings (shared/shops.py)."""

import threading

from pynamodb.attributes import BinaryAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import PutError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.models import Model

from shared import aws
from shared.codes import CodeCipher
from shared.errors import NotFound
from shared.ids import key_hash, new_id
from shared.orders import utcnow
from shared.shops import DEFAULT_LANGUAGE, ShopSettings
from shared.store.errors import condition_failed
from shared.store.keys import ApiKeyItem, KeyStore

SHOP_FIELDS = ("logo_url", "contact", "announcement", "support_email", "default_language")


class MerchantItem(Model):
    class Meta:
        table_name: str | None = None

    pk = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute()  # the shop's name
    sealed_data_key = BinaryAttribute(legacy_encoding=False)
    created_at = UTCDateTimeAttribute()
    # The rest of the shop's settings; absent until the merchant sets them.
    logo_url = UnicodeAttribute(null=True)
    contact = UnicodeAttribute(null=True)
    announcement = UnicodeAttribute(null=True)
    support_email = UnicodeAttribute(null=True)
    default_language = UnicodeAttribute(null=True)


class MerchantStore:
    def __init__(self, table: str | None = None, codes_key_id: str | None = None) -> None:
        """The shop table's merchants; `table` and `codes_key_id` default to the settings' (the ops
        CLI passes its target's, without the functions' settings)."""
        if table is None or codes_key_id is None:
            from shared.settings import settings

            table, codes_key_id = table or settings().shop_table, codes_key_id or settings().codes_key_id
        MerchantItem.Meta.table_name = table
        self._codes_key_id = codes_key_id
        self._keys = KeyStore(table)
        self._ciphers: dict[str, CodeCipher] = {}
        self._lock = threading.Lock()
        self._kms = aws.client("kms")

    def create_merchant(self, name: str, api_key: str | None = None, live: bool = False) -> tuple[str, str]:
        """A new merchant with a KMS data key for its codes; returns (merchant_id, api key)."""
        merchant_id = new_id("mer")
        data_key = self._kms.generate_data_key(
            KeyId=self._codes_key_id, KeySpec="AES_256", EncryptionContext={"merchant": merchant_id}
        )
        item = MerchantItem(
            pk=f"merchant#{merchant_id}",
            name=name,
            sealed_data_key=data_key["CiphertextBlob"],
            created_at=utcnow(),
        )
        try:
            item.save(condition=MerchantItem.pk.does_not_exist())
        except PutError as error:
            # A fresh random id is taken only by this very write whose answer was lost and retried.
            if not condition_failed(error) or self._item(merchant_id).sealed_data_key != item.sealed_data_key:
                raise
        _, api_key = self._keys.create(merchant_id, live=live, api_key=api_key)
        return merchant_id, api_key

    def merchant_for_key(self, api_key: str) -> str | None:
        try:
            return str(ApiKeyItem.get(f"apikey#{key_hash(api_key)}").merchant_id)
        except ApiKeyItem.DoesNotExist:
            return None

    def shop(self, merchant_id: str) -> ShopSettings:
        """The merchant's shop settings (a consistent read)."""
        item = self._item(merchant_id)
        stored = {field: getattr(item, field) for field in ("name", *SHOP_FIELDS)}
        stored["default_language"] = stored["default_language"] or DEFAULT_LANGUAGE
        # As stored, unchecked: a name from before the shop's rules stays readable.
        return ShopSettings.model_construct(**stored)

    def set_shop(self, merchant_id: str, shop: ShopSettings) -> ShopSettings:
        """Replace the shop's settings in one conditional write on the merchant's own item: all or
        nothing, the same again on a retry, never creating an item for an unknown merchant."""
        values = shop.model_dump()
        actions: list[Action] = [MerchantItem.name.set(shop.name)]
        for field in SHOP_FIELDS:
            attribute = getattr(MerchantItem, field)
            actions.append(attribute.remove() if values[field] is None else attribute.set(values[field]))
        try:
            MerchantItem(pk=f"merchant#{merchant_id}").update(
                actions=actions, condition=MerchantItem.pk.exists()
            )
        except UpdateError as error:
            if condition_failed(error):
                raise NotFound("no such merchant", code="shop_not_found") from None
            raise
        return shop

    def cipher(self, merchant_id: str) -> CodeCipher:
        """The merchant's code cipher; the data key is decrypted by KMS once per process."""
        with self._lock:
            if merchant_id not in self._ciphers:
                sealed = MerchantItem.get(f"merchant#{merchant_id}", consistent_read=True).sealed_data_key
                plain = self._kms.decrypt(CiphertextBlob=sealed, EncryptionContext={"merchant": merchant_id})
                self._ciphers[merchant_id] = CodeCipher(plain["Plaintext"])
            return self._ciphers[merchant_id]

    def _item(self, merchant_id: str) -> MerchantItem:
        try:
            return MerchantItem.get(f"merchant#{merchant_id}", consistent_read=True)
        except MerchantItem.DoesNotExist:
            raise NotFound("no such merchant", code="shop_not_found") from None
