"""The projections held in memory: one state per entity, fed by the pure folds.

This is the adapter between the folds and the store. It files each event's
fact under the right entity (joining wamids to command ids), keeps the
campaign aggregates in step with the messages, and remembers which rows
changed since the last flush.

A live projector keeps the derived rows (aggregates, click counts) and the
change list up to date per batch, because it writes every batch. A replay
(``incremental=False``) only folds the entities and derives those rows once
at the end (:meth:`Projection.settle`): the same rows, without moving each
message's share of the aggregates on every batch, and without the change list
of a store written once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from mmbus.contracts.envelope import Message
from mmbus.folds import (
    evolve_recipient,
    evolve_template,
    evolve_waba,
    recipient_keys,
    template_key,
)
from services.projections import delivery, onboarding
from services.projections.aggregates import (
    Aggregate,
    AggregateKey,
    add_counts,
    aggregate_all,
    contribution,
)
from services.projections.clicks import Click, ClickCount, count_all, count_key, join_tokens
from services.projections.message import MessageState
from services.projections.rows import Row, digest_lines, dump_doc, load_doc, to_row
from services.projections.specs import (
    DERIVED_KINDS,
    PROJECTIONS,
    ProjectionSpec,
    choose,
    streams_for,
)

# Older imports of these names from here keep working.
__all__ = [
    "DERIVED_KINDS",
    "PROJECTIONS",
    "Click",
    "ClickCount",
    "Projection",
    "ProjectionSpec",
    "Row",
    "choose",
    "digest_lines",
    "dump_doc",
    "load_doc",
    "streams_for",
    "to_row",
]


# Unbound, called with the projection: bound methods kept on it made it a cycle, and
# a replay's whole state waited for a full garbage collection to be freed.
Handler = Callable[["Projection", Message], None]


class Projection:
    """Every chosen projection's entities, in memory, with the rows changed since the last flush."""

    def __init__(self, specs: Iterable[ProjectionSpec], *, incremental: bool = True) -> None:
        self.specs = tuple(specs)
        self.names = frozenset(s.name for s in self.specs)
        self.kinds = tuple(k for s in self.specs for k in s.kinds)
        self.types = frozenset().union(*(s.types for s in self.specs))
        self.incremental = incremental
        self.entities: dict[str, dict[str, Any]] = {kind: {} for kind in self.kinds}
        self.wamids: dict[str, str] = {}
        # Each message's current share of the aggregates, so a change moves it in one step.
        self._contributions: dict[str, tuple[AggregateKey, dict[str, int]]] = {}
        self._touched: set[str] = set()  # messages whose contribution may have moved
        self._stale = False  # not incremental: derived rows to compute again
        self.dirty: set[tuple[str, str]] = set()
        self.applied = 0
        self.by_type: dict[str, int] = {}
        self._route = self._routes()

    def _routes(self) -> dict[str, tuple[Handler, ...]]:
        """Per event type, the folds it feeds (looked up once per event)."""
        routes: dict[str, list[Handler]] = {t: [] for t in self.types}

        def to(types: Iterable[str], handler: Handler) -> None:
            for t in types:
                if t in routes:
                    routes[t].append(handler)

        cls = Projection
        if "onboarding" in self.names:
            to(("account.updated", "account.onboarding_observed"), cls._account)
            to(("send.attempted", "send.accepted", "message.status"), cls._number)
        if "delivery" in self.names:
            to(("marketing.link_clicked",), cls._click)
            to(("send.template",), cls._token)
            to(PROJECTIONS["delivery"].types - {"marketing.link_clicked"}, cls._message)
        if "suppression" in self.names:
            to(("user.marketing_preference_changed", "message.status"), cls._recipient)
        if "templates" in self.names:
            to(PROJECTIONS["templates"].types, cls._template)
        return {t: tuple(handlers) for t, handlers in routes.items()}

    def adopt(self, entities: dict[str, dict[str, Any]]) -> None:
        """Take a joined state's tables as they are, not entity by entity (a replay's
        state is not folded further: only settled and read)."""
        self.entities.update(entities)
        self._stale = True

    # -- loading a stored state
    def load(self, kind: str, key: str, doc: bytes | str) -> None:
        self.put(kind, key, load_doc(kind, doc))

    def put(self, kind: str, key: str, state: Any) -> None:
        """Hold a known state (reloaded, or joined from partial states)."""
        self.entities[kind][key] = state
        if isinstance(state, MessageState):
            if state.wamid:
                self.wamids[state.wamid] = key
            if self.incremental:
                part = contribution(state)
                if part is not None:
                    self._contributions[key] = part
            else:
                self._stale = True

    # -- folding
    def apply(self, event: Message) -> None:
        t = event.type
        handlers = self._route.get(t)
        if handlers is None:
            return
        self.applied += 1
        self.by_type[t] = self.by_type.get(t, 0) + 1
        for handler in handlers:
            handler(self, event)

    def _fold(self, kind: str, key: str, fold: Any, fact: Any, *more: Any) -> None:
        """``fold(state, fact, *more)`` under ``key``: an event, or what one says."""
        table = self.entities[kind]
        before = table.get(key)
        after = fold(before, fact, *more)
        if after is not None and after is not before and after != before:
            table[key] = after
            if self.incremental:
                self.dirty.add((kind, key))

    def _account(self, event: Message) -> None:
        waba_id = getattr(event.data, "waba_id", None)
        if waba_id:
            self._fold("waba", waba_id, evolve_waba, event)
        business = onboarding.portfolio_of(event)
        if business:
            self._fold("portfolio", business, onboarding.evolve_portfolio, event)

    def _number(self, event: Message) -> None:
        # Routed only for the types number_of names a number for (see _routes).
        self._fold("number", event.data.phone_number_id, onboarding.evolve_number, event)

    def _recipient(self, event: Message) -> None:
        for user in recipient_keys(event):
            self._fold("recipient", user, evolve_recipient, event, user)  # no partial per event

    def _template(self, event: Message) -> None:
        # The model's fields, not getattr: a missing attribute costs pydantic an exception.
        data = vars(event.data)
        name = data.get("name") or data.get("template_name")
        waba = data.get("waba_id")
        if waba and name:
            self._fold("template", template_key(waba, name), evolve_template, event)

    def _token(self, event: Message) -> None:
        token = delivery.token_of(event)
        if token is not None:
            # evolve_token is this join after token_of, which is known here already.
            self._fold("token", token.tracking_token, join_tokens, token)

    def _message(self, event: Message) -> None:
        seen = delivery.known_of(event)
        if seen is None:
            return
        messages = self.entities["message"]
        filed = delivery.file_fact(seen, event.id, messages.get, self.wamids.get)
        if filed is None:
            return
        key, state, absorbed = filed
        if absorbed is not None:
            del messages[absorbed]
        if state.wamid:
            self.wamids[state.wamid] = key
        messages[key] = state
        if self.incremental:
            if absorbed is not None:
                self.dirty.add(("message", absorbed))
                self._touched.add(absorbed)
            self.dirty.add(("message", key))
            self._touched.add(key)
        else:
            self._stale = True

    def _click(self, event: Message) -> None:
        click = delivery.click_of(event)
        if click is None:
            return
        clicks = self.entities["click"]
        if click.event_id in clicks:
            return  # the same webhook again: counted once
        clicks[click.event_id] = click
        if not self.incremental:
            self._stale = True
            return
        self.dirty.add(("click", click.event_id))
        counts = self.entities["click_count"]
        key = count_key(click)
        current = counts.get(key)
        counts[key] = ClickCount(
            click.tracking_token, click.day, (current.clicks if current else 0) + 1
        )
        self.dirty.add(("click_count", key))

    def settle(self) -> None:
        """Bring the derived rows up to date with the messages and clicks.

        Live: per batch, not per event (a message that moved through several
        states in one batch moves its contribution once). Not incremental: all
        at once, from the final entities.
        """
        if not self.incremental:
            if self._stale and "delivery" in self.names:
                self.entities["aggregate"] = aggregate_all(self.entities["message"].values())
                self.entities["click_count"] = count_all(self.entities["click"].values())
            self._stale = False
            return
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

    def sorted_entities(self, kinds: Iterable[str] | None = None) -> Iterator[tuple[str, str, Any]]:
        """Every entity by (kind, key): the order digests are taken in."""
        self.settle()
        for kind in sorted(kinds or self.kinds):
            table = self.entities.get(kind, {})
            for key in sorted(table):
                yield kind, key, table[key]

    def rows(self, kinds: Iterable[str] | None = None) -> Iterator[tuple[str, str, bytes]]:
        self.settle()
        for kind in kinds or self.kinds:
            for key, state in self.entities.get(kind, {}).items():
                yield kind, key, dump_doc(state)

    def digest(self, kinds: Iterable[str] | None = None) -> str:
        return digest_lines(self.rows(kinds))
