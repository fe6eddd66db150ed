"""What every fake shares: a log of the calls made to it, and hooks that run before or after a method,
so a test can make a call fail before it writes (a throttled request) or after (a lost answer), or
change the state in between (another writer came first)."""

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")
H = TypeVar("H", bound="Hooked")
When = Literal["before", "after"]


@dataclass(frozen=True)
class Call:
    """One call to a fake's port method, with its arguments as passed."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Hook:
    action: Callable[..., object]
    times: int | None  # None: every call


class Hooked:
    """A fake whose port methods (those decorated with `hooked`) are logged in `calls` and run the
    actions registered with `before` and `after`. An action gets the call's arguments; what it
    raises is what the caller sees (before: nothing was written; after: the write applied)."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._hooks: dict[tuple[When, str], list[_Hook]] = {}
        self._quiet = 0

    def before(self, method: str, action: Callable[..., object], times: int | None = None) -> None:
        """Run `action(*args, **kwargs)` before `method` does anything, on its next `times` calls."""
        self._add("before", method, action, times)

    def after(self, method: str, action: Callable[..., object], times: int | None = None) -> None:
        """Run `action(*args, **kwargs)` after `method` did its work, on its next `times` calls."""
        self._add("after", method, action, times)

    def called(self, method: str) -> list[Call]:
        """The calls made to `method`, oldest first."""
        return [call for call in self.calls if call.method == method]

    @contextlib.contextmanager
    def quietly(self) -> Iterator[None]:
        """Calls made meanwhile (a test's set-up) are neither logged nor hooked."""
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1

    def _add(self, when: When, method: str, action: Callable[..., object], times: int | None) -> None:
        if not getattr(getattr(type(self), method, None), "hooked", False):
            raise AttributeError(f"{type(self).__name__} has no port method {method!r}")
        self._hooks.setdefault((when, method), []).append(_Hook(action, times))

    def _fire(self, when: When, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        for hook in list(self._hooks.get((when, method), [])):
            if hook.times is not None:
                hook.times -= 1
                if hook.times <= 0:
                    self._hooks[(when, method)].remove(hook)
            hook.action(*args, **kwargs)


def hooked(method: Callable[Concatenate[H, P], R]) -> Callable[Concatenate[H, P], R]:
    """Make a fake's method a port method: logged, and open to `before` and `after` hooks."""
    name = method.__name__

    @functools.wraps(method)
    def port_method(self: H, /, *args: P.args, **kwargs: P.kwargs) -> R:
        if self._quiet:
            return method(self, *args, **kwargs)
        self.calls.append(Call(name, tuple(args), dict(kwargs)))
        self._fire("before", name, tuple(args), dict(kwargs))
        result = method(self, *args, **kwargs)
        self._fire("after", name, tuple(args), dict(kwargs))
        return result

    port_method.hooked = True  # type: ignore[attr-defined]
    return port_method


def raises(error: BaseException) -> Callable[..., None]:
    """A hook action that raises `error` (give `times=1` to fail one call only)."""

    def action(*args: object, **kwargs: object) -> None:
        raise error

    return action
