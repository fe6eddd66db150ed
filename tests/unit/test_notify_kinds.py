"""Notify messages carry their kind (shared/queues.py): the queue sends it as the `kind` message
attribute and the notify function dispatches on it, never on the body's fields; a message queued
before kinds existed has none and is read by its body, for one release (docs/decisions.md)."""

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from functions.notify import handler
from shared import notify, queues
from shared.mail import MailRequest
from tests.support import event

EVENT = notify.Notification(
    event_id=notify.event_id("order.paid", "ord_kinds", "t"),
    type="order.paid",
    merchant_id="mer_kinds",
    created_at=datetime(2025, 1, 1, tzinfo=UTC),
    data={"order_id": "ord_kinds"},
)
MAIL = MailRequest(mail="order", order_id="ord_" + "0" * 20)


class FakeSQS:
    def __init__(self) -> None:
        self.sent: list[dict] = []

    def send_message(self, **request) -> None:
        self.sent.append(request)


@pytest.fixture
def sqs(monkeypatch) -> FakeSQS:
    fake = FakeSQS()
    monkeypatch.setattr(queues.aws, "client", lambda service: fake)
    monkeypatch.setattr(queues, "settings", lambda: SimpleNamespace(notify_queue_url="https://sqs/nq"))
    return fake


def received(sent: dict) -> dict:
    """A sent message as the notify function gets it: a record of Lambda's SQS event."""
    attributes = {
        name: {
            "stringValue": value["StringValue"],
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value["DataType"],
        }
        for name, value in sent.get("MessageAttributes", {}).items()
    }
    template = event("sqs_delivery_batch")["Records"][0]
    return {**template, "body": sent["MessageBody"], "messageAttributes": attributes}


def kind_of(record: dict) -> str:
    return queues.notify_kind(record["messageAttributes"], record["body"])


def test_a_merchant_event_is_queued_as_webhook_event_with_the_event_as_its_body(sqs):
    queues.NotifyQueue().send(EVENT)
    (sent,) = sqs.sent
    assert sent["QueueUrl"] == "https://sqs/nq"
    assert sent["MessageBody"].encode() == EVENT.body()  # byte for byte what the merchant gets
    assert kind_of(received(sent)) == "webhook_event"


def test_a_mail_request_is_queued_as_buyer_mail(sqs):
    assert queues.request_mail(MAIL, queues.NotifyQueue())
    (sent,) = sqs.sent
    assert MailRequest.model_validate_json(sent["MessageBody"]) == MAIL
    assert kind_of(received(sent)) == "buyer_mail"


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (EVENT.body().decode(), "webhook_event"),
        (MAIL.model_dump_json(exclude_none=True), "buyer_mail"),
        ("not json", "webhook_event"),  # and then fails as a notification, as it always did
        ("42", "webhook_event"),
    ],
)
def test_a_message_queued_before_kinds_is_read_by_its_body(body, kind):
    assert queues.notify_kind({}, body) == kind


def test_an_unknown_kind_is_refused_not_guessed_from_the_body():
    with pytest.raises(queues.NotANotifyMessage):
        queues.notify_kind({"kind": {"stringValue": "sms", "dataType": "String"}}, MAIL.model_dump_json())


def test_the_notify_function_dispatches_every_kind_on_its_attribute(monkeypatch):
    assert set(handler.BY_KIND) == set(queues.NOTIFY_KINDS)
    handled: list[str] = []
    for kind in queues.NOTIFY_KINDS:
        monkeypatch.setitem(handler.BY_KIND, kind, lambda record, kind=kind: handled.append(kind))
    mail_body_as_event = {
        "MessageBody": MAIL.model_dump_json(),
        "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "webhook_event"}},
    }
    handler._record(SQSRecord(received(mail_body_as_event)))
    assert handled == ["webhook_event"]  # the attribute decides, not the body's `mail` field
