"""Socket: the order page's WebSocket API (docs/push.md). `$connect` admits a connection within its
client's cap (refused: 429, the page polls instead), `watch` authorises and records what it watches,
`$disconnect` forgets it, `$default` refuses anything else. Answers go through the management API
(functions/socket/watch.py); the integration's own response is only a status."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.socket.watch import Limits, connect, disconnect, unknown_message, watch
from shared import adapters, observability
from shared.orders import utcnow
from shared.settings import settings

logger = Logger(service="socket")
tracer = observability.tracer("socket")
metrics = observability.metrics("socket")

OK, REFUSED = {"statusCode": 200}, {"statusCode": 429}


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context(log_event=False)  # a watch message holds a token: never logged
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    request = event.get("requestContext") or {}
    route, connection_id = request.get("routeKey"), str(request.get("connectionId") or "")
    limits, connections, now = Limits.of(settings()), adapters.connections(), utcnow()
    if route == "$connect":
        source_ip = str((request.get("identity") or {}).get("sourceIp") or "")
        admitted = connect(connection_id, source_ip, connections, adapters.sockets(), limits, now)
        metrics.add_metric(
            name="SocketsConnected" if admitted else "SocketsRefused", unit=MetricUnit.Count, value=1
        )
        logger.info("connect", extra={"connection_id": connection_id, "admitted": admitted})
        return OK if admitted else REFUSED
    if route == "$disconnect":
        disconnect(connection_id, connections)
        return OK
    if route == "watch":
        outcome = watch(
            connection_id, event.get("body"), connections, adapters.orders(), adapters.sockets(), limits, now
        )
    else:
        outcome = unknown_message(connection_id, adapters.sockets())
    metrics.add_metric(
        name="Watching" if outcome == "watching" else "WatchRefused", unit=MetricUnit.Count, value=1
    )
    logger.info("message", extra={"connection_id": connection_id, "route": route, "outcome": outcome})
    return OK
