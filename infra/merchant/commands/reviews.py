"""`miaofa-merchant reviews`: the orders in review, the longest waiting first (why each is there, and
when a risk review's product policy takes over); approve one (delivered) or reject it (refunded)."""

from datetime import UTC, datetime
from typing import Any

from infra.cli_support import Parser, count_of
from infra.merchant.api import quoted
from infra.merchant.commands import Command, price

LISTED = 100  # the API lists at most this many, the longest waiting


class Reviews(Command):
    def list(self) -> int:
        body = self.api.call("GET", "/merchant/reviews", self.console, "reviews").json()
        waiting: list[dict[str, Any]] = body.get("reviews", []) if isinstance(body, dict) else []
        if self.args.json:
            self.console.json({"reviews": waiting})
            return 0
        now = self.console.now()
        self.console.print(
            *(
                f"{r['order_id']}  {r['product_id']}  x{r['quantity']:<3} {price(r['total'])}  "
                f"in review since {_shown(r['entered_at'])}  {_why(r, now)}"
                for r in waiting
            ),
            f"{count_of(len(waiting), 'order')} in review",
        )
        if len(waiting) >= LISTED:
            self.console.note(f"the {LISTED} waiting longest are listed: decide them to see the others")
        return 0

    def approve(self) -> int:
        """Approving again answers the same: safe to retry."""
        return self._decide("approve", {})

    def reject(self) -> int:
        """Rejecting again answers the same (one refund): safe to retry."""
        return self._decide("reject", {"reason": self.args.reason} if self.args.reason else {})

    def _decide(self, decision: str, body: dict[str, Any]) -> int:
        answer = self.api.json_call(
            "POST",
            f"/merchant/reviews/{quoted(self.args.id)}/{decision}",
            self.console,
            f"{decision} {self.args.id}",
            body,
        )
        refund = f"  refund {answer['refund_id']}" if answer.get("refund_id") else ""
        self.show(answer, lambda: [f"{answer['order_id']}  {answer['decision']}  {answer['status']}{refund}"])
        return 0


def _why(review: dict[str, Any], now: datetime) -> str:
    decision = review.get("decision") or {}
    decided_by = (decision.get("risk") or {}).get("decided_by")  # shared/screening.py's record
    if review.get("why") != "risk" or not review.get("due_at"):
        return "held for you (not delivered; no deadline)"
    due = datetime.fromisoformat(review["due_at"])
    minutes = int(abs((due - now).total_seconds()) // 60)
    when = f"policy in {minutes} min" if due > now else f"policy due {minutes} min ago"
    return f"risk{f' ({decided_by})' if decided_by else ''}, {when}"


def _shown(text: str) -> str:
    """A time as `2026-05-01 08:30:00`, in UTC as every time the CLI prints."""
    return datetime.fromisoformat(text).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def register(commands: Any, where: Parser) -> None:
    reviews = commands.add_parser(
        "reviews", help="orders in review: list, approve (deliver), reject (refund)"
    )
    reviews.set_defaults(area=Reviews)
    actions = reviews.add_subparsers(dest="action", required=True, metavar="{list,approve,reject}")
    actions.add_parser(
        "list", parents=[where], help="the longest waiting first: order, product, total, since, why"
    ).set_defaults(run=Reviews.list)
    one = Parser(add_help=False)
    one.add_argument("id", metavar="ID", help="the order (ord_…)")
    actions.add_parser(
        "approve", parents=[where, one], help="deliver the order (safe to run again)"
    ).set_defaults(run=Reviews.approve)
    rejected = actions.add_parser("reject", parents=[where, one], help="refund the order (safe to run again)")
    rejected.add_argument("--reason", metavar="TEXT", help="kept with the refund (at most 200 characters)")
    rejected.set_defaults(run=Reviews.reject)
