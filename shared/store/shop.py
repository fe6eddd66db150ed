"""Merchants, their API keys (stored as hashes only), their code keys, and their products."""

import hashlib
import re
import secrets
import threading

import boto3
from pynamodb.attributes import (
    BinaryAttribute,
    BooleanAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.models import Model

from shared.codes import CodeCipher
from shared.money import Money
from shared.orders import utcnow
from shared.products import Product
from shared.settings import settings


class _ShopModel(Model):
    class Meta:
        table_name: str | None = None

    pk = UnicodeAttribute(hash_key=True)


class MerchantItem(_ShopModel):
    name = UnicodeAttribute()
    sealed_data_key = BinaryAttribute(legacy_encoding=False)
    created_at = UTCDateTimeAttribute()


class ApiKeyItem(_ShopModel):
    merchant_id = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()


class ProductItem(_ShopModel):
    merchant_id = UnicodeAttribute()
    name = UnicodeAttribute()
    description = UnicodeAttribute()
    price_amount = NumberAttribute()
    currency = UnicodeAttribute()
    delivery = UnicodeAttribute()
    max_per_order = NumberAttribute()
    shards = NumberAttribute()
    active = BooleanAttribute()
    created_at = UTCDateTimeAttribute()
    when_undeliverable = UnicodeAttribute(null=True)


def key_hash(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def is_id(value: str, prefix: str) -> bool:
    """True for ids this shop issues (`new_id`); anything else is refused before any look-up."""
    return re.fullmatch(rf"{prefix}_[0-9a-f]{{20}}", value) is not None


class ShopStore:
    def __init__(self) -> None:
        for model in (_ShopModel, MerchantItem, ApiKeyItem, ProductItem):
            model.Meta.table_name = settings().shop_table
        self._ciphers: dict[str, CodeCipher] = {}
        self._lock = threading.Lock()
        self._kms = boto3.client("kms")

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
        api_key = api_key or f"mk_{'live' if live else 'test'}_{secrets.token_urlsafe(24)}"
        ApiKeyItem(pk=f"apikey#{key_hash(api_key)}", merchant_id=merchant_id, created_at=utcnow()).save(
            condition=ApiKeyItem.pk.does_not_exist()
        )
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

    def put_product(self, product: Product) -> None:
        ProductItem(
            pk=f"product#{product.product_id}",
            merchant_id=product.merchant_id,
            name=product.name,
            description=product.description,
            price_amount=product.price.amount,
            currency=product.price.currency,
            delivery=product.delivery,
            max_per_order=product.max_per_order,
            shards=product.shards,
            active=product.active,
            created_at=product.created_at,
            when_undeliverable=product.when_undeliverable,
        ).save(condition=ProductItem.pk.does_not_exist())

    def product(self, product_id: str) -> Product | None:
        try:
            item = ProductItem.get(f"product#{product_id}")
        except ProductItem.DoesNotExist:
            return None
        return _to_product(item)


def _to_product(item: ProductItem) -> Product:
    return Product(
        product_id=item.pk.removeprefix("product#"),
        merchant_id=item.merchant_id,
        name=item.name,
        description=item.description,
        price=Money(amount=int(item.price_amount), currency=item.currency),
        delivery=item.delivery,  # type: ignore[arg-type]
        max_per_order=int(item.max_per_order),
        shards=int(item.shards),
        active=bool(item.active),
        created_at=item.created_at,
        when_undeliverable=item.when_undeliverable or "refund",  # type: ignore[arg-type]
    )
