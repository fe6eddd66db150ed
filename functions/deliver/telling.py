"""Telling about a delivered order: its merchant (order.delivered, stock.low) and its buyer (the mail)."""

import logging

from shared import notify, queues
from shared.mail import MailRequest
from shared.orders import Order
from shared.ports import Ports

logger = logging.getLogger(__name__)


def tell_merchant(order: Order, ports: Ports) -> None:
    """order.delivered, and stock.low when the delivery leaves the product at or below its threshold;
    and the buyer's confirmation mail (a retry after a crash may send it twice, never zero times).

    The product and its stock level are as this container read them less than PRODUCT_CACHE_SECONDS
    ago, not read per delivery (their partitions would cap one product's sales). The level read for
    a delivery is then at least as new as its own order's claim whenever the buyer paid more than that
    long after checkout, so the delivery whose claim took the stock to the threshold is still told.

    Best effort: a failure is logged, the order stays DELIVERED (a retried message emits the same
    events again, under the same ids)."""
    queues.request_mail(MailRequest(mail="order", order_id=order.order_id), ports.notify)  # never raises
    try:
        queues.emit("order.delivered", order, ports.notify)
        product = ports.products.recent_product(order.product_id)
        if product is not None and product.stocked and notify.low_stock_threshold(product) > 0:
            available = ports.levels.available(product)
            queues.publish(notify.stock_low_event(product, available, order), ports.notify)
    except Exception as error:
        logger.warning("merchant not told", extra={"order_id": order.order_id, "error": type(error).__name__})
