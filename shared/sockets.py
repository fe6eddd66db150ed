"""The order page's WebSocket connections, as the functions reach them: API Gateway's management API
(`PostToConnection`, `DeleteConnection`, `GetConnection`), the one place that calls it (docs/push.md).

Its endpoint is WEBSOCKET_ENDPOINT (`https://{api}.execute-api.{region}.amazonaws.com/live` on AWS,
the local runtime's loopback server locally). A message is a small JSON object; what one says never
holds a code or a token (codes come only from the authenticated `GET /api/orders/{id}`).
"""

import json
import threading
from functools import cached_property
from typing import Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from shared import aws
from shared.settings import settings

GONE: Final = "GoneException"  # 410: the connection is closed; it will never take a message again
# Short: a post waits on one connection only, and a slow one must not hold up a batch of pushes.
# A post is best effort (the page re-reads and polls): two attempts at most, so one dead endpoint
# cannot hold a push batch past its timeout (3 attempts x 5 s each would).
TIMEOUTS: Final = Config(
    connect_timeout=2, read_timeout=3, retries={"mode": "standard", "total_max_attempts": 2}
)
_MAKING = threading.Lock()


class Sockets:
    def __init__(self, endpoint: str | None = None) -> None:
        self._endpoint = endpoint if endpoint is not None else settings().websocket_endpoint

    @cached_property
    def _api(self) -> Any:
        with _MAKING:  # boto3's default session makes clients one thread at a time only
            config = aws.config().merge(TIMEOUTS)
            return boto3.client("apigatewaymanagementapi", endpoint_url=self._endpoint, config=config)

    def post(self, connection_id: str, message: dict[str, str]) -> bool:
        """Send `message` to the connection as one JSON text frame; False if it is gone (410)."""
        try:
            self._api.post_to_connection(ConnectionId=connection_id, Data=json.dumps(message).encode())
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == GONE:
                return False
            raise
        return True

    def close(self, connection_id: str) -> None:
        """Close the connection (one already gone is closed)."""
        try:
            self._api.delete_connection(ConnectionId=connection_id)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != GONE:
                raise

    def alive(self, connection_id: str) -> bool:
        """Whether the connection is still open (GetConnection); False once it is gone (410)."""
        try:
            self._api.get_connection(ConnectionId=connection_id)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == GONE:
                return False
            raise
        return True
