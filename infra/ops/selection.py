"""Which dead letters a replay takes: by order, by age, by the order's last delivery error, or all."""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from infra.ops.dlq import DeadLetter
from shared.orders import Order

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+)([smhd])")


def parse_duration(text: str) -> timedelta:
    """'30s', '10m', '2h', '1d' or a sum of them ('1h30m') as a timedelta; ValueError otherwise."""
    cleaned = text.strip().lower()
    parts = _DURATION.findall(cleaned)
    if not cleaned or "".join(f"{n}{u}" for n, u in parts) != cleaned:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 10m, 2h, 1d)")
    return timedelta(seconds=sum(int(n) * UNITS[u] for n, u in parts))


@dataclass(frozen=True)
class Selection:
    """Every given criterion must hold; several order ids are alternatives."""

    everything: bool = False
    orders: Sequence[str] = ()
    older_than: timedelta | None = None
    error: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.everything or self.orders or self.older_than is not None or self.error)

    def matches(self, letter: DeadLetter, order: Order | None, now: datetime) -> bool:
        if self.empty:
            return False
        if self.everything:
            return True
        if self.orders and letter.order_id not in self.orders:
            return False
        if self.older_than is not None and now - letter.sent_at < self.older_than:
            return False
        last_error = (order.delivery_error if order else None) or ""
        return not self.error or self.error.lower() in last_error.lower()
