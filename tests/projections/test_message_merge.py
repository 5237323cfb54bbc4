"""The merge's shortcuts for one new fact give what its general rule gives.

``_history`` and ``_times`` take a shortcut when the fact brings one entry (every
event does); ``evolved`` builds a state without the constructor. Each is checked
against the rule it stands for, spelt out here the slow way.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.projections.message import MessageState, Step, _history, _times, evolved, state_with
from tests.projections.events import T0

TYPES = ("message.status", "send.accepted")
NAMES = ("accepted", "delivered", "read", "requested", "sent")

instants = st.integers(min_value=0, max_value=5).map(lambda s: T0 + timedelta(seconds=s))
steps = st.builds(
    Step,
    instants,
    st.sampled_from([f"id{n}" for n in range(6)]),
    st.sampled_from(TYPES),
    st.sampled_from(NAMES),
)
entries = st.tuples(st.sampled_from(NAMES), instants)


def history_rule(steps_seen: list[Step]) -> tuple[Step, ...]:
    """One line per event id, its first (smallest) step, in order."""
    first: dict[str, Step] = {}
    for step in steps_seen:
        if step.id not in first or step < first[step.id]:
            first[step.id] = step
    return tuple(sorted(first.values()))


def times_rule(seen: list[tuple[str, datetime]]) -> tuple[tuple[str, datetime], ...]:
    """The earliest time each state was reached, by state name."""
    earliest: dict[str, datetime] = {}
    for name, when in seen:
        if name not in earliest or when < earliest[name]:
            earliest[name] = when
    return tuple(sorted(earliest.items()))


@settings(max_examples=300, deadline=None)  # a shared machine: no timing
@given(st.lists(steps, max_size=8), steps)
def test_history_one_new_step_is_the_rule(before: list[Step], new: Step) -> None:
    folded: tuple[Step, ...] = ()
    for step in before:
        folded = _history(folded, (step,))
    assert folded == history_rule(before)
    assert _history(folded, (new,)) == history_rule([*before, new])


@settings(max_examples=300, deadline=None)
@given(st.lists(entries, max_size=8), entries)
def test_times_one_new_entry_is_the_rule(
    before: list[tuple[str, datetime]], new: tuple[str, datetime]
) -> None:
    folded: tuple[tuple[str, datetime], ...] = ()
    for entry in before:
        folded = _times(folded, (entry,))
    assert folded == times_rule(before)
    assert _times(folded, (new,)) == times_rule([*before, new])


@settings(deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["wamid", "status", "outcome", "recipient", "campaign_id"]),
        st.text(max_size=5) | st.none(),
        max_size=4,
    )
)
def test_evolved_is_what_the_constructor_makes(changes: dict[str, Any]) -> None:
    state = state_with(key="k", command_id="c", wamid="w.1", status="sent")
    built = evolved(state, changes)
    expected = MessageState(**{**vars(state), **changes})
    assert built == expected
    assert list(vars(built).items()) == list(vars(expected).items())
    assert vars(state) == vars(state_with(key="k", command_id="c", wamid="w.1", status="sent"))
