"""Operations records: the reports reconciliation leaves behind, newest first, kept for 30 days."""

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

from shared.settings import settings

KEEP_FOR = timedelta(days=30)


class ReportItem(Model):
    class Meta:
        table_name: str | None = None

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)  # ISO time + run id: sorts by time, unique per run
    body = UnicodeAttribute()
    expires = NumberAttribute()


class OpsStore:
    def __init__(self, table: str | None = None) -> None:
        ReportItem.Meta.table_name = table or settings().ops_table

    def save_report(self, kind: str, at: datetime, report: dict[str, Any]) -> None:
        ReportItem(
            pk=f"report#{kind}",
            sk=f"{at.isoformat()}#{uuid.uuid4().hex[:8]}",
            body=json.dumps({"at": at.isoformat(), **report}, sort_keys=True),
            expires=int((at + KEEP_FOR).timestamp()),
        ).save()

    def reports(self, kind: str, limit: int = 10) -> list[dict[str, Any]]:
        """The last `limit` reports of `kind`, newest first."""
        query = ReportItem.query(f"report#{kind}", scan_index_forward=False, limit=limit)
        return [json.loads(item.body) for item in query]
