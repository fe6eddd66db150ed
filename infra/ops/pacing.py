"""Replay at a steady rate, so a burst of replayed messages does not become a burst of failures."""

import time
from collections.abc import Callable


class RateLimiter:
    """At most `per_second` calls of `wait()` return per second, spaced evenly."""

    def __init__(
        self,
        per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_second <= 0:
            raise ValueError("the rate must be positive")
        self.interval, self.clock, self.sleep = 1 / per_second, clock, sleep
        self._next: float | None = None

    def wait(self) -> None:
        """Return when the next call is allowed (at once the first time)."""
        now = self.clock()
        if self._next is not None and now < self._next:
            self.sleep(self._next - now)
            now = self._next
        # Spaced from when this call went ahead: time spent doing slow work is not made up later.
        self._next = now + self.interval
