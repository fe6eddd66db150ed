"""Merchant API keys: created, listed, rotated and revoked per merchant; stored as hashes only.

A key is `mk_live_…` or `mk_test_…`, shown once when it is made. The authorizer finds its merchant
by the key's SHA-256 (`apikey#<hash>`, `ApiKeyItem`); each merchant's key records (id,
a short prefix to recognise it by, when it was made) live in one item, `keys#<merchant_id>`,
changed with a write conditional on its version so two concurrent changes cannot lose one.
API Gateway caches an authorizer's answer for a key up to 300 s (template: ReauthorizeEvery), so
a revoked key stops working within five minutes.
"""

import json
import secrets
from datetime import datetime

from pydantic import BaseModel
from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import PutError
from pynamodb.models import Model

from shared.errors import NotFound, StateConflict
from shared.ids import key_hash, new_id
from shared.orders import utcnow
from shared.store.errors import condition_failed

PREFIX_SHOWN = 12  # `mk_live_AbCd`: enough to tell keys apart, far too little to guess the rest
CHANGE_RETRIES = 5


class KeyRecord(BaseModel):
    key_id: str
    prefix: str
    created_at: datetime
    hash: str  # of the key, to revoke it; never the key


class ApiKeyItem(Model):
    """`apikey#<hash of the key>`: the merchant the key authorises (the authorizer's one read)."""

    class Meta:
        table_name: str | None = None

    pk = UnicodeAttribute(hash_key=True)
    merchant_id = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()


class _KeyListItem(Model):
    class Meta:
        table_name: str | None = None

    pk = UnicodeAttribute(hash_key=True)
    records = UnicodeAttribute()  # JSON list of KeyRecord
    version = NumberAttribute()


def new_api_key(live: bool) -> str:
    return f"mk_{'live' if live else 'test'}_{secrets.token_urlsafe(24)}"


class KeyStore:
    def __init__(self, table: str | None = None) -> None:
        if table is None:
            from shared.settings import settings

            table = settings().shop_table
        for model in (_KeyListItem, ApiKeyItem):
            model.Meta.table_name = table

    def keys(self, merchant_id: str) -> list[KeyRecord]:
        return self._read(merchant_id)[0]

    def create(
        self, merchant_id: str, live: bool = False, api_key: str | None = None
    ) -> tuple[KeyRecord, str]:
        """A new key for the merchant: (its record, the key itself, shown this once)."""
        api_key = api_key or new_api_key(live)
        record = KeyRecord(
            key_id=new_id("key"), prefix=api_key[:PREFIX_SHOWN], created_at=utcnow(), hash=key_hash(api_key)
        )
        item = ApiKeyItem(pk=f"apikey#{record.hash}", merchant_id=merchant_id, created_at=record.created_at)
        try:
            item.save(condition=ApiKeyItem.pk.does_not_exist())
        except PutError as error:  # taken by this very write, if its answer was lost and it was retried
            if not condition_failed(error) or not self._is(item):
                raise
        self._change(
            merchant_id,
            lambda records: (
                records if any(r.key_id == record.key_id for r in records) else [*records, record]
            ),
        )
        return record, api_key

    @staticmethod
    def _is(item: ApiKeyItem) -> bool:
        """True if `item` is stored exactly so (a retried put found its own first attempt)."""
        try:
            stored = ApiKeyItem.get(item.pk, consistent_read=True)
        except ApiKeyItem.DoesNotExist:
            return False
        return bool(stored.merchant_id == item.merchant_id and stored.created_at == item.created_at)

    def revoke(self, merchant_id: str, key_id: str) -> KeyRecord:
        """The key stops authorising (within the authorizer cache's five minutes)."""
        record = next((r for r in self.keys(merchant_id) if r.key_id == key_id), None)
        if record is None:
            raise NotFound(f"merchant {merchant_id} has no key {key_id}", code="key_not_found")
        ApiKeyItem(pk=f"apikey#{record.hash}").delete()  # first: a crash after it leaves a dead record
        self._change(merchant_id, lambda records: [r for r in records if r.key_id != key_id])
        return record

    def rotate(self, merchant_id: str, key_id: str, live: bool | None = None) -> tuple[KeyRecord, str]:
        """A new key, then the old one revoked: never a moment with no working key."""
        old = next((r for r in self.keys(merchant_id) if r.key_id == key_id), None)
        if old is None:
            raise NotFound(f"merchant {merchant_id} has no key {key_id}", code="key_not_found")
        created = self.create(merchant_id, live=old.prefix.startswith("mk_live_") if live is None else live)
        self.revoke(merchant_id, key_id)
        return created

    def _read(self, merchant_id: str) -> tuple[list[KeyRecord], int | None]:
        try:
            item = _KeyListItem.get(f"keys#{merchant_id}", consistent_read=True)
        except _KeyListItem.DoesNotExist:
            return [], None
        return [KeyRecord.model_validate(r) for r in json.loads(item.records)], int(item.version)

    def _change(self, merchant_id: str, change) -> None:  # type: ignore[no-untyped-def]
        for _ in range(CHANGE_RETRIES):
            records, version = self._read(merchant_id)
            changed = change(records)
            if changed == records and version is not None:
                return  # already so: a retry whose first attempt applied
            item = _KeyListItem(
                pk=f"keys#{merchant_id}",
                records=json.dumps([r.model_dump(mode="json") for r in changed]),
                version=(version or 0) + 1,
            )
            condition = (
                _KeyListItem.pk.does_not_exist() if version is None else _KeyListItem.version == version
            )
            try:
                item.save(condition=condition)
                return
            except PutError as error:
                if not condition_failed(error):
                    raise
        raise StateConflict(f"the keys of merchant {merchant_id} kept changing; try again")
