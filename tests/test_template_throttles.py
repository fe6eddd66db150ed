"""template.yaml bounds the public routes and keeps payment and delivery's share (docs/operations.md
"Limits and throttles"): route throttles on the stage, reserved concurrency on the functions, each a
parameter with a default an operator can tune, and the defaults add up within AWS's default quotas."""

from typing import Any

import pytest

from infra.local.template import load, translate
from shared.settings import CLIENT_BUCKET_SETTINGS, Settings

# AWS's defaults per account and Region: API Gateway's throttle over all APIs, Lambda's concurrency,
# and the concurrency Lambda keeps unreserved whatever is reserved.
ACCOUNT_RATE, ACCOUNT_BURST = 10_000, 5_000
ACCOUNT_CONCURRENCY, UNRESERVED_MINIMUM = 1_000, 100
PUBLIC = {
    "POST /api/orders",
    "POST /api/orders/lookup",
    "GET /api/orders/{order_id}",
    "GET /api/products/{product_id}",
    "GET /p/{product_id}",
    "GET /o/{order_id}",
    "GET /",
    "GET /s/{merchant_id}",
}
WEBHOOKS = {
    "POST /webhooks/sandbox",
    "POST /webhooks/stripe",
    "POST /webhooks/alipay",
    "POST /webhooks/wechatpay",
}
BUCKETS = CLIENT_BUCKET_SETTINGS
SOCKET_ROUTES = {"$connect", "$disconnect", "watch", "$default"}


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    return translate()


def deployed(cfn: dict[str, Any], value: Any, parameters: dict[str, Any] | None = None) -> Any:
    """`value` as deployed with every parameter at its default (or as given): Ref, Fn::If, Not, Equals."""
    given = parameters or {}
    if isinstance(value, dict) and "Ref" in value:
        name = value["Ref"]
        if name == "AWS::NoValue":
            return None
        assert "Default" in cfn["Parameters"][name] or name in given, f"{name} has no default"
        return given.get(name, cfn["Parameters"][name].get("Default"))
    if isinstance(value, dict) and "Fn::If" in value:
        condition, yes, no = value["Fn::If"]
        return deployed(cfn, yes if deployed(cfn, cfn["Conditions"][condition], given) else no, given)
    if isinstance(value, dict) and "Fn::Not" in value:
        return not deployed(cfn, value["Fn::Not"][0], given)
    if isinstance(value, dict) and "Fn::Equals" in value:
        left, right = (deployed(cfn, side, given) for side in value["Fn::Equals"])
        return str(left) == str(right)
    return value


def stage(cfn: dict[str, Any], api: str = "Api") -> dict[str, Any]:
    """The stage of the HTTP API (or of the API named)."""
    (props,) = [
        r["Properties"]
        for r in cfn["Resources"].values()
        if r["Type"] == "AWS::ApiGatewayV2::Stage" and r["Properties"]["ApiId"] == {"Ref": api}
    ]
    return props


def limits(cfn: dict[str, Any], settings: dict[str, Any]) -> tuple[float, float]:
    return (
        float(deployed(cfn, settings["ThrottlingRateLimit"])),
        float(deployed(cfn, settings["ThrottlingBurstLimit"])),
    )


def test_every_route_is_throttled_and_the_buyer_and_webhook_routes_each_by_a_parameter(cfn):
    props = stage(cfn)
    assert all(limit > 0 for limit in limits(cfn, props["DefaultRouteSettings"]))
    routes = props["RouteSettings"]
    assert set(routes) >= PUBLIC | WEBHOOKS
    for key in PUBLIC | WEBHOOKS:
        for limit in ("ThrottlingRateLimit", "ThrottlingBurstLimit"):
            assert set(routes[key][limit]) == {"Ref"}, f"{key} {limit} is not a parameter"
    # API Gateway refuses settings for a route it does not have: every key names a real route.
    assert set(routes) <= {f"{r.method} {r.path}" for r in load().routes}


def test_a_flood_on_the_public_routes_leaves_room_for_the_payment_callbacks(cfn):
    """AWS's own throttle is one bucket per account and Region: the public routes, all at their
    limits, still leave a payment callback route its whole limit within the account's."""
    routes = stage(cfn)["RouteSettings"]
    public = [limits(cfn, routes[key]) for key in PUBLIC]
    # The order page's WebSocket API is public too: each of its routes at the stage's default limits.
    public += [limits(cfn, stage(cfn, "WebSocketApi")["DefaultRouteSettings"])] * len(SOCKET_ROUTES)
    webhook = limits(cfn, routes["POST /webhooks/stripe"])
    assert {limits(cfn, routes[key]) for key in WEBHOOKS} == {webhook}
    assert sum(rate for rate, _ in public) + webhook[0] <= ACCOUNT_RATE
    assert sum(burst for _, burst in public) + webhook[1] <= ACCOUNT_BURST
    # Generous enough for a flash sale: a thousand checkouts a second, each buyer's page polling.
    checkout, polls = (
        limits(cfn, routes["POST /api/orders"]),
        limits(cfn, routes["GET /api/orders/{order_id}"]),
    )
    assert checkout[0] >= 1_000 and polls[0] >= checkout[0]
    assert webhook[0] >= checkout[0] / 2  # payments arrive at most at the rate buyers check out


def reserved(cfn: dict[str, Any], function: str, parameters: dict[str, Any] | None = None) -> Any:
    value = cfn["Resources"][function]["Properties"].get("ReservedConcurrentExecutions")
    return deployed(cfn, value, parameters) if value is not None else None


def test_payment_and_delivery_have_reserved_concurrency_and_the_storefront_a_cap(cfn):
    webhook, deliver, storefront = (
        reserved(cfn, name) for name in ("WebhookFunction", "DeliverFunction", "StorefrontFunction")
    )
    assert webhook >= 50 and deliver >= 50 and storefront >= 100
    # Reserved concurrency is taken from the account's; Lambda keeps some unreserved for the rest
    # (notify, reconcile, the merchant API and its authorizer), so the defaults deploy on a default account.
    assert webhook + deliver + storefront <= ACCOUNT_CONCURRENCY - UNRESERVED_MINIMUM - 100
    for name in (
        "NotifyFunction",
        "ReconcileFunction",
        "MerchantFunction",
        "MerchantAuthorizerFunction",
        "SocketFunction",  # bounded by its stage's route throttles
        "PushFunction",  # bounded by the orders stream's shards x its ParallelizationFactor
    ):
        assert reserved(cfn, name) is None


def test_each_reservation_is_a_parameter_and_zero_reserves_none(cfn):
    for function, parameter in (
        ("WebhookFunction", "WebhookReservedConcurrency"),
        ("DeliverFunction", "DeliverReservedConcurrency"),
        ("StorefrontFunction", "StorefrontReservedConcurrency"),
    ):
        assert reserved(cfn, function, {parameter: 37}) == 37
        assert reserved(cfn, function, {parameter: 0}) is None  # 0 would stop the function: never sent


def test_delivery_polls_its_queue_with_no_more_than_its_reserved_concurrency(cfn):
    """A batch Lambda throttles goes back to the queue with a receive counted, towards the DLQ."""
    (mapping,) = [
        r["Properties"]
        for r in cfn["Resources"].values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
        and r["Properties"]["FunctionName"] == {"Ref": "DeliverFunction"}
    ]
    maximum = mapping["ScalingConfig"]["MaximumConcurrency"]
    assert deployed(cfn, maximum) == reserved(cfn, "DeliverFunction")
    parameter = {"DeliverReservedConcurrency": 12}
    assert deployed(cfn, maximum, parameter) == reserved(cfn, "DeliverFunction", parameter) == 12
    assert deployed(cfn, maximum, {"DeliverReservedConcurrency": 0}) == 1000  # AWS's largest: no bound


def test_the_storefront_runs_with_the_per_client_buckets_settings_defaults(cfn):
    """The buckets are settings (shared/settings.py); the template sets them to the same values, so the
    docs' one table of defaults is true wherever it runs."""
    variables = cfn["Resources"]["StorefrontFunction"]["Properties"]["Environment"]["Variables"]
    defaults = {field.alias: field.default for field in Settings.model_fields.values()}
    assert {name: int(variables[name]) for name in BUCKETS} == {name: defaults[name] for name in BUCKETS}


@pytest.mark.parametrize(("value", "deploys"), [(0, True), (1, False), (2, True), (100, True)])
def test_a_delivery_reservation_of_one_is_refused_before_the_deploy(cfn, value, deploys):
    """The queue trigger's MaximumConcurrency takes 2 and more: the template's rules refuse 1."""
    assertions = [a for rule in cfn.get("Rules", {}).values() for a in rule["Assertions"]]
    given = {"DeliverReservedConcurrency": value}
    assert all(deployed(cfn, a["Assert"], given) for a in assertions) is deploys
