"""The end of a sharded replay done by every worker: entities exchanged by key.

Each worker finishes the entities routed to it and worker 0 merges the rows;
the golden log split at random, partition by partition, among 2 to 4 workers
must give the report (digests, counts, anomalies) of one process joining
every partial state. The real-broker runs are in test_sharded_replay.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings

from mmbus.contracts.envelope import Message
from services.projections import merge as merge_module
from services.projections.audit import AuditReport
from services.projections.exchange import finish_share, rows_path
from services.projections.join import Partial, Tally, join_all
from services.projections.merge import merge, merged, write_share
from services.projections.message import state_with
from services.projections.owners import Router, bucket_of, links_of, ranked
from services.projections.partial import read_partial
from services.projections.plan import PlanError, ReplayPlan
from services.projections.projection import Projection, choose
from services.projections.replay import complete
from services.projections.rows import Block, line_of
from tests.projections import events as ev
from tests.projections.test_join import UNITS, WHOLE, assignments, fold_units, split

NAMES = tuple(s.name for s in choose(None))


def plan_for(workers: int) -> ReplayPlan:
    # No spans: the partial states come from the golden log, not from a cluster.
    return ReplayPlan("p", NAMES, None, (), tuple(() for _ in range(workers)))


def exchanged(parts: list[Partial], directory: Path) -> AuditReport:
    """What the workers of exchange.py hand worker 0, and what it makes of them."""
    n = len(parts)
    links = [links_of(part) for part in parts]
    router = Router.of(links, n)
    slow = Router([link for w, ls in enumerate(links) for link in ranked(ls, w, n)], n)
    assert (router._by_key, router._by_wamid) == (slow._by_key, slow._by_wamid)
    shares = [router.split(part) for part in parts]
    finished = [
        finish_share(
            [Partial(parts[0].specs, shares[source][target], {}) for source in range(n)],
            parts[target].segments,
        )
        for target in range(n)
    ]
    paths = []
    for worker in range(1, n):
        paths.append(rows_path(directory, worker))
        write_share(paths[-1], finished[worker], plan_id="p", worker=worker, columns=False)
    return merge(plan_for(n), finished[0], paths, None, name="test")


WHOLE_REPORT = complete(plan_for(1), [WHOLE], None, name="test")


@settings(max_examples=30, deadline=None)
@given(assignments)
def test_any_split_finished_by_its_workers_reports_what_one_process_does(
    drawn: tuple[int, list[int]],
) -> None:
    parts, assignment = drawn
    with tempfile.TemporaryDirectory() as tmp:
        report = exchanged(split(assignment, parts), Path(tmp))
    assert report.digests == WHOLE_REPORT.digests
    assert report.rows_by_kind == WHOLE_REPORT.rows_by_kind
    assert report.messages_by_state == WHOLE_REPORT.messages_by_state
    assert report.anomalies == WHOLE_REPORT.anomalies
    assert report.events_by_type == WHOLE_REPORT.events_by_type
    assert report.records_read == WHOLE_REPORT.records_read
    assert report.workers == parts


def test_a_wamid_only_status_goes_to_the_worker_that_linked_its_message() -> None:
    orphan = state_with(key="w:wamid.9", wamid="wamid.9", status="read")
    sent = state_with(key="cmd-9", command_id="cmd-9", wamid="wamid.9")
    for workers in (2, 3, 4, 7):
        for linker in range(workers):
            router = Router([("wamid.9", "cmd-9", linker)], workers)
            assert router.message("w:wamid.9", orphan) == linker
            assert router.message("cmd-9", sent) == linker


def test_a_message_linked_by_two_workers_goes_to_the_one_with_its_send_side() -> None:
    # Worker 1 folded a status whose callback data named the command, worker 3 the send.
    sent = state_with(key="cmd-9", command_id="cmd-9", wamid="wamid.9", template_name="t")
    read = state_with(key="cmd-9", command_id="cmd-9", wamid="wamid.9", status="read")
    links = [
        *ranked(([], [], ["wamid.9"], ["cmd-9"]), 1, 4),
        *ranked((["wamid.9"], ["cmd-9"], [], []), 3, 4),
    ]
    router = Router(links, 4)
    assert router.message("cmd-9", sent) == router.message("cmd-9", read) == 3
    assert router.message("w:wamid.9", state_with(key="w:wamid.9", wamid="wamid.9")) == 3
    # Both with their send side, or neither: the lower worker.
    assert Router([("wamid.9", "cmd-9", 3), ("wamid.9", "cmd-9", 1)], 4).message("cmd-9", sent) == 1
    assert Router([("wamid.9", "cmd-9", 7), ("wamid.9", "cmd-9", 5)], 4).message("cmd-9", sent) == 1


def test_links_say_which_worker_holds_the_send_side() -> None:
    sends = folded([e for n in (1, 2) for e in (ev.command(n), ev.accepted(n))], 0)
    assert links_of(sends) == (["wamid.1", "wamid.2"], [ev.cid(1), ev.cid(2)], [], [])
    assert ranked(links_of(sends), 2, 3)[0][2] == 2


def test_keys_linked_through_a_shared_wamid_go_together_to_the_lowest_linking_worker() -> None:
    # cmd-b was linked to two wamids in two partial states, one of them also cmd-a's.
    links = [("wamid.1", "cmd-b", 2), ("wamid.2", "cmd-b", 1), ("wamid.2", "cmd-a", 4)]
    orphan = state_with(key="w:wamid.1", wamid="wamid.1")
    router = Router(links, 5)
    assert router.message("cmd-b", state_with(key="cmd-b", command_id="cmd-b")) == 1
    assert router.message("cmd-a", state_with(key="cmd-a", command_id="cmd-a")) == 1
    assert router.message("w:wamid.1", orphan) == 1
    assert router.message("w:wamid.2", state_with(key="w:wamid.2", wamid="wamid.2")) == 1


NONE: tuple[list[str], list[str], list[str], list[str]] = ([], [], [], [])


@pytest.mark.parametrize(
    "links",
    [
        # cmd-1 sent under two wamids by worker 0; worker 1 holds a status linking one.
        [(["wamid.1", "wamid.2"], ["cmd-1", "cmd-1"], [], []), ([], [], ["wamid.2"], ["cmd-1"])],
        # A wamid linked to two keys: what the columns cannot say, the groups do.
        [(["wamid.1"], ["cmd-1"], [], []), ([], [], ["wamid.1"], ["cmd-2"])],
        [NONE, (["wamid.3"], ["cmd-3"], ["wamid.4"], ["cmd-4"])],
        [(["wamid.5"], ["cmd-5"], [], []), (["wamid.5"], ["cmd-5"], [], [])],
    ],
)
def test_the_router_of_columns_routes_as_the_router_of_links(
    links: list[tuple[list[str], list[str], list[str], list[str]]],
) -> None:
    for workers in (2, 3):
        every = [*links, *([NONE] * (workers - len(links)))]
        fast = Router.of(every, workers)
        slow = Router(
            [link for w, ls in enumerate(every) for link in ranked(ls, w, workers)], workers
        )
        keys = {k for ls in every for k in (*ls[1], *ls[3])}
        wamids = {w for ls in every for w in (*ls[0], *ls[2])}
        for key in keys:
            state = state_with(key=key, command_id=key)
            assert fast.message(key, state) == slow.message(key, state)
        for wamid in wamids:
            orphan = state_with(key=f"w:{wamid}", wamid=wamid)
            assert fast.message(f"w:{wamid}", orphan) == slow.message(f"w:{wamid}", orphan)


def test_what_nothing_links_goes_by_its_own_key() -> None:
    router = Router([("wamid.1", "cmd-1", 0)], 4)
    lone = state_with(key="w:wamid.7", wamid="wamid.7")
    assert router.message("w:wamid.7", lone) == bucket_of("w:wamid.7", 4)
    unsent = state_with(key="cmd-2", command_id="cmd-2")
    assert router.message("cmd-2", unsent) == bucket_of("cmd-2", 4)
    assert [bucket_of("same key", 4)] * 3 == [bucket_of("same key", 4) for _ in range(3)]


def folded(events: list[Message], segment: int) -> Partial:
    projection = Projection(choose(None), incremental=False)
    for event in events:
        projection.apply(event)
    span = (("s", segment, 0, len(events)),)
    return Partial.of(projection, span, Tally(len(events), dict(projection.by_type)))


def test_statuses_that_name_only_a_wamid_are_merged_where_their_send_is_finished() -> None:
    """Sends in one worker's partitions, statuses without our callback data in two
    others': each status is kept under w:<wamid> by its worker, and must be merged
    into its message on whichever worker finishes that message."""
    sends = folded([e for n in range(1, 41) for e in (ev.command(n), ev.accepted(n))], 0)
    read = folded([ev.status(None, "read", 5, wamid=f"wamid.{n}") for n in range(1, 41)], 1)
    late = folded([ev.status(None, "delivered", 4, wamid=f"wamid.{n}") for n in range(1, 61)], 2)
    parts = [sends, read, late]
    whole = complete(plan_for(1), [join_all(parts)], None, name="test")
    assert whole.messages_by_state == {"read": 40, "delivered": 20}
    for workers in (2, 3, 4):
        spread = [*parts, *(folded([], 3 + i) for i in range(workers - len(parts)))]
        together = spread if workers >= len(parts) else [join_all(parts[1:]), parts[0]]
        with tempfile.TemporaryDirectory() as tmp:
            report = exchanged(together[:workers], Path(tmp))
        assert report.digests == whole.digests, workers
        assert report.messages_by_state == whole.messages_by_state
        assert report.anomalies == whole.anomalies


def test_a_worker_file_that_is_not_one_or_of_another_plan_is_refused_in_one_line(
    tmp_path: Path,
) -> None:
    garbled = tmp_path / "part-1.jsonl"
    garbled.write_bytes(b"{not json\n")
    with pytest.raises(PlanError, match="is not a replay worker's output"):
        read_partial(garbled)
    share = finish_share([fold_units(set())], {})
    write_share(rows_path(tmp_path, 1), share, plan_id="another", worker=1, columns=False)
    with pytest.raises(PlanError, match="belongs to plan another, not p"):
        merge(plan_for(2), share, [rows_path(tmp_path, 1)], None, name="test")


def test_rows_handed_back_in_parts_merge_as_one_file_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker 0 reads a part while the worker writes the next: however the rows are cut
    (a part of 7 rows, of 1, or a kind per part), the report is the same."""
    parts = split([i % 2 for i in range(len(UNITS))], 2)
    for rows_per_part in (7, 1, 10_000):
        monkeypatch.setattr(merge_module, "PART_ROWS", rows_per_part)
        directory = tmp_path / str(rows_per_part)
        directory.mkdir()
        report = exchanged(parts, directory)
        assert report.digests == WHOLE_REPORT.digests
        assert report.rows_by_kind == WHOLE_REPORT.rows_by_kind
        header = orjson.loads(rows_path(directory, 1).read_bytes().splitlines()[0])
        per_kind = [n for n in header["rows_by_kind"].values() if n]
        blocks = len(list(directory.iterdir())) - 1  # after the header
        assert blocks == sum(-(-n // rows_per_part) for n in per_kind) or (blocks, per_kind) == (
            1,
            [],
        )


def test_a_missing_part_of_a_workers_rows_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(merge_module, "PART_ROWS", 2)
    parts = split([i % 2 for i in range(len(UNITS))], 2)
    exchanged(parts, tmp_path)
    later = sorted(tmp_path.glob("rows-1.*.jsonl"), key=lambda p: int(p.suffixes[0][1:]))
    assert len(later) >= 2
    later[-1].unlink()
    share = finish_share([fold_units(set())], {})
    with pytest.raises(PlanError, match=rf"{later[-1].name} is missing"):
        merge(plan_for(2), share, [rows_path(tmp_path, 1)], None, name="test")


def test_a_row_in_two_workers_shares_is_refused() -> None:
    """Shares are disjoint by construction; a key in two of them would be a digest
    taken over one of the two documents, silently: refused instead."""
    line = line_of("message", "cmd-1", b"{}")
    twice = [iter([Block("message", ["cmd-1"], [line], None)]) for _ in range(2)]
    with pytest.raises(PlanError, match="two workers' shares hold the same message rows"):
        list(merged(twice))


def test_blocks_of_several_sources_come_out_in_kind_and_key_order() -> None:
    def block(kind: str, *keys: str) -> Block:
        return Block(kind, list(keys), [line_of(kind, k, b"{}") for k in keys], None)

    sources = [
        iter([block("click", "a", "c"), block("message", "m2")]),
        iter([block("click", "b"), block("click", "d"), block("token", "t")]),
        iter([block("message", "m1", "m3")]),
    ]
    out = [(b.kind, key) for b in merged(sources) for key in b.keys]
    assert out == [
        *(("click", k) for k in "abcd"),
        *(("message", k) for k in ("m1", "m2", "m3")),
        ("token", "t"),
    ]
