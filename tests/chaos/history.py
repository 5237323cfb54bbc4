"""The checks of a chaos run over its whole history: a pure function of what was observed.

``check(observed)`` compares four records that were kept independently: the
commands published, the events on the log, what the simulated API accepted and
which webhooks it got a 200 for, and what the projection shows. Every finding is
named (lost, doubled, unexplained, mismatched) with the ids it concerns, so a
failing seed says exactly what went wrong.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from mmbus.contracts.callback import command_id_from_callback
from mmbus.contracts.envelope import Message
from mmbus.contracts.raw_events import WebhookReceived
from services.ingest.normalize import normalize
from services.sender.ledger import TERMINAL_TYPES
from tests.chaos.driver import SENDER_READ_TIMEOUT_S, Crashed

RANK = {"sent": 1, "delivered": 2, "read": 3}
SENDERS = ("sender", "sender-2")


@dataclass(frozen=True)
class Observed:
    commands: frozenset[str]
    campaign_id: str
    send_events: list[Message]
    sim_messages: list[dict[str, Any]]  # /_admin/messages: each message the API accepted
    sim_calls: list[dict[str, Any]]  # /_admin/calls: every call, whatever its outcome
    deliveries: list[dict[str, Any]]  # /_admin/webhooks: every webhook and its attempts
    raw: list[WebhookReceived]
    derived_ids: frozenset[str]  # ids of every event on the webhook-derived streams
    projected: list[dict[str, Any]]  # /v1/messages of the campaign
    funnel: dict[str, int]
    live_digest: str
    replay_digest: str
    crashed: list[Crashed]


@dataclass
class Findings:
    figures: dict[str, Any] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, kind: str, what: str) -> None:
        self.problems[kind].append(what)

    @property
    def ok(self) -> bool:
        return not any(self.problems.values())

    def summary(self) -> str:
        lines = [f"{k}: {v}" for k, v in self.figures.items()]
        for kind, items in self.problems.items():
            lines.append(f"PROBLEM {kind}: {len(items)}, e.g. {items[:5]}")
        return "\n".join(lines)


def body_sha(raw: WebhookReceived) -> str:
    data = raw.data
    body = data.body.encode() if data.body_encoding == "utf-8" else b""
    if data.body_encoding == "base64":
        import base64

        body = base64.b64decode(data.body)
    return hashlib.sha256(body).hexdigest()


def expected_state(kinds: set[str], outcome: str) -> str:
    if "failed" in kinds:
        return "failed"
    reached = [k for k in kinds if k in RANK]
    return max(reached, key=RANK.__getitem__) if reached else outcome


def check(o: Observed) -> Findings:
    f = Findings()
    terminals = _check_terminals(o, f)
    accepted_by_api = _check_api(o, f, terminals)
    delivered = _check_webhooks(o, f)
    _check_projection(o, f, terminals, accepted_by_api, delivered)
    if o.live_digest != o.replay_digest:
        f.add("replay_differs", f"live {o.live_digest} != replay {o.replay_digest}")
    f.figures["crashes"] = [f"{c.what} at {c.at_progress:.0%}" for c in o.crashed]
    f.figures["lost / doubled / unexplained"] = (
        f"{len(f.problems.get('lost', []))} / {len(f.problems.get('doubled', []))} / "
        f"{len(f.problems.get('unexplained_indeterminate', []))}"
    )
    return f


def _check_terminals(o: Observed, f: Findings) -> dict[str, Message]:
    counts: Counter[str] = Counter()
    last: dict[str, Message] = {}
    for e in o.send_events:
        if e.type in TERMINAL_TYPES and e.data.command_id:
            counts[e.data.command_id] += 1
            last[e.data.command_id] = e
    for cid in o.commands - counts.keys():
        f.add("lost", f"command {cid} has no terminal event")
    for cid, n in counts.items():
        if n > 1:
            f.add("doubled", f"command {cid} has {n} terminal events")
        if cid not in o.commands:
            f.add("stray", f"terminal event for unknown command {cid}")
    f.figures["commands"] = len(o.commands)
    f.figures["terminal events by type"] = dict(Counter(e.type for e in last.values()))
    return last


def _check_api(
    o: Observed, f: Findings, terminals: dict[str, Message]
) -> dict[str, dict[str, Any]]:
    """At most one accepted message per command, except indeterminate ones, each explained."""
    by_command: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in o.sim_messages:
        by_command[command_id_from_callback(m["callback_data"]) or "?"].append(m)
    calls: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in o.sim_calls:
        cid = command_id_from_callback((c.get("payload") or {}).get("biz_opaque_callback_data"))
        calls[cid or "?"].append(c)
    sender_kills = [c for c in o.crashed if c.what in SENDERS]
    for cid, messages in by_command.items():
        terminal = terminals.get(cid)
        kind = terminal.type if terminal else None
        if len(messages) > 1 and kind != "send.indeterminate":
            f.add("doubled", f"the API accepted command {cid} {len(messages)} times")
        if kind not in ("send.accepted", "send.indeterminate"):
            f.add("misclassified", f"the API accepted {cid} but the sender said {kind}")
        wamids = {m["wamid"] for m in messages}
        if kind == "send.accepted" and terminal is not None and terminal.data.wamid not in wamids:
            f.add("misclassified", f"{cid}: send.accepted names another wamid")
    for cid, terminal in terminals.items():
        if terminal.type == "send.indeterminate":
            why = _explained(terminal, calls.get(cid, []), sender_kills, o.send_events)
            if why is None:
                f.add("unexplained_indeterminate", f"{cid}: {terminal.data.cause}")
        elif terminal.type == "send.accepted" and cid not in by_command:
            f.add("misclassified", f"{cid}: send.accepted but the API has no such message")
    outcomes = Counter(c["outcome"] for c in o.sim_calls)
    f.figures["API calls"] = len(o.sim_calls)
    f.figures["API calls by outcome"] = dict(outcomes)
    f.figures["API faults injected"] = dict(Counter(k for c in o.sim_calls if (k := _fault(c))))
    f.figures["attempts closed by send.attempt_failed"] = dict(
        Counter(e.data.reason for e in o.send_events if e.type == "send.attempt_failed")
    )
    return {m["wamid"]: m for m in o.sim_messages}


def _fault(call: dict[str, Any]) -> str | None:
    """The kind of fault the simulator injected into this call, if any."""
    if call.get("answer_delayed_s"):
        return "accepted, answered too late"
    if call["outcome"] == "fault_error":
        return f"error {call['code']}"
    if call["outcome"] == "fault_http":
        return "HTTP 5xx"
    if call["outcome"] == "fault_reset":
        return "connection reset"
    return None


def _explained(
    terminal: Message,
    calls: list[dict[str, Any]],
    sender_kills: list[Crashed],
    events: list[Message],
) -> str | None:
    cause = terminal.data.cause
    if cause == "read_timeout_after_send":
        if any(c.get("answer_delayed_s") for c in calls):
            return "the API answered too late"
        return _overloaded(terminal.time.timestamp(), calls)
    if cause == "connection_lost_after_send":
        lost = [c for c in calls if c["outcome"] == "fault_reset"]
        return "the API reset the connection" if lost else None
    if cause == "attempt_without_result_on_restart":
        cid = terminal.data.command_id
        attempts = [
            e.time.timestamp()
            for e in events
            if e.type == "send.attempted" and e.data.command_id == cid
        ]
        reported = terminal.time.timestamp()
        open_at_kill = [
            k for k in sender_kills if attempts and min(attempts) <= k.killed_at <= reported
        ]
        return f"open when {open_at_kill[0].what} was killed" if open_at_kill else None
    return None


def _overloaded(gave_up_at: float, calls: list[dict[str, Any]]) -> str | None:
    """A read timeout with no fault injected: true only if the API was slow to handle it.

    The sender gives up ``SENDER_READ_TIMEOUT_S`` after its call left. A simulator
    starved of CPU handles a queued request late (its record's ``at``); handled in
    the second half of the sender's wait or later (or never), the answer could not
    come in time. Handled early, the answer was there: the sender misread it.
    """
    handled = [c["at"] for c in calls if "at" in c]
    if len(handled) < len(calls):
        return None
    if not handled:
        return "the API never handled the request"
    if max(handled) >= gave_up_at - SENDER_READ_TIMEOUT_S / 2:
        return "the API, overloaded, handled the request late"
    return None


def _check_webhooks(o: Observed, f: Findings) -> dict[str, set[str]]:
    """Every webhook answered 200 is on the raw stream; every raw record's events are on
    their streams. Returns the kinds delivered per subject (wamid or click id)."""
    stored = {body_sha(r) for r in o.raw}
    delivered: dict[str, set[str]] = defaultdict(set)
    for d in o.deliveries:
        if d["delivered"]:
            if d["sha256"] not in stored:
                f.add("lost", f"webhook {d['id']} ({d['kind']}) got a 200 but is not stored")
            if d["subject"]:
                delivered[d["subject"]].add(d["kind"])
    missing = [
        event.id
        for raw in o.raw
        for event in normalize(raw)
        if event.type != "webhook.received" and event.id not in o.derived_ids
    ]
    for event_id in missing:
        f.add("lost", f"event {event_id} of a stored webhook is on no stream")
    attempts = sum(len(d["attempts"]) for d in o.deliveries)
    f.figures["webhooks"] = len(o.deliveries)
    f.figures["webhook deliveries answered 200"] = sum(d["delivered"] for d in o.deliveries)
    f.figures["webhook attempts (retries after ingest errors)"] = attempts
    bodies = Counter(d["sha256"] for d in o.deliveries)
    f.figures["webhooks sent twice (same body)"] = sum(n - 1 for n in bodies.values())
    f.figures["webhooks given up by the simulator"] = sum(d["gave_up"] for d in o.deliveries)
    f.figures["raw records"] = len(o.raw)
    return delivered


def _check_projection(
    o: Observed,
    f: Findings,
    terminals: dict[str, Message],
    accepted_by_api: dict[str, dict[str, Any]],
    delivered: dict[str, set[str]],
) -> None:
    """The projection's final state per message equals the simulator's, and so do the counts."""
    by_command = {m["command_id"]: m for m in o.projected if m["command_id"]}
    by_wamid = {m["wamid"]: m for m in o.projected if m["wamid"]}
    if len(o.projected) != len(o.commands):
        f.add("mismatched", f"{len(o.projected)} projected messages for {len(o.commands)}")
    for wamid in accepted_by_api.keys() - by_wamid.keys():
        f.add("mismatched", f"accepted message {wamid} is not in the projection")
    for wamid in by_wamid.keys() - accepted_by_api.keys():
        f.add("mismatched", f"projected message {wamid} was never accepted")
    for cid, terminal in terminals.items():
        mine = by_command.get(cid)
        if mine is None:
            f.add("mismatched", f"command {cid} is not in the projection")
            continue
        outcome = terminal.type.removeprefix("send.")
        truth = accepted_by_api.get(mine["wamid"]) if mine["wamid"] else None
        if truth is None:
            if mine["state"] != outcome:
                f.add("mismatched", f"{cid}: state {mine['state']}, the sender said {outcome}")
            continue
        kinds = delivered.get(truth["wamid"], set())
        want = expected_state(kinds, outcome)
        priced = truth["pricing_category"] if kinds & {"sent", "delivered"} else None
        fell_back = truth["endpoint"] == "marketing_messages" and priced == "marketing"
        got = (mine["state"], mine["endpoint"], (mine["pricing"] or {}).get("category"))
        if got != (want, truth["endpoint"], priced) or mine["fell_back"] != fell_back:
            f.add("mismatched", f"{cid}: {got} {mine['fell_back']}, the API: {want} {kinds}")
    _check_counts(o, f, terminals, accepted_by_api, delivered)


def _check_counts(
    o: Observed,
    f: Findings,
    terminals: dict[str, Message],
    accepted_by_api: dict[str, dict[str, Any]],
    delivered: dict[str, set[str]],
) -> None:
    outcome = {cid: t.type.removeprefix("send.") for cid, t in terminals.items()}
    messages = list(accepted_by_api.values())

    def cmd(m: dict[str, Any]) -> str:
        return command_id_from_callback(m["callback_data"]) or "?"

    def reached(m: dict[str, Any]) -> set[str]:
        return delivered.get(m["wamid"], set())

    expected = {
        "requested": len(o.commands),
        "accepted": sum(outcome.get(cmd(m)) == "accepted" for m in messages),
        "sent": sum(bool(reached(m) & set(RANK)) for m in messages),
        "delivered": sum(bool(reached(m) & {"delivered", "read"}) for m in messages),
        "read": sum("read" in reached(m) for m in messages),
        # A click names a tracking token, not a message: its subject is the click id.
        "clicked": sum("click" in kinds for kinds in delivered.values()),
        "failed": sum("failed" in reached(m) for m in messages)
        + sum(o == "failed" for o in outcome.values()),
        "fell_back": sum(
            m["endpoint"] == "marketing_messages"
            and m["pricing_category"] == "marketing"
            and bool(reached(m) & {"sent", "delivered"})
            for m in messages
        ),
    }
    got = {name: o.funnel.get(name, 0) for name in expected}
    if got != expected:
        f.add("mismatched", f"campaign funnel {got}, counted from the simulator {expected}")
    f.figures["funnel"] = dict(o.funnel)
