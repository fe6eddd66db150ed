"""`miaofa-merchant stock`: import a file of codes (resumable, with a progress bar), levels, remove a
file of codes, export the unsold ones."""

import argparse
import hashlib
import hmac
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.cli_support import Console, Parser, Refused, UsageError, numeric
from infra.merchant.api import PROG, Api, quoted
from infra.merchant.commands import Command, private_output

DEFAULT_CHUNK = 5_000
MAX_CHUNK = 10_000  # the API takes at most 10,000 codes (slots) a request
SHOWN_PROBLEMS = 10


@dataclass(frozen=True)
class ChunkResult:
    number: int
    first_line: int
    lines: int
    answer: dict[str, Any]
    replayed: bool
    seconds: float

    @property
    def rate(self) -> float:
        return self.lines / self.seconds if self.seconds > 0 else 0.0


@dataclass
class ImportSummary:
    import_id: str
    product_id: str
    file: str
    lines: int
    chunks: list[ChunkResult] = field(default_factory=list)
    seconds: float = 0.0

    def total(self, key: str) -> int:
        return sum(int(c.answer[key]) for c in self.chunks)

    @property
    def problems(self) -> list[dict[str, Any]]:
        return [problem for c in self.chunks for problem in c.answer["problems"]]

    def as_json(self) -> dict[str, Any]:
        return {
            "import_id": self.import_id,
            "product_id": self.product_id,
            "lines": self.lines,
            "chunks": len(self.chunks),
            "replayed_chunks": sum(c.replayed for c in self.chunks),
            "added": self.total("added"),
            "duplicates": self.total("duplicates"),
            "rejected": self.total("rejected"),
            "problems": self.problems,
            "seconds": round(self.seconds, 3),
        }


def read_lines(path: Path) -> tuple[bytes, list[str]]:
    """The file's bytes and its lines, split exactly as the API splits a text/plain body."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UsageError(f"{PROG}: cannot read {path}: {error.strerror or error}") from None
    try:
        text = data.decode("utf-8-sig")  # a leading byte-order mark is not part of the first code
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise UsageError(f"{PROG}: {path} is not UTF-8 text (line {line}, byte {error.start})") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    if not lines:
        raise UsageError(f"{PROG}: {path} holds no lines")
    return data, lines


def default_import_id(key: str, product_id: str, chunk: int, data: bytes) -> str:
    """The same file, product and chunk size give the same id, so running the same command again
    resumes; keyed with the API key, so the id reveals nothing about the codes."""
    mac = hmac.new(key.encode(), digestmod=hashlib.sha256)
    for part in (b"miaofa-import", product_id.encode(), str(chunk).encode()):
        mac.update(part + b"\x00")
    mac.update(data)
    return f"f-{mac.hexdigest()[:40]}"


class Progress:
    """A progress bar on stderr: on a terminal redrawn in place after each chunk and, while a chunk is
    on its way, every TICK_SECONDS with the lines it has likely reached (`≈`, from the rate so far);
    one line per chunk otherwise (a log)."""

    WIDTH = 30
    TICK_SECONDS = 0.5

    def __init__(self, console: Console, total: int, label: str) -> None:
        self.console, self.total, self.label = console, total, label
        self.started = console.clock()
        self.drawn = False
        self.done, self.chunk, self.chunks = 0, 0, 0
        self.sending, self.sending_since = 0, self.started  # the chunk on its way: lines, since when
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def start(self) -> None:
        """On a terminal, redraw while chunks are on their way."""
        if self.console.interactive:
            self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
            self._ticker.start()

    def sending_chunk(self, chunk: int, chunks: int, lines: int) -> None:
        with self._lock:
            self.chunk, self.chunks = chunk, chunks
            self.sending, self.sending_since = lines, self.console.clock()

    def update(self, done: int, chunk: int, chunks: int) -> None:
        with self._lock:
            self.done, self.chunk, self.chunks, self.sending = done, chunk, chunks, 0
            self._draw(done, estimated=False)

    def _tick(self) -> None:
        while not self._stop.wait(self.TICK_SECONDS):
            with self._lock:
                now = self.console.clock()
                rate = self.done / max(self.sending_since - self.started, 1e-9)
                likely = min(int(rate * (now - self.sending_since)), max(self.sending - 1, 0))
                self._draw(self.done + likely, estimated=True)

    def _draw(self, done: int, estimated: bool) -> None:
        elapsed = max(self.console.clock() - self.started, 1e-9)
        rate = done / elapsed
        filled = self.WIDTH * done // self.total
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        eta = (self.total - done) / rate if rate > 0 else 0.0
        line = (
            f"{self.label} [{bar}] {100 * done // self.total:3d}%  {'≈' if estimated else ''}{done:,}/"
            f"{self.total:,} lines  chunk {self.chunk}/{self.chunks}  {rate:,.0f} lines/s  eta {eta:,.0f} s"
        )
        if self.console.interactive:
            print(f"\r{line}\x1b[K", end="", file=self.console.err, flush=True)  # erase what was longer
            self.drawn = True
        elif not estimated:
            self.console.note(line)

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self.drawn:
            print(file=self.console.err, flush=True)
            self.drawn = False


class StockImport:
    """Sends a file's lines in chunks of a resumable import and adds up the answers."""

    def __init__(
        self,
        api: Api,
        console: Console,
        product_id: str,
        chunk: int,
        import_id: str,
        show_progress: bool = True,
    ) -> None:
        self.api, self.console, self.product_id = api, console, product_id
        self.chunk, self.import_id, self.show_progress = chunk, import_id, show_progress

    def run(self, name: str, lines: Sequence[str]) -> ImportSummary:
        summary = ImportSummary(self.import_id, self.product_id, name, len(lines))
        started = self.console.clock()
        pieces = list(chunks(lines, self.chunk))
        progress = Progress(self.console, len(lines), f"importing {name}") if self.show_progress else None
        try:
            if progress:
                progress.start()
            for number, first, piece in pieces:
                if progress:
                    progress.sending_chunk(number + 1, len(pieces), len(piece))
                summary.chunks.append(self.send(number, first, piece))
                if progress:
                    progress.update(first + len(piece) - 1, number + 1, len(pieces))
        except BaseException:
            if progress:
                progress.close()
            done = summary.chunks[-1].first_line + summary.chunks[-1].lines - 1 if summary.chunks else 0
            self.console.note(
                f"{PROG}: stopped after {len(summary.chunks)} of {len(pieces)} chunks ({done:,} lines); "
                f"run the same command again to resume (import id {self.import_id})"
            )
            raise
        if progress:
            progress.close()
        summary.seconds = self.console.clock() - started
        return summary

    def send(self, number: int, first_line: int, piece: Sequence[str]) -> ChunkResult:
        last = first_line + len(piece) - 1
        started = self.console.clock()
        reply = self.api.call(
            "POST",
            f"/merchant/products/{quoted(self.product_id)}/stock",
            self.console,
            f"chunk {number} (lines {first_line:,}-{last:,})",
            body=text_body(piece),
            content_type="text/plain; charset=utf-8",
            headers={
                "Import-Id": self.import_id,
                "Import-Chunk": str(number),
                "Import-First-Line": str(first_line),
            },
        )
        answer = reply.json()
        if not isinstance(answer, dict) or not {"added", "duplicates", "rejected", "problems"} <= set(answer):
            raise Refused(f"chunk {number}: the API's answer is not an import summary")
        return ChunkResult(
            number,
            first_line,
            len(piece),
            answer,
            replayed=reply.headers.get("import-replayed") == "true",
            seconds=self.console.clock() - started,
        )


def text_body(piece: Sequence[str]) -> bytes:
    # Every line ends with "\n", so a blank last line stays a (rejected) line of its own.
    return "".join(f"{line}\n" for line in piece).encode()


def chunks(lines: Sequence[str], size: int) -> Iterator[tuple[int, int, Sequence[str]]]:
    """(number, first line, lines) of each chunk of `size` lines."""
    for number, start in enumerate(range(0, len(lines), size)):
        yield number, start + 1, lines[start : start + size]


def summary_lines(summary: ImportSummary) -> list[str]:
    rate = summary.total("added") / summary.seconds if summary.seconds > 0 else 0.0
    out = [
        f"imported {summary.file} into {summary.product_id} (import id {summary.import_id})",
        f"  added       {summary.total('added'):>10,}",
        f"  duplicates  {summary.total('duplicates'):>10,}",
        f"  rejected    {summary.total('rejected'):>10,}",
        f"  {summary.lines:,} lines in {len(summary.chunks)} chunks, {summary.seconds:,.1f} s "
        f"({rate:,.0f} codes added/s)",
    ]
    replayed = sum(c.replayed for c in summary.chunks)
    if replayed:
        out.append(
            f"  {replayed} of {len(summary.chunks)} chunks were imported before under this import id: "
            "their first answers are repeated here and nothing was added again "
            "(to import the file anew, pass another --import-id)"
        )
    problems = summary.problems
    if problems:
        out.append(f"first problems ({min(len(problems), SHOWN_PROBLEMS)} of {len(problems):,}):")
        out.extend(f"  line {p['line']:,}: {p['reason']}" for p in problems[:SHOWN_PROBLEMS])
    return out


class Stock(Command):
    def product_path(self, suffix: str = "") -> str:
        return f"/merchant/products/{quoted(self.args.product)}{suffix}"

    def slots_per_code(self) -> int:
        product = self.api.call("GET", self.product_path(), self.console, f"product {self.args.product}")
        return int(product.json().get("sales_per_code", 1))

    def import_(self) -> int:
        data, lines = read_lines(self.args.file)
        sales = self.slots_per_code()
        size = self.args.chunk
        if sales > 1 and size * sales > MAX_CHUNK:  # a reusable code fills one slot per sale
            size = max(1, MAX_CHUNK // sales)
            self.console.note(f"each code is sold {sales:,} times: chunks of {size:,} codes")
        import_id = self.args.import_id or default_import_id(self.api.key, self.args.product, size, data)
        count = -(-len(lines) // size)
        self.console.note(
            f"importing {len(lines):,} lines of {self.args.file} into {self.args.product} in {count} "
            f"chunks of up to {size:,} (import id {import_id})"
        )
        importer = StockImport(
            self.api, self.console, self.args.product, size, import_id, not self.args.no_progress
        )
        summary = importer.run(str(self.args.file), lines)
        self.show(summary.as_json(), lambda: summary_lines(summary))
        return 0

    def levels(self) -> int:
        levels = self.api.call("GET", self.product_path("/stock"), self.console, "stock levels").json()
        self.show(levels, lambda: _level_lines(levels))
        return 0

    def remove(self) -> int:
        """Each chunk is safe to send again: a code it already removed is then `not found`."""
        _, lines = read_lines(self.args.file)
        size = max(1, MAX_CHUNK // self.slots_per_code())
        removed, not_found, not_available = 0, [], []
        for number, first, piece in chunks(lines, size):
            try:
                answer = self.api.call(
                    "DELETE",
                    self.product_path("/stock"),
                    self.console,
                    f"removing lines {first:,}-{first + len(piece) - 1:,}",
                    body=text_body(piece),
                    content_type="text/plain; charset=utf-8",
                ).json()
            except BaseException:
                self.console.note(
                    f"{PROG}: stopped after {number} chunks: {removed:,} codes removed before; running the "
                    "same command again is safe (codes already removed are then reported not found)"
                )
                raise
            removed += int(answer["removed"])
            not_found += [first - 1 + line for line in answer["not_found"]]
            not_available += [first - 1 + line for line in answer["not_available"]]
        result = {"removed": removed, "not_found": not_found, "not_available": not_available}
        self.show(result, lambda: _removal_lines(self.args.file, self.args.product, result))
        return 0

    def export(self) -> int:
        with private_output(self.args.output, self.console) as stream:
            count, cursor = 0, None
            while True:
                query = {"cursor": cursor} if cursor else None
                reply = self.api.call(
                    "GET", self.product_path("/stock/export"), self.console, "export", query=query
                )
                text = reply.body.decode("utf-8")
                stream.write(text)
                count += text.count("\n")
                cursor = reply.headers.get("next-cursor")
                if not cursor:
                    break
        where = f" to {self.args.output}" if self.args.output is not None else ""
        self.console.note(f"exported {count:,} available codes of {self.args.product}{where}")
        return 0


def _level_lines(levels: dict[str, Any]) -> list[str]:
    made = levels.get("generated")
    if made is not None:  # a generated product: no stock, only the codes it made (and may make)
        if made["cap"] is None:
            return ["codes are made per order, without a cap: never sold out"]
        return [f"{name:<10} {made[name]:>10,}" for name in ("cap", "made", "left")]
    return [f"{name:<10} {value:>10,}" for name, value in levels.items()]


def _removal_lines(file: Path, product_id: str, result: dict[str, Any]) -> list[str]:
    out = [f"removed {result['removed']:,} codes of {file} from {product_id}"]
    for name, why in (
        ("not_found", "not in stock (or blank)"),
        ("not_available", "reserved or sold: kept"),
    ):
        lines = result[name]
        if lines:
            shown = ", ".join(f"{n:,}" for n in lines[:SHOWN_PROBLEMS])
            more = f" and {len(lines) - SHOWN_PROBLEMS:,} more" if len(lines) > SHOWN_PROBLEMS else ""
            out.append(f"  {len(lines):,} {why}: lines {shown}{more}")
    return out


_chunk_size = numeric(
    int, lambda n: not 1 <= n <= MAX_CHUNK, f"must be from 1 to {MAX_CHUNK:,} (the API's limit per request)"
)


def _import_id(text: str) -> str:
    if not (1 <= len(text) <= 64 and all(c.isascii() and (c.isalnum() or c in "-_") for c in text)):
        raise argparse.ArgumentTypeError("must be 1-64 letters, digits, '_' or '-'")
    return text


def register(commands: Any, where: Parser) -> None:
    product = Parser(add_help=False)
    product.add_argument("--product", required=True, metavar="ID", help="the product (prd_…)")
    stock = commands.add_parser("stock", help="import, read, remove, export a product's stock")
    stock.set_defaults(area=Stock)
    actions = stock.add_subparsers(dest="action", required=True, metavar="{import,levels,remove,export}")

    imports = actions.add_parser(
        "import",
        parents=[where, product],
        help="import a file of codes, one per line (resumable: safe to run again)",
    )
    imports.add_argument("file", type=Path, metavar="FILE", help="UTF-8 text, one code per line")
    imports.add_argument(
        "--chunk",
        type=_chunk_size,
        default=DEFAULT_CHUNK,
        metavar="N",
        help="lines per request (default: %(default)s)",
    )
    imports.add_argument(
        "--import-id",
        type=_import_id,
        metavar="ID",
        help="resume or name this import (default: derived from the file, product and chunk size, "
        "so running the same command again resumes)",
    )
    imports.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    imports.set_defaults(run=Stock.import_)

    actions.add_parser(
        "levels", parents=[where, product], help="available, reserved, sold, returned, imported"
    ).set_defaults(run=Stock.levels)

    remove = actions.add_parser(
        "remove",
        parents=[where, product],
        help="take the codes of a file out of stock if still available (safe to run again)",
    )
    remove.add_argument("file", type=Path, metavar="FILE", help="UTF-8 text, one code per line")
    remove.set_defaults(run=Stock.remove)

    export = actions.add_parser(
        "export", parents=[where, product], help="the codes still available, one per line (audited)"
    )
    export.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write here (mode 0600) instead of stdout"
    )
    export.set_defaults(run=Stock.export)
