"""The join of partial states: table tests per kind, and its laws over the golden log.

A replay may split the log's partitions among workers; each folds its share
into a partial state and the partials are joined. The laws (commutative,
associative, idempotent) let them be joined in any order and grouping; the
golden log split at random, partition by partition, must join back to the
pinned digests.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmbus.contracts.codec import DecodeFailure, decode
from mmbus.contracts.envelope import Message
from mmbus.contracts.topics import catalogue
from mmbus.folds import (
    RecipientState,
    TemplateState,
    WabaState,
    join_recipient,
    join_template,
    join_waba,
)
from mmbus.partitioner import partition_for
from services.projections import partial as partial_file
from services.projections.clicks import TokenState, join_tokens
from services.projections.join import Partial, Tally, join, join_all, join_messages
from services.projections.onboarding import (
    NumberState,
    PortfolioState,
    join_numbers,
    join_portfolios,
)
from services.projections.partial import read_partial, write_partial
from services.projections.projection import Projection, choose, dump_doc
from tests.projections import events as ev
from tests.projections.events import at
from tests.projections.test_golden_log import GOLDEN

PARTITIONS = 3
STREAM_OF_TYPE = {
    t: spec.stream.value for spec in catalogue("", partitions=1) for t in spec.carries
}


def golden_records() -> list[tuple[tuple[str, int], Message]]:
    """Each golden record with the partition it would be on (its stream, murmur2 of its key)."""
    out = []
    for line in (GOLDEN / "log.jsonl").read_bytes().splitlines():
        record = orjson.loads(line)
        headers = [(k, v.encode()) for k, v in record["headers"]]
        event = decode(orjson.dumps(record["value"]), headers, trusted=True)
        assert not isinstance(event, DecodeFailure), event
        key = record["key"].encode() if record["key"] is not None else None
        part = partition_for(key, range(PARTITIONS), range(PARTITIONS))
        out.append(((STREAM_OF_TYPE[event.type], part), event))
    return out


RECORDS = golden_records()
UNITS = sorted({unit for unit, _ in RECORDS})


def fold_units(units: set[tuple[str, int]]) -> Partial:
    """What a worker reading these partitions, in log order, hands back."""
    projection = Projection(choose(None), incremental=False)
    counts: dict[tuple[str, int], int] = {}
    for unit, event in RECORDS:
        if unit in units:
            projection.apply(event)
            counts[unit] = counts.get(unit, 0) + 1
    segment = tuple((t, p, 0, counts.get((t, p), 0)) for t, p in sorted(units))
    tally = Tally(sum(counts.values()), dict(projection.by_type))
    return Partial.of(projection, segment, tally)


def same(a: Partial, b: Partial) -> None:
    """The same state, from the same records of the same partitions, counted the same."""
    assert a.projection().digest() == b.projection().digest()
    assert a.reached() == b.reached()
    assert a.tally() == b.tally()


WHOLE = fold_units(set(UNITS))


def split(assignment: list[int], parts: int) -> list[Partial]:
    return [
        fold_units({u for u, w in zip(UNITS, assignment, strict=True) if w == i})
        for i in range(parts)
    ]


assignments = st.integers(min_value=2, max_value=4).flatmap(
    lambda k: st.tuples(
        st.just(k), st.lists(st.integers(0, k - 1), min_size=len(UNITS), max_size=len(UNITS))
    )
)


def test_the_golden_log_is_spread_over_partitions_of_several_streams() -> None:
    assert len(UNITS) >= 8
    assert len({t for t, _ in UNITS}) >= 5


def test_the_whole_fold_gives_the_pinned_digests() -> None:
    projection = WHOLE.projection()
    pinned = orjson.loads((GOLDEN / "digests.json").read_bytes())
    assert {s.name: projection.digest(s.kinds) for s in projection.specs} == pinned


@settings(max_examples=40, deadline=None)
@given(assignments)
def test_any_split_joins_back_to_the_whole(drawn: tuple[int, list[int]]) -> None:
    parts, assignment = drawn
    same(join_all(split(assignment, parts)), WHOLE)


@settings(max_examples=25, deadline=None)
@given(assignments)
def test_the_join_is_commutative_associative_and_idempotent(drawn: tuple[int, list[int]]) -> None:
    parts, assignment = drawn
    a, b, *rest = split(assignment, parts)
    c = rest[0] if rest else fold_units(set())
    same(join(a, b), join(b, a))
    same(join(join(a, b), c), join(a, join(b, c)))
    same(join(a, a), a)
    same(join(join(a, b), b), join(a, b))


def test_a_partial_state_survives_its_file(tmp_path: Path) -> None:
    a, b = split([i % 2 for i in range(len(UNITS))], 2)
    write_partial(tmp_path / "part-1.jsonl", b, plan_id="p", shard=1)
    shard, back = read_partial(tmp_path / "part-1.jsonl", plan_id="p")
    assert shard == 1
    same(back, b)
    same(join(a, back), WHOLE)


def test_a_partial_state_survives_its_file_in_many_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, b = split([i % 2 for i in range(len(UNITS))], 2)
    monkeypatch.setattr(partial_file, "CHUNK", 2)
    write_partial(tmp_path / "part-1.jsonl", b, plan_id="p", shard=1)
    entities = sum(len(table) for table in b.entities.values())
    assert len((tmp_path / "part-1.jsonl").read_bytes().splitlines()) > 1 + entities // 2
    _, back = read_partial(tmp_path / "part-1.jsonl", plan_id="p")
    same(back, b)


def test_a_partial_state_in_the_first_file_format_is_still_read(tmp_path: Path) -> None:
    """One line per entity (``["kind","key"]<TAB><doc>``), as workers wrote before
    chunks: a joiner reads the files of workers not yet upgraded."""
    a, b = split([i % 2 for i in range(len(UNITS))], 2)
    write_partial(tmp_path / "part-1.jsonl", b, plan_id="p", shard=1)
    header = (tmp_path / "part-1.jsonl").read_bytes().split(b"\n", 1)[0]
    lines = [header.replace(b"mmbus-replay-partial/2", b"mmbus-replay-partial/1")]
    for kind, table in b.entities.items():
        lines += [orjson.dumps([kind, key]) + b"\t" + dump_doc(s) for key, s in table.items()]
    (tmp_path / "part-1.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    _, back = read_partial(tmp_path / "part-1.jsonl", plan_id="p")
    same(back, b)
    same(join(a, back), WHOLE)


# ------------------------------------------------------------- per kind
T1, T2 = at(1), at(2)
JOIN_CASES: list[tuple[str, Any, Any, Any, Any]] = [
    ("waba: one side", join_waba, WabaState("w", "ONBOARDED"), None, WabaState("w", "ONBOARDED")),
    (
        "recipient: the newer fact",
        join_recipient,
        RecipientState("u", True, T1, "e1"),
        RecipientState("u", False, T2, "e2"),
        RecipientState("u", False, T2, "e2"),
    ),
    (
        "template: own status from one side, the latest use from both",
        join_template,
        TemplateState("w", "t", "MARKETING", "APPROVED", T1, T1),
        TemplateState("w", "t", last_used_at=T2),
        TemplateState("w", "t", "MARKETING", "APPROVED", T1, T2),
    ),
    (
        "number: the earlier sighting",
        join_numbers,
        NumberState("n", "w", T2, "e2"),
        NumberState("n", "w", T1, "e1"),
        NumberState("n", "w", T1, "e1"),
    ),
    (
        "portfolio: a signature beats none",
        join_portfolios,
        PortfolioState("b"),
        PortfolioState("b", T2, "e2", "w"),
        PortfolioState("b", T2, "e2", "w"),
    ),
    (
        "portfolio: the first signature",
        join_portfolios,
        PortfolioState("b", T2, "e2", "w2"),
        PortfolioState("b", T1, "e1", "w1"),
        PortfolioState("b", T1, "e1", "w1"),
    ),
    (
        "token: the smallest campaign",
        join_tokens,
        TokenState("tok", "summer"),
        TokenState("tok", "spring"),
        TokenState("tok", "spring"),
    ),
]


@pytest.mark.parametrize(
    ("how", "a", "b", "joined"), [c[1:] for c in JOIN_CASES], ids=[c[0] for c in JOIN_CASES]
)
def test_join_of_one_kind(how: Any, a: Any, b: Any, joined: Any) -> None:
    assert how(a, b) == joined
    assert how(b, a) == joined
    assert how(joined, joined) == joined


def test_a_log_ordered_conflict_resolves_the_same_either_way() -> None:
    # Only a repartitioned topic spreads one WABA over partitions; then any fixed choice.
    a, b = WabaState("w", "ELIGIBLE", since=T1), WabaState("w", "ONBOARDED", since=T2)
    assert join_waba(a, b) == join_waba(b, a)
    assert join_template(
        TemplateState("w", "t", status="PAUSED"),
        replace(TemplateState("w", "t", status="APPROVED"), last_used_at=T1),
    ) == join_template(
        replace(TemplateState("w", "t", status="APPROVED"), last_used_at=T1),
        TemplateState("w", "t", status="PAUSED"),
    )


def test_a_status_one_worker_could_not_link_joins_the_send_the_other_saw() -> None:
    statuses = Projection(choose(["delivery"]), incremental=False)
    statuses.apply(ev.status(None, "read", 5, wamid="wamid.1"))
    sends = Projection(choose(["delivery"]), incremental=False)
    for event in (ev.command(1), ev.accepted(1)):
        sends.apply(event)
    joined = join_messages(statuses.entities["message"], sends.entities["message"])
    assert set(joined) == {ev.cid(1)}
    assert joined[ev.cid(1)].state == "read"
    assert joined[ev.cid(1)].wamid == "wamid.1"
