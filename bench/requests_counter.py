"""Count AWS requests with botocore event hooks — the AWS bill, the same on moto and on AWS.

The hook is added to botocore's built-in handlers, so every session made afterwards (boto3's and
PynamoDB's per-thread ones) reports to it. Requests are attributed by thread: the local runtime's
gateway threads (checkout, webhook), the delivery pollers, and everything else (the benchmark's own
set-up and checks), which is left out of the per-order figures.
"""

import threading
from collections import Counter
from typing import Any

from botocore import handlers

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}


def _role(thread_name: str) -> str:
    if thread_name.startswith("poll-"):
        return "deliver"
    if "process_request_thread" in thread_name:
        return "gateway"
    return "other"


class RequestCounter:
    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self.empty_receives = 0
        self._lock = threading.Lock()
        self._installed = False

    def install(self) -> None:
        """Must run before the sessions to be counted are created."""
        if not self._installed:
            handlers.BUILTIN_HANDLERS.append(("after-call", self._after_call))
            self._installed = True

    def _after_call(self, model: Any, parsed: Any, **_: Any) -> None:
        service, operation = model.service_model.service_name, model.name
        role = _role(threading.current_thread().name)
        with self._lock:
            if operation == "ReceiveMessage" and not parsed.get("Messages"):
                self.empty_receives += 1  # idle long polls: billed, but not caused by an order
                return
            self.counts[(role, service, operation)] += 1

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()
            self.empty_receives = 0

    def summary(self) -> dict[str, int]:
        """Requests by kind made on behalf of orders (gateway + delivery threads)."""
        out: Counter[str] = Counter()
        for (role, service, operation), n in self.counts.items():
            if role == "other":
                continue
            if service == "dynamodb":
                out[
                    "dynamodb_writes"
                    if operation in WRITES
                    else "dynamodb_reads"
                    if operation in READS
                    else "dynamodb_other"
                ] += n
            else:
                out[f"{service}_calls"] += n
        return dict(out)

    def by_operation(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (role, service, operation), n in self.counts.items():
            if role != "other":
                out[f"{role}:{service}.{operation}"] += n
        return dict(sorted(out.items()))
