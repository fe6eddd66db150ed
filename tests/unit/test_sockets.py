"""shared/sockets.py speaks API Gateway's management API: a message is one JSON frame, a connection
that is gone (410) is a False, never an error, and anything else is raised for the caller to count."""

import json

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from shared.sockets import Sockets

ENDPOINT = "https://abc123.execute-api.us-east-1.amazonaws.com/live"


@pytest.fixture
def stubbed(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    sockets = Sockets(ENDPOINT)
    with Stubber(sockets._api) as stubber:
        yield sockets, stubber


def test_a_message_is_posted_as_one_json_frame(stubbed):
    sockets, stubber = stubbed
    message = {"type": "order", "order_id": "ord_1", "status": "PAID"}
    stubber.add_response(
        "post_to_connection", {}, {"ConnectionId": "c1", "Data": json.dumps(message).encode()}
    )
    assert sockets.post("c1", message) is True
    stubber.assert_no_pending_responses()


def test_a_gone_connection_is_false_and_closing_it_is_done(stubbed):
    sockets, stubber = stubbed
    stubber.add_client_error("post_to_connection", service_error_code="GoneException", http_status_code=410)
    stubber.add_client_error("delete_connection", service_error_code="GoneException", http_status_code=410)
    assert sockets.post("c1", {"type": "order"}) is False
    sockets.close("c1")


def test_any_other_failure_is_raised(stubbed):
    sockets, stubber = stubbed
    stubber.add_client_error(
        "post_to_connection", service_error_code="LimitExceededException", http_status_code=429
    )
    with pytest.raises(ClientError):
        sockets.post("c1", {"type": "order"})
