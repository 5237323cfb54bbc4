"""Statuses passed, undecoded, to the worker that holds their message's send side.

Workers of a replay on one host share the plan's partitions out whole, so the
statuses of a message (keyed by wamid) are mostly read by another worker than
its command and send events (keyed by phone number). Folded where they were
read, they made a partial message on each side, which the workers then
serialised, exchanged, validated again and merged (:mod:`exchange`): about a
third of what two workers did after their folds on the benchmark's log.

Instead, each worker first folds its send side (every stream but the
statuses), which tells it the wamids its messages were accepted under; then
it reads its status partitions and passes every status whose record key (the
wamid) is not one of its own to the worker whose it is, as the record's bytes,
before decoding it (:class:`Peers`). The receiver decodes and folds it as if
it had read it: the same fold, so the same state (the folds are
order-independent). A status that no worker's sends linked stays where it was
read. Nothing here decides the result: a status passed to the wrong worker,
or one whose key is not its wamid, leaves a partial message that the exchange
merges as before.

With two workers a status that is not one's own is the other's; with more,
each worker publishes its wamids once its send side is folded and waits for
the others' before reading statuses. The units of the plan a worker reads are
claimed here too (:meth:`Peers.claim`), the send side first: whichever worker is
ahead takes the next.

Files, in the exchange's directory: ``fwd-<from>-to-<to>.<n>.bin`` (the n-th
batch passed on, see :class:`Outgoing`), ``fwd-<from>-to-<to>.end`` (how many
batches there were), ``wamids-<w>.json`` and ``claim-<unit>``. Each is written
under another name and renamed whole, but a claim, which is created only if
absent.
"""

from __future__ import annotations

import asyncio
import os
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from mmbus.contracts.codec import DECODE_HEADERS
from services.projections.partial import atomic_write
from services.projections.plan import PlanError

POLL_S = 0.002
# Records per file passed on: the receiver folds a batch while the sender reads on, so
# the last one is all that is left to fold once the sender has read everything.
PASS_BATCH = 1000
Alive = Callable[[], None]
# Takes a record read here: True when it was passed to another worker to fold.
Divert = Callable[[Any], bool]


@dataclass(frozen=True, slots=True)
class Passed:
    """A batch of records passed on: what decoding needs, column by column."""

    values: list[bytes | None]
    headers: list[tuple[tuple[str, bytes], ...]]
    partitions: list[tuple[str, int]]
    columns: array[int]  # five per record (see Outgoing): offset, partition index first

    def where(self, i: int) -> tuple[str, int, int]:
        """Where record ``i`` was read (for the log of one that cannot be decoded)."""
        topic, partition = self.partitions[self.columns[5 * i + 1]]
        return topic, partition, self.columns[5 * i]


class Outgoing:
    """A batch being gathered for one worker, a record at a time.

    Its bytes: a JSON line (the partitions read, the (type, version) header pairs
    seen, as Latin-1, which maps every byte to a character and back, and how many
    records), then five signed 64-bit columns per record (offset, partition
    index, pair index, value length and ce_id length; -1 for a missing value or
    header), then the values and the ce_ids back to back. Only the headers
    decoding reads are kept (``DECODE_HEADERS``). Columns, not an object per
    record, filled as each record is read (later, its objects are out of the
    processor's caches: packing a batch of them afterwards cost three times as
    much): passing a status on costs about 2 µs against about 20 to decode and
    fold it.
    """

    def __init__(self) -> None:
        self.values: list[bytes] = []
        self.ids: list[bytes] = []
        self.columns = array("q")
        self.partitions: dict[tuple[str, int], int] = {}
        self.kinds: dict[tuple[bytes | None, bytes | None], int] = {}

    def __len__(self) -> int:
        return len(self.columns) // 5

    def add(self, record: Any) -> None:
        type_name, version_name, id_name = DECODE_HEADERS
        found = dict(record.headers) if record.headers else _NONE
        value, message_id = record.value, found.get(id_name)
        kind = (found.get(type_name), found.get(version_name))
        self.columns.extend(
            (
                record.offset,
                self.partitions.setdefault((record.topic, record.partition), len(self.partitions)),
                self.kinds.setdefault(kind, len(self.kinds)),
                -1 if value is None else len(value),
                -1 if message_id is None else len(message_id),
            )
        )
        if value is not None:
            self.values.append(value)
        if message_id is not None:
            self.ids.append(message_id)

    def pack(self) -> bytes:
        meta = {
            "partitions": list(self.partitions),
            "kinds": [[None if h is None else h.decode("latin-1") for h in k] for k in self.kinds],
            "records": len(self),
        }
        head = orjson.dumps(meta)
        return b"".join((head, b"\n", self.columns.tobytes(), *self.values, *self.ids))


_NONE: dict[str, bytes] = {}


def unpack(data: bytes) -> Passed:
    head, _, rest = data.partition(b"\n")  # JSON from orjson holds no raw newline
    meta = orjson.loads(head)
    n = int(meta["records"])
    columns = array("q")
    columns.frombytes(rest[: 40 * n])
    type_name, version_name, id_name = DECODE_HEADERS
    pairs = [
        tuple(
            (name, h.encode("latin-1"))
            for name, h in zip((type_name, version_name), kind, strict=True)
            if h is not None
        )
        for kind in meta["kinds"]
    ]
    values: list[bytes | None] = []
    headers: list[tuple[tuple[str, bytes], ...]] = []
    at = 40 * n
    id_at = at + sum(length for length in columns[3::5] if length > 0)
    for i in range(0, 5 * n, 5):
        length, id_length = columns[i + 3], columns[i + 4]
        if length < 0:
            values.append(None)
        else:
            values.append(rest[at : at + length])
            at += length
        pair = pairs[columns[i + 2]]
        if id_length < 0:
            headers.append(pair)
        else:
            headers.append((*pair, (id_name, rest[id_at : id_at + id_length])))
            id_at += id_length
    if id_at != len(rest):
        raise ValueError(f"a batch of passed records is {len(rest) - id_at} bytes off")
    return Passed(values, headers, [(str(t), int(p)) for t, p in meta["partitions"]], columns)


def owner(key: bytes, me: int, others: Sequence[tuple[int, frozenset[bytes]]]) -> int:
    """The worker that folds a status keyed ``key`` that is not ``me``'s: the one whose
    wamids hold it; the only other worker; or ``me`` when nobody's do."""
    if len(others) == 1:
        return others[0][0]
    for worker, wamids in others:
        if key in wamids:
            return worker
    return me


class Peers:
    """One worker's side of passing statuses on, through files in ``directory``."""

    def __init__(self, directory: Path, me: int, workers: int, alive: Alive) -> None:
        self.directory, self.me, self.alive = directory, me, alive
        self.others = [w for w in range(workers) if w != me]
        self._out = {w: Outgoing() for w in self.others}
        self._sent = dict.fromkeys(self.others, 0)  # batches written, per receiver
        self._next = dict.fromkeys(self.others, 0)  # the next batch to read, per sender
        self._ends: dict[int, int] = {}  # batches each sender wrote in all, once known
        self._known: list[tuple[int, frozenset[bytes]]] = []
        self.passed = self.received = 0

    def path(self, source: int, target: int, batch: int | None) -> Path:
        tail = "end" if batch is None else f"{batch}.bin"
        return self.directory / f"fwd-{source}-to-{target}.{tail}"

    def claim(self, unit: int) -> bool:
        """Take unit ``unit`` of the plan if no worker has: the first to create its file
        (``claim-<unit>``, created only if absent, atomically) reads it."""
        try:
            fd = os.open(self.directory / f"claim-{unit}", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        os.write(fd, str(self.me).encode())
        os.close(fd)
        return True

    def wamids_path(self, worker: int) -> Path:
        return self.directory / f"wamids-{worker}.json"

    async def learn(self, mine: Iterable[str]) -> Divert:
        """Publish this worker's wamids (its send side folded); once every other worker's
        are known, what passes a status on by its record key (False: fold it here)."""
        own = frozenset(w.encode() for w in mine)
        if len(self.others) > 1:
            atomic_write(self.wamids_path(self.me), orjson.dumps(sorted(w.decode() for w in own)))
            for other in self.others:
                path = self.wamids_path(other)
                while not path.exists():
                    self.alive()
                    await asyncio.sleep(POLL_S)
                wamids = frozenset(w.encode() for w in orjson.loads(path.read_bytes()))
                self._known.append((other, wamids))
        else:
            self._known = [(self.others[0], frozenset())]
        me, known, pass_on = self.me, self._known, self.pass_on

        def divert(record: Any) -> bool:
            key = record.key
            if key is None or key in own:
                return False
            target = owner(key, me, known)
            if target == me:
                return False
            pass_on(target, record)
            return True

        return divert

    def pass_on(self, target: int, record: Any) -> None:
        batch = self._out[target]
        batch.add(record)
        if len(batch) >= PASS_BATCH:
            self._write(target)

    def flush(self) -> None:
        for target, batch in self._out.items():
            if len(batch):
                self._write(target)

    def _write(self, target: int) -> None:
        batch = self._out[target]
        atomic_write(self.path(self.me, target, self._sent[target]), batch.pack())
        self._sent[target] += 1
        self.passed += len(batch)
        self._out[target] = Outgoing()

    def close(self) -> None:
        """Everything passed on: the last batches, and how many there were."""
        self.flush()
        for target, batches in self._sent.items():
            atomic_write(self.path(self.me, target, None), orjson.dumps(batches))

    def take(self) -> list[Passed]:
        """The batches passed to this worker since the last call, in order per sender."""
        out: list[Passed] = []
        for source in self.others:
            while True:
                path = self.path(source, self.me, self._next[source])
                if not path.exists():
                    break
                try:
                    out.append(unpack(path.read_bytes()))
                except (ValueError, KeyError, TypeError, IndexError) as exc:
                    raise PlanError(
                        f"{path} is not a whole batch of passed records: {exc}"
                    ) from exc
                path.unlink()  # read once; the directory need not hold the log twice
                self._next[source] += 1
            if source not in self._ends and (end := self.path(source, self.me, None)).exists():
                self._ends[source] = int(orjson.loads(end.read_bytes()))
        self.received += sum(len(batch.values) for batch in out)
        return out

    @property
    def done(self) -> bool:
        """Every other worker has passed on all it will, and all of it was taken."""
        return len(self._ends) == len(self.others) and all(
            self._next[w] >= n for w, n in self._ends.items()
        )

    async def drain(self, fold: Callable[[list[Passed]], None]) -> None:
        """Fold what the others pass on until they have all finished."""
        while True:
            fold(self.take())
            if self.done:
                return
            self.alive()
            await asyncio.sleep(POLL_S)
