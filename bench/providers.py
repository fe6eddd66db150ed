"""Payment providers compared on one run of the local runtime: the cost of verifying one callback
(HMAC for the sandbox and Stripe; RSA-2048 for Alipay; RSA-2048 plus AES-256-GCM for WeChat Pay),
and, per provider, checkout (which starts the payment at the provider's fake server on 127.0.0.1),
the callback's answer, and callback -> DELIVERED.

The provider servers are the test fakes (tests/providers/), so checkout's figure is the shop's side
plus a loopback round trip, not a real provider's latency.

    .venv/bin/python -m bench.providers [--orders 50] [--verifications 300] [--warmup 5]
"""

import argparse
import statistics
import time
from datetime import datetime

import requests

from bench.latency import percentile
from bench.local import make_product, start_runtime
from tests.providers import alipay, stripe, wechatpay
from tests.providers.sandbox import Kit as SandboxKit


def _ms(samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return f"{statistics.median(ms):.1f} / {percentile(ms, 99):.1f}"


def run(orders: int, verifications: int, warmup: int) -> None:
    kits = {"stripe": stripe.Kit(), "alipay": alipay.Kit(), "wechatpay": wechatpay.Kit()}
    for kit in kits.values():
        kit.start()
    runtime = start_runtime({name: kit.config() for name, kit in kits.items()})
    info = runtime.info
    assert info is not None
    from shared.providers.registry import provider

    every = {"sandbox": SandboxKit(runtime), **kits}
    http = requests.Session()
    rows = []
    try:
        for name, kit in every.items():
            product_id = make_product(runtime, orders + warmup + 1)
            checkout_s, answered_s, delivered_s = [], [], []
            for _ in range(warmup + orders):
                started = time.perf_counter()
                order = http.post(
                    f"{info.url}/api/orders",
                    json={
                        "product_id": product_id,
                        "quantity": 1,
                        "email": "bench@example.com",
                        "provider": name,
                    },
                ).json()
                checkout_s.append(time.perf_counter() - started)
                callback = kit.paid(order)
                sent_at, sent = time.time(), time.perf_counter()
                reply = http.post(f"{info.url}/webhooks/{name}", data=callback.body, headers=callback.headers)
                answered_s.append(time.perf_counter() - sent)
                assert kit.acknowledged(reply.status_code, reply.content), reply.text
                headers = {"Authorization": f"Bearer {order['access_token']}"}
                deadline = time.monotonic() + 10
                while (
                    body := http.get(f"{info.url}/api/orders/{order['order_id']}", headers=headers).json()
                )["status"] != "DELIVERED":
                    if time.monotonic() > deadline:
                        raise SystemExit(f"{name} order {order['order_id']} not delivered within 10 s")
                    time.sleep(0.005)
                delivered_s.append(datetime.fromisoformat(body["events"][-1]["at"]).timestamp() - sent_at)
            del checkout_s[:warmup], answered_s[:warmup], delivered_s[:warmup]
            # Verification alone, in this process: the same callback each time (its timestamp stays fresh).
            verifier, callback = provider(name), kit.paid(order)
            assert verifier is not None
            headers = {k.lower(): v for k, v in callback.headers.items()}
            verify_s = []
            for _ in range(verifications):
                started = time.perf_counter()
                verifier.verify_callback(headers, callback.body, int(time.time()))
                verify_s.append(time.perf_counter() - started)
            verify_us = statistics.median(verify_s) * 1e6
            rows.append(
                f"| {name} | {verify_us:.0f} | {_ms(checkout_s)} | {_ms(answered_s)} | {_ms(delivered_s)} |"
            )
    finally:
        runtime.stop()
        for kit in kits.values():
            kit.stop()
    print(
        f"local runtime, {orders} sequential orders per provider after {warmup} warm-up;"
        f" {verifications} verifications each\n"
    )
    print(
        "| provider | verify callback, median µs | checkout p50 / p99 ms | callback answered p50 / p99 ms | callback → DELIVERED p50 / p99 ms |"
    )
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=50)
    parser.add_argument("--verifications", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    run(args.orders, args.verifications, args.warmup)
