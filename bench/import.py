"""Stock import at scale through the merchant CLI's code path (`miaofa-merchant stock import`):
N fresh codes from a file, in chunks of a resumable import, into the local runtime; codes/s per
chunk (median) and overall, the final stock levels checked, then the same command run again
(every chunk answered from its record, nothing added). With --sales-per-code K (a reusable product)
each code fills K slots, so slots/s is the figure to compare with single-use codes/s.

    .venv/bin/python -m bench.import [--codes 100000] [--chunk 5000] [--shards 4] [--sales-per-code 1]
"""

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.local import start_runtime
from infra.cli_support import Console
from infra.merchant.api import Api
from infra.merchant.commands.stock import StockImport, default_import_id, read_lines


def run(codes: int, chunk: int, shards: int, sales: int = 1) -> int:
    runtime = start_runtime()
    try:
        assert runtime.info is not None
        url, key = runtime.info.url, runtime.merchant_key
        product = runtime.merchant_call(
            url,
            "POST",
            "/merchant/products",
            {
                "name": "bench import",
                "price": {"amount": 1999, "currency": "CNY"},
                "shards": shards,
                "sales_per_code": sales,
            },
        )["id"]
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "codes.txt"
            path.write_text("".join(f"BENCH-{secrets.token_hex(10)}\n" for _ in range(codes)))
            data, lines = read_lines(path)
            import_id = default_import_id(key, product, chunk, data)
            console = Console(err=sys.stderr, tty=False)
            importer = StockImport(Api(url, key), console, product, chunk, import_id)
            first = importer.run(str(path), lines)
            started = time.perf_counter()
            levels = runtime.merchant_call(url, "GET", f"/merchant/products/{product}/stock", timeout=300)
            levels_seconds = time.perf_counter() - started
            again = StockImport(Api(url, key), console, product, chunk, import_id, show_progress=False)
            second = again.run(str(path), lines)
    finally:
        runtime.stop()

    slots = codes * sales
    expected = {"available": slots, "reserved": 0, "sold": 0, "returned": 0, "imported": slots}
    counts = {key: first.total(key) for key in ("added", "duplicates", "rejected")}
    ok = (
        levels == expected
        and counts == {"added": codes, "duplicates": 0, "rejected": 0}
        and all(c.replayed for c in second.chunks)
        and second.total("added") == codes
    )
    median = statistics.median(c.rate for c in first.chunks)
    overall = codes / first.seconds
    print(f"import: {counts}; levels {levels} ({levels_seconds:.1f} s to read)")
    print(
        f"chunk rates codes/s: min {min(c.rate for c in first.chunks):,.0f}, median {median:,.0f}, "
        f"max {max(c.rate for c in first.chunks):,.0f}"
    )
    print(
        f"re-run of the same command: {len(second.chunks)} chunks answered from their records in "
        f"{second.seconds:.1f} s, nothing added"
    )
    print(f"slots/s overall: {slots / first.seconds:,.0f} ({sales} per code)")
    print("levels and counts " + ("correct" if ok else "WRONG"))
    print()
    print(
        f"| stock import: {codes:,} codes through `miaofa-merchant stock import` ({len(first.chunks)} chunks of "
        f"{chunk:,}, {shards} shards) | {overall:,.0f} codes/s overall ({first.seconds:.1f} s), median chunk "
        f"{median:,.0f} codes/s; levels `{{available {levels['available']:,}, reserved {levels['reserved']}, "
        f"sold {levels['sold']}, imported {levels['imported']:,}}}`; the same command again: "
        f"{second.seconds:.1f} s, every chunk replayed, 0 added |"
    )
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=5_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--sales-per-code", type=int, default=1)
    args = parser.parse_args()
    return run(args.codes, args.chunk, args.shards, args.sales_per_code)


if __name__ == "__main__":
    sys.exit(main())
