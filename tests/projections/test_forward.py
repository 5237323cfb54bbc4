"""Statuses passed, undecoded, between the workers of a replay on one host (forward.py).

What is passed must decode exactly as what was read; each worker's batches reach
the other whole, once, in order; and the route of a status depends only on the
wamids each worker's send side linked. The real-broker runs, where a worker
passes half its statuses, are in test_sharded_replay.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from mmbus.contracts.codec import decode, encode
from services.projections import forward
from services.projections.forward import Outgoing, Peers, owner, unpack
from services.projections.partial import atomic_write
from services.projections.plan import PlanError
from services.projections.projection import Projection, choose
from services.projections.reading import Folder
from tests.projections import events as ev
from tests.projections.support import campaign


@dataclass
class Record:
    """What a consumer record carries, as far as passing one on reads it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


def pack(records: list[Record]) -> bytes:
    batch = Outgoing()
    for record in records:
        batch.add(record)
    return batch.pack()


def records_of(n: int) -> list[Record]:
    out = []
    for i, message in enumerate(campaign(n)):
        record = encode(message)
        out.append(
            Record("p.message.status", i % 3, i, record.key, record.value, tuple(record.headers))
        )
    return out


def test_a_passed_record_decodes_as_the_record_read() -> None:
    records = records_of(12)
    odd = [
        Record("p.message.status", 0, 1, b"k", None, ()),  # a tombstone, no headers
        Record("p.message.status", 0, 2, b"k", b"{not json", (("ce_type", b"\xff\xfe"),)),
        Record("p.message.status", 4, 3, None, b"{}", (("ce_id", b"x"),)),
    ]
    batch = unpack(pack(records + odd))
    assert len(batch.values) == len(records) + len(odd)
    for i, record in enumerate(records + odd):
        assert batch.values[i] == record.value
        assert decode(batch.values[i], batch.headers[i], trusted=True) == decode(
            record.value, record.headers, trusted=True
        )
        assert batch.where(i) == (record.topic, record.partition, record.offset)


def test_a_batch_cut_short_is_refused_in_one_line(tmp_path: Path) -> None:
    data = pack(records_of(2))
    with pytest.raises(ValueError, match="bytes off"):
        unpack(data[:-5])
    receiver = Peers(tmp_path, 1, 2, lambda: None)
    receiver.path(0, 1, 0).write_bytes(data[:-5])
    with pytest.raises(
        PlanError, match=r"fwd-0-to-1\.0\.bin is not a whole batch of passed records"
    ):
        receiver.take()


@pytest.mark.parametrize(
    ("key", "others", "expected"),
    [
        (b"w1", [(1, frozenset())], 1),  # the only other worker
        (b"w1", [(1, frozenset({b"w2"})), (2, frozenset({b"w1"}))], 2),
        (b"w9", [(1, frozenset({b"w2"})), (2, frozenset({b"w1"}))], 0),  # nobody's: here
        (b"w2", [(1, frozenset({b"w2"})), (3, frozenset({b"w2"}))], 1),  # the first that has it
    ],
)
def test_a_status_goes_to_the_worker_whose_sends_linked_its_wamid(
    key: bytes, others: list[tuple[int, frozenset[bytes]]], expected: int
) -> None:
    assert owner(key, 0, others) == expected


def test_batches_reach_the_other_worker_whole_once_and_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(forward, "PASS_BATCH", 4)
    sender = Peers(tmp_path, 0, 2, lambda: None)
    receiver = Peers(tmp_path, 1, 2, lambda: None)
    records = records_of(6)
    for record in records[:10]:
        sender.pass_on(1, record)  # two whole batches and two records left
    taken = receiver.take()
    assert [len(b.values) for b in taken] == [4, 4]
    assert [receiver.done] == [False]
    for record in records[10:13]:
        sender.pass_on(1, record)
    sender.close()  # the rest, then how many batches there were
    taken += receiver.take()
    assert receiver.done
    values = [v for batch in taken for v in batch.values]
    assert values == [r.value for r in records[:13]]
    assert (sender.passed, receiver.received) == (13, 13)
    assert receiver.take() == []
    assert not list(tmp_path.glob("*.bin")), "each batch is removed once taken"


async def test_with_more_workers_each_publishes_its_wamids_and_routes_by_all_of_them(
    tmp_path: Path,
) -> None:
    peers = [Peers(tmp_path, w, 3, lambda: None) for w in range(3)]
    atomic_write(peers[1].wamids_path(1), b'["wamid.1"]')
    atomic_write(peers[2].wamids_path(2), b'["wamid.2", "wamid.3"]')
    divert = await peers[0].learn(["wamid.0"])
    keys = (b"wamid.0", b"wamid.1", b"wamid.3", b"wamid.9", None)
    record = records_of(1)[0]
    diverted = [divert(Record(record.topic, 0, i, k, record.value, ())) for i, k in enumerate(keys)]
    assert diverted == [False, True, True, False, False]
    assert (peers[0].passed, len(peers[0]._out[1]), len(peers[0]._out[2])) == (0, 1, 1)
    assert peers[0].wamids_path(0).exists()


async def test_a_worker_that_fails_stops_the_one_waiting_for_its_wamids(tmp_path: Path) -> None:
    def gone() -> None:
        raise RuntimeError("worker 2 failed")

    with pytest.raises(RuntimeError, match="worker 2 failed"):
        await Peers(tmp_path, 0, 3, gone).learn([])


def test_a_status_record_is_keyed_by_its_wamid_which_is_what_the_route_reads() -> None:
    """Passing statuses on reads the record key only, never the value."""
    status = encode(ev.status(1, "sent", 3))
    assert status.key == b"wamid.1"


def test_each_unit_is_claimed_by_one_worker_only(tmp_path: Path) -> None:
    workers = [Peers(tmp_path, w, 3, lambda: None) for w in range(3)]
    taken = [[u for u in range(10) if peers.claim(u)] for peers in workers for _ in range(2)]
    assert sorted(u for mine in taken for u in mine) == list(range(10))
    assert taken[0] == list(range(10))  # the first to try takes each


def test_a_passed_record_that_cannot_be_decoded_is_counted_where_it_is_folded() -> None:
    """Undecodable records are counted in the audit report, passed on or not, and the
    log names where the record was read."""
    good = records_of(1)[0]
    bad = Record("p.message.status", 4, 17, b"wamid.x", b"{not json", good.headers)
    folder = Folder(Projection(choose(None), incremental=False), None)
    batch = unpack(pack([good, bad]))
    folder.fold_passed([batch])
    assert folder.undecodable == {"undecodable:invalid_json": 1}
    assert folder.projection.applied == 1
    assert batch.where(1) == ("p.message.status", 4, 17)
