"""Merchants and their code keys: each merchant's codes are sealed with its own data key, which
KMS seals in turn; its API keys are kept as hashes only (shared/store/keys.py)."""

import threading

from pynamodb.attributes import BinaryAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.models import Model

from shared import aws
from shared.codes import CodeCipher
from shared.ids import key_hash, new_id
from shared.orders import utcnow
from shared.settings import settings
from shared.store.keys import ApiKeyItem, KeyStore


class MerchantItem(Model):
    class Meta:
        table_name: str | None = None

    pk = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute()
    sealed_data_key = BinaryAttribute(legacy_encoding=False)
    created_at = UTCDateTimeAttribute()


class MerchantStore:
    def __init__(self) -> None:
        MerchantItem.Meta.table_name = settings().shop_table
        self._keys = KeyStore(settings().shop_table)
        self._ciphers: dict[str, CodeCipher] = {}
        self._lock = threading.Lock()
        self._kms = aws.client("kms")

    def create_merchant(self, name: str, api_key: str | None = None, live: bool = False) -> tuple[str, str]:
        """A new merchant with a KMS data key for its codes; returns (merchant_id, api key)."""
        merchant_id = new_id("mer")
        data_key = self._kms.generate_data_key(
            KeyId=settings().codes_key_id, KeySpec="AES_256", EncryptionContext={"merchant": merchant_id}
        )
        MerchantItem(
            pk=f"merchant#{merchant_id}",
            name=name,
            sealed_data_key=data_key["CiphertextBlob"],
            created_at=utcnow(),
        ).save(condition=MerchantItem.pk.does_not_exist())
        _, api_key = self._keys.create(merchant_id, live=live, api_key=api_key)
        return merchant_id, api_key

    def merchant_for_key(self, api_key: str) -> str | None:
        try:
            return str(ApiKeyItem.get(f"apikey#{key_hash(api_key)}").merchant_id)
        except ApiKeyItem.DoesNotExist:
            return None

    def cipher(self, merchant_id: str) -> CodeCipher:
        """The merchant's code cipher; the data key is decrypted by KMS once per process."""
        with self._lock:
            if merchant_id not in self._ciphers:
                sealed = MerchantItem.get(f"merchant#{merchant_id}", consistent_read=True).sealed_data_key
                plain = self._kms.decrypt(CiphertextBlob=sealed, EncryptionContext={"merchant": merchant_id})
                self._ciphers[merchant_id] = CodeCipher(plain["Plaintext"])
            return self._ciphers[merchant_id]
