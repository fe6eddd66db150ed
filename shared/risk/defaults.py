"""The rules a new shop starts with (docs/risk.md "Defaults"): each one stops a fraud the market
knows, at a threshold an honest buyer of digital goods rarely reaches, and reviews rather than
blocks wherever the signal can be shared by honest people (an address behind a carrier NAT, a device
id two phones compute alike).

Amounts scale with the shop's currency from one figure, FIRST_ORDER_REVIEW_ABOVE (¥500 and its
rough equivalents); a shop in another currency passes its own.
"""

from shared.money import Money
from shared.risk.rules import (
    AmountRule,
    DisposableEmailRule,
    FirstOrderRule,
    PastRefundsRule,
    QuantityRule,
    RiskRules,
    Rule,
    VelocityRule,
)

# A first order above this is looked at by a person: stolen cards and accounts are tried at a new
# shop for as much as the thief dares, and honest first orders of game cards and keys are mostly
# small. Rough equivalents of ¥500, in minor units.
FIRST_ORDER_REVIEW_ABOVE = {
    "CNY": 50_000,
    "HKD": 55_000,
    "USD": 7_000,
    "EUR": 6_500,
    "GBP": 5_500,
    "JPY": 10_000,
}
REVIEW_AT = 60  # two medium signals together (30 + 30) are worth a look
BLOCK_AT = 90  # three together, or one block rule


def default_rules(currency: str = "CNY", first_order_above: int | None = None) -> RiskRules:
    """The starting rules for a shop selling in `currency` (`first_order_above` in its minor units:
    the scale of every amount below; required for a currency FIRST_ORDER_REVIEW_ABOVE lacks)."""
    scale = first_order_above if first_order_above is not None else FIRST_ORDER_REVIEW_ABOVE.get(currency)
    if scale is None:
        raise ValueError(f"no default amounts for {currency}: pass first_order_above in its minor units")

    def money(times: int) -> Money:
        return Money(amount=scale * times, currency=currency)

    rules: list[Rule] = [
        FirstOrderRule(
            id="first-order-large",
            type="first_order",
            above=money(1),
            action="review",
            score=30,
            note="a stolen card's first use at a shop is as large as the thief dares",
        ),
        AmountRule(
            id="order-large",
            type="amount",
            above=money(4),
            action="review",
            score=30,
            note="large orders of codes are resold within minutes; a look costs less than a chargeback",
        ),
        QuantityRule(
            id="quantity-bulk",
            type="quantity",
            above=20,
            action="review",
            score=20,
            note="resellers buy codes in bulk; an honest buyer rarely needs more than 20",
        ),
        VelocityRule(
            id="payer-burst",
            type="velocity",
            kind="payer",
            window=10,
            max_orders=5,
            action="review",
            score=40,
            note="card testing: one card or account paying again and again, under new e-mails and addresses",
        ),
        VelocityRule(
            id="payer-daily-amount",
            type="velocity",
            kind="payer",
            window=1440,
            max_amount=money(10),
            action="review",
            score=30,
            note="a hijacked account drained in many small orders",
        ),
        VelocityRule(
            id="device-burst",
            type="velocity",
            kind="device",
            window=60,
            max_orders=10,
            action="review",
            score=40,
            note="a reseller bot: one device, many e-mails; reviewed, not blocked, as device ids can collide",
        ),
        DisposableEmailRule(
            id="disposable-email",
            type="disposable_email",
            action="review",
            score=30,
            note="a throw-away inbox leaves no buyer to reach if the payment turns out stolen",
        ),
        PastRefundsRule(
            id="refunds-repeated",
            type="past_refunds",
            at_least=2,
            action="review",
            score=30,
            note="two refunds at this shop already: look before delivering again",
        ),
    ]
    return RiskRules(review_at=REVIEW_AT, block_at=BLOCK_AT, rules=tuple(rules))
