"""The simulator's mutable state: what it decides, records, accepts and emits.

HTTP handlers hold no state of their own; they all reach this one object
through the app, so the admin API sees and resets what the Graph API changed.
"""

from __future__ import annotations

import itertools
import random
import secrets
import time
from collections import Counter
from typing import Any

import orjson

from services.simulator import webhooks
from services.simulator.behaviour import Behaviour, plan
from services.simulator.dispatcher import Dispatcher
from services.simulator.faults import FaultPlan
from services.simulator.limits import Bucket
from services.simulator.rules import Accepted, GraphError, SendCall, admit, route
from services.simulator.settings import SimulatorSettings
from services.simulator.world import World


class Simulator:
    """All mutable state of one simulator process."""

    def __init__(self, settings: SimulatorSettings, world: World) -> None:
        self.settings = settings
        self.world = world
        self.buckets: dict[str, Bucket] = {}
        self.last_sent: dict[tuple[str, str], float] = {}
        self.faults = FaultPlan()
        self.burst_left = 0
        self.behaviour = Behaviour()
        self.rng = random.Random(settings.random_seed)
        # Kept as JSON bytes: millions of small dicts would make every GC pass long,
        # and a paused simulator bunches the calls it then records.
        self.calls: list[bytes] = []
        self.messages: dict[str, bytes] = {}
        self.counters: Counter[str] = Counter()
        self._call_seq = itertools.count(1)
        self._wamid_seq = itertools.count(1)
        self.dispatcher = Dispatcher(behaviour=lambda: self.behaviour, rng=self.rng)

    def decide(self, call: SendCall) -> Accepted | GraphError:
        candidate = route(self.world, call)
        if isinstance(candidate, GraphError):
            return candidate
        key = (candidate.accepted.phone_number_id, candidate.accepted.to)
        now = time.monotonic()
        outcome, self.buckets[key[0]] = admit(
            candidate,
            self.buckets.get(key[0]),
            self.last_sent.get(key),
            now,
            self.world.pair_limit_s,
        )
        if isinstance(outcome, Accepted):
            self.last_sent[key] = now
        return outcome

    def reset_limits(self) -> None:
        self.buckets.clear()
        self.last_sent.clear()

    # ------------------------------------------------------------ recording
    def record(self, entry: dict[str, Any]) -> None:
        entry["seq"] = next(self._call_seq)
        self.counters[f"calls.{entry['endpoint']}.{entry['outcome']}"] += 1
        if entry.get("code") is not None:
            self.counters[f"codes.{entry['code']}"] += 1
        if len(self.calls) < self.settings.max_recorded_calls:
            self.calls.append(orjson.dumps(entry))

    def new_wamid(self) -> str:
        return f"wamid.SIM{next(self._wamid_seq):012d}{secrets.token_hex(6).upper()}"

    # ------------------------------------------------------------- webhooks
    def _webhook_target(self, provider: str) -> tuple[str | None, dict[str, str]]:
        if provider == "360dialog":
            url = self.settings.d360_webhook_url or self.settings.webhook_url
            secret = self.settings.d360_webhook_secret
            headers = {"X-Mmbus-Provider-Secret": secret.get_secret_value()} if secret else {}
            return url, headers
        return self.settings.webhook_url, {}

    def emit(
        self, payload: dict[str, Any], kind: str, delay_s: float = 0.0, provider: str = "meta"
    ) -> None:
        url, headers = self._webhook_target(provider)
        if url is None:
            self.counters["webhooks.not_configured"] += 1
            return
        body = webhooks.encode(payload)
        headers = {
            **headers,
            webhooks.SIGNATURE_HEADER: webhooks.sign(
                body, self.settings.app_secret.get_secret_value()
            ),
        }
        self.dispatcher.schedule(
            url=url, payload=payload, kind=kind, delay_s=delay_s, secret_headers=headers
        )
        self.counters[f"webhooks.scheduled.{kind}"] += 1

    def accept(self, call: SendCall, accepted: Accepted) -> tuple[str, str]:
        wamid = self.new_wamid()
        held = (
            accepted.route == "marketing_messages"
            and self.rng.random() < self.behaviour.held_probability
        )
        status = "held_for_quality_assessment" if held else "accepted"
        self.messages[wamid] = orjson.dumps(
            {
                "wamid": wamid,
                "endpoint": call.endpoint,
                "provider": call.provider,
                "route": accepted.route,
                "pricing_category": accepted.pricing_category,
                "phone_number_id": accepted.phone_number_id,
                "waba_id": accepted.waba_id,
                "to": accepted.to,
                "template": accepted.template.name,
                "language": accepted.template.language,
                "category": accepted.template.category,
                "callback_data": accepted.callback_data,
                "message_status": status,
                "later_failure": accepted.later_failure.code if accepted.later_failure else None,
                "accepted_at": time.time(),
            }
        )
        number = self.world.number(accepted.phone_number_id)
        assert number is not None
        for planned in plan(
            accepted,
            wamid=wamid,
            number=number,
            epoch_s=int(time.time()),
            behaviour=self.behaviour,
            rng=self.rng,
        ):
            self.emit(planned.payload, planned.kind, planned.delay_s, provider=call.provider)
        return wamid, status

    def reset(self) -> None:
        """Forget calls, messages, counters, limits and faults; keep the world and behaviour."""
        self.calls.clear()
        self.messages.clear()
        self.counters.clear()
        self.reset_limits()
        self.faults = FaultPlan()
        self.burst_left = 0
