"""Traces and metrics in the local runtime: the tracer is off, a function's invocations running at once
each publish their own metrics (infra/local/lambdas.py), and a payment callback is counted, verified or
rejected, per provider."""

import json
import os
import threading

import aws_xray_sdk
from aws_lambda_powertools.metrics import MetricUnit

from shared import observability
from tests.support import event, new_codes


def published(output: str, service: str) -> list[dict]:
    """The EMF documents a function printed."""
    documents = (json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"'))
    return [document for document in documents if document.get("service") == service]


def test_the_local_runtime_never_traces(runtime, shop):
    runtime.functions["MerchantAuthorizerFunction"].invoke(event("authorizer_request"))

    assert os.environ["POWERTOOLS_TRACE_DISABLED"] == "true"
    assert observability.tracer("authorizer").disabled
    assert not aws_xray_sdk.global_sdk_config.sdk_enabled()


def test_invocations_running_at_once_each_publish_only_their_own_metrics(runtime, capsys):
    """Two invocations of one function (one Metrics instance), each counting, then both flushing."""
    metrics = observability.metrics("authorizer")
    counted = threading.Barrier(2)

    @metrics.log_metrics
    def handler(event: dict, context: object) -> None:
        metrics.add_metric(name=event["count"], unit=MetricUnit.Count, value=1)
        counted.wait(timeout=10)  # both have counted before either flushes

    workers = [
        threading.Thread(target=handler, args=({"count": name}, None))
        for name in ("KeysAccepted", "KeysRefused")
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    documents = published(capsys.readouterr().out, "authorizer")
    counts = [{name: value for name, value in d.items() if name.startswith("Keys")} for d in documents]
    assert sorted(counts, key=str) == [{"KeysAccepted": [1.0]}, {"KeysRefused": [1.0]}]


def test_a_payment_callback_is_counted_rejected_or_verified_per_provider(shop, capsys):
    webhook = shop.runtime.functions["WebhookFunction"]
    # One purchase first, so that no function's container loads while these are counted (a load
    # points the process's stdout at the real one for a moment: infra/local/lambdas.py).
    warm = shop.buy(shop.new_product(new_codes(1)))
    assert shop.callback(shop.payment_event(warm)).status_code == 200
    shop.wait_for(warm, "DELIVERED")
    capsys.readouterr()

    answer = webhook.invoke(event("http_sandbox_callback", body='{"forged": true}'))

    assert 400 <= answer["statusCode"] < 500
    (document,) = published(capsys.readouterr().out, "webhook")
    assert document["provider"] == "sandbox" and document["CallbacksRejected"] == [1.0]
    assert "CallbacksVerified" not in document

    order = shop.buy(shop.new_product(new_codes(1)))
    assert shop.callback(shop.payment_event(order)).status_code == 200

    (document,) = published(capsys.readouterr().out, "webhook")
    assert document["provider"] == "sandbox"
    assert document["CallbacksVerified"] == [1.0] and document["PaymentEventsApplied"] == [1.0]


def test_a_payment_of_the_wrong_amount_raises_the_metric_its_alarm_watches(shop, capsys):
    from infra.local.template import translate

    warm = shop.buy(shop.new_product(new_codes(1)))  # containers loaded before counting (above)
    assert shop.callback(shop.payment_event(warm)).status_code == 200
    shop.wait_for(warm, "DELIVERED")
    order = shop.buy(shop.new_product(new_codes(1)))
    capsys.readouterr()

    answer = shop.callback(shop.payment_event(order, amount=order["total"]["amount"] - 1))

    assert answer.json()["outcome"] == "wrong_amount"
    documents = published(capsys.readouterr().out, "webhook")
    (alarmed,) = [d for d in documents if "PaymentsWrongAmount" in d]
    assert alarmed["PaymentsWrongAmount"] == [1.0] and "provider" not in alarmed  # one metric, any provider
    (dimensions,) = alarmed["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    alarm = translate()["Resources"]["WrongAmountAlarm"]["Properties"]
    assert alarm["MetricName"] == "PaymentsWrongAmount" and alarm["Namespace"] == "miaofa"
    assert dimensions == [d["Name"] for d in alarm["Dimensions"]] == ["service"]
    assert alarm["Dimensions"][0]["Value"] == alarmed["service"] == "webhook"
