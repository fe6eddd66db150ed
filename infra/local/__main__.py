"""`make run`: start the whole app locally and print where to buy the demo product."""

import contextlib
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from infra.local.dynalite import DynaliteError
from infra.local.gateway import PortUnavailable
from infra.local.runtime import LocalRuntime
from infra.local.template import ROOT

DEFAULT_PORT = 3000
PROVIDERS_FILE = (
    ROOT / ".miaofa" / "providers.json"
)  # optional: Stripe / Alipay / WeChat Pay (docs/payments.md)


def _providers() -> dict:
    if not PROVIDERS_FILE.exists():
        return {}
    try:
        loaded = json.loads(PROVIDERS_FILE.read_text())
    except ValueError:
        sys.exit(f"miaofa: {PROVIDERS_FILE} is not JSON")
    return loaded if isinstance(loaded, dict) else {}


def _port() -> int:
    """MIAOFA_PORT, else 3000; anything but a port number stops `make run` saying so."""
    text = os.environ.get("MIAOFA_PORT") or str(DEFAULT_PORT)
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= 65535):
        sys.exit(f"miaofa: MIAOFA_PORT must be a port number from 1 to 65535, not {text!r}")
    return int(text)


def main() -> None:
    started = time.monotonic()
    port = _port()
    try:
        runtime = LocalRuntime(
            port=port,
            merchant_key=os.environ.get("MIAOFA_MERCHANT_KEY") or None,
            sandbox_secret=os.environ.get("MIAOFA_SANDBOX_SECRET") or None,
            providers=_providers(),
            store=os.environ.get("MIAOFA_STORE") or "moto",
        )
    except ValueError as error:  # a weak key or secret, a bad config or store name: refuse to start
        sys.exit(f"miaofa: {error}")
    print(
        "miaofa: starting the local runtime (embedded AWS, in-memory: stopping it forgets everything)…",
        flush=True,
    )
    try:
        info = runtime.start()
    except DynaliteError as error:  # MIAOFA_STORE=dynalite without Node.js, or npm could not install it
        sys.exit(f"miaofa: {error}")
    except PortUnavailable as error:  # one line, naming the way out
        sys.exit(
            f"miaofa: {error}; set MIAOFA_PORT to a free port (MIAOFA_PORT={port + 1 if port < 65535 else 3000}"
            " make run)"
        )
    state = ROOT / ".miaofa"
    state.mkdir(exist_ok=True)
    (state / "local.json").write_text(runtime.as_json())
    os.chmod(state / "local.json", 0o600)
    dynamodb = (
        f"  DynamoDB:          dynalite at {info.dynamodb_endpoint}\n" if info.store == "dynalite" else ""
    )
    push = f"  order pushes:      {info.ws_url}\n" if info.ws_url else ""
    print(
        f"\nmiaofa is running locally (ready in {time.monotonic() - started:.1f}s)\n"
        f"  demo shop:         {info.url}/\n"
        f"  demo product page: {info.url}/p/{info.demo_product_id}\n"
        f"  demo top-up:       {info.url}/p/{info.demo_topup_product_id}  (upstream: {info.upstream_url})\n"
        f"  demo manual:       {info.url}/p/{info.demo_manual_product_id}\n"
        f"  demo generated:    {info.url}/p/{info.demo_generated_product_id}\n"
        f"  demo license:      {info.url}/p/{info.demo_license_product_id}\n"
        f"  mail it sent:      {info.url}/_local/mail\n"
        f"  demo merchant:     {info.merchant_id}\n"
        f"  merchant API key:  {info.merchant_key}\n"
        f"  embedded AWS:      {info.aws_endpoint}\n"
        f"{push}"
        f"{dynamodb}"
        f"  details:           {Path('.miaofa/local.json')}\n"
        "Press Ctrl-C to stop.",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    print("\nmiaofa: stopping…", flush=True)
    runtime.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
