"""The order state machine (one table) and the hash-chained order history."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import StateConflict
from shared.orders import TRANSITIONS, Event, Status, chain_event, next_status, verify_history

ORDER_ID = "ord_0001"
OTHER_ORDER_ID = "ord_0002"
T0 = datetime(2026, 11, 22, 4, 0, 0, tzinfo=UTC)

# ---------------------------------------------------------------- state machine

# The state machine as specified, written out by hand so that a row dropped from (or added to) the
# code's table is caught rather than silently followed by the table-driven cases below.
SPECIFIED_MOVES = [
    (Status.PENDING_PAYMENT, "payment.succeeded", Status.PAID),
    (Status.PENDING_PAYMENT, "reservation.expired", Status.EXPIRED),
    (Status.PENDING_PAYMENT, "refund.requested", Status.REFUNDING),  # paid past the daily limit
    (Status.EXPIRED, "payment.succeeded", Status.PAID),
    (Status.EXPIRED, "refund.requested", Status.REFUNDING),
    (Status.PAID, "order.delivered", Status.DELIVERED),
    (Status.PAID, "review.held", Status.IN_REVIEW),
    (Status.PAID, "risk.review", Status.IN_REVIEW),  # the risk engine's review, due at a deadline
    (Status.PAID, "refund.requested", Status.REFUNDING),
    (Status.IN_REVIEW, "review.released", Status.PAID),
    (Status.IN_REVIEW, "refund.requested", Status.REFUNDING),
    (Status.REFUNDING, "refund.confirmed", Status.REFUNDED),
    (Status.DELIVERED, "claim.opened", Status.CLAIMED),
    (Status.CLAIMED, "claim.replaced", Status.REPLACED),
    (Status.CLAIMED, "refund.confirmed", Status.REFUNDED),
    # Merchant-initiated refund of a delivered order, and refunds the provider reports on its own
    # (a dashboard refund, or a refund arriving before the payment's callback): docs/payments.md.
    (Status.DELIVERED, "refund.requested", Status.REFUNDING),
    (Status.PENDING_PAYMENT, "refund.confirmed", Status.REFUNDED),
    (Status.EXPIRED, "refund.confirmed", Status.REFUNDED),
    (Status.PAID, "refund.confirmed", Status.REFUNDED),
    (Status.IN_REVIEW, "refund.confirmed", Status.REFUNDED),
    (Status.DELIVERED, "refund.confirmed", Status.REFUNDED),
]

TABLE_EVENTS = sorted({event for _, event in TRANSITIONS})
# Event names the table never takes in any state (history-only or unknown), to make sure they conflict too.
FOREIGN_EVENTS = ["order.created", "payment.failed", "", "PAYMENT.SUCCEEDED", "payment.succeeded "]

MOVES_NOT_IN_TABLE = [
    (status, event)
    for status in Status
    for event in TABLE_EVENTS + FOREIGN_EVENTS
    if (status, event) not in TRANSITIONS
]


def test_the_table_holds_exactly_the_specified_moves():
    specified = {(current, event): entered for current, event, entered in SPECIFIED_MOVES}
    assert specified == TRANSITIONS


@pytest.mark.parametrize(
    ("current", "event", "entered"), SPECIFIED_MOVES, ids=[f"{c}+{e}" for c, e, _ in SPECIFIED_MOVES]
)
def test_every_specified_move_enters_its_target_state(current, event, entered):
    assert next_status(current, event) is entered


@pytest.mark.parametrize(
    ("current", "event", "entered"),
    [(current, event, entered) for (current, event), entered in TRANSITIONS.items()],
    ids=[f"{current}+{event}" for current, event in TRANSITIONS],
)
def test_every_move_in_the_table_enters_its_target_state(current, event, entered):
    assert next_status(current, event) is entered


@pytest.mark.parametrize("final", [Status.REFUNDED, Status.REPLACED])
def test_refunded_and_replaced_orders_have_no_way_out(final):
    assert not [event for current, event in TRANSITIONS if current is final]


@pytest.mark.parametrize(
    ("current", "event"), MOVES_NOT_IN_TABLE, ids=[f"{s}+{e!r}" for s, e in MOVES_NOT_IN_TABLE]
)
def test_every_move_not_in_the_table_is_a_state_conflict(current, event):
    with pytest.raises(StateConflict) as raised:
        next_status(current, event)
    assert raised.value.status == 409
    assert raised.value.code == "state_conflict"


def test_the_generated_conflict_cases_cover_the_named_representatives():
    """Guard against the generator above silently producing too few cases."""
    for representative in [
        (Status.DELIVERED, "payment.succeeded"),
        (Status.PENDING_PAYMENT, "order.delivered"),
        *[(Status.REFUNDED, event) for event in TABLE_EVENTS],
    ]:
        assert representative in MOVES_NOT_IN_TABLE
    assert len(MOVES_NOT_IN_TABLE) == len(Status) * (len(TABLE_EVENTS) + len(FOREIGN_EVENTS)) - len(
        TRANSITIONS
    )


def test_a_delivered_order_cannot_be_paid_again():
    with pytest.raises(StateConflict):
        next_status(Status.DELIVERED, "payment.succeeded")


def test_an_unpaid_order_cannot_be_delivered():
    with pytest.raises(StateConflict):
        next_status(Status.PENDING_PAYMENT, "order.delivered")


@pytest.mark.parametrize("event", TABLE_EVENTS)
def test_a_refunded_order_takes_no_event_of_the_table(event):
    with pytest.raises(StateConflict):
        next_status(Status.REFUNDED, event)


def test_an_event_name_is_matched_exactly_not_case_insensitively():
    with pytest.raises(StateConflict):
        next_status(Status.PENDING_PAYMENT, "Payment.Succeeded")


# ---------------------------------------------------------------- hash-chained history


def build_history(order_id: str, entries: list[tuple[str, dict]], start: datetime = T0) -> list[Event]:
    history: list[Event] = []
    for offset, (type_, data) in enumerate(entries):
        history.append(chain_event(order_id, history, type_, start + timedelta(seconds=offset), data))
    return history


ENTRIES = [
    ("order.created", {"quantity": 2}),
    ("payment.succeeded", {"payment_id": "pay_1", "amount": 3998}),
    ("order.delivered", {"codes": 2}),
    ("claim.opened", {"reason": "code already used"}),
]


@pytest.fixture
def history() -> list[Event]:
    return build_history(ORDER_ID, ENTRIES)


def test_a_history_built_with_chain_event_verifies(history):
    assert verify_history(ORDER_ID, history)


def test_the_first_event_is_bound_to_its_order_id(history):
    assert not verify_history(OTHER_ORDER_ID, history)


def test_a_history_survives_the_json_round_trip_used_for_storage(history):
    reloaded = [Event.model_validate_json(event.model_dump_json()) for event in history]
    assert verify_history(ORDER_ID, reloaded)


def test_appending_with_chain_event_keeps_the_history_valid(history):
    extended = [*history, chain_event(ORDER_ID, history, "refund.confirmed", T0 + timedelta(hours=1))]
    assert verify_history(ORDER_ID, extended)


def test_chain_event_without_data_hashes_like_empty_data(history):
    without = chain_event(ORDER_ID, history, "refund.confirmed", T0)
    empty = chain_event(ORDER_ID, history, "refund.confirmed", T0, {})
    assert without.data == {}
    assert without.hash == empty.hash


def replaced(history: list[Event], index: int, **changes) -> list[Event]:
    edited = list(history)
    edited[index] = history[index].model_copy(update=changes)
    return edited


@pytest.mark.parametrize("index", range(len(ENTRIES)))
@pytest.mark.parametrize(
    "new_data",
    [{"quantity": 3}, {}, {"quantity": 2, "extra": True}],
    ids=["changed value", "emptied", "added key"],
)
def test_editing_an_events_data_is_detected(history, index, new_data):
    assert history[index].data != new_data  # the edit really changes something
    assert not verify_history(ORDER_ID, replaced(history, index, data=new_data))


@pytest.mark.parametrize("index", range(len(ENTRIES)))
def test_editing_an_events_type_is_detected(history, index):
    assert not verify_history(ORDER_ID, replaced(history, index, type="refund.confirmed"))


@pytest.mark.parametrize("index", range(len(ENTRIES)))
@pytest.mark.parametrize("shift", [timedelta(seconds=1), timedelta(microseconds=1), timedelta(days=-1)])
def test_editing_an_events_timestamp_is_detected(history, index, shift):
    assert not verify_history(ORDER_ID, replaced(history, index, at=history[index].at + shift))


@pytest.mark.parametrize("index", [0, 1, 2], ids=["first", "middle-1", "middle-2"])
def test_removing_an_event_before_the_last_breaks_the_chain_itself(history, index):
    assert not verify_history(ORDER_ID, history[:index] + history[index + 1 :])


@pytest.mark.parametrize("index", [0, 1, 2, 3], ids=["first", "middle-1", "middle-2", "last"])
def test_removing_any_event_is_detected_against_the_stored_head(history, index):
    assert not verify_history(ORDER_ID, history[:index] + history[index + 1 :], head=history[-1].hash)


def test_without_the_head_a_history_cut_short_at_its_end_is_still_a_valid_chain(history):
    """Why the head is stored apart from the history (see verify_history's docstring)."""
    assert verify_history(ORDER_ID, history[:-1])


def test_a_history_verifies_against_its_own_head(history):
    assert verify_history(ORDER_ID, history, head=history[-1].hash)


@pytest.mark.parametrize("head", ["0" * 64, "", "not-a-hash"])
def test_a_history_does_not_verify_against_another_head(history, head):
    assert not verify_history(ORDER_ID, history, head=head)


def test_an_empty_history_does_not_verify_against_a_head(history):
    assert not verify_history(ORDER_ID, [], head=history[-1].hash)


def test_a_rewritten_last_event_with_a_recomputed_hash_is_detected_only_against_the_head(history):
    forged_last = chain_event(ORDER_ID, history[:-1], "refund.confirmed", history[-1].at)
    forged = [*history[:-1], forged_last]
    assert verify_history(ORDER_ID, forged)  # a self-consistent chain on its own
    assert not verify_history(ORDER_ID, forged, head=history[-1].hash)


@pytest.mark.parametrize(("i", "j"), [(0, 1), (1, 2), (2, 3), (0, 3)])
def test_reordering_two_events_is_detected(history, i, j):
    reordered = list(history)
    reordered[i], reordered[j] = reordered[j], reordered[i]
    assert not verify_history(ORDER_ID, reordered)


def test_appending_an_event_chained_for_another_order_is_detected(history):
    # The other order has the very same entries, so only the order id (the genesis) differs.
    other_history = build_history(OTHER_ORDER_ID, ENTRIES)
    foreign = chain_event(OTHER_ORDER_ID, other_history, "refund.confirmed", T0 + timedelta(hours=1))
    assert not verify_history(ORDER_ID, [*history, foreign])


def test_an_event_hash_from_another_order_does_not_fit_the_same_position(history):
    other_history = build_history(OTHER_ORDER_ID, ENTRIES)
    spliced = [*history[:2], other_history[2], *history[3:]]
    assert not verify_history(ORDER_ID, spliced)


# ---------------------------------------------------------------- properties

json_scalars = (
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63) | st.text(max_size=20)
)
entries = st.lists(
    st.tuples(
        st.text(min_size=1, max_size=30), st.dictionaries(st.text(max_size=10), json_scalars, max_size=4)
    ),
    min_size=2,
    max_size=8,
)
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@given(entries=entries, start=instants)
def test_property_any_chain_built_with_chain_event_verifies(entries, start):
    assert verify_history(ORDER_ID, build_history(ORDER_ID, entries, start))


@given(entries=entries, start=instants, data=st.data())
def test_property_swapping_two_distinct_positions_breaks_the_chain(entries, start, data):
    history = build_history(ORDER_ID, entries, start)
    i, j = data.draw(
        st.lists(st.integers(0, len(history) - 1), min_size=2, max_size=2, unique=True), label="positions"
    )
    history[i], history[j] = history[j], history[i]
    assert not verify_history(ORDER_ID, history)
