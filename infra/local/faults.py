"""/_local/faults: local mode's switch for failed deliveries (`miaofa-ops local fail-deliveries`).

`POST /_local/faults/deliveries {"count": N}` (bearer: the sandbox secret, from `.miaofa/local.json`)
makes the next N orders the deliver function tries fail every attempt, after their codes are bound
(the `deliver:after-bind` point, shared/faults.py), until the deliver function dead-letters them
because they used their retries (`DELIVERY_RETRIES`). Their next try, a `miaofa-ops dlq replay` or
reconcile's re-drive, delivers them. `count` 0 turns the switch off for orders not yet chosen;
`GET` shows the state. The failed receives of a chosen order come back at once, not after the
delivery queue's visibility timeout (180 s), so an order reaches the DLQ within seconds.

Nothing of this exists on AWS: the runtime installs the plan in its own process only.
"""

import hmac
import json
import threading
from collections.abc import Callable
from typing import Any

PREFIX = "/_local/faults"
REASON = "deliveries failing on purpose (miaofa-ops local fail-deliveries)"
MAX_COUNT = 1000


class FailingDeliveries:
    """Which orders' deliveries fail; `retries_of(order_id)` reads an order's retries so far."""

    def __init__(self, secret: str, allowed: Callable[[], int], retries_of: Callable[[str], int]) -> None:
        self.secret, self.allowed, self.retries_of = secret, allowed, retries_of
        self.remaining = 0  # orders still to choose
        self.failing: set[str] = set()  # chosen orders not yet dead-lettered
        self._lock = threading.Lock()

    def plan(self, point: str, order_id: str) -> str | None:
        """shared.faults' plan: fail a chosen order at the bind until it has used its retries."""
        if point != "deliver:after-bind" or not (self.remaining or self.failing):
            return None
        with self._lock:
            if order_id not in self.failing:
                if not self.remaining:
                    return None
                self.remaining -= 1
                self.failing.add(order_id)
                return REASON
        if self.retries_of(order_id) > self.allowed():  # dead-lettered since: this is its replay
            with self._lock:
                self.failing.discard(order_id)
            return None
        return REASON

    def hurried(self, body: str) -> bool:
        """A failed delivery message of a chosen order: made visible again at once."""
        if not self.failing:
            return False
        try:
            order_id = json.loads(body).get("order_id")
        except (ValueError, AttributeError):
            return False
        with self._lock:
            return order_id in self.failing

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {"remaining": self.remaining, "failing": sorted(self.failing)}

    def handle(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if path != f"{PREFIX}/deliveries" or method not in ("GET", "POST"):
            return _answer(404, {"message": "Not Found"})
        given = headers.get("authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            return _answer(401, {"message": "the sandbox secret (.miaofa/local.json) is needed"})
        if method == "POST":
            try:
                count = json.loads(body or b"{}")["count"]
            except (ValueError, KeyError, TypeError):
                return _answer(400, {"message": 'send {"count": N}'})
            if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_COUNT:
                return _answer(400, {"message": f"count must be a whole number from 0 to {MAX_COUNT}"})
            with self._lock:
                self.remaining = count
        return _answer(200, self.state())


def _answer(status: int, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    return (
        status,
        {"content-type": "application/json", "cache-control": "no-store"},
        json.dumps(body).encode(),
    )


def order_retries(order_id: str) -> int:
    """The order's delivery retries so far, as the deliver function counted them (a strong read)."""
    from shared.adapters import orders
    from shared.store.orders import OrderItem

    orders()  # the orders table's name, set on the model
    try:
        item = OrderItem.get(order_id, consistent_read=True, attributes_to_get=["delivery_retries"])
    except OrderItem.DoesNotExist:
        return 0
    return int(item.delivery_retries or 0)
