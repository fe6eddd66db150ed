"""The local runtime as the benchmarks use it: quiet, unseeded, no schedule in the way, one merchant;
DynamoDB on the store MIAOFA_STORE names (moto unless `dynalite`), as `make run` and the tests."""

import os
import secrets

from infra.local.runtime import ONE_ADDRESS_BUYERS, LocalRuntime

IMPORT_CHUNK = 10_000  # codes per import request (the merchant API takes at most 10,000)
QUIET_METRICS = {"POWERTOOLS_METRICS_DISABLED": "true"}  # EMF lines on stdout would drown the results


def start_runtime(providers: dict | None = None, environment: dict[str, str] | None = None) -> LocalRuntime:
    runtime = LocalRuntime(
        port=0,
        quiet=True,
        seed=False,
        schedule_seconds=3600,
        log_level="WARNING",
        # every simulated buyer is 127.0.0.1
        environment={**ONE_ADDRESS_BUYERS, **QUIET_METRICS, **(environment or {})},
        providers=providers,
        store=os.environ.get("MIAOFA_STORE") or "moto",
    )
    runtime.start()
    from shared.adapters import merchants  # after start: the environment is the runtime's

    merchants().create_merchant("bench", api_key=runtime.merchant_key)
    return runtime


def make_product(runtime: LocalRuntime, codes: int, shards: int = 4, name: str = "bench card") -> str:
    """A product with `codes` fresh codes, imported in chunks as a merchant would."""
    assert runtime.info is not None
    url = runtime.info.url
    product = runtime.merchant_call(
        url,
        "POST",
        "/merchant/products",
        {
            "name": name,
            "price": {"amount": 1999, "currency": "CNY"},
            "max_per_order": 1,
            "shards": shards,
        },
    )
    for start in range(0, codes, IMPORT_CHUNK):
        chunk = "\n".join(f"BENCH-{secrets.token_hex(10)}" for _ in range(min(IMPORT_CHUNK, codes - start)))
        runtime.merchant_call(
            url,
            "POST",
            f"/merchant/products/{product['id']}/stock",
            chunk.encode(),
            "text/plain",
            timeout=300,
        )
    return str(product["id"])
