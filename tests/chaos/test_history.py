"""The chaos run's checker finds what it is there to find (a checker that passes
everything would make every chaos run green)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from mmbus.contracts.callback import callback_data
from tests.chaos.driver import Crashed, clear_earlier_run
from tests.chaos.history import Observed, check
from tests.projections import events as ev

WAMIDS = {1: "wamid.1", 3: "wamid.3"}


def sim_message(n: int) -> dict[str, Any]:
    return {
        "wamid": WAMIDS[n],
        "callback_data": callback_data(ev.cid(n), None),
        "endpoint": "marketing_messages",
        "pricing_category": "marketing",
    }


def call(n: int, outcome: str = "accepted", **extra: Any) -> dict[str, Any]:
    payload = {"biz_opaque_callback_data": callback_data(ev.cid(n), None)}
    return {"outcome": outcome, "payload": payload, "code": None, **extra}


def projected(n: int, state: str, wamid: str | None) -> dict[str, Any]:
    return {
        "command_id": ev.cid(n),
        "wamid": wamid,
        "state": state,
        "endpoint": "marketing_messages" if wamid else None,
        "pricing": None,
        "fell_back": False,
    }


def consistent() -> Observed:
    """Three commands: accepted; refused by the API for good; accepted by the API but
    answered after the sender's read timeout (indeterminate, explained)."""
    return Observed(
        commands=frozenset(ev.cid(n) for n in (1, 2, 3)),
        campaign_id="spring",
        send_events=[ev.attempted(1), ev.accepted(1), ev.failed(2), ev.indeterminate(3)],
        sim_messages=[sim_message(1), sim_message(3)],
        sim_calls=[
            call(1),
            {**call(2, "rejected"), "code": 132001},
            call(3, answer_delayed_s=12.0),
        ],
        deliveries=[],
        raw=[],
        derived_ids=frozenset(),
        projected=[
            projected(1, "accepted", WAMIDS[1]),
            projected(2, "failed", None),
            projected(3, "indeterminate", WAMIDS[3]),
        ],
        funnel={"requested": 3, "accepted": 1, "failed": 1, "indeterminate": 1},
        live_digest="d",
        replay_digest="d",
        crashed=[],
    )


def test_a_read_timeout_is_explained_by_an_api_too_slow_to_handle_the_request() -> None:
    late = _with(sim_calls=[call(1), call(3, at=ev.at(3).timestamp() - 2)])
    never = _with(
        sim_calls=[call(1)],
        sim_messages=[sim_message(1)],
        projected=[*consistent().projected[:2], projected(3, "indeterminate", None)],
    )
    for observed in (late, never):
        findings = check(observed)
        assert findings.ok, findings.summary()


def test_a_consistent_history_passes() -> None:
    findings = check(consistent())
    assert findings.ok, findings.summary()
    assert findings.figures["lost / doubled / unexplained"] == "0 / 0 / 0"


def _with(**changes: Any) -> Observed:
    return dataclasses.replace(consistent(), **changes)


def delivered(sha: str) -> dict[str, Any]:
    return {
        "id": 1,
        "kind": "sent",
        "delivered": True,
        "gave_up": False,
        "attempts": [{}],
        "subject": WAMIDS[1],
        "sha256": sha,
    }


@pytest.mark.parametrize(
    ("observed", "kind"),
    [
        (_with(send_events=[ev.accepted(1), ev.failed(2)]), "lost"),
        (_with(send_events=[*consistent().send_events, ev.accepted(1)]), "doubled"),
        (_with(sim_messages=[sim_message(1), sim_message(1), sim_message(3)]), "doubled"),
        (_with(sim_calls=[call(1), call(3)]), "unexplained_indeterminate"),
        (
            _with(sim_calls=[call(1), call(3, at=ev.at(3).timestamp() - 9)]),
            "unexplained_indeterminate",
        ),
        (
            _with(send_events=[ev.accepted(1), ev.accepted(2), ev.indeterminate(3)]),
            "misclassified",
        ),
        (_with(deliveries=[delivered("0" * 64)]), "lost"),
        (
            _with(projected=[projected(1, "read", WAMIDS[1]), *consistent().projected[1:]]),
            "mismatched",
        ),
        (_with(funnel={"requested": 3, "accepted": 2, "failed": 1}), "mismatched"),
        (_with(replay_digest="e"), "replay_differs"),
    ],
    ids=[
        "no terminal event",
        "two terminal events",
        "accepted twice by the API",
        "indeterminate without a cause",
        "read timeout on a request the API handled at once",
        "accepted by the API, reported otherwise",
        "webhook answered 200 but not stored",
        "projection ahead of the API",
        "funnel miscounted",
        "replay digest differs",
    ],
)
def test_each_broken_promise_is_found(observed: Observed, kind: str) -> None:
    findings = check(observed)
    assert not findings.ok
    assert findings.problems.get(kind), findings.summary()


def test_an_open_attempt_is_explained_by_a_kill_of_its_sender_only() -> None:
    open_attempt = ev.indeterminate(3).model_copy(
        update={
            "data": ev.indeterminate(3).data.model_copy(
                update={"cause": "attempt_without_result_on_restart"}
            )
        }
    )
    attempt_at = ev.attempted(3).time.timestamp()
    base = _with(
        send_events=[ev.accepted(1), ev.failed(2), ev.attempted(3), open_attempt],
        sim_calls=[call(1), {**call(2, "rejected"), "code": 132001}],
        sim_messages=[sim_message(1)],
        projected=[*consistent().projected[:2], projected(3, "indeterminate", None)],
    )
    kill = Crashed("sender-2", 0.5, attempt_at + 0.5, attempt_at + 3)
    assert check(dataclasses.replace(base, crashed=[kill])).ok
    ingest_kill = dataclasses.replace(kill, what="ingest")
    assert check(dataclasses.replace(base, crashed=[ingest_kill])).problems[
        "unexplained_indeterminate"
    ]


def test_a_seed_directory_is_cleared_of_an_earlier_run_only(tmp_path: Path) -> None:
    earlier = ["projections.db", "projections.db-wal", "sender-2.log", "broker-1-server.log"]
    for name in [*earlier, "notes.txt"]:
        (tmp_path / name).write_text("x")
    clear_earlier_run(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
