"""Reconcile: scheduled every minute; finds outstanding work through sparse indexes only."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.reconcile.run import reconcile
from shared import adapters, observability
from shared.settings import settings

logger = Logger(service="reconcile")
tracer = observability.tracer("reconcile")
metrics = observability.metrics("reconcile")


class StepsFailed(RuntimeError):
    """Some reconcile steps failed (logged); the invocation fails so the alarm on Errors sees it."""


def _emit(report: dict[str, Any]) -> None:
    paid = (report["orders"] or {}).get("PAID", {"stuck": 0, "oldest_seconds": 0})
    counts = {
        "PaymentsRecovered": report["payments_recovered"],
        "Expired": report["expired"],
        "SlotsReturned": report["returned_slots"] + report["burned_returned"],
        "Redriven": report["redriven"],
        "GaveUp": len(report["gave_up"]),
        "FulfilmentsLate": len(report["late_fulfilments"]),
        "ReviewsExpired": len(report["reviews_expired"]),
        "Refunded": report["refunded"] + report["owed_refunded"],
        "RefundsWaiting": report["refunds_waiting"],
        "StuckOrders": paid["stuck"],
        "StockAuditProblems": len(report["stock_problems"]),
        "OldestPaidSeconds": paid["oldest_seconds"],
        "FailedSteps": len(report["failed_steps"]),
    }
    for name, value in counts.items():
        unit = MetricUnit.Seconds if name.endswith("Seconds") else MetricUnit.Count
        metrics.add_metric(name=name, unit=unit, value=value)


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    ports = adapters.ports()
    now = ports.clock()
    seconds = max(5.0, context.get_remaining_time_in_millis() / 1000 - 5)  # leave time to report
    report = reconcile(settings(), now, seconds, ports)
    _emit(report)
    adapters.ops().save_report("reconcile", now, report)
    logger.info("reconcile report", extra={"report": report})
    if report["failed_steps"]:
        raise StepsFailed(f"reconcile steps failed: {', '.join(report['failed_steps'])}")
    return report
