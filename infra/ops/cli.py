"""`miaofa-ops`: inspect, replay and purge dead-letter queues; read reconciliation reports; open a
merchant's shop and manage its API keys; on the local runtime only, make deliveries fail on purpose.

Exit codes: 0 done, 1 refused or failed, 2 usage (bad options, no target), 130 interrupted.
"""

import argparse
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError
from pynamodb.exceptions import PynamoDBException

from infra.cli_support import (
    Console,
    Parser,
    Refused,
    UsageError,
    add_json,
    add_local_file,
    count_of,
    exit_code,
    numeric,
)
from infra.ops import views
from infra.ops.dlq import DeadLetter, DeadLetterQueue
from infra.ops.pacing import RateLimiter
from infra.ops.selection import Selection, parse_duration
from infra.ops.target import Target, TargetError, resolve
from shared.errors import DomainError
from shared.ids import is_id
from shared.orders import Order
from shared.shops import check_name
from shared.store.keys import KeyStore
from shared.store.merchants import MerchantStore
from shared.store.ops import OpsStore
from shared.store.orders import OrderStore

PROG = "miaofa-ops"
QUEUES = {"delivery": ("DeliveryQueue", "DeliveryDLQ"), "notify": ("NotifyQueue", "NotifyDLQ")}


class Commands:
    def __init__(self, args: argparse.Namespace, target: Target, console: Console) -> None:
        self.args, self.target, self.console = args, target, console
        self._orders: dict[str, Order | None] = {}

    # ---- dlq
    def dead_letters(self) -> DeadLetterQueue:
        return DeadLetterQueue(self.target.sqs(), self.target.queue(QUEUES[self.args.queue][1]))

    def order(self, letter: DeadLetter) -> Order | None:
        order_id = letter.order_id
        if order_id is None:
            return None
        if order_id not in self._orders:
            self._orders[order_id] = OrderStore(table=self.target.table("OrdersTable")).get(order_id)
        return self._orders[order_id]

    def peek(self, dlq: DeadLetterQueue) -> list[DeadLetter]:
        """Every message, made visible again as soon as it is read."""
        letters: list[DeadLetter] = []
        try:
            letters = dlq.take_all(dlq.hold_for(0))
        finally:
            dlq.release(letters)
        return letters

    def dlq_list(self) -> int:
        dlq = self.dead_letters()
        now = self.console.now()
        rows = [views.letter_row(letter, self.order(letter), now) for letter in self.peek(dlq)]
        if self.args.json:
            self.console.json(rows)
            return 0
        if rows:
            self.console.print(views.list_header(), *(views.list_line(row) for row in rows))
        self.console.print(f"{count_of(len(rows), 'message')} in {dlq.name}")
        return 0

    def dlq_show(self) -> int:
        dlq = self.dead_letters()
        wanted = self.args.id
        found = [letter for letter in self.peek(dlq) if wanted in (letter.message_id, letter.order_id)]
        if not found:
            raise Refused(f"no message with message id or order id {wanted} in {dlq.name}")
        now = self.console.now()
        details = [views.letter_details(letter, self.order(letter), now) for letter in found]
        if self.args.json:
            self.console.json(details)
            return 0
        for n, one in enumerate(details):
            self.console.print(*([""] if n else []), *views.details_lines(one))
        return 0

    def dlq_replay(self) -> int:
        selection: Selection = self.args.selection
        source_id, _ = QUEUES[self.args.queue]
        source = self.target.queue(source_id)
        dlq = self.dead_letters()
        # Hold the messages long enough to replay them all at the chosen rate.
        letters = dlq.take_all(dlq.hold_for(dlq.count() / self.args.rate))
        replayed: set[str] = set()
        try:
            now = self.console.now()
            # Orders are read for the chosen messages only, unless choosing needs their last error.
            chosen = [
                letter
                for letter in letters
                if selection.matches(letter, self.order(letter) if selection.error else None, now)
            ]
            verb = "would replay" if self.args.dry_run else "replayed"
            limiter = RateLimiter(self.args.rate, self.console.clock, self.console.sleep)
            for n, letter in enumerate(chosen, 1):
                described = self._describe(letter)  # as it was before the replay
                if not self.args.dry_run:
                    limiter.wait()
                    try:
                        dlq.replay(letter, source)
                    except (ClientError, BotoCoreError) as error:
                        self.console.print(f"replayed {len(replayed)} of {len(letters)}: stopped")
                        raise Refused(f"replaying {letter.message_id} failed: {error}") from None
                    replayed.add(letter.message_id)
                self.console.print(f"{verb} {n}/{len(chosen)}  {described}  -> {source_id}")
        finally:
            dlq.release([letter for letter in letters if letter.message_id not in replayed])
        done = len(chosen) if self.args.dry_run else len(replayed)
        self.console.print(
            f"{verb} {done} of {count_of(len(letters), 'message')} in {dlq.name}"
            + (" (dry run: nothing changed)" if self.args.dry_run else "")
        )
        absent = sorted(set(selection.orders) - {letter.order_id for letter in chosen})
        if absent:
            raise Refused(f"no message in {dlq.name} for order {', '.join(absent)}")
        return 0

    def dlq_purge(self) -> int:
        dlq = self.dead_letters()
        before = dlq.count()
        if before == 0:
            self.console.print(f"{dlq.name} is empty; nothing to purge")
            return 0
        if not self.args.yes:
            print(
                f"This deletes {count_of(before, 'message')} in {dlq.name} for good. "
                f"Type the queue name ({dlq.name}) to confirm: ",
                end="",
                file=self.console.err,
                flush=True,
            )
            answer = self.console.stdin.readline().strip()
            if not self.console.stdin.isatty():  # no echoed Enter to end the prompt's line
                print(file=self.console.err)
            if answer != dlq.name:
                raise Refused(f"purge refused: {answer!r} is not {dlq.name}; nothing deleted")
        dlq.purge()
        self.console.print(
            f"purged {dlq.name}: {before} {'message was' if before == 1 else 'messages were'} there "
            "(SQS finishes a purge within 60 seconds)"
        )
        return 0

    # ---- reports
    def reports(self) -> int:
        found = OpsStore(table=self.target.table("OpsTable")).reports("reconcile", limit=self.args.last)
        if self.args.json:
            self.console.json(found)
        elif not found:
            self.console.print("no reconcile reports yet")
        else:
            for n, report in enumerate(found):
                self.console.print(*([""] if n else []), *views.report_lines(report))
        return 0

    # ---- merchant API keys
    def keys_store(self) -> KeyStore:
        return KeyStore(table=self.target.table("ShopTable"))

    def keys_list(self) -> int:
        found = self.keys_store().keys(self.args.merchant)
        rows = [
            {"key_id": r.key_id, "prefix": r.prefix, "created_at": r.created_at.isoformat()} for r in found
        ]
        if self.args.json:
            self.console.json(rows)
        elif not rows:
            self.console.print(f"merchant {self.args.merchant} has no keys")
        else:
            self.console.print(*(f"{r['key_id']}  {r['prefix']}…  created {r['created_at']}" for r in rows))
        return 0

    def keys_create(self) -> int:
        record, api_key = self.keys_store().create(self.args.merchant, live=self.args.live)
        self._show_new_key(record.key_id, api_key)
        return 0

    def keys_rotate(self) -> int:
        record, api_key = self.keys_store().rotate(self.args.merchant, self.args.key)
        self._show_new_key(record.key_id, api_key, replaced=self.args.key)
        return 0

    def keys_revoke(self) -> int:
        record = self.keys_store().revoke(self.args.merchant, self.args.key)
        self.console.print(
            f"revoked {record.key_id} ({record.prefix}…); API Gateway may accept it for up to 5 more minutes"
        )
        return 0

    def _show_new_key(self, key_id: str, api_key: str, replaced: str | None = None) -> None:
        """The key goes to stdout alone (for `KEY=$(miaofa-ops keys create …)`), the rest to stderr."""
        self.console.print(api_key)
        done = f"new key {key_id}" + (f", {replaced} revoked" if replaced else "")
        self.console.note(f"{done}; it is shown only now: store it safely")

    # ---- merchants
    def merchants_create(self) -> int:
        table = self.target.table("ShopTable")
        store = MerchantStore(table=table, codes_key_id=self.target.codes_key_id())
        merchant_id, api_key = store.create_merchant(self.args.name, live=self.args.live)
        (record,) = KeyStore(table=table).keys(merchant_id)
        if self.args.json:
            self.console.json(
                {
                    "merchant_id": merchant_id,
                    "name": self.args.name,
                    "key_id": record.key_id,
                    "api_key": api_key,
                }
            )
        else:
            self.console.print(f"merchant_id  {merchant_id}", f"api_key      {api_key}")
        self.console.note(
            f"new merchant {merchant_id} ({self.args.name}) in {self.target.where}, key {record.key_id}; "
            "the key is shown only now: store it safely (miaofa-merchant --key, or MIAOFA_MERCHANT_KEY)"
        )
        return 0

    # ---- local runtime switches
    def local_fail_deliveries(self) -> int:
        """Sets the number of orders to fail (not adds to it): safe to run again."""
        url, secret = self.target.local_url, self.target.local_secret
        if not (url and secret):
            raise UsageError(
                f"{PROG} local fail-deliveries: {self.target.where} has no url or sandbox_secret; restart `make run`"
            )
        body = None if self.args.count is None else json.dumps({"count": self.args.count}).encode()
        request = urllib.request.Request(  # noqa: S310 - the local runtime's own http://127.0.0.1 URL
            f"{url}/_local/faults/deliveries",
            data=body,
            method="GET" if body is None else "POST",
            headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                state = json.loads(response.read())
        except urllib.error.HTTPError as error:
            with error:
                raise Refused(
                    f"the local runtime refused: {error.code} {error.read().decode()[:200]}"
                ) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            raise Refused(
                f"no answer from the local runtime at {url}: {reason} (is `make run` still running?)"
            ) from None
        if self.args.json:
            self.console.json(state)
            return 0
        remaining, failing = state["remaining"], state["failing"]
        self.console.print(
            f"the next {count_of(remaining, 'order')} to be delivered will fail until dead-lettered, "
            "then deliver on their next try (miaofa-ops dlq replay)"
            if remaining
            else "no further order will be chosen to fail",
            *([f"failing until dead-lettered: {', '.join(failing)}"] if failing else []),
        )
        return 0

    # ---- helpers
    def _describe(self, letter: DeadLetter) -> str:
        order = self.order(letter)
        if letter.order_id is None:
            return f"{letter.message_id}  {views.NOT_DELIVERY}"
        if order is None:
            state = views.UNKNOWN_ORDER
        elif order.delivery_error:
            state = f"({order.status.value}, last error {order.delivery_error})"
        else:
            state = f"({order.status.value})"
        return f"{letter.message_id}  order {letter.order_id} {state}"


def selection_from(args: argparse.Namespace) -> Selection:
    """What `dlq replay` takes; checked before anything is read."""
    selection = Selection(
        everything=args.all, orders=tuple(args.order), older_than=args.older_than, error=args.error
    )
    if selection.empty:
        raise UsageError(
            f"{PROG} dlq replay: choose what to replay: --all, --order ID, --older-than, --error"
        )
    if args.all and (args.order or args.older_than is not None or args.error):
        raise UsageError(
            f"{PROG} dlq replay: --all replays everything; do not combine it with other selectors"
        )
    return selection


def _duration(text: str) -> Any:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    return numeric(kind, lambda value: value <= 0, "must be more than 0: {text}")


def build_parser() -> argparse.ArgumentParser:
    where = Parser(add_help=False)
    add_local_file(where)
    where.add_argument("--stack", metavar="NAME", help="work on this deployed CloudFormation stack instead")
    where.add_argument("--region", help="the stack's AWS region (default: your AWS configuration's)")
    queue = Parser(add_help=False)
    queue.add_argument(
        "--queue", choices=sorted(QUEUES), default="delivery", help="which DLQ (default: delivery)"
    )
    as_json = Parser(add_help=False)
    add_json(as_json)

    parser = Parser(
        prog=PROG, description="Dead-letter queues, reconciliation reports, merchants and their API keys."
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="{dlq,reports,keys,merchants,local}"
    )
    dlq = commands.add_parser("dlq", help="inspect, replay or purge a dead-letter queue")
    actions = dlq.add_subparsers(dest="action", required=True, metavar="{list,show,replay,purge}")
    common = [where, queue]

    actions.add_parser(
        "list", parents=[*common, as_json], help="every message, with its order's state"
    ).set_defaults(run=Commands.dlq_list)
    show = actions.add_parser("show", parents=[*common, as_json], help="one message and its order in full")
    show.add_argument("id", metavar="ID", help="a message id or an order id")
    show.set_defaults(run=Commands.dlq_show)

    replay = actions.add_parser("replay", parents=common, help="send messages back to their source queue")
    replay.add_argument("--all", action="store_true", help="every message")
    replay.add_argument(
        "--order", action="append", default=[], metavar="ID", help="this order's messages (repeatable)"
    )
    replay.add_argument(
        "--older-than", type=_duration, metavar="DURATION", help="sent longer ago than this: 30s, 10m, 2h, 1d"
    )
    replay.add_argument(
        "--error", metavar="TEXT", help="the order's last delivery error contains TEXT (any case)"
    )
    replay.add_argument("--dry-run", action="store_true", help="show what would be replayed; change nothing")
    replay.add_argument(
        "--rate",
        type=_positive(float),
        default=10.0,
        metavar="N",
        help="messages per second (default: %(default)s)",
    )
    replay.set_defaults(run=Commands.dlq_replay)

    purge = actions.add_parser("purge", parents=common, help="delete every message (asks first)")
    purge.add_argument("--yes", action="store_true", help="do not ask for the queue name")
    purge.set_defaults(run=Commands.dlq_purge)

    reports = commands.add_parser("reports", parents=[where, as_json], help="the last reconcile reports")
    reports.add_argument(
        "--last", type=_positive(int), default=5, metavar="N", help="how many (default: %(default)s)"
    )
    reports.set_defaults(run=Commands.reports)

    keys = commands.add_parser("keys", help="a merchant's API keys: list, create, rotate, revoke")
    key_actions = keys.add_subparsers(dest="action", required=True, metavar="{list,create,rotate,revoke}")
    merchant = Parser(add_help=False)
    merchant.add_argument(
        "--merchant", required=True, type=_id("mer"), metavar="ID", help="the merchant (mer_…)"
    )
    key_actions.add_parser(
        "list", parents=[where, merchant, as_json], help="the merchant's keys (never the keys)"
    ).set_defaults(run=Commands.keys_list)
    create = key_actions.add_parser("create", parents=[where, merchant], help="a new key, printed once")
    create.add_argument("--live", action="store_true", help="an mk_live_ key (default: mk_test_)")
    create.set_defaults(run=Commands.keys_create)
    for name, run, text in (
        ("rotate", Commands.keys_rotate, "a new key, then this one revoked"),
        ("revoke", Commands.keys_revoke, "this key stops working"),
    ):
        action = key_actions.add_parser(name, parents=[where, merchant], help=text)
        action.add_argument("--key", required=True, type=_id("key"), metavar="ID", help="the key (key_…)")
        action.set_defaults(run=run)

    local = commands.add_parser("local", help="the local runtime's switches (make run only, never a stack)")
    local_actions = local.add_subparsers(dest="action", required=True, metavar="{fail-deliveries}")
    failing = local_actions.add_parser(
        "fail-deliveries",
        parents=[where, as_json],
        help="make the next N orders' deliveries fail until they are dead-lettered (safe to run again)",
        description="Make the next N orders the deliver function tries fail every attempt until they "
        "used their retries and are in DeliveryDLQ; their next try (dlq replay) delivers them. "
        "Sets N (does not add to it); without --count, shows the state. Local runtime only.",
    )
    failing.add_argument(
        "--count",
        type=numeric(int, lambda n: not 0 <= n <= 1000, "must be from 0 (off) to 1000: {text}"),
        metavar="N",
        help="how many orders (0: choose no more)",
    )
    failing.set_defaults(run=Commands.local_fail_deliveries)

    merchants = commands.add_parser("merchants", help="open a shop: a new merchant and its first API key")
    merchant_actions = merchants.add_subparsers(dest="action", required=True, metavar="{create}")
    opened = merchant_actions.add_parser(
        "create", parents=[where, as_json], help="a new merchant; prints its id and its first key, once"
    )
    opened.add_argument("--name", required=True, type=_shop_name, help="the shop's name, as buyers see it")
    opened.add_argument("--live", action="store_true", help="an mk_live_ key (default: mk_test_)")
    opened.set_defaults(run=Commands.merchants_create)
    return parser


def _shop_name(text: str) -> str:
    try:
        return check_name(text)
    except ValidationError as error:
        raise argparse.ArgumentTypeError(f"{error.errors()[0]['msg']}: {text!r}") from None


def _id(prefix: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if not is_id(text, prefix):
            raise argparse.ArgumentTypeError(f"not a {prefix}_ id: {text!r}")
        return text

    return parse


def main(
    argv: Sequence[str] | None = None, *, target: Target | None = None, console: Console | None = None
) -> int:
    """Run one command; returns the exit code. `target` replaces --local-file/--stack (tests)."""
    console = console or Console()
    return exit_code(PROG, console, partial(_command, argv, target, console))


def _command(argv: Sequence[str] | None, target: Target | None, console: Console) -> int:
    """The command, its target's and AWS's failures said as a usage problem or a refusal."""
    chosen = target
    try:
        args = build_parser().parse_args(argv)
        if args.run is Commands.dlq_replay:
            args.selection = selection_from(args)
        if args.command == "local" and (args.stack or (target is not None and target.endpoint is None)):
            raise UsageError(
                f"{PROG} local: works only against the local runtime (make run); "
                "a deployed stack's deliveries are never failed on purpose"
            )
        chosen = chosen or resolve(args.local_file, args.stack, args.region)
        chosen.use()
        return int(args.run(Commands(args, chosen, console)))
    except TargetError as error:
        raise UsageError(f"{PROG}: {error}") from None
    except ClientError as error:
        problem = error.response.get("Error", {})
        raise Refused(f"AWS refused: {problem.get('Code')}: {problem.get('Message')}") from None
    except BotoCoreError as error:
        hint = " (is `make run` still running?)" if chosen and chosen.endpoint else ""
        raise Refused(f"{error}{hint}") from None
    except DomainError as error:
        raise Refused(error.message) from None
    except PynamoDBException as error:
        raise Refused(f"reading DynamoDB failed: {error.cause or error}") from None
