"""Named crash points between writes, for the fault-injection tests. Inert unless a test arms one.

An armed point raises InjectedFault once, in whichever thread reaches it, exactly as a process
dying between two writes would leave things: the first write done, the second not.
"""

import threading
from collections.abc import Callable

# Every write boundary on the hot path; the crash tests run once per entry.
POINTS = (
    "checkout:after-limits",
    "claim:after-take",
    "checkout:after-claim",
    "checkout:after-order-created",
    "webhook:after-event-recorded",
    "webhook:after-paid",
    "webhook:after-enqueue",
    "deliver:between-binds",
    "deliver:after-bind",
    "reconcile:after-expired",
)
# Between the refund request and recording its answer (tests/integration/test_refunds.py).
REFUND_POINTS = ("refund:after-sent",)
# Off the happy path, each with its own scenario (tests/e2e/test_edge_crash_points.py).
EDGE_POINTS = (
    "claim:between-pieces",
    "claim:giving-back",
    "webhook:late-after-release",
    "webhook:late-after-claim",
    "redrive:after-claimed",
    "redrive:between-refunding-and-release",
    "refund:between-refunding-and-release",
    "refund:after-confirmed",
)
# Between two shards' counts in a stock import (tests/integration/test_reusable_codes.py).
IMPORT_POINTS = ("import:between-shards",)
# A top-up's delivery: after its request is noted, and after the upstream answered (tests/integration/
# test_topup.py: every behaviour of the fake upstream with a crash at each).
TOPUP_POINTS = ("topup:after-sent-recorded", "topup:after-answer")
# A generated order's delivery: after its cap is counted, after its codes are drawn and recorded
# (tests/integration/test_generated.py: the retry draws new codes).
GENERATED_POINTS = ("generated:after-count", "generated:after-draw")

_armed: set[str] = set()
_lock = threading.Lock()
# A plan asked at every point passed with a key (an order id): a reason to fail there, or None. Only
# the local runtime installs one (`miaofa-ops local fail-deliveries`, infra/local/faults.py).
Plan = Callable[[str, str], str | None]
_plan: Plan | None = None


class InjectedFault(Exception):
    """A crash injected by a test (or by the local runtime's `miaofa-ops local fail-deliveries`)."""


def checkpoint(name: str, key: str | None = None) -> None:
    plan = _plan
    if plan is not None and key is not None:
        reason = plan(name, key)
        if reason is not None:
            raise InjectedFault(reason)
    if not _armed:
        return
    with _lock:
        if name not in _armed:
            return
        _armed.discard(name)
    raise InjectedFault(name)


def arm(name: str) -> None:
    if name not in POINTS + REFUND_POINTS + IMPORT_POINTS + EDGE_POINTS + TOPUP_POINTS + GENERATED_POINTS:
        raise ValueError(f"unknown crash point {name!r}")
    with _lock:
        _armed.add(name)


def disarm() -> None:
    """Forget every armed point (one no scenario reached)."""
    with _lock:
        _armed.clear()


def armed() -> set[str]:
    with _lock:
        return set(_armed)


def install_plan(plan: Plan | None) -> None:
    """Ask `plan` at every keyed point from now on (None: no plan)."""
    global _plan
    _plan = plan
