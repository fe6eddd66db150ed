"""The whole app on one machine: embedded AWS, the template's resources, the real handlers behind
an API Gateway look-alike, queue pollers, schedules, the sandbox provider and a seeded demo shop.

Local mode is in-memory: stopping the runtime forgets everything.

DynamoDB is moto's, or with `store="dynalite"` dynalite's, an independent implementation, while
everything else stays on moto (docs/local-runtime.md).
"""

import json
import os
import secrets
import sys
import urllib.request
from dataclasses import asdict, dataclass
from typing import Any

from infra.local import template
from infra.local.aws import REGION, EmbeddedAws, provision
from infra.local.dynalite import Dynalite
from infra.local.faults import PREFIX as FAULTS_PREFIX
from infra.local.faults import FailingDeliveries, order_retries
from infra.local.gateway import Gateway, PortUnavailable
from infra.local.lambdas import LocalFunction
from infra.local.mailbox import PREFIX as MAILBOX_PREFIX
from infra.local.mailbox import handle as mailbox
from infra.local.sandbox import PREFIX as SANDBOX_PREFIX
from infra.local.sandbox import SandboxProvider
from infra.local.triggers import QueuePoller, Schedule, StreamPoller
from infra.local.upstream import FakeUpstream
from infra.local.websocket import API_HOST, API_ID, SocketGateway
from shared import faults
from shared.providers.config import parse_configs
from shared.settings import CLIENT_BUCKET_SETTINGS, settings

DEMO_CODES = 100
LOCAL_MAIL_FROM = "shop@miaofa.local"  # the embedded SES identity buyers' mail comes from
STORES = ("moto", "dynalite")  # what serves DynamoDB
# For many buyers who all come from 127.0.0.1 (the test session, the benchmarks): the per-client and
# per-e-mail caps lifted, no bound on a client's unpaid units, and the per-client token buckets
# lifted, not off, so every buyer request still takes a token. Tests of these limits tighten them.
ONE_ADDRESS_BUYERS = {
    "MAX_PENDING_PER_EMAIL": "1000000",
    "MAX_PENDING_PER_CLIENT": "1000000",
    "UNPAID_UNITS_PER_CLIENT": "0",
    "SOCKET_CONNECTIONS_PER_CLIENT": "1000000",  # every local browser is 127.0.0.1 too
    **dict.fromkeys(CLIENT_BUCKET_SETTINGS, "1000000"),
}


@dataclass(frozen=True)
class LocalInfo:
    url: str
    merchant_key: str
    sandbox_secret: str
    demo_product_id: str
    aws_endpoint: str
    queues: dict[str, str]  # logical id -> URL (the ops CLI reads these)
    tables: dict[str, str]  # logical id -> table name
    store: str = "moto"  # what serves DynamoDB: moto (at aws_endpoint) or dynalite
    dynamodb_endpoint: str = ""  # DynamoDB's endpoint (aws_endpoint on moto)
    ws_url: str = ""  # the WebSocket API, if the template has one
    ws_endpoint: str = ""  # its management API (WEBSOCKET_ENDPOINT)
    merchant_id: str = ""  # the demo merchant's
    codes_key: str = ""  # the KMS key that seals each merchant's data key (`miaofa-ops merchants create`)
    demo_topup_product_id: str = ""  # credited by the fake upstream below (docs/topup.md)
    demo_manual_product_id: str = ""  # fulfilled by hand (docs/manual.md)
    demo_generated_product_id: str = ""  # a code made per order from a pattern (docs/licenses.md)
    demo_license_product_id: str = ""  # a signed license key per order (docs/licenses.md)
    upstream_url: str = ""  # the demo merchant's fake upstream: GET {it}/_fake/topups, POST {it}/_fake/script


class LocalRuntime:
    def __init__(
        self,
        port: int = 3000,
        merchant_key: str | None = None,
        sandbox_secret: str | None = None,
        schedule_seconds: float | None = None,
        seed: bool = True,
        quiet: bool = False,
        log_level: str | None = None,
        environment: dict[str, str] | None = None,
        run_triggers: bool = True,
        providers: dict[str, Any] | None = None,
        store: str = "moto",
    ) -> None:
        if store not in STORES:
            raise ValueError(f"MIAOFA_STORE must be one of {', '.join(STORES)}, not {store!r}")
        self.store = store
        if merchant_key and not (
            merchant_key.startswith(("mk_test_", "mk_live_")) and len(merchant_key) >= 24
        ):
            raise ValueError(
                "MIAOFA_MERCHANT_KEY must start with mk_test_ or mk_live_ and be at least 24 characters"
            )
        self.merchant_key = merchant_key or f"mk_test_{secrets.token_urlsafe(24)}"
        self.sandbox_secret = sandbox_secret or secrets.token_urlsafe(32)
        self.schedule_seconds, self.seed, self.quiet, self.run_triggers = (
            schedule_seconds,
            seed,
            quiet,
            run_triggers,
        )
        self.port, self.log_level = port, log_level
        self.overrides = dict(environment or {})
        # Stripe / Alipay / WeChat Pay credentials (docs/payments.md), checked before anything starts.
        self.providers = dict(providers or {})
        parse_configs(self.providers)
        self.aws = EmbeddedAws()
        self.dynalite = Dynalite() if self.store == "dynalite" else None
        self.upstream: FakeUpstream | None = None  # the demo shop's top-up supplier, once seeded
        self.functions: dict[str, LocalFunction] = {}
        self.pollers: dict[str, QueuePoller] = {}
        self.streams: list[StreamPoller] = []
        self.sockets: SocketGateway | None = None
        self.schedules: list[Schedule] = []
        self.info: LocalInfo | None = None

    def start(self) -> LocalInfo:
        endpoint = self.aws.start()
        dynamodb_endpoint = self.dynalite.start() if self.dynalite else endpoint
        # Everything in this process talks to the embedded AWS, never to a real account.
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_DYNAMODB"):
            os.environ.pop(name, None)
        if self.dynalite:  # boto3 and PynamoDB take a service's own endpoint over AWS_ENDPOINT_URL
            os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = dynamodb_endpoint
        os.environ.update(
            AWS_ENDPOINT_URL=endpoint,
            AWS_DEFAULT_REGION=REGION,
            AWS_REGION=REGION,
            AWS_ACCESS_KEY_ID="local",
            AWS_SECRET_ACCESS_KEY="local",
        )
        infra = template.load()
        self.functions = {
            name: LocalFunction(
                name, props["Handler"], int(props.get("MemorySize", 128)), int(props.get("Timeout", 3))
            )
            for name, props in infra.functions.items()
        }
        try:
            self.gateway = Gateway(infra.routes, self.functions, self.port, self.quiet)
        except PortUnavailable:
            self.aws.stop()
            if self.dynalite:
                self.dynalite.stop()
            raise
        url = f"http://127.0.0.1:{self.gateway.port}"
        if len(infra.sockets) > 1:
            raise ValueError("the local runtime serves one WebSocket API")
        if infra.sockets:
            self.sockets = SocketGateway(infra.sockets[0], self.functions, self.quiet)
            self.sockets.start()
        self.sandbox = SandboxProvider(url, self.sandbox_secret)
        parameters = {
            "OrderTokenSecret": secrets.token_urlsafe(32),
            "PublicBaseUrl": url,
            "SandboxSecret": self.sandbox_secret,
            "SandboxPayUrl": self.sandbox.pay_url,
            "SandboxApiUrl": self.sandbox.api_url,
            "MailFrom": LOCAL_MAIL_FROM,
            "DefaultShop": "",  # the demo merchant's, once made (below)
            "AWS::Region": REGION,
            "AWS::StackName": "miaofa-local",
            "AWS::URLSuffix": "amazonaws.com",
            **{api.name: API_ID for api in infra.sockets},
        }
        resources = provision(
            infra,
            parameters,
            {"PaymentProvidersSecret": json.dumps(self.providers)},
            streams=self.dynalite is None,  # dynalite has no streams
        )
        for api in infra.sockets:
            resources.attributes[(api.name, "ApiEndpoint")] = f"wss://{API_HOST}"
        merchant_id = self._demo_merchant(resources.refs) if self.seed else ""
        resources.refs["DefaultShop"] = merchant_id  # GET / shows the demo shop
        local_urls = self.sockets.local_urls() if self.sockets else {}
        os.environ.update(self._environment(infra, resources.resolve, local_urls))
        if self.sockets:  # PushFunction's endpoint_url for the management API (docs/push.md)
            os.environ["WEBSOCKET_ENDPOINT"] = self.sockets.endpoint
        # Local mode (development secrets allowed, one index shard) is this process's alone: the
        # template has no way to set it, so a deployed stack never runs with it.
        os.environ["MIAOFA_LOCAL"] = "true"
        # No X-Ray daemon listens here: Powertools' Tracer stays off (it is already, outside Lambda).
        os.environ["POWERTOOLS_TRACE_DISABLED"] = "true"
        if self.log_level:
            os.environ["POWERTOOLS_LOG_LEVEL"] = self.log_level
        os.environ.update(
            self.overrides
        )  # e.g. tests raising the per-client caps: they all come from 127.0.0.1
        self.gateway.extras[SANDBOX_PREFIX] = self.sandbox.handle
        # `miaofa-ops local fail-deliveries`: before the mailbox, whose prefix is shorter.
        self.failing = FailingDeliveries(
            self.sandbox_secret, lambda: settings().delivery_retries, order_retries
        )
        faults.install_plan(self.failing.plan)
        self.gateway.extras[FAULTS_PREFIX] = self.failing.handle
        self.gateway.extras[MAILBOX_PREFIX] = mailbox
        self.gateway.start()
        for trigger in infra.triggers:
            self.pollers[trigger.queue] = QueuePoller(
                self.functions[trigger.function],
                resources.refs[trigger.queue],
                resources.arns[trigger.queue],
                trigger.batch_size,
                trigger.report_failures,
                hurry=self.failing.hurried if trigger.queue == "DeliveryQueue" else None,
            )
        for stream in infra.streams:
            if stream.table not in resources.stream_arns:
                print(
                    f"miaofa: {self.store} has no DynamoDB streams: {stream.function} gets no events"
                    f" from {stream.table} (no pushes: the order page falls back to polling)",
                    file=sys.stderr,
                )
                continue
            poller = StreamPoller(
                self.functions[stream.function],
                resources.stream_arns[stream.table],
                stream.batch_size,
                stream.report_failures,
                stream.starting_position,
                stream.filters,
                stream.maximum_retries,
                stream.maximum_age,
            )
            poller.open()  # from now on (LATEST), as a mapping created with the stack
            self.streams.append(poller)
        for schedule in infra.schedules:
            every = self.schedule_seconds or schedule.every_seconds
            self.schedules.append(Schedule(self.functions[schedule.function], every))
        if self.run_triggers:
            for runner in self._runners():
                runner.start()
        self.queue_urls = {name: resources.refs[name] for name in infra.queues}
        product_id = self._seed_demo(url) if self.seed else ""
        topup_id, manual_id = self._seed_delivery_modes(url) if self.seed else ("", "")
        generated_id, license_id = self._seed_made_codes(url) if self.seed else ("", "")
        self.info = LocalInfo(
            url,
            self.merchant_key,
            self.sandbox_secret,
            product_id,
            endpoint,
            queues=self.queue_urls,
            tables={name: resources.refs[name] for name in infra.tables},
            store=self.store,
            dynamodb_endpoint=dynamodb_endpoint,
            ws_url=self.sockets.url if self.sockets else "",
            ws_endpoint=self.sockets.endpoint if self.sockets else "",
            merchant_id=merchant_id,
            codes_key=resources.refs.get("CodesKey", ""),
            demo_topup_product_id=topup_id,
            demo_manual_product_id=manual_id,
            demo_generated_product_id=generated_id,
            demo_license_product_id=license_id,
            upstream_url=self.upstream.base_url if self.upstream else "",
        )
        return self.info

    def stop(self) -> None:
        for runner in self._runners():
            runner.stop()
        faults.install_plan(None)
        if self.upstream:
            self.upstream.stop()
        self.gateway.stop()
        if self.sockets:
            self.sockets.stop()
        self.aws.stop()
        if self.dynalite:
            self.dynalite.stop()

    def _runners(self) -> list[QueuePoller | StreamPoller | Schedule]:
        return [*self.pollers.values(), *self.streams, *self.schedules]

    @staticmethod
    def _environment(
        infra: template.Infrastructure, resolve: Any, local_urls: dict[str, str] | None = None
    ) -> dict[str, str]:
        """The functions' environment, resolved. All functions share this process, so they must agree."""
        merged: dict[str, str] = {}
        for name, props in infra.functions.items():
            for key, value in props.get("Environment", {}).get("Variables", {}).items():
                resolved = resolve(value)
                for aws_url, local_url in (local_urls or {}).items():
                    resolved = resolved.replace(aws_url, local_url)
                if merged.setdefault(key, resolved) != resolved:
                    raise ValueError(f"{name} sets {key} differently; the local runtime needs one value")
        return merged

    def _demo_merchant(self, refs: dict[str, str]) -> str:
        """The demo merchant and its shop's settings (through the merchant store, before the functions'
        environment is set: it names the merchant as the default shop); returns its id."""
        from shared.shops import ShopSettings
        from shared.store.merchants import MerchantStore

        store = MerchantStore(refs["ShopTable"], refs["CodesKey"])
        merchant_id, _ = store.create_merchant("Demo merchant", api_key=self.merchant_key)
        store.set_shop(
            merchant_id,
            ShopSettings(
                name="Demo merchant",
                announcement="A sandbox shop: pay with the sandbox provider, nothing is charged.\n"
                "沙箱商店：使用沙箱支付，不会真实扣款。",
                default_language="zh-CN",
            ),
            version=0,
        )
        return merchant_id

    def _seed_demo(self, url: str) -> str:
        """The demo merchant's product with codes (through the merchant API); returns its id."""
        product = self.merchant_call(
            url,
            "POST",
            "/merchant/products",
            {
                "name": "Demo game card 100 点",
                "description": "A sandbox gift card: pay with the sandbox provider and the code appears at once.",
                "price": {"amount": 1999, "currency": "CNY"},
                "max_per_order": 5,
                "category": "Game cards 游戏点卡",
            },
        )
        codes = "\n".join(
            f"DEMO-{secrets.token_hex(4).upper()}-{secrets.token_hex(4).upper()}" for _ in range(DEMO_CODES)
        )
        self.merchant_call(
            url, "POST", f"/merchant/products/{product['id']}/stock", codes.encode(), "text/plain"
        )
        return str(product["id"])

    def _seed_delivery_modes(self, url: str) -> tuple[str, str]:
        """A top-up product credited by a fake upstream on 127.0.0.1 (the reference supplier of
        docs/topup.md, scriptable over HTTP), and a product the merchant fulfils by hand."""
        self.upstream = FakeUpstream("upsec_" + secrets.token_urlsafe(32)).start()
        self.merchant_call(
            url,
            "PUT",
            "/merchant/upstreams/demo",
            {"url": self.upstream.base_url, "secret": self.upstream.secret},
        )
        account = {"name": "uid", "label": {"zh-CN": "游戏 UID", "en": "Game UID"}, "type": "number"}
        server = {"name": "server", "label": {"zh-CN": "区服", "en": "Server"}, "type": "select"}
        topup = self.merchant_call(
            url,
            "POST",
            "/merchant/products",
            {
                "name": "Demo top-up 60 钻石",
                "description": "Credited straight to your game account (a fake upstream on this machine).",
                "price": {"amount": 600, "currency": "CNY"},
                "delivery": "topup",
                "topup": {"upstream": "demo", "sku": "diamonds-60"},
                "buyer_input": [
                    {**account, "confirm": True},
                    {**server, "options": ["Asia 亚服", "Europe 欧服"]},
                ],
                "category": "Top-ups 直充",
            },
        )
        manual = self.merchant_call(
            url,
            "POST",
            "/merchant/products",
            {
                "name": "Demo account set-up (by hand)",
                "description": "The shop sets it up by hand: `miaofa-merchant fulfilments list`, then `orders fulfil`.",
                "price": {"amount": 3000, "currency": "CNY"},
                "delivery": "manual",
                "manual": {"promise_minutes": 30, "deadline_minutes": 24 * 60},
                "buyer_input": [
                    {
                        **account,
                        "label": {"zh-CN": "登录邮箱", "en": "Login e-mail"},
                        "name": "login",
                        "type": "email",
                    }
                ],
                "category": "Services 代充服务",
            },
        )
        return str(topup["id"]), str(manual["id"])

    def _seed_made_codes(self, url: str) -> tuple[str, str]:
        """A gift card whose code is made when it is paid, and a software license (docs/licenses.md)."""
        generated = self.merchant_call(
            url,
            "POST",
            "/merchant/products",
            {
                "name": "Demo gift card 50 元 (made per order)",
                "description": "Its code is made from a pattern when you pay: no stock, never sold out.",
                "price": {"amount": 5000, "currency": "CNY"},
                "delivery": "generated",
                "generated": {"pattern": "GIFT-XXXX-XXXX-9999"},
                "category": "Gift cards 礼品卡",
            },
        )
        license = self.merchant_call(
            url,
            "POST",
            "/merchant/products",
            {
                "name": "Demo app Pro license (3 machines)",
                "description": "A signed license key: check it offline, activate it on up to 3 machines.",
                "price": {"amount": 9900, "currency": "CNY"},
                "delivery": "license",
                "license": {"entitlements": ["pro"], "max_machines": 3, "valid_days": 365},
                "category": "Software 软件",
            },
        )
        return str(generated["id"]), str(license["id"])

    def merchant_call(
        self,
        url: str,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30,
    ) -> Any:
        data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(
            f"{url}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.merchant_key}", "Content-Type": content_type},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())

    def as_json(self) -> str:
        assert self.info is not None
        return json.dumps(asdict(self.info), indent=2)
