"""Each merchant's risk rules (docs/risk.md "Rules API"): one item `risk#<merchant_id>` in the shop
table, holding the rules document as JSON text, as `parse_rules` validated it, and its `version`.

A merchant with no item has the defaults (`default_rules`) at version 0. A change is one conditional
write on the version read; the same write sent again (the SDK's retry after a lost answer, or the
client's) finds its own document at the version it made and takes that as done, as the shop's
settings do (shared/store/merchants.py `set_shop`)."""

import logging
from collections.abc import Mapping

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.models import Model

from shared.errors import Busy, VersionConflict
from shared.risk import RiskRules, default_rules, stored_rules, with_blocked
from shared.risk.signals import SignalKind
from shared.store.errors import condition_failed
from shared.store.recent import Recent

logger = logging.getLogger(__name__)
DEFAULTS_CURRENCY = "CNY"  # the defaults' amounts for an order in a currency they have no figure for
LEARN_ATTEMPTS = 5  # read-modify-writes of `add_blocked` that may find another write came first


class RiskRulesItem(Model):
    class Meta:
        table_name: str | None = None

    pk = UnicodeAttribute(hash_key=True)  # risk#<merchant_id>
    document = UnicodeAttribute()  # the rules as JSON, `version` included
    version = NumberAttribute()


def rules_key(merchant_id: str) -> str:
    """The rules item's key (the checkout reads it in its batched read with the counters)."""
    return f"risk#{merchant_id}"


def defaults_for(currency: str) -> RiskRules:
    """The defaults in `currency`; in another currency's amounts if it has none (those rules are then
    skipped for the order: their threshold is in another currency)."""
    try:
        return default_rules(currency)
    except ValueError:
        return default_rules(DEFAULTS_CURRENCY)


class RiskRulesStore:
    def __init__(self, table: str | None = None, cache_seconds: float | None = None) -> None:
        if table is None or cache_seconds is None:
            from shared.settings import settings

            table = table or settings().shop_table
            cache_seconds = settings().product_cache_seconds if cache_seconds is None else cache_seconds
        RiskRulesItem.Meta.table_name = table
        self._recent: Recent[str, RiskRules | None] = Recent(cache_seconds)

    def stored(self, merchant_id: str) -> RiskRules | None:
        """The merchant's stored rules (a consistent read); None if it never set any."""
        try:
            item = RiskRulesItem.get(rules_key(merchant_id), consistent_read=True)
        except RiskRulesItem.DoesNotExist:
            return None
        return stored_rules(item.document)

    def rules(self, merchant_id: str, currency: str) -> RiskRules:
        """The merchant's rules; the defaults in `currency` (version 0) if it never set any."""
        return self.rules_or_defaults(merchant_id, currency)[0]

    def rules_or_defaults(self, merchant_id: str, currency: str) -> tuple[RiskRules, bool]:
        """The merchant's rules, and True if they are the defaults (nothing stored: version 0)."""
        found = self.stored(merchant_id)
        return (found, False) if found is not None else (defaults_for(currency), True)

    def recent_rules(self, merchant_id: str, currency: str) -> RiskRules:
        """The rules as this process read them less than PRODUCT_CACHE_SECONDS ago: for deciding on
        orders, never for the merchant API (which reads the store)."""
        found = self._recent.get(merchant_id, lambda: self.stored(merchant_id))
        return found if found is not None else defaults_for(currency)

    def put_rules(self, merchant_id: str, rules: RiskRules, version: int) -> RiskRules:
        """Replace the rules read at `version` (0: none stored) in one conditional write; returns them
        as stored, at `version + 1`. VersionConflict if another write came since. The version is set,
        never added to: the same write sent again finds its own document at the version it made and
        takes it as done (no false conflict, nothing written twice)."""
        written = rules.model_copy(update={"version": version + 1})
        text = written.model_dump_json()
        read_at: Condition = RiskRulesItem.version == version
        if version == 0:
            read_at |= RiskRulesItem.pk.does_not_exist()
        already = (RiskRulesItem.version == version + 1) & (RiskRulesItem.document == text)
        try:
            RiskRulesItem(pk=rules_key(merchant_id)).update(
                actions=[RiskRulesItem.document.set(text), RiskRulesItem.version.set(version + 1)],
                condition=read_at | already,
            )
        except UpdateError as error:
            if not condition_failed(error):
                raise
            now = self.stored(merchant_id)
            raise VersionConflict(
                f"the risk rules were changed since version {version} was read "
                f"(now version {now.version if now is not None else 0}); read them again and apply your "
                "change to them"
            ) from None
        return stored_rules(text)

    def add_blocked(
        self,
        merchant_id: str,
        values: Mapping[SignalKind, str | None],
        currency: str = DEFAULTS_CURRENCY,
        why: str = "dispute",
    ) -> RiskRules:
        """Put each value on its kind's learned block list (`with_blocked`) as one conditional
        read-modify-write, read again and retried if another write came between; returns the rules as
        stored. Audited by a log line naming the kinds and the version, never the values. Values that
        are listed already (the same dispute reported twice, at once or later) change nothing: no
        write, no new version, no audit line."""
        for _ in range(LEARN_ATTEMPTS):
            current = self.rules(merchant_id, currency)
            changed = with_blocked(current, values)
            if changed == current:
                return current
            try:
                stored = self.put_rules(merchant_id, changed, current.version)
            except VersionConflict:
                continue  # another change came between the read and the write: apply it to theirs
            logger.warning(
                "risk rules: values blocked",
                extra={
                    "audit": "risk_blocked_added",
                    "merchant_id": merchant_id,
                    "kinds": sorted(kind for kind, value in values.items() if value is not None),
                    "why": why,
                    "version": stored.version,
                },
            )
            return stored
        raise Busy("the risk rules are being changed by other requests right now; retry in a moment")
