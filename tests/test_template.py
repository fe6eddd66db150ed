"""template.yaml is the one description of the infrastructure: it transforms with samtranslator and
lints clean with cfn-lint, offline, and it declares what the foundation needs."""

import contextlib
import importlib
import sys

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
    # Loggers made at import keep the stdout they see: the real one, as in the local runtime
    # (infra/local/lambdas.py), so that later tests' output captures still see their log lines.
    with contextlib.redirect_stdout(sys.__stdout__):
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
        ("POST", "/webhooks/stripe"),
        ("POST", "/webhooks/alipay"),
        ("POST", "/webhooks/wechatpay"),
        ("POST", "/merchant/orders/{order_id}/refund"),
        ("POST", "/merchant/products"),
        ("POST", "/merchant/products/{product_id}/stock"),
        ("GET", "/merchant/products/{product_id}/stock"),
    } <= routes
    assert all(
        r.authorizer == "MerchantAuthorizerFunction" for r in infra.routes if r.path.startswith("/merchant")
    )
    assert {(t.queue, t.function, t.report_failures) for t in infra.triggers} == {
        ("DeliveryQueue", "DeliverFunction", True),
        ("NotifyQueue", "NotifyFunction", True),
    }
    assert [(s.function, s.every_seconds) for s in infra.schedules] == [("ReconcileFunction", 60)]


def test_alarms_watch_the_dead_letter_queues_stuck_orders_and_deliver_errors_and_have_a_runbook():
    import re

    from infra.local.template import ROOT

    cfn = translate()
    alarms = {
        k: r["Properties"] for k, r in cfn["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    watched = {(p.get("Namespace"), p.get("MetricName")) for p in alarms.values()}
    assert {
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("miaofa", "StuckOrders"),
        ("miaofa", "DeliveryFailures"),
        ("AWS/Lambda", "Errors"),
    } <= watched
    dlqs = {
        p["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for p in alarms.values()
        if p.get("Namespace") == "AWS/SQS"
    }
    assert dlqs == {"DeliveryDLQ", "NotifyDLQ"}
    # Every custom metric an alarm watches is one the functions emit.
    emitted = set()
    for source in (ROOT / "functions").rglob("*.py"):
        emitted |= set(re.findall(r'"([A-Z][A-Za-z]+)"', source.read_text()))
    assert {name for ns, name in watched if ns == "miaofa"} <= emitted
    # Every alarm points at its runbook section, and the section exists.
    runbook = (ROOT / "docs" / "operations.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9-]", "", h.lower().replace(" ", "-"))
        for h in re.findall(r"^#+ (.+)$", runbook, re.M)
    }
    for name, props in alarms.items():
        anchor = props["AlarmDescription"].split("docs/operations.md#", 1)[1].rstrip(").")
        assert anchor in anchors, f"{name}: no runbook section #{anchor}"
        assert props["AlarmActions"], f"{name} notifies no one"
