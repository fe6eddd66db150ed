"""Count AWS requests with botocore event hooks — the AWS bill, the same on moto and on AWS.

The hook is added to botocore's built-in handlers, so every session made afterwards (boto3's and
PynamoDB's per-thread ones) reports to it. Requests are attributed by thread: the local runtime's
gateway threads (checkout, webhook), the delivery pollers, and everything else (the benchmark's own
set-up and checks), which is left out of the per-order figures.
"""

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from botocore import handlers
from pynamodb.models import Model

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

    def of_role(self, role: str) -> int:
        """Requests made so far on one role's threads ("gateway", "deliver", "other")."""
        with self._lock:
            return sum(n for (made_by, _, _), n in self.counts.items() if made_by == role)

    def by_operation(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (role, service, operation), n in self.counts.items():
            if role != "other":
                out[f"{role}:{service}.{operation}"] += n
        return dict(sorted(out.items()))


class ThreadRequests:
    """DynamoDB requests, by operation, made on threads named `thread_name`.

    Hooks clients made from now on (botocore's built-in handlers) and PynamoDB's clients that exist
    already (one hook each), so it counts whether it is set up before the runtime starts or after."""

    def __init__(self, thread_name: str) -> None:
        self.thread_name = thread_name
        self.counts: Counter[str] = Counter()
        handlers.BUILTIN_HANDLERS.append(("after-call.dynamodb", self._after_call))
        for model in _models(Model):
            table = model.__dict__.get("_connection")
            client = table.connection._client if table is not None else None
            if client is not None:
                client.meta.events.register(
                    "after-call.dynamodb", self._after_call, unique_id=f"tr{id(self)}"
                )

    def _after_call(self, model: Any, **_: Any) -> None:
        name = threading.current_thread().name  # or a worker it started (shared/store/shards.py)
        if name == self.thread_name or name.startswith(f"{self.thread_name}/"):
            self.counts[model.name] += 1

    def run(self, work: Callable[[], object]) -> tuple[Counter[str], float]:
        """Run `work` on a new counted thread; returns its requests and its seconds."""
        self.counts.clear()
        elapsed: list[float] = []

        def timed() -> None:
            started = time.perf_counter()
            work()
            elapsed.append(time.perf_counter() - started)

        thread = threading.Thread(target=timed, name=self.thread_name)
        thread.start()
        thread.join(timeout=600)
        return Counter(self.counts), elapsed[0]


def _models(base: type) -> list[type]:
    found: list[type] = []
    for sub in base.__subclasses__():
        found += [sub, *_models(sub)]
    return found
