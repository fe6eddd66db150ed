"""Each merchant's license signing keys (shared/licenses/keyring.py, docs/licenses.md "The store").

One item per merchant in the licenses table, `keyring#<merchant_id>`: every published key id with its
public half (oldest first), the current key id, its private half sealed under the merchant's code
cipher (AES-256-GCM, the merchant's KMS-wrapped data key, bound to merchant and key id), and a version.
A rotated-out key keeps only its public half: what verification needs.

- Made on first need with one conditional put (`attribute_not_exists`): two deliveries making it at
  once, one wins and the other reads the winner's, so a merchant never has two current keys.
- Rotated with one write conditional on the version read. A retried rotation whose first answer was
  lost finds its own key current (done); a rotation that lost to another takes the other's.
- Kept per process for `cache_seconds` (LICENSE_KEY_CACHE_SECONDS, 30 by default): an old keyring
  only signs with a key that stays published, so a container that has not seen a rotation yet still
  signs licenses that verify.
- A rotated-out key is retired (a key that leaked) with one write conditional on the version read: its
  public half is dropped, its id and time kept in `retired`, so a retried retirement is found done.
  Not before `cache_seconds` (and a margin for clocks) after the last rotation: until then a process
  may still sign with the key rotated out, and what it signed would not verify.
"""

import base64
import json
import math
import threading
import time
from datetime import datetime, timedelta

from pynamodb.attributes import BinaryAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import PutError, UpdateError
from pynamodb.models import Model

from shared.errors import StateConflict
from shared.licenses import Keyring, public_bytes, public_key, seal_private_key, unseal_private_key
from shared.licensing import LicenseKeyCurrent, LicenseKeyRecent, LicenseKeyUnknown
from shared.orders import utcnow
from shared.ports import Ciphers
from shared.store.errors import condition_failed

KEYRING_CACHE_SECONDS = 30.0
KEPT = 1024  # merchants one process keeps keyrings of
ROTATE_ROUNDS = 3
CLOCK_MARGIN_SECONDS = 2.0  # between the clocks of the process that rotated and the one retiring


class KeyringItem(Model):
    class Meta:
        table_name: str | None = None

    pk = UnicodeAttribute(hash_key=True)  # keyring#<merchant_id>
    public_keys = UnicodeAttribute()  # JSON [[kid, base64url of the 32-byte public key], ...], oldest first
    current = UnicodeAttribute()
    sealed_private = BinaryAttribute(legacy_encoding=False)  # the current key's, sealed
    version = NumberAttribute()
    created_at = UTCDateTimeAttribute()
    rotated_at = UTCDateTimeAttribute(null=True)
    retired = UnicodeAttribute(null=True)  # JSON [[kid, ISO time retired], ...]: no longer published


def _key(merchant_id: str) -> str:
    return f"keyring#{merchant_id}"


class LicenseKeyStore:
    """Merchants' keyrings: `keyring` (verifying, or None), `signing` (made on first need), `rotate`,
    `retire`, and `retired` (the key ids a merchant retired, and when)."""

    def __init__(
        self, ciphers: Ciphers, table: str | None = None, cache_seconds: float = KEYRING_CACHE_SECONDS
    ):
        if table is None:
            from shared.settings import settings

            table = settings().licenses_table
        KeyringItem.Meta.table_name = table
        self._ciphers = ciphers
        self._seconds = cache_seconds
        self._kept: dict[str, tuple[float, Keyring | None]] = {}
        self._lock = threading.Lock()

    def keyring(self, merchant_id: str, fresh: bool = False) -> Keyring | None:
        """The merchant's keyring with its current private half (None: it has none yet). As this process
        read it less than KEYRING_CACHE_SECONDS ago, unless `fresh` (a consistent read)."""
        with self._lock:
            kept = self._kept.get(merchant_id)
        if not fresh and kept is not None and time.monotonic() < kept[0]:
            return kept[1]
        started = time.monotonic()
        return self._keep(merchant_id, self._read(merchant_id), started)

    def signing(self, merchant_id: str) -> Keyring:
        """The merchant's keyring to sign with, made (one fresh key) if it has none."""
        ring = self.keyring(merchant_id)
        if ring is None:
            started = time.monotonic()
            ring = self._keep(merchant_id, self._read(merchant_id) or self._create(merchant_id), started)
        assert ring is not None
        return ring

    def _keep(self, merchant_id: str, ring: Keyring | None, started: float) -> Keyring | None:
        with self._lock:
            if len(self._kept) > KEPT:
                self._kept.clear()
            self._kept[merchant_id] = (started + self._seconds, ring)
        return ring

    def rotate(self, merchant_id: str) -> Keyring:
        """A fresh key becomes the merchant's current one (the old ones stay published, public only);
        a merchant without keys gets its first."""
        for _ in range(ROTATE_ROUNDS):
            item = self._item(merchant_id)
            if item is None:  # none yet: its first key is as fresh as a rotation's
                ring = self._create(merchant_id)
                self._keep(merchant_id, ring, time.monotonic())
                return ring
            rotated = self._open(merchant_id, item).rotate()
            kid, key = rotated.signing_key()
            try:
                KeyringItem(pk=item.pk).update(
                    actions=[
                        KeyringItem.public_keys.set(_public_json(rotated)),
                        KeyringItem.current.set(kid),
                        KeyringItem.sealed_private.set(
                            seal_private_key(self._ciphers(merchant_id), merchant_id, kid, key)
                        ),
                        KeyringItem.version.set(int(item.version) + 1),
                        KeyringItem.rotated_at.set(utcnow()),
                    ],
                    condition=KeyringItem.version == int(item.version),
                )
            except UpdateError as error:
                if not condition_failed(error):
                    raise
                now = self._item(merchant_id)
                if now is not None and now.current == kid:
                    break  # this very write, retried by the SDK after its answer was lost
                if now is not None and now.current != item.current:
                    break  # another rotation won: a fresh key is current either way
                continue  # changed otherwise (a key retired): rotate what it is now
            break
        else:
            raise StateConflict(f"the license keys of merchant {merchant_id} kept changing; try again")
        now_current = self._keep(merchant_id, self._read(merchant_id), time.monotonic())
        assert now_current is not None
        return now_current

    def retire(self, merchant_id: str, kid: str, now: datetime) -> Keyring:
        """`kid` no longer published: every license and activation it signed stops verifying, here at
        once and in other processes within KEYRING_CACHE_SECONDS. Retiring it again changes nothing.
        LicenseKeyUnknown if the merchant never had it; LicenseKeyCurrent if it signs now;
        LicenseKeyRecent within the keep time (and a margin) of the last rotation, while a process may
        still sign with the key it rotated out."""
        for _ in range(ROTATE_ROUNDS):
            item = self._item(merchant_id)
            retired = _retired(item)
            if kid in retired:
                break  # retired before, or by this very write (retried by the SDK after its answer was lost)
            ring = None if item is None else self._open(merchant_id, item)
            if item is None or ring is None or kid not in ring.kids:
                raise LicenseKeyUnknown("no such license key of yours")
            if kid == ring.current:
                raise LicenseKeyCurrent(f"key {kid} signs your licenses now: rotate first, then retire it")
            rotated = item.rotated_at or item.created_at
            settled = rotated + timedelta(seconds=self._seconds + CLOCK_MARGIN_SECONDS)
            if now < settled:
                wait = math.ceil((settled - now).total_seconds())
                raise LicenseKeyRecent(
                    f"the keys were rotated moments ago and a process may still sign with the key rotated "
                    f"out: retire it in {wait} s",
                    retry_after=wait,
                )
            kept = ring.retire(kid)
            try:
                KeyringItem(pk=item.pk).update(
                    actions=[
                        KeyringItem.public_keys.set(_public_json(kept)),
                        KeyringItem.retired.set(json.dumps([*retired.items(), (kid, now.isoformat())])),
                        KeyringItem.version.set(int(item.version) + 1),
                    ],
                    condition=KeyringItem.version == int(item.version),
                )
            except UpdateError as error:
                if not condition_failed(error):
                    raise
                continue  # changed since read (a rotation, another retirement, or this write's own retry)
            break
        else:
            raise StateConflict(f"the license keys of merchant {merchant_id} kept changing; try again")
        now_kept = self._keep(merchant_id, self._read(merchant_id), time.monotonic())
        assert now_kept is not None
        return now_kept

    def retired(self, merchant_id: str) -> dict[str, datetime]:
        """The key ids the merchant retired, and when, oldest first."""
        return {kid: datetime.fromisoformat(at) for kid, at in _retired(self._item(merchant_id)).items()}

    def _read(self, merchant_id: str) -> Keyring | None:
        item = self._item(merchant_id)
        return None if item is None else self._open(merchant_id, item)

    def _item(self, merchant_id: str) -> KeyringItem | None:
        try:
            return KeyringItem.get(_key(merchant_id), consistent_read=True)
        except KeyringItem.DoesNotExist:
            return None

    def _create(self, merchant_id: str) -> Keyring:
        ring = Keyring.new()
        kid, key = ring.signing_key()
        item = KeyringItem(
            pk=_key(merchant_id),
            public_keys=_public_json(ring),
            current=kid,
            sealed_private=seal_private_key(self._ciphers(merchant_id), merchant_id, kid, key),
            version=1,
            created_at=utcnow(),
        )
        try:
            item.save(condition=KeyringItem.pk.does_not_exist())
        except PutError as error:
            if not condition_failed(error):
                raise
            winner = self._read(merchant_id)  # another's (or this put's own, retried): one current key
            if winner is None:
                raise
            return winner
        return ring

    def _open(self, merchant_id: str, item: KeyringItem) -> Keyring:
        public = {kid: public_key(_unb64(x)) for kid, x in json.loads(item.public_keys)}
        private = unseal_private_key(
            self._ciphers(merchant_id), merchant_id, item.current, item.sealed_private
        )
        return Keyring(public, item.current, private)


def _retired(item: KeyringItem | None) -> dict[str, str]:
    return {} if item is None or not item.retired else {kid: at for kid, at in json.loads(item.retired)}


def _public_json(ring: Keyring) -> str:
    return json.dumps([[kid, _b64(public_bytes(ring.public_key(kid)))] for kid in ring.kids])


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
