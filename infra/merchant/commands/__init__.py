"""`miaofa-merchant`'s commands, one module per area of the merchant API; what they share is here."""

import argparse
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from infra.cli_support import Console, Parser, UsageError, add_json, add_local_file
from infra.merchant.api import PROG, Api
from shared.money import Money, to_major


class Command:
    """One run: the parsed arguments, the API and the console."""

    def __init__(self, args: argparse.Namespace, api: Api, console: Console) -> None:
        self.args, self.api, self.console = args, api, console

    def show(self, value: Any, lines: Callable[[], list[str]]) -> None:
        """`value` as JSON with --json, else `lines()`."""
        if self.args.json:
            self.console.json(value)
        else:
            self.console.print(*lines())


def where_parser() -> Parser:
    """The options every command takes: where the API is, with which key, and --json."""
    where = Parser(add_help=False)
    where.add_argument("--url", help="the shop's base URL (default: MIAOFA_URL, else the local runtime's)")
    where.add_argument(
        "--key", help="the merchant API key (default: MIAOFA_MERCHANT_KEY, else the local runtime's demo key)"
    )
    add_local_file(where)
    add_json(where)
    return where


def read_input(name: str, console: Console) -> str:
    """A file's text as UTF-8 (`-`: stdin); one that cannot be read is a usage error naming it."""
    if name == "-":
        try:
            return console.stdin.read()
        except UnicodeDecodeError:
            raise UsageError(f"{PROG}: stdin is not UTF-8 text") from None
    path = Path(name)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UsageError(f"{PROG}: cannot read {path}: {error.strerror or error}") from None
    try:
        return data.decode("utf-8-sig")  # a leading byte-order mark is not part of the text
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise UsageError(f"{PROG}: {path} is not UTF-8 text (line {line}, byte {error.start})") from None


def one_stdin(command: str, files: dict[str, str | None]) -> None:
    """At most one of `files` (flag: the name given) is `-`: stdin can be read once."""
    reading = [flag for flag, name in files.items() if name == "-"]
    if len(reading) > 1:
        raise UsageError(f"{PROG} {command}: only one of {' and '.join(reading)} can be - (stdin)")


def price(value: Any) -> str:
    """Money as `35.00 CNY`, right-aligned; `?` for what is not money."""
    try:
        money = Money.model_validate(value)
    except ValueError:
        return "?"
    return f"{to_major(money):>10} {money.currency}"


def yes_no(text: str) -> bool:
    """An argparse `type` for yes/no switches."""
    answers = {"yes": True, "true": True, "no": False, "false": False}
    if text.lower() not in answers:
        raise argparse.ArgumentTypeError(f"yes or no, not {text!r}")
    return answers[text.lower()]


@contextmanager
def private_output(path: Path | None, console: Console) -> Iterator[TextIO]:
    """stdout, or a file of mode 0600 written beside `path` and renamed onto it only when the block
    ends without an error: never a half-written file."""
    if path is None:
        yield console.out
        console.out.flush()
        return
    try:
        handle, temporary = tempfile.mkstemp(dir=path.resolve().parent, prefix=f".{path.name}.")
    except OSError as error:
        raise UsageError(f"{PROG}: cannot write {path}: {error.strerror or error}") from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            yield stream
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
