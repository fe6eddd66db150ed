"""Merchants and their code keys: each merchant's codes are sealed with its own data key, which
KMS seals in turn; its API keys are kept as hashes only (shared/store/keys.py). The merchant's item
also holds its shop's settings (shared/shops.py) and their version."""

import threading

from pynamodb.attributes import BinaryAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import PutError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.models import Model

from shared import aws
from shared.codes import CodeCipher
from shared.errors import NotFound, VersionConflict
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
    shop_version = NumberAttribute(null=True)  # of the settings: one more at every write; absent: 0


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
        return self.versioned_shop(merchant_id)[0]

    def versioned_shop(self, merchant_id: str) -> tuple[ShopSettings, int]:
        """The merchant's shop settings and their version (a consistent read)."""
        item = self._item(merchant_id)
        stored = {field: getattr(item, field) for field in ("name", *SHOP_FIELDS)}
        stored["default_language"] = stored["default_language"] or DEFAULT_LANGUAGE
        # As stored, unchecked: a name from before the shop's rules stays readable.
        return ShopSettings.model_construct(**stored), _version(item)

    def set_shop(self, merchant_id: str, shop: ShopSettings, version: int) -> int:
        """Replace the settings read at `version` in one conditional write on the merchant's own item
        (all or nothing, never creating an item for an unknown merchant); returns their new version.
        VersionConflict if another write came since. The version is set, not added to, and the same
        write sent again (the SDK's retry after a lost answer, or the client's) finds its own values
        at the version it made, which it takes as done: no false conflict, nothing written twice."""
        values = shop.model_dump()
        wanted = {"name": shop.name, **{field: values[field] for field in SHOP_FIELDS}}
        actions: list[Action] = [MerchantItem.shop_version.set(version + 1)]
        already: Condition = MerchantItem.shop_version == version + 1
        for field, value in wanted.items():
            attribute = getattr(MerchantItem, field)
            actions.append(attribute.remove() if value is None else attribute.set(value))
            already &= attribute.does_not_exist() if value is None else attribute == value
        read_at: Condition = MerchantItem.shop_version == version
        if version == 0:
            read_at |= MerchantItem.shop_version.does_not_exist()
        try:
            MerchantItem(pk=f"merchant#{merchant_id}").update(
                actions=actions, condition=MerchantItem.pk.exists() & (read_at | already)
            )
        except UpdateError as error:
            if not condition_failed(error):
                raise
            now = _version(self._item(merchant_id))  # NotFound: no such merchant
            raise VersionConflict(
                f"the shop's settings were changed since version {version} was read (now version {now}); "
                "read them again and apply your change to them"
            ) from None
        return version + 1

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


def _version(item: MerchantItem) -> int:
    return int(item.shop_version or 0)
