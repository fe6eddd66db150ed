"""`miaofa-merchant`: a merchant's products, stock and shop settings, over the merchant HTTP API.

    miaofa-merchant stock import FILE --product ID [--chunk 5000] [--import-id ID]
    miaofa-merchant stock levels --product ID
    miaofa-merchant stock export --product ID [-o FILE]
    miaofa-merchant products list
    miaofa-merchant products create --name TEXT --price 35.00 [--currency CNY] [--max-per-order N]
    miaofa-merchant shop show
    miaofa-merchant shop set [--name TEXT] [--logo-url URL] [--contact TEXT] [--announcement TEXT]
                             [--support-email ADDRESS] [--language zh-CN|en]

Where and who: --url and --key, else MIAOFA_URL and MIAOFA_MERCHANT_KEY, else the local runtime's
`.miaofa/local.json` (written by `make run`). Nothing it prints holds a code, except what
`stock export` writes. Exit codes: 0 done, 1 refused or failed, 2 usage or bad input, 130 interrupted.
"""

import argparse
import hashlib
import hmac
import ipaddress
import json
import os
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from infra.cli_support import (
    Console,
    Parser,
    Refused,
    UsageError,
    add_json,
    add_local_file,
    count_of,
    exit_code,
    numeric,
    read_local_file,
)
from shared.money import Money, from_major, to_major

DEFAULT_CHUNK = 5_000
MAX_CHUNK = 10_000  # the API takes at most 10,000 codes a request
REQUEST_TIMEOUT = 120.0
ATTEMPTS = 8  # per request; every chunk is idempotent, so sending one again is always safe
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_CODES = frozenset({"import_in_progress"})  # another import, removal or export holds the product
SHOWN_PROBLEMS = 10
PROG = "miaofa-merchant"
SHOP_FIELDS = ("name", "logo_url", "contact", "announcement", "support_email", "default_language")
LANGUAGES = ("zh-CN", "en")


class Unreachable(Exception):
    """No answer from the API (connection refused, reset, timed out)."""


# ---- the HTTP API
@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            raise Refused(f"the API answered {self.status} with a body that is not JSON") from None

    def error(self) -> tuple[str, str]:
        """(code, message) of an error answer: API.md's shape, or API Gateway's own `{"message"}`."""
        try:
            body = json.loads(self.body)
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            return str(body["error"].get("code", "error")), str(body["error"].get("message", ""))
        if isinstance(body, dict) and "message" in body:
            return f"http_{self.status}", str(body["message"])
        return f"http_{self.status}", "no explanation given"


class Api:
    def __init__(self, url: str, key: str, timeout: float = REQUEST_TIMEOUT) -> None:
        self.url, self.key, self.timeout = url.rstrip("/"), key, timeout

    def send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
    ) -> Reply:
        target = f"{self.url}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        sent = {"Authorization": f"Bearer {self.key}", **(headers or {})}
        if content_type:
            sent["Content-Type"] = content_type
        request = urllib.request.Request(target, data=body, method=method, headers=sent)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return Reply(response.status, _lower(response.headers.items()), response.read())
        except urllib.error.HTTPError as error:
            with error:
                return Reply(error.code, _lower(error.headers.items()), error.read())
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            raise Unreachable(f"no answer from {self.url}: {reason}") from None

    def call(
        self, method: str, path: str, console: Console, what: str, attempts: int = ATTEMPTS, **kwargs: Any
    ) -> Reply:
        """Send, retrying what is safe to retry (`attempts` 1: a request that is not); a refusal
        becomes Refused naming `what`."""
        for attempt in range(1, attempts + 1):
            try:
                reply = self.send(method, path, **kwargs)
            except Unreachable as error:
                problem = str(error)
            else:
                if reply.status < 400:
                    return reply
                code, message = reply.error()
                if reply.status not in RETRY_STATUSES and code not in RETRY_CODES:
                    raise Refused(f"{what}: {_refusal(reply.status, code, message)}")
                problem = f"{reply.status} {code}"
            if attempt == attempts:
                raise Refused(
                    f"{what}: failed {attempts} times (last: {problem})"
                    if attempts > 1
                    else f"{what}: failed ({problem}); not sent again, as it may have been done: check first"
                )
            delay = min(8.0, 0.5 * 2 ** (attempt - 1))
            console.note(f"{what}: {problem}; trying again in {delay:.1f} s")
            console.sleep(delay)
        raise AssertionError("unreachable")


def _lower(items: Any) -> dict[str, str]:
    return {str(name).lower(): str(value) for name, value in items}


def _refusal(status: int, code: str, message: str) -> str:
    if status in (401, 403):
        return f"the API refused the merchant key ({status} {message or code}); check --key"
    return f"{code}: {message}"


def connect(args: argparse.Namespace, console: Console) -> Api:
    """The API and key: flags, then the environment, then the local runtime's file."""
    url = args.url or console.environ.get("MIAOFA_URL")
    key = args.key or console.environ.get("MIAOFA_MERCHANT_KEY")
    if url and not key:
        raise UsageError(f"{PROG}: --url needs --key (or MIAOFA_MERCHANT_KEY) too")
    if not url:
        missing = (
            f"no merchant API given: pass --url and --key (or set MIAOFA_URL and MIAOFA_MERCHANT_KEY), "
            f"or start `make run` (it writes {args.local_file})"
        )
        info = read_local_file(args.local_file, missing, lambda why: UsageError(f"{PROG}: {why}"))
        url, key = url or info.get("url"), key or info.get("merchant_key")
        if not (isinstance(url, str) and url and isinstance(key, str) and key):
            raise UsageError(f"{PROG}: {args.local_file} has no url or merchant_key; restart `make run`")
    assert key is not None
    _check_url(url)
    if not key.isprintable() or not key.strip() or any(c.isspace() for c in key):
        raise UsageError(f"{PROG}: the merchant key is not a single word of printable characters")
    return Api(url, key)


def _check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{PROG}: --url must be http(s)://host[:port], not {url!r}")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise UsageError(
            f"{PROG}: refusing to send the merchant key over plain http to {parts.hostname}; use https"
        )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---- stock import
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
    """A progress bar on stderr: redrawn in place on a terminal, one line per chunk otherwise."""

    WIDTH = 30

    def __init__(self, console: Console, total: int, label: str) -> None:
        self.console, self.total, self.label = console, total, label
        self.started = console.clock()
        self.drawn = False

    def update(self, done: int, chunk: int, chunks: int) -> None:
        elapsed = max(self.console.clock() - self.started, 1e-9)
        rate = done / elapsed
        filled = self.WIDTH * done // self.total
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        eta = (self.total - done) / rate if rate > 0 else 0.0
        line = (
            f"{self.label} [{bar}] {100 * done // self.total:3d}%  {done:,}/{self.total:,} lines  "
            f"chunk {chunk}/{chunks}  {rate:,.0f} lines/s  eta {eta:,.0f} s"
        )
        if self.console.interactive:
            print(f"\r{line}\x1b[K", end="", file=self.console.err, flush=True)  # erase what was longer
            self.drawn = True
        else:
            self.console.note(line)

    def close(self) -> None:
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
        pieces = list(_chunks(lines, self.chunk))
        progress = Progress(self.console, len(lines), f"importing {name}") if self.show_progress else None
        try:
            for number, first, piece in pieces:
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
            f"/merchant/products/{urllib.parse.quote(self.product_id, safe='')}/stock",
            self.console,
            f"chunk {number} (lines {first_line:,}-{last:,})",
            # Every line ends with "\n", so a blank last line stays a (rejected) line of its own.
            body="".join(f"{line}\n" for line in piece).encode(),
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


def _chunks(lines: Sequence[str], size: int) -> Iterator[tuple[int, int, Sequence[str]]]:
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


# ---- commands
class Commands:
    def __init__(self, args: argparse.Namespace, api: Api, console: Console) -> None:
        self.args, self.api, self.console = args, api, console

    def product_path(self, suffix: str = "") -> str:
        return f"/merchant/products/{urllib.parse.quote(self.args.product, safe='')}{suffix}"

    def stock_import(self) -> int:
        data, lines = read_lines(self.args.file)
        product = self.api.call("GET", self.product_path(), self.console, f"product {self.args.product}")
        sales = int(product.json().get("sales_per_code", 1))
        size = self.args.chunk
        if sales > 1 and size * sales > MAX_CHUNK:  # a reusable code fills one slot per sale
            size = max(1, MAX_CHUNK // sales)
            self.console.note(f"each code is sold {sales:,} times: chunks of {size:,} codes")
        import_id = self.args.import_id or default_import_id(self.api.key, self.args.product, size, data)
        chunks = -(-len(lines) // size)
        self.console.note(
            f"importing {len(lines):,} lines of {self.args.file} into {self.args.product} in {chunks} "
            f"chunks of up to {size:,} (import id {import_id})"
        )
        importer = StockImport(
            self.api, self.console, self.args.product, size, import_id, not self.args.no_progress
        )
        summary = importer.run(str(self.args.file), lines)
        if self.args.json:
            self.console.json(summary.as_json())
        else:
            self.console.print(*summary_lines(summary))
        return 0

    def stock_levels(self) -> int:
        levels = self.api.call("GET", self.product_path("/stock"), self.console, "stock levels").json()
        if self.args.json:
            self.console.json(levels)
        else:
            self.console.print(*(f"{name:<10} {value:>10,}" for name, value in levels.items()))
        return 0

    def stock_export(self) -> int:
        output: Path | None = self.args.output
        if output is None:
            count = self._export_to(self.console.out)
            self.console.out.flush()
        else:
            # Written beside the target and renamed at the end: never a half-written file; 0600 from the start.
            handle, temporary = tempfile.mkstemp(dir=output.resolve().parent, prefix=f".{output.name}.")
            try:
                with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
                    count = self._export_to(stream)
                os.replace(temporary, output)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        where = f" to {output}" if output is not None else ""
        self.console.note(f"exported {count:,} available codes of {self.args.product}{where}")
        return 0

    def _export_to(self, stream: TextIO) -> int:
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
                return count

    def products_list(self) -> int:
        products: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = {"cursor": cursor} if cursor else None
            body = self.api.call("GET", "/merchant/products", self.console, "products", query=query).json()
            page = body if isinstance(body, list) else body.get("products", body.get("items", []))
            products.extend(page)
            cursor = body.get("next_cursor") if isinstance(body, dict) else None
            if not cursor:
                break
        if self.args.json:
            self.console.json(products)
            return 0
        for product in products:
            self.console.print(
                f"{product.get('id', '?')}  {'active  ' if product.get('active', True) else 'inactive'}  "
                f"{_price(product.get('price'))}  {product.get('name', '')}"
            )
        self.console.print(count_of(len(products), "product"))
        return 0

    def products_create(self) -> int:
        try:
            price = from_major(self.args.price, self.args.currency)
        except ValueError as error:
            raise UsageError(f"{PROG} products create: --price {self.args.price!r}: {error}") from None
        body: dict[str, Any] = {"name": self.args.name, "price": price.model_dump()}
        for name in ("description", "max_per_order"):
            if getattr(self.args, name) is not None:
                body[name] = getattr(self.args, name)
        product = self.api.call(
            "POST",
            "/merchant/products",
            self.console,
            "create product",
            attempts=1,  # a second POST would make a second product
            body=json.dumps(body).encode(),
            content_type="application/json",
        ).json()
        if self.args.json:
            self.console.json(product)
        else:
            self.console.print(f"{product['id']}  {_price(product.get('price'))}  {product.get('name', '')}")
        return 0

    # ---- shop settings
    def shop_show(self) -> int:
        self._print_shop(self.api.call("GET", "/merchant/shop", self.console, "shop settings").json())
        return 0

    def shop_set(self) -> int:
        given = {name: getattr(self.args, name) for name in SHOP_FIELDS}
        changes = {name: value for name, value in given.items() if value is not None}
        if not changes:
            raise UsageError(f"{PROG} shop set: give at least one setting to change (see --help)")
        # The API takes the whole settings (PUT): the current ones, with these changed.
        current = self.api.call("GET", "/merchant/shop", self.console, "shop settings").json()
        wanted = {name: current.get(name) for name in SHOP_FIELDS} | changes
        reply = self.api.call(
            "PUT",
            "/merchant/shop",
            self.console,
            "shop settings",
            body=json.dumps(wanted).encode(),
            content_type="application/json",
        )
        self._print_shop(reply.json())
        return 0

    def _print_shop(self, shop: dict[str, Any]) -> None:
        if self.args.json:
            self.console.json(shop)
            return
        width = max(len(name) for name in ("merchant_id", *SHOP_FIELDS))
        for name in ("merchant_id", *SHOP_FIELDS):
            value = shop.get(name)
            text = "-" if value in (None, "") else str(value)
            first, *rest = text.split("\n")  # an announcement's further lines, indented under it
            self.console.print(f"{name:<{width}}  {first}", *(f"{'':<{width}}  {line}" for line in rest))


def _price(price: Any) -> str:
    try:
        money = Money.model_validate(price)
    except ValueError:
        return "?"
    return f"{to_major(money):>10} {money.currency}"


_chunk_size = numeric(
    int, lambda n: not 1 <= n <= MAX_CHUNK, f"must be from 1 to {MAX_CHUNK:,} (the API's limit per request)"
)


def _import_id(text: str) -> str:
    if not (1 <= len(text) <= 64 and all(c.isascii() and (c.isalnum() or c in "-_") for c in text)):
        raise argparse.ArgumentTypeError("must be 1-64 letters, digits, '_' or '-'")
    return text


def build_parser() -> argparse.ArgumentParser:
    where = Parser(add_help=False)
    where.add_argument("--url", help="the shop's base URL (default: MIAOFA_URL, else the local runtime's)")
    where.add_argument(
        "--key", help="the merchant API key (default: MIAOFA_MERCHANT_KEY, else the local runtime's demo key)"
    )
    add_local_file(where)
    add_json(where)
    product = Parser(add_help=False)
    product.add_argument("--product", required=True, metavar="ID", help="the product (prd_…)")

    parser = Parser(
        prog=PROG, description="A merchant's products, stock and shop settings, over the merchant API."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{stock,products,shop}")
    stock = commands.add_parser("stock", help="import, read, export a product's stock")
    actions = stock.add_subparsers(dest="action", required=True, metavar="{import,levels,export}")

    imports = actions.add_parser(
        "import", parents=[where, product], help="import a file of codes, one per line (resumable)"
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
    imports.set_defaults(run=Commands.stock_import)

    actions.add_parser(
        "levels", parents=[where, product], help="available, reserved, sold, returned, imported"
    ).set_defaults(run=Commands.stock_levels)

    export = actions.add_parser(
        "export", parents=[where, product], help="the codes still available, one per line (audited)"
    )
    export.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write here (mode 0600) instead of stdout"
    )
    export.set_defaults(run=Commands.stock_export)

    products = commands.add_parser("products", help="the merchant's products")
    products_actions = products.add_subparsers(dest="action", required=True, metavar="{list,create}")
    products_actions.add_parser(
        "list", parents=[where], help="every product: id, state, price, name"
    ).set_defaults(run=Commands.products_list)
    created = products_actions.add_parser("create", parents=[where], help="a new product (sold from stock)")
    created.add_argument("--name", required=True, help="as buyers see it")
    created.add_argument("--price", required=True, metavar="AMOUNT", help="in major units: 35.00")
    created.add_argument("--currency", default="CNY", help="ISO 4217 (default: %(default)s)")
    created.add_argument("--description", metavar="TEXT")
    created.add_argument(
        "--max-per-order",
        dest="max_per_order",
        type=numeric(int, lambda n: n < 1, "must be 1 or more: {text}"),
        metavar="N",
    )
    created.set_defaults(run=Commands.products_create)

    shop = commands.add_parser("shop", help="the shop's settings: name, logo, contact, announcement, ...")
    shop_actions = shop.add_subparsers(dest="action", required=True, metavar="{show,set}")
    shop_actions.add_parser("show", parents=[where], help="the shop's settings").set_defaults(
        run=Commands.shop_show
    )
    change = shop_actions.add_parser(
        "set", parents=[where], help="change the settings given (an empty value clears one)"
    )
    change.add_argument("--name", help="the shop's name, as buyers see it")
    change.add_argument("--logo-url", dest="logo_url", metavar="URL", help="an https:// URL of the logo")
    change.add_argument("--contact", metavar="TEXT", help="how buyers reach the shop (one line)")
    change.add_argument("--announcement", metavar="TEXT", help="shown atop the shop's pages")
    change.add_argument(
        "--support-email", dest="support_email", metavar="ADDRESS", help="for buyers' questions"
    )
    change.add_argument(
        "--language",
        dest="default_language",
        choices=LANGUAGES,
        help="the language the shop's pages start in",
    )
    change.set_defaults(run=Commands.shop_set)
    return parser


def main(argv: Sequence[str] | None = None, *, console: Console | None = None) -> int:
    """Run one command; returns the exit code."""
    console = console or Console()
    return exit_code(PROG, console, partial(_command, argv, console))


def _command(argv: Sequence[str] | None, console: Console) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(Commands(args, connect(args, console), console)))


if __name__ == "__main__":
    sys.exit(main())
