"""Reconcile: scheduled every minute; finds outstanding work through the sparse `due` index only."""

from datetime import timedelta

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.reconcile.burned import return_burned_slots
from functions.reconcile.expiry import expire_reservations
from functions.reconcile.redrive import redrive_paid
from shared import adapters
from shared.orders import utcnow
from shared.settings import settings

logger = Logger(service="reconcile")


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    now, retry_after = utcnow(), timedelta(seconds=settings().redrive_after_seconds)
    expired, returned = expire_reservations(adapters.orders(), adapters.stock(), now=now)
    redriven = redrive_paid(adapters.orders(), adapters.delivery_queue(), now=now, retry_after=retry_after)
    burned = return_burned_slots(adapters.shop(), adapters.orders(), adapters.stock(), now=now)
    report = {"expired": expired, "returned_slots": returned, "burned_returned": burned, "redriven": redriven}
    logger.info("reconcile report", extra=report)
    return report
