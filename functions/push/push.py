"""Pushes: a batch of the orders table's stream records → each order whose status changed → a message
to every connection watching it (docs/push.md, docs/decisions.md "Pushes come from the orders
table's stream").

A message says the order's id and new status only, never a code: the page reads the order with
`GET /api/orders/{id}` when the status needs more than its name (codes, refunds). A connection that is
gone (410) no longer watches the order (its $disconnect frees the rest). A post that
fails otherwise is counted and left: the page that missed it re-reads on reconnect and polls after a
silence, so retrying it would only hold up the shard's later orders. What does fail a record is not
finding out who watches its order (the connections table): that record is reported
(`ReportBatchItemFailures`) and Lambda retries the shard from it, a bounded number of times.

Several changes of one order in a batch push its latest status once; the orders are pushed in
parallel, each on its own thread, so one slow connection does not delay the others.
"""

import logging
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final

from shared.ports import ConnectionPort, SocketChannel

logger = logging.getLogger(__name__)

THREADS: Final = 8  # orders pushed at once: each mostly waits on one query and a few posts


@dataclass(frozen=True)
class StatusChange:
    order_id: str
    status: str
    sequence_numbers: tuple[str, ...]  # of the records that carried this order's changes


@dataclass
class Pushed:
    sent: int = 0
    gone: int = 0
    failed_posts: int = 0
    failed_records: list[str] = field(default_factory=list)  # sequence numbers, for Lambda to retry from


def _attribute(image: Mapping[str, Any] | None, name: str) -> str | None:
    value = (image or {}).get(name)
    return value.get("S") if isinstance(value, Mapping) else None


def status_changes(records: Iterable[Mapping[str, Any]]) -> list[StatusChange]:
    """The orders whose status the records change, each with its latest status, in stream order."""
    latest: dict[str, tuple[str, list[str]]] = {}
    for record in records:
        if record.get("eventName") != "MODIFY":  # a new order has no watcher yet; orders are never deleted
            continue
        stream = record.get("dynamodb") or {}
        old, new = _attribute(stream.get("OldImage"), "status"), _attribute(stream.get("NewImage"), "status")
        order_id = _attribute(stream.get("Keys"), "order_id")
        if order_id is None or new is None or new == old:
            continue
        sequences = latest.get(order_id, ("", []))[1]
        latest[order_id] = (new, [*sequences, str(stream.get("SequenceNumber", ""))])
    return [StatusChange(order_id, status, tuple(seqs)) for order_id, (status, seqs) in latest.items()]


def push(
    changes: list[StatusChange], connections: ConnectionPort, channel: SocketChannel, now: int
) -> Pushed:
    """Post each change to the connections watching its order."""
    pushed = Pushed()
    if len(changes) <= 1:
        results = [_push_one(change, connections, channel, now) for change in changes]
    else:
        results = list(_pool().map(lambda change: _push_one(change, connections, channel, now), changes))
    for change, result in zip(changes, results, strict=True):
        if result is None:
            pushed.failed_records.extend(change.sequence_numbers)
            continue
        sent, gone, failed = result
        pushed.sent, pushed.gone, pushed.failed_posts = (
            pushed.sent + sent,
            pushed.gone + gone,
            pushed.failed_posts + failed,
        )
    return pushed


@cache
def _pool() -> ThreadPoolExecutor:
    """Kept while the container is warm: PynamoDB keeps a client per thread, made on its first use."""
    return ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="push")


def _push_one(
    change: StatusChange, connections: ConnectionPort, channel: SocketChannel, now: int
) -> tuple[int, int, int] | None:
    """(sent, gone, failed posts) for one order; None if its watchers could not be read."""
    try:
        watchers = connections.watchers(change.order_id, now)
    except Exception as error:
        logger.warning(
            "watchers not read", extra={"order_id": change.order_id, "error": type(error).__name__}
        )
        return None
    message = {"type": "order", "order_id": change.order_id, "status": change.status}
    sent = gone = failed = 0
    for connection_id in watchers:
        try:
            if channel.post(connection_id, message):
                sent += 1
                continue
            gone += 1
            connections.unwatch(change.order_id, connection_id)  # $disconnect frees the rest
        except Exception as error:  # this connection only: the page re-reads on reconnect, or polls
            failed += 1
            logger.warning(
                "push not sent",
                extra={
                    "order_id": change.order_id,
                    "connection_id": connection_id,
                    "error": type(error).__name__,
                },
            )
    return sent, gone, failed
