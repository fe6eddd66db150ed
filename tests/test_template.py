"""template.yaml is the one description of the infrastructure: it transforms with samtranslator and
lints clean with cfn-lint, offline, and it declares what the foundation needs."""

import importlib

from cfnlint.api import lint_all

from infra.local.template import TEMPLATE, load, translate


def test_template_lints_clean():
    matches = lint_all(TEMPLATE.read_text())
    # Errors and warnings, as the cfn-lint command line reports by default; informational hints aside.
    assert [str(m) for m in matches if m.rule.id[0] in "EW"] == []


def test_template_transforms_and_declares_the_foundation():
    cfn = translate()
    types = {r["Type"] for r in cfn["Resources"].values()}
    assert {
        "AWS::ApiGatewayV2::Api",
        "AWS::Lambda::EventSourceMapping",
        "AWS::Scheduler::Schedule",
        "AWS::KMS::Key",
        "AWS::DynamoDB::Table",
        "AWS::SQS::Queue",
    } <= types
    for table in (r for r in cfn["Resources"].values() if r["Type"] == "AWS::DynamoDB::Table"):
        props = table["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    queues = {k: r["Properties"] for k, r in cfn["Resources"].items() if r["Type"] == "AWS::SQS::Queue"}
    for name in ("DeliveryQueue", "NotifyQueue"):
        assert queues[name]["RedrivePolicy"]["maxReceiveCount"] >= 1


def test_every_function_handler_exists_and_routes_match_the_contract():
    infra = load()
    for props in infra.functions.values():
        module, _, function = props["Handler"].rpartition(".")
        assert callable(getattr(importlib.import_module(module), function))
    routes = {(r.method, r.path) for r in infra.routes}
    assert {
        ("POST", "/api/orders"),
        ("GET", "/api/orders/{order_id}"),
        ("GET", "/api/products/{product_id}"),
        ("GET", "/p/{product_id}"),
        ("GET", "/o/{order_id}"),
        ("POST", "/webhooks/sandbox"),
        ("POST", "/merchant/products"),
        ("POST", "/merchant/products/{product_id}/stock"),
        ("GET", "/merchant/products/{product_id}/stock"),
    } <= routes
    assert all(
        r.authorizer == "MerchantAuthorizerFunction" for r in infra.routes if r.path.startswith("/merchant")
    )
    (trigger,) = infra.triggers
    assert (trigger.queue, trigger.function, trigger.report_failures) == (
        "DeliveryQueue",
        "DeliverFunction",
        True,
    )
    assert [(s.function, s.every_seconds) for s in infra.schedules] == [("ReconcileFunction", 60)]
