"""Delivers planned webhooks over HTTP, signed, with bounded retries.

One scheduler task keeps a heap of due deliveries and starts each on time,
with a cap on concurrent POSTs. A delivery that does not get a 200 is retried
with backoff until ``webhook_max_attempts``; every attempt is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from services.simulator import webhooks
from services.simulator.behaviour import Behaviour, retry_delay_s


@dataclass
class Delivery:
    id: int
    kind: str
    url: str
    body: bytes
    headers: dict[str, str]
    attempts: list[dict[str, Any]] = field(default_factory=list)
    delivered: bool = False
    gave_up: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "url": self.url,
            "delivered": self.delivered,
            "gave_up": self.gave_up,
            "attempts": self.attempts,
            "subject": self.subject(),
            # Audits find the very body on the raw stream by it.
            "sha256": hashlib.sha256(self.body).hexdigest(),
        }

    def subject(self) -> str | None:
        """The wamid of a status webhook, the click id of a click (for audits of the audit)."""
        try:
            value = orjson.loads(self.body)["entry"][0]["changes"][0]["value"]
            if "statuses" in value:
                return str(value["statuses"][0]["id"])
            if "user_actions" in value:
                action = value["user_actions"][0]
                data = action.get("marketing_messages_link_click_data")
                # Only a click has a click id; another action is not the audit's subject.
                return str(data.get("click_id")) if isinstance(data, dict) else None
            if "messages" in value:
                return str(value["messages"][0]["id"])
        except (ValueError, LookupError, TypeError):
            return None
        return None


class Dispatcher:
    def __init__(
        self,
        *,
        behaviour: Callable[[], Behaviour],
        rng: random.Random,
        concurrency: int = 64,
        timeout_s: float = 10.0,
    ) -> None:
        self._behaviour = behaviour
        self._rng = rng
        self._heap: list[tuple[float, int, Delivery]] = []
        self._seq = itertools.count()
        self._ids = itertools.count(1)
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._client = httpx.AsyncClient(timeout=timeout_s)
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self.deliveries: list[Delivery] = []

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhook-dispatcher")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        for task in list(self._inflight):
            task.cancel()
        await asyncio.gather(
            *(t for t in [self._task, *self._inflight] if t), return_exceptions=True
        )
        await self._client.aclose()

    def schedule(
        self,
        *,
        url: str,
        payload: dict[str, Any],
        kind: str,
        delay_s: float,
        secret_headers: dict[str, str],
    ) -> Delivery:
        body = webhooks.encode(payload)
        delivery = Delivery(
            id=next(self._ids),
            kind=kind,
            url=url,
            body=body,
            headers={"Content-Type": "application/json", **secret_headers},
        )
        self.deliveries.append(delivery)
        self._push(delivery, delay_s)
        return delivery

    def pending(self) -> int:
        return len(self._heap) + len(self._inflight)

    def _push(self, delivery: Delivery, delay_s: float) -> None:
        heapq.heappush(self._heap, (time.monotonic() + delay_s, next(self._seq), delivery))
        self._wake.set()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            now = time.monotonic()
            while self._heap and self._heap[0][0] <= now:
                _, _, delivery = heapq.heappop(self._heap)
                task = asyncio.create_task(self._deliver(delivery))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
            timeout = self._heap[0][0] - now if self._heap else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _deliver(self, delivery: Delivery) -> None:
        async with self._slots:
            attempt = len(delivery.attempts) + 1
            started = time.time()
            try:
                response = await self._client.post(
                    delivery.url, content=delivery.body, headers=delivery.headers
                )
                outcome: dict[str, Any] = {"status": response.status_code}
                ok = response.status_code == 200
            except httpx.HTTPError as exc:
                outcome = {"error": type(exc).__name__}
                ok = False
            delivery.attempts.append({"attempt": attempt, "at": started, **outcome})
        if ok:
            delivery.delivered = True
            return
        behaviour = self._behaviour()
        if attempt >= behaviour.webhook_max_attempts:
            delivery.gave_up = True
            return
        self._push(delivery, retry_delay_s(behaviour, attempt, self._rng))
