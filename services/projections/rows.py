"""Rows: how every entity is written to the store and fingerprinted.

Rows are canonical JSON (sorted keys), so the digest of the same state is the
same whether it was built live, replayed, joined from partial states, or
reloaded from a store.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any, NamedTuple

import orjson
from pydantic import TypeAdapter

from mmbus.folds import RecipientState, TemplateState, WabaState
from services.projections.aggregates import Aggregate
from services.projections.clicks import Click, ClickCount, TokenState
from services.projections.message import MessageState
from services.projections.onboarding import NumberState, PortfolioState

KIND_TYPES: dict[str, Any] = {
    "waba": WabaState,
    "portfolio": PortfolioState,
    "number": NumberState,
    "template": TemplateState,
    "recipient": RecipientState,
    "message": MessageState,
    "aggregate": Aggregate,
    "click": Click,
    "click_count": ClickCount,
    "token": TokenState,
}
_ADAPTERS = {kind: TypeAdapter(cls) for kind, cls in KIND_TYPES.items()}
# Partial states' chunks, validated a table at a time (a type built from each kind's
# class at import time, which mypy cannot follow).
_TABLES = {kind: TypeAdapter(dict[str, cls]) for kind, cls in KIND_TYPES.items()}  # type: ignore[valid-type]


class Row(NamedTuple):
    """One entity as stored (a tuple: a replay makes one per entity, and a frozen
    dataclass took three times as long to make)."""

    kind: str
    key: str
    doc: bytes  # canonical JSON
    ref: str | None = None  # a second lookup key (wamid, WABA id, owner)
    grp: str | None = None  # a grouping key (campaign id, tracking token)
    ts: str | None = None  # a time to filter on, ISO 8601


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):  # named tuples (history steps) as JSON arrays
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dump_doc(state: Any) -> bytes:
    return orjson.dumps(state, default=_plain, option=orjson.OPT_SORT_KEYS)


def load_doc(kind: str, doc: bytes | str) -> Any:
    return _ADAPTERS[kind].validate_json(doc)


def load_table(kind: str, doc: bytes | str) -> dict[str, Any]:
    """Entities of one kind by key, from one JSON object (each validated as by
    :func:`load_doc`, in one call)."""
    table: dict[str, Any] = _TABLES[kind].validate_json(doc)
    return table


def row_of(kind: str, key: str, state: Any, doc: bytes) -> Row:
    """The row of an entity whose canonical JSON is ``doc``: its lookup columns added."""
    if isinstance(state, MessageState):
        first = state.requested_at or min((w for _, w in state.times), default=None)
        return Row(kind, key, doc, ref=state.wamid, grp=state.campaign_id, ts=_iso(first))
    if isinstance(state, Aggregate):
        return Row(kind, key, doc, grp=state.campaign_id, ts=state.day)
    if isinstance(state, ClickCount):
        return Row(kind, key, doc, grp=state.tracking_token, ts=state.day)
    if isinstance(state, Click):
        return Row(kind, key, doc, grp=state.tracking_token, ts=_iso(state.time))
    if isinstance(state, RecipientState):
        return Row(kind, key, doc, ts=_iso(state.since))
    if isinstance(state, WabaState):
        return Row(kind, key, doc, ref=state.owner_business_id, ts=_iso(state.since))
    if isinstance(state, NumberState):
        return Row(kind, key, doc, ref=state.waba_id, ts=_iso(state.first_seen))
    if isinstance(state, TemplateState):
        return Row(kind, key, doc, ref=state.waba_id, ts=_iso(state.approved_at))
    if isinstance(state, TokenState):
        return Row(kind, key, doc, grp=state.campaign_id)
    if isinstance(state, PortfolioState):
        return Row(kind, key, doc, ts=_iso(state.terms_signed_at))
    raise TypeError(f"no row mapping for {type(state).__name__}")


def to_row(kind: str, key: str, state: Any) -> Row:
    return row_of(kind, key, state, dump_doc(state))


def serialised(
    entities: Iterator[tuple[str, str, Any]], *, columns: bool, spent: Callable[[float], None]
) -> Iterator[Row]:
    """Rows of ``(kind, key, state)``, in their order, made a batch at a time; ``spent``
    is told each batch's CPU (read per batch: a CPU clock read is a system call, dearer
    than a row). ``columns``: with the lookup columns, which only a store needs."""
    clock = time.process_time
    while True:
        mark = clock()
        if columns:
            batch = [
                row_of(k, key, state, dump_doc(state)) for k, key, state in islice(entities, 256)
            ]
        else:  # the digest needs the documents only
            batch = [Row(k, key, dump_doc(state)) for k, key, state in islice(entities, 256)]
        spent(clock() - mark)
        if not batch:
            return
        yield from batch


@dataclass(frozen=True)
class Block:
    """Rows of one kind in key order: their digest lines (:func:`line_of`) and, for a
    store, the rows themselves."""

    kind: str
    keys: list[str]
    lines: list[bytes]
    rows: list[Row] | None


def line_of(kind: str, key: str, doc: bytes) -> bytes:
    """The bytes a row adds to a digest."""
    return b"".join((kind.encode(), b"\t", key.encode(), b"\t", doc, b"\n"))


def blocks_of(rows: Iterable[Row], *, columns: bool, size: int) -> Iterator[Block]:
    """Rows in (kind, key) order as blocks of one kind and at most ``size`` rows (with
    ``columns``, each block keeps its rows too: a store needs them)."""
    block: Block | None = None
    for row in rows:
        if block is None or row.kind != block.kind or len(block.keys) >= size:
            if block is not None:
                yield block
            block = Block(row.kind, [], [], [] if columns else None)
        block.keys.append(row.key)
        block.lines.append(line_of(row.kind, row.key, row.doc))
        if block.rows is not None:
            block.rows.append(row)
    if block is not None:
        yield block


def digest_lines(lines: Iterable[tuple[str, str, bytes]]) -> str:
    """sha256 over (kind, key, doc) sorted: the fingerprint of a projection's state."""
    h = hashlib.sha256()
    for kind, key, doc in sorted(lines):
        h.update(line_of(kind, key, doc))
    return h.hexdigest()


class Fingerprints:
    """The digests of several projections and of all of them, fed a kind's rows at a time.

    Rows must come sorted by (kind, key), which is the order :func:`digest_lines`
    sorts into, so the result is the same without holding every row at once;
    ``seconds`` is the CPU that hashing took.
    """

    def __init__(self, kinds_of: dict[str, tuple[str, ...]]) -> None:
        self._all = hashlib.sha256()
        self._each = {name: hashlib.sha256() for name in kinds_of}
        self._of_kind = {
            kind: self._each[name] for name, kinds in kinds_of.items() for kind in kinds
        }
        self.seconds = 0.0

    def add_lines(self, kind: str, lines: list[bytes]) -> None:
        """Rows of one kind, as their digest lines (:func:`line_of`), next in order."""
        started = time.process_time()  # per block: a clock read is a system call
        data = b"".join(lines)
        self._all.update(data)
        self._of_kind[kind].update(data)
        self.seconds += time.process_time() - started

    def digests(self) -> dict[str, str]:
        out = {name: h.hexdigest() for name, h in self._each.items()}
        out["all"] = self._all.hexdigest()
        return out
