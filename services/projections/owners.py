"""Which worker of a sharded replay finishes each entity (step 1 of
:mod:`services.projections.exchange`): the same answer on every host, from the
links every worker hands the others."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from services.projections.join import Partial, orphan_wamid
from services.projections.message import MessageState

# (wamid, message key, rank): see Router.
Link = tuple[str, str, int]


class LinkColumns(NamedTuple):
    """One worker's links (:func:`links_of`), as columns: wamids and message keys of the
    messages whose send side it holds, then of the others."""

    sent_wamids: list[str]
    sent_keys: list[str]
    other_wamids: list[str]
    other_keys: list[str]


def bucket_of(key: str, workers: int) -> int:
    """The worker that finishes the entities keyed ``key``: the same on every host."""
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % workers


def links_of(partial: Partial) -> LinkColumns:
    """Every message that links a command to a wamid (:func:`join.linked_wamid`; a status
    whose callback data names the command links them too), by whether its send side
    is here (``template_name``: set by the command and every send event)."""
    messages: dict[str, MessageState] = partial.entities.get("message", {})
    links = LinkColumns([], [], [], [])
    sent_wamids, sent_keys, other_wamids, other_keys = links
    for key, m in messages.items():
        wamid = m.wamid
        if wamid and m.command_id:  # linked_wamid, spelt out: once per message
            if m.template_name is not None:
                sent_wamids.append(wamid)
                sent_keys.append(key)
            else:
                other_wamids.append(wamid)
                other_keys.append(key)
    return links


def ranked(links: Sequence[Sequence[str]], worker: int, workers: int) -> list[Link]:
    """One worker's :func:`links_of` as the :class:`Router` takes them."""
    sent_wamids, sent_keys, other_wamids, other_keys = links
    return [
        *((w, k, worker) for w, k in zip(sent_wamids, sent_keys, strict=True)),
        *((w, k, workers + worker) for w, k in zip(other_wamids, other_keys, strict=True)),
    ]


class Router:
    """Which worker finishes each entity.

    Message keys and wamids that any worker's messages link are grouped (a
    message may have been linked to two wamids, in two partial states); a
    group goes to the worker of its lowest-ranked link, and with it every
    ``w:<wamid>`` entry of its wamids: whatever the join could merge is on one
    worker. A link's rank is the worker that holds it, first among the workers
    that hold the message's send side (:func:`ranked`). The send side (the
    command and its send events, co-keyed: :data:`plan.CO_KEYED`) is usually
    whole on one worker, so it stays there and only its statuses travel: on the
    benchmark's log, half the messages were written, read and joined again when
    a group went by the hash of its key. Other entities, and unlinked messages,
    go by their own key. Every worker reads every worker's links, so every
    worker routes alike; the ranks decide only what travels, never the result.
    """

    def __init__(self, links: Iterable[Link], workers: int) -> None:
        self.workers = workers
        links = list(links)
        # The usual case: no wamid linked to two keys. A key's group is then itself (with
        # any other wamids of its own), and a wamid's the one key it names.
        of_wamid: dict[str, str] = {}
        for wamid, key, _ in links:
            if of_wamid.setdefault(wamid, key) != key:
                break
        else:
            lowest_of: dict[str, int] = {}  # key: its lowest-ranked link
            for _, key, rank in links:
                lowest_of[key] = min(rank, lowest_of.get(key, rank))
            self._by_key: dict[str, int] = {k: rank % workers for k, rank in lowest_of.items()}
            self._by_wamid: dict[str, int] = {w: self._by_key[k] for w, k in of_wamid.items()}
            return
        up: dict[tuple[bool, str], tuple[bool, str]] = {}
        lowest: dict[tuple[bool, str], int] = {}  # per group's root: its lowest rank

        def root(node: tuple[bool, str]) -> tuple[bool, str]:
            top = node
            while (parent := up.get(top, top)) != top:
                top = parent
            while node != top:  # shorten the path for the next look-up
                up[node], node = top, up[node]
            return top

        for wamid, key, rank in links:
            a, b = root((True, key)), root((False, wamid))
            lowest[a] = min(lowest.get(a, rank), rank)
            if a != b:
                up[b] = a
                theirs = lowest.pop(b, None)
                if theirs is not None and theirs < lowest[a]:
                    lowest[a] = theirs
        self._by_key = {}
        self._by_wamid = {}
        for wamid, key, _ in links:
            self._by_key[key] = lowest[root((True, key))] % workers
            self._by_wamid[wamid] = lowest[root((False, wamid))] % workers

    @classmethod
    def of(cls, links: Sequence[Sequence[Sequence[str]]], workers: int) -> Router:
        """The router of every worker's :func:`links_of` (in worker order).

        The usual case, no wamid linked to two keys, in a few calls over whole
        columns rather than a step per link; anything else as :class:`Router` does.
        """
        groups: list[tuple[int, Sequence[str], Sequence[str]]] = []  # links of one rank
        for worker, (sent_wamids, sent_keys, other_wamids, other_keys) in enumerate(links):
            groups += [
                (worker, sent_wamids, sent_keys),
                (workers + worker, other_wamids, other_keys),
            ]
        of_wamid: dict[str, str] = {}
        pairs: set[tuple[str, str]] = set()
        for _, wamids, keys in groups:
            of_wamid.update(zip(wamids, keys, strict=True))
            pairs.update(zip(wamids, keys, strict=True))
        if len(pairs) != len(of_wamid):  # a wamid linked to two keys
            return cls(
                [link for w, ls in enumerate(links) for link in ranked(ls, w, workers)], workers
            )
        router = cls([], workers)
        by_key = router._by_key
        for rank, _, keys in sorted(groups, key=lambda group: -group[0]):
            by_key.update(dict.fromkeys(keys, rank % workers))  # the lowest rank last
        router._by_wamid = {w: by_key[k] for w, k in of_wamid.items()}
        return router

    def message(self, key: str, state: MessageState) -> int:
        worker = self._by_key.get(key)
        if worker is None and (wamid := orphan_wamid(key, state)):
            worker = self._by_wamid.get(wamid)
        return bucket_of(key, self.workers) if worker is None else worker

    def split(self, partial: Partial) -> list[dict[str, dict[str, Any]]]:
        """The partial state's entities, per worker that finishes them."""
        shares: list[dict[str, dict[str, Any]]] = [
            {kind: {} for kind in partial.entities} for _ in range(self.workers)
        ]
        n = self.workers
        for kind, table in partial.entities.items():
            if kind == "message":
                for key, state in table.items():
                    shares[self.message(key, state)][kind][key] = state
            else:
                for key, state in table.items():
                    shares[bucket_of(key, n)][kind][key] = state
        return shares
