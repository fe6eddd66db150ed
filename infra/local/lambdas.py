"""Functions run in-process as Lambda runs them: one invocation per container at a time.

Each container is its own copy of the handler module (its own resolver, processor and state),
so concurrent requests never share a handler's per-invocation state; idle containers are reused,
except one whose invocation was killed (InvocationKilled), as Lambda replaces a dead runtime.

Powertools keeps the event being resolved, and its context, on the class `BaseRouter`: one per
process, which on Lambda is one invocation. Here every container shares this process, so each
invocation's thread keeps its own (`_per_invocation`): a request never sees another's event (its
client address, its merchant).

Powertools' metrics provider likewise keeps what an invocation counted on itself, one per function
(shared/observability.py), flushed and cleared at the invocation's end: here each invocation's thread
counts and flushes its own, so one never publishes or clears another's metrics, nor iterates them
while another adds.
"""

import contextlib
import importlib.util
import queue
import sys
import threading
import time
import uuid
from abc import ABCMeta
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from infra.local.aws import ACCOUNT, REGION
from infra.local.template import ROOT

_PER_INVOCATION = ("current_event", "lambda_context")
_loading = threading.Lock()
_invocation = threading.local()


class _ThreadsOwn:
    """A class attribute whose value is the current thread's (read through the class or an instance)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        try:
            return getattr(_invocation, self.name)
        except AttributeError:
            raise AttributeError(self.name) from None

    def __set__(self, instance: object, value: Any) -> None:
        setattr(_invocation, self.name, value)


class _PerInvocation(ABCMeta):
    """BaseRouter's metaclass here: `BaseRouter.current_event = ...` sets the thread's own."""

    def __setattr__(cls, name: str, value: Any) -> None:
        if cls is BaseRouter and name in _PER_INVOCATION:
            return setattr(_invocation, name, value)
        return super().__setattr__(name, value)


def _per_invocation() -> None:
    if type(BaseRouter) is not _PerInvocation:
        for name in _PER_INVOCATION:
            setattr(BaseRouter, name, _ThreadsOwn(name))
        BaseRouter.__class__ = _PerInvocation  # type: ignore[method-assign,assignment]  # a metaclass swap


_per_invocation()


class _ThreadsOwnPerInstance:
    """An instance attribute whose value is the current thread's; a thread starts from a fresh one."""

    def __init__(self, name: str, fresh: Callable[[Any], Any]) -> None:
        self.name, self.fresh = name, fresh

    @staticmethod
    def _local(instance: object) -> threading.local:
        local = instance.__dict__.get("_threads_own")
        return local if local is not None else instance.__dict__.setdefault("_threads_own", threading.local())

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self
        local = self._local(instance)
        if not hasattr(local, self.name):
            setattr(local, self.name, self.fresh(instance))
        return getattr(local, self.name)

    def __set__(self, instance: object, value: Any) -> None:
        setattr(self._local(instance), self.name, value)


_EMF_PER_INVOCATION: dict[str, Callable[[Any], Any]] = {
    "metric_set": lambda provider: {},
    "dimension_set": lambda provider: dict(provider.default_dimensions),
    "metadata_set": lambda provider: {},
    "dimension_sets": lambda provider: [],
    "timestamp": lambda provider: None,
}


def _metrics_per_invocation() -> None:
    for name, fresh in _EMF_PER_INVOCATION.items():
        if not isinstance(AmazonCloudWatchEMFProvider.__dict__.get(name), _ThreadsOwnPerInstance):
            setattr(AmazonCloudWatchEMFProvider, name, _ThreadsOwnPerInstance(name, fresh))


_metrics_per_invocation()


class InvocationKilled(BaseException):
    """The invocation ended as a Lambda timeout or a dead runtime ends it: with no result at all, so an
    SQS trigger deletes nothing. A BaseException, so that no handler's `except Exception` (nor
    Powertools' per-record one) can turn it into a result; a test raises it inside a handler."""


@dataclass
class Context:
    """The parts of Lambda's context object that Powertools and handlers read."""

    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))


class LocalFunction:
    def __init__(self, name: str, handler: str, memory: int, timeout: int) -> None:
        self.name, self.memory, self.timeout = name, memory, timeout
        self._module_path, _, self._function = handler.rpartition(".")
        self._idle: queue.SimpleQueue[ModuleType] = queue.SimpleQueue()
        self._count = 0
        self._lock = threading.Lock()

    def _container(self) -> ModuleType:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            self._count += 1
            number = self._count
        file = ROOT / (self._module_path.replace(".", "/") + ".py")
        spec = importlib.util.spec_from_file_location(f"{self._module_path}__container{number}", file)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        # Log handlers made at import keep the stream they see: give them the process's real stdout,
        # as Lambda does, not a stream someone swapped in for a while (a test's capture). The swap is
        # the whole process's: one load at a time, or two loads at once could leave it swapped.
        with _loading, contextlib.redirect_stdout(sys.__stdout__):
            spec.loader.exec_module(module)
        return module

    def invoke(self, event: dict[str, Any], context: Context | None = None) -> Any:
        module = self._container()
        try:
            result = getattr(module, self._function)(
                event, context or Context(self.name, self.memory, self.timeout)
            )
        except InvocationKilled:
            raise  # the container is not reused
        except BaseException:
            self._idle.put(module)
            raise
        self._idle.put(module)
        return result
