"""The ledger's fold: what each send event says about its command (pure, table-tested)."""

from __future__ import annotations

import pytest

from mmbus.contracts.envelope import Message
from mmbus.contracts.send_events import Decision, SendAccepted
from services.sender import results
from services.sender.ledger import Ledger
from services.sender.routing import Reject
from tests.projections import events as ev

CID = ev.cid(1)


class _LaterAccepted(SendAccepted):
    """A subclass (a later version's model, say) is folded as its base is."""


CASES = [
    ("an attempt opens", [ev.attempted(1)], (1, 0, False)),
    ("accepted ends it", [ev.attempted(1), ev.accepted(1)], (1, 0, True)),
    ("failed ends it", [ev.attempted(1), ev.failed(1)], (1, 0, True)),
    ("suppressed ends it", [ev.suppressed(1)], (0, 0, True)),
    ("indeterminate ends it", [ev.attempted(1), ev.indeterminate(1)], (1, 0, True)),
    (
        "a closed attempt is not open, in either order",
        [results.attempt_failed(ev.command(1), ev.attempted(1), ev.at(2)), ev.attempted(1)],
        (1, 1, False),
    ),
    (
        "a subclass of a result ends it too",
        [ev.attempted(1), _LaterAccepted.model_validate(ev.accepted(1).model_dump())],
        (1, 0, True),
    ),
    ("a status says nothing here", [ev.status(1, "read", 5)], (0, 0, False)),
]


def test_a_rejection_ends_its_command_and_is_remembered_by_its_id() -> None:
    reject = Reject("template_unknown", "no such template", Decision(endpoint=None))
    event = results.rejected(ev.command(1), reject, ev.at(1))
    ledger = Ledger()
    ledger.apply(event)
    assert ledger.get(CID).terminal
    assert ledger.rejected(event.id)


@pytest.mark.parametrize(("events", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_fold(events: list[Message], expected: tuple[int, int, bool]) -> None:
    ledger = Ledger()
    for event in events:
        ledger.apply(event)
    entry = ledger.get(CID)
    assert (entry.attempts, entry.closed, entry.terminal) == expected
    assert entry.open_attempt == (expected[0] > expected[1])
