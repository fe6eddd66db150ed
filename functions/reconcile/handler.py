"""Reconcile: scheduled every minute; finds outstanding work through sparse indexes only."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.reconcile.run import reconcile
from shared import adapters
from shared.orders import utcnow
from shared.settings import settings

logger = Logger(service="reconcile")
metrics = Metrics(service="reconcile")


def _emit(report: dict[str, Any]) -> None:
    counts = {
        "PaymentsRecovered": report["payments_recovered"],
        "Expired": report["expired"],
        "SlotsReturned": report["returned_slots"] + report["burned_returned"],
        "Redriven": report["redriven"],
        "GaveUp": len(report["gave_up"]),
        "StuckOrders": report["orders"]["PAID"]["stuck"],
        "StockAuditProblems": len(report["stock_problems"]),
        "OldestPaidSeconds": report["orders"]["PAID"]["oldest_seconds"],
    }
    for name, value in counts.items():
        unit = MetricUnit.Seconds if name.endswith("Seconds") else MetricUnit.Count
        metrics.add_metric(name=name, unit=unit, value=value)


@metrics.log_metrics
@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    now = utcnow()
    report = reconcile(settings(), now)
    _emit(report)
    adapters.ops().save_report("reconcile", now, report)
    logger.info("reconcile report", extra={"report": report})
    return report
