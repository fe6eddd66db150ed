"""Merchant stock use cases: resumable imports in chunks, removing unsold codes, exporting them (audited)."""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from functions.merchant.catalog import MAX_CODES_PER_REQUEST, ParsedCodes, Problem, parse_codes
from shared.codes import CodeCipher
from shared.errors import Invalid
from shared.products import Product
from shared.store.ops import OpsStore
from shared.store.stock.changes import StockChanges
from shared.store.stock.items import ExportPage, NewCode

IMPORT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
NUMBER = re.compile(r"[0-9]{1,10}")
MAX_CHUNK = 1_000_000  # chunk numbers 0 … 999,999: ten billion lines at the largest chunk size
MAX_FIRST_LINE = 10**10
EXPORT_PAGE = 5_000  # codes per export page: 5,000 × 512 characters stays well inside a Lambda response
EXPORT_AUDIT = "stock_export"  # the OpsTable record kind of an export page


@dataclass(frozen=True)
class Chunk:
    """Which part of a resumable import a request is (headers Import-Id and Import-Chunk)."""

    import_id: str
    number: int

    @property
    def source(self) -> str:
        return f"{self.import_id}#{self.number}"


@dataclass(frozen=True)
class ImportAnswer:
    body: dict[str, Any]
    replayed: bool  # the chunk was answered before; this is that answer and nothing was added


def import_headers(headers: Mapping[str, str | None]) -> tuple[Chunk | None, int]:
    """The optional headers Import-Id + Import-Chunk (both or neither) and Import-First-Line (default 1)."""
    import_id, number, first = (
        headers.get(name) for name in ("import-id", "import-chunk", "import-first-line")
    )
    chunk = None
    if import_id is not None or number is not None:
        if import_id is None or not IMPORT_ID.fullmatch(import_id):
            raise Invalid(
                "Import-Id must be 1-64 letters, digits, '_' or '-' (and comes with Import-Chunk)",
                code="invalid_import_id",
            )
        if number is None or not NUMBER.fullmatch(number) or int(number) >= MAX_CHUNK:
            raise Invalid(
                f"Import-Chunk must be a chunk number from 0 to {MAX_CHUNK - 1} (and comes with Import-Id)",
                code="invalid_import_chunk",
            )
        chunk = Chunk(import_id, int(number))
    if first is None:
        return chunk, 1
    if not NUMBER.fullmatch(first) or not 1 <= int(first) <= MAX_FIRST_LINE:
        raise Invalid(
            "Import-First-Line must be the chunk's first line number in the file (1 or more)",
            code="invalid_import_first_line",
        )
    return chunk, int(first)


def numbered_codes(body: str, content_type: str, first_line: int = 1) -> ParsedCodes:
    """parse_codes, with line numbers counted from `first_line` (a chunk's place in the whole file)."""
    parsed = parse_codes(body, content_type)
    shift = first_line - 1
    if not shift:
        return parsed
    return ParsedCodes(
        codes=[NewCode(line=new.line + shift, code=new.code) for new in parsed.codes],
        duplicate_lines=[line + shift for line in parsed.duplicate_lines],
        rejected=[Problem(line=p.line + shift, reason=p.reason) for p in parsed.rejected],
    )


def slots_fit(product: Product, parsed: ParsedCodes) -> None:
    """A reusable product's code fills `sales_per_code` slots; a request writes at most as many slots
    as a request of single-use codes may (422 `too_many_codes`, nothing written)."""
    if product.sales_per_code > 1 and len(parsed.codes) * product.sales_per_code > MAX_CODES_PER_REQUEST:
        most = MAX_CODES_PER_REQUEST // product.sales_per_code
        raise Invalid(
            f"this product sells each code {product.sales_per_code} times: at most {most} codes per "
            "request; split the file",
            code="too_many_codes",
        )


def import_codes(
    product: Product,
    body: str,
    content_type: str,
    chunk: Chunk | None,
    first_line: int,
    cipher: CodeCipher,
    changes: StockChanges,
) -> ImportAnswer:
    """Import one request's codes; a chunk of a resumable import is imported once, then answered again."""
    if not product.stocked:
        raise Invalid(f"a '{product.delivery}' product takes no codes", code="not_stocked")
    parsed = numbered_codes(body, content_type, first_line)  # a refused body takes no chunk
    slots_fit(product, parsed)
    digest = None
    if chunk is not None:
        # Keyed (the merchant's fingerprint key): the stored hash says nothing about the codes.
        kind = "json" if content_type.lower().startswith("application/json") else "text"
        digest = cipher.fingerprint(f"import-chunk\x00{kind}\x00{first_line}\x00{body}")
        recorded = changes.claim_chunk(product.product_id, chunk.import_id, chunk.number, digest)
        if recorded is not None:
            return ImportAnswer(recorded, replayed=True)
    stored = changes.add_codes(
        product.product_id,
        product.shards,
        parsed.codes,
        cipher,
        source=chunk.source if chunk else None,
        copies=product.sales_per_code,
    )
    duplicates = sorted(parsed.duplicate_lines + stored.duplicate_lines)
    problems = [p.model_dump() for p in parsed.rejected] + [
        {"line": line, "reason": "duplicate"} for line in duplicates
    ]
    answer = {
        "added": stored.added,
        "duplicates": len(duplicates),
        "rejected": len(parsed.rejected),
        "problems": sorted(problems, key=lambda p: p["line"]),
    }
    if chunk is not None and digest is not None:
        answer = changes.record_chunk(product.product_id, chunk.import_id, chunk.number, digest, answer)
    return ImportAnswer(answer, replayed=False)


def remove_codes(
    product: Product, body: str, content_type: str, cipher: CodeCipher, changes: StockChanges
) -> dict[str, Any]:
    """Take available codes out of stock: `{"removed": n, "not_found": [lines], "not_available": [lines]}`
    (lines: 1-based positions in `codes`; not available = reserved, sold or bound, so kept)."""
    parsed = parse_codes(body, content_type)
    slots_fit(product, parsed)
    result = changes.remove_codes(
        product.product_id, product.shards, parsed.codes, cipher, copies=product.sales_per_code
    )
    return {
        "removed": len(result.removed),
        "not_found": sorted(result.not_found + [p.line for p in parsed.rejected]),
        "not_available": result.not_available,
    }


def export_limit(raw: str | None) -> int:
    if raw is None:
        return EXPORT_PAGE
    if not NUMBER.fullmatch(raw) or not 1 <= int(raw) <= EXPORT_PAGE:
        raise Invalid(f"limit must be a number from 1 to {EXPORT_PAGE}", code="invalid_limit")
    return int(raw)


def export_codes(
    merchant_id: str,
    product: Product,
    cursor: str | None,
    limit: int,
    cipher: CodeCipher,
    changes: StockChanges,
    ops: OpsStore,
    now: datetime,
    request_id: str,
) -> ExportPage:
    """One page of the product's available codes; recorded in the OpsTable before it is handed out."""
    page = changes.export_codes(product.product_id, product.shards, cipher, cursor, limit)
    ops.save_report(
        EXPORT_AUDIT,
        now,
        {
            "merchant_id": merchant_id,
            "product_id": product.product_id,
            "count": len(page.codes),
            "first_page": cursor is None,
            "last_page": page.next is None,
            "request_id": request_id,
        },
    )
    return page
