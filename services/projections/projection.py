"""The projections held in memory: one state per entity, fed by the pure folds.

This is the adapter between the folds and the store. It files each event's
fact under the right entity (joining wamids to command ids), keeps the
campaign aggregates in step with the messages, and remembers which rows
changed since the last flush. Rows are canonical JSON, so the digest of the
same state is the same whether it was built live, replayed, or reloaded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import orjson
from pydantic import TypeAdapter

from mmbus.contracts.envelope import Message
from mmbus.contracts.topics import Stream, catalogue
from mmbus.folds import (
    RecipientState,
    TemplateState,
    WabaState,
    evolve_recipient,
    evolve_template,
    evolve_waba,
    recipient_keys,
    template_key,
)
from services.projections import delivery, onboarding
from services.projections.delivery import (
    Aggregate,
    AggregateKey,
    Click,
    MessageState,
    TokenState,
    add_counts,
    contribution,
)
from services.projections.onboarding import NumberState, PortfolioState


@dataclass(frozen=True)
class ClickCount:
    tracking_token: str
    day: str
    clicks: int


@dataclass(frozen=True)
class ProjectionSpec:
    name: str
    kinds: tuple[str, ...]
    types: frozenset[str]


_SEND_RESULTS = frozenset(
    {
        "send.attempted",
        "send.accepted",
        "send.failed",
        "send.suppressed",
        "send.rejected",
        "send.indeterminate",
    }
)

PROJECTIONS: dict[str, ProjectionSpec] = {
    spec.name: spec
    for spec in (
        ProjectionSpec(
            "onboarding",
            ("waba", "portfolio", "number"),
            frozenset(
                {
                    "account.updated",
                    "account.onboarding_observed",
                    "send.attempted",
                    "send.accepted",
                    "message.status",
                }
            ),
        ),
        ProjectionSpec(
            "delivery",
            ("message", "aggregate", "click", "click_count", "token"),
            frozenset({"send.template", "message.status", "marketing.link_clicked"})
            | _SEND_RESULTS,
        ),
        ProjectionSpec(
            "suppression",
            ("recipient",),
            frozenset({"user.marketing_preference_changed", "message.status"}),
        ),
        ProjectionSpec(
            "templates",
            ("template",),
            frozenset(
                {
                    "template.status_changed",
                    "template.category_changed",
                    "template.quality_changed",
                    "send.accepted",
                }
            ),
        ),
    )
}

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


def choose(names: Iterable[str] | None) -> tuple[ProjectionSpec, ...]:
    chosen = list(names) if names else list(PROJECTIONS)
    unknown = [n for n in chosen if n not in PROJECTIONS]
    if unknown:
        raise ValueError(
            f"unknown projection(s) {', '.join(unknown)}; choose from {', '.join(PROJECTIONS)}"
        )
    return tuple(PROJECTIONS[n] for n in sorted(set(chosen)))


def streams_for(specs: Iterable[ProjectionSpec]) -> list[Stream]:
    wanted = set().union(*(s.types for s in specs))
    return [
        spec.stream
        for spec in catalogue("", partitions=1)
        if wanted & set(spec.carries) and spec.stream is not Stream.DEAD_LETTERS
    ]


# ------------------------------------------------------------------- rows
@dataclass(frozen=True)
class Row:
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


def to_row(kind: str, key: str, state: Any) -> Row:
    doc = dump_doc(state)
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


def digest_lines(lines: Iterable[tuple[str, str, bytes]]) -> str:
    """sha256 over (kind, key, doc) sorted: the fingerprint of a projection's state."""
    h = hashlib.sha256()
    for kind, key, doc in sorted(lines):
        h.update(kind.encode())
        h.update(b"\t")
        h.update(key.encode())
        h.update(b"\t")
        h.update(doc)
        h.update(b"\n")
    return h.hexdigest()


# --------------------------------------------------------------- the state
class Projection:
    """Every chosen projection's entities, in memory, with the rows changed since the last flush."""

    def __init__(self, specs: Iterable[ProjectionSpec]) -> None:
        self.specs = tuple(specs)
        self.names = frozenset(s.name for s in self.specs)
        self.kinds = tuple(k for s in self.specs for k in s.kinds)
        self.types = frozenset().union(*(s.types for s in self.specs))
        self.entities: dict[str, dict[str, Any]] = {kind: {} for kind in self.kinds}
        self.wamids: dict[str, str] = {}
        # Each message's current share of the aggregates, so a change moves it in one step.
        self._contributions: dict[str, tuple[AggregateKey, dict[str, int]]] = {}
        self._touched: set[str] = set()  # messages whose contribution may have moved
        self.dirty: set[tuple[str, str]] = set()
        self.applied = 0
        self.by_type: dict[str, int] = {}

    # -- loading a stored state
    def load(self, kind: str, key: str, doc: bytes | str) -> None:
        state = load_doc(kind, doc)
        self.entities[kind][key] = state
        if isinstance(state, MessageState):
            if state.wamid:
                self.wamids[state.wamid] = key
            part = contribution(state)
            if part is not None:
                self._contributions[key] = part

    # -- folding
    def apply(self, event: Message) -> None:
        t = event.type
        if t not in self.types:
            return
        self.applied += 1
        self.by_type[t] = self.by_type.get(t, 0) + 1
        if "onboarding" in self.names:
            self._onboarding(event)
        if "delivery" in self.names and t in PROJECTIONS["delivery"].types:
            self._delivery(event)
        if "suppression" in self.names:
            for user in recipient_keys(event):
                self._fold("recipient", user, partial(evolve_recipient, key=user), event)
        if "templates" in self.names and t in PROJECTIONS["templates"].types:
            data = event.data
            name = getattr(data, "name", None) or getattr(data, "template_name", None)
            waba = getattr(data, "waba_id", None)
            if waba and name:
                self._fold("template", template_key(waba, name), evolve_template, event)

    def _fold(self, kind: str, key: str, fold: Any, event: Message) -> None:
        table = self.entities[kind]
        before = table.get(key)
        after = fold(before, event)
        if after is not None and after is not before and after != before:
            table[key] = after
            self.dirty.add((kind, key))

    def _onboarding(self, event: Message) -> None:
        if event.type.startswith("account."):
            waba_id = getattr(event.data, "waba_id", None)
            if waba_id:
                self._fold("waba", waba_id, evolve_waba, event)
            business = onboarding.portfolio_of(event)
            if business:
                self._fold("portfolio", business, onboarding.evolve_portfolio, event)
        number = onboarding.number_of(event)
        if number:
            self._fold("number", number[0], onboarding.evolve_number, event)

    def _delivery(self, event: Message) -> None:
        click = delivery.click_of(event)
        if click is not None:
            self._click(click)
            return
        token = delivery.token_of(event)
        if token is not None:
            self._fold("token", token.tracking_token, delivery.evolve_token, event)
        seen = delivery.fact(event)
        if seen is None:
            return
        messages = self.entities["message"]
        filed = delivery.file_fact(seen, event.id, messages.get, self.wamids.get)
        if filed is None:
            return
        if filed.absorbed is not None:
            del messages[filed.absorbed]
            self.dirty.add(("message", filed.absorbed))
            self._touched.add(filed.absorbed)
        if filed.state.wamid:
            self.wamids[filed.state.wamid] = filed.key
        messages[filed.key] = filed.state
        self.dirty.add(("message", filed.key))
        self._touched.add(filed.key)

    def settle(self) -> None:
        """Bring the aggregates up to date with the messages changed since the last settle.

        Done per batch, not per event: a message that moved through several states
        in one batch moves its contribution once.
        """
        messages = self.entities.get("message", {})
        for key in self._touched:
            self._count(key, messages.get(key))
        self._touched.clear()

    def _count(self, key: str, after: MessageState | None) -> None:
        """Move the message's contribution in the aggregates from its old state to its new."""
        old = self._contributions.pop(key, None)
        new = contribution(after) if after is not None else None
        if new is not None:
            self._contributions[key] = new
        if old == new:
            return
        if old is not None and new is not None and old[0] == new[0]:
            self._add(new[0], add_counts(new[1], old[1], -1))  # same row: one delta
            return
        if old is not None:
            self._add(old[0], {name: -n for name, n in old[1].items()})
        if new is not None:
            self._add(new[0], new[1])

    def _add(self, key: AggregateKey, delta: dict[str, int]) -> None:
        if not delta:
            return
        aggregates = self.entities["aggregate"]
        text = key.text
        row = aggregates.get(text)
        updated = add_counts(row.counts, delta) if row is not None else dict(delta)
        self.dirty.add(("aggregate", text))
        if updated:
            aggregates[text] = Aggregate(
                key.campaign_id, key.template_name, key.route, key.day, updated
            )
        else:
            aggregates.pop(text, None)

    def _click(self, click: Click) -> None:
        clicks = self.entities["click"]
        if click.event_id in clicks:
            return  # the same webhook again: counted once
        clicks[click.event_id] = click
        self.dirty.add(("click", click.event_id))
        counts = self.entities["click_count"]
        key = f"{click.tracking_token}|{click.day}"
        current = counts.get(key)
        counts[key] = ClickCount(
            click.tracking_token, click.day, (current.clicks if current else 0) + 1
        )
        self.dirty.add(("click_count", key))

    # -- flushing and fingerprints
    def take_dirty(self) -> tuple[list[Row], list[tuple[str, str]]]:
        self.settle()
        upserts: list[Row] = []
        deletes: list[tuple[str, str]] = []
        for kind, key in self.dirty:
            state = self.entities[kind].get(key)
            if state is None:
                deletes.append((kind, key))
            else:
                upserts.append(to_row(kind, key, state))
        self.dirty.clear()
        return upserts, deletes

    def forget_dirty(self) -> None:
        """Nothing to write (no store): settle the aggregates and drop the change list."""
        self.settle()
        self.dirty.clear()

    def rows(self, kinds: Iterable[str] | None = None) -> Iterator[tuple[str, str, bytes]]:
        self.settle()
        for kind in kinds or self.kinds:
            for key, state in self.entities.get(kind, {}).items():
                yield kind, key, dump_doc(state)

    def digest(self, kinds: Iterable[str] | None = None) -> str:
        return digest_lines(self.rows(kinds))
