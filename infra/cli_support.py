"""What `miaofa-merchant` and `miaofa-ops` share: the console they write to, their two kinds of
failure and the exit codes they become, an argument parser that reports instead of exiting, and the
local runtime's file. Loads neither boto3 nor the shop's code, so the HTTP-only CLI stays light."""

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO, TypeVar

# Where `make run` writes the local runtime's URL, keys, queues and tables: the repository this
# package is installed from (editable).
LOCAL_FILE = Path(__file__).resolve().parents[1] / ".miaofa" / "local.json"
FAILED, USAGE, INTERRUPTED = 1, 2, 130  # and 0: done

N = TypeVar("N", int, float)


class UsageError(Exception):
    """A command line or input that cannot run as given (exit 2); the message names the program."""


class Refused(Exception):
    """The command ran and was refused or failed, with a message for whoever ran it (exit 1)."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors raise UsageError, so that `run` says them and returns 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


@dataclass
class Console:
    """A CLI's outside world, injectable for tests and the benchmarks."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    tty: bool | None = None  # is `err` a terminal (a progress bar redrawn in place); None: ask it

    def print(self, *lines: str) -> None:
        for line in lines:
            print(line, file=self.out)

    def json(self, value: Any) -> None:
        """`value` as indented JSON on stdout, any text as it is (not \\u-escaped)."""
        self.print(json.dumps(value, indent=2, ensure_ascii=False))

    def note(self, line: str) -> None:
        """A line on stderr: progress, warnings and why a command failed."""
        print(line, file=self.err, flush=True)

    @property
    def interactive(self) -> bool:
        return self.err.isatty() if self.tty is None else self.tty


def exit_code(prog: str, console: Console, command: Callable[[], int]) -> int:
    """`command`'s exit code; 2 for a usage problem, 1 refused or failed, 130 interrupted, each said
    on stderr."""
    try:
        return int(command())
    except UsageError as error:
        console.note(str(error))
        return USAGE
    except Refused as error:
        console.note(f"{prog}: {error}")
        return FAILED
    except KeyboardInterrupt:
        console.note(f"{prog}: interrupted")
        return INTERRUPTED


def add_local_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--local-file",
        type=Path,
        default=LOCAL_FILE,
        metavar="PATH",
        help="the local runtime's file (default: %(default)s)",
    )


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")


def read_local_file(path: Path, missing: str, fail: Callable[[str], Exception]) -> dict[str, Any]:
    """The local runtime's file as a JSON object; `fail(why)` is raised if it cannot be (`missing`
    when there is no such file)."""
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise fail(missing) from None
    except (OSError, ValueError) as error:
        raise fail(f"cannot read {path}: {error}") from None
    if not isinstance(info, dict):
        raise fail(f"{path} is not a JSON object")
    return info


def numeric(kind: Callable[[str], N], refused: Callable[[N], bool], rule: str) -> Callable[[str], N]:
    """An argparse `type`: the argument as a `kind`, unless it is not a number or `refused` says no
    (then `rule`, where `{text}` is the argument as given)."""

    def parse(text: str) -> N:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if refused(value):
            raise argparse.ArgumentTypeError(rule.format(text=repr(text)))
        return value

    return parse


def count_of(n: int, noun: str) -> str:
    """'1 message', '3 messages'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
