"""The whole-cost benchmark's arithmetic (bench/order_cost.py): prices per million orders, and item
sizes and request units as DynamoDB bills them."""

from decimal import Decimal

from bench.order_cost import PRICES, item_size, price, read_units, total


def test_one_of_each_costs_its_list_price_per_million_orders() -> None:
    costs = price({name: Decimal(1) for name in PRICES})
    assert costs["http_requests"] == Decimal("1.00")
    assert costs["ws_connection_minutes"] == Decimal("0.25")
    assert costs["lambda_gb_seconds"] == Decimal("13.3334")
    assert costs["dynamodb_wru"] == Decimal("0.625")
    assert costs["dynamodb_rru"] == Decimal("0.125")
    assert costs["kms_requests"] == Decimal("3.00")
    assert costs["ses_emails"] == Decimal("100.00")
    assert costs["stream_get_records"] == 0
    assert total(costs) - total(costs, email=False) == Decimal("100.00")


def test_an_order_of_one_to_two_kilobytes_costs_two_write_units_and_one_strong_read() -> None:
    order = {"pk": {"S": "ord_1"}, "history": {"L": [{"S": "x" * 200}] * 6}}
    assert 1024 < item_size(order) <= 2048
    assert read_units(item_size(order), consistent=True) == 1
    assert read_units(item_size(order), consistent=False) == Decimal("0.5")
    assert read_units(5000, consistent=True, transactional=True) == 4
