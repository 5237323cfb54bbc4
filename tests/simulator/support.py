"""A webhook receiver for tests, and the test world."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.simulator.world import PhoneNumber, Portfolio, Template, Waba, World

ONBOARDED_WABA, FALLBACK_WABA = "102290129340398", "203301230451409"
NUMBER, NUMBER_2, FALLBACK_NUMBER = "106540352242922", "106540352242923", "207651463353033"
UK_USER, US_USER, STOPPED_USER = "447911123456", "16505550123", "4915199999999"


def make_world(**changes: Any) -> World:
    world = World(
        portfolios=(Portfolio(id="1029384756473829"), Portfolio(id="2039485766574839")),
        wabas=(
            Waba(id=ONBOARDED_WABA, business_id="1029384756473829", onboarding_status="ONBOARDED"),
            Waba(id=FALLBACK_WABA, business_id="2039485766574839", onboarding_status="ELIGIBLE"),
        ),
        phone_numbers=(
            PhoneNumber(
                id=NUMBER,
                waba_id=ONBOARDED_WABA,
                display_phone_number="15550001111",
                throughput_per_s=1000,
            ),
            PhoneNumber(
                id=NUMBER_2,
                waba_id=ONBOARDED_WABA,
                display_phone_number="15550001112",
                throughput_per_s=2,
            ),
            PhoneNumber(
                id=FALLBACK_NUMBER,
                waba_id=FALLBACK_WABA,
                display_phone_number="15550002221",
                throughput_per_s=1000,
            ),
        ),
        templates=(
            Template(
                waba_id=ONBOARDED_WABA,
                name="spring_sale",
                language="en_US",
                category="MARKETING",
                id="9001",
            ),
            Template(
                waba_id=ONBOARDED_WABA,
                name="max_price_promo",
                language="en_US",
                category="MARKETING",
                id="9002",
                bid_spec={"bid_amount": 87000},
            ),
            Template(
                waba_id=ONBOARDED_WABA,
                name="order_update",
                language="en_US",
                category="UTILITY",
                id="9003",
            ),
            Template(
                waba_id=ONBOARDED_WABA,
                name="paused_promo",
                language="en_US",
                category="MARKETING",
                status="PAUSED",
                id="9004",
            ),
            Template(
                waba_id=FALLBACK_WABA,
                name="spring_sale",
                language="en_US",
                category="MARKETING",
                id="9011",
            ),
        ),
        stopped_marketing=frozenset({STOPPED_USER}),
        access_tokens=frozenset({"sim-token"}),
        d360_api_keys={"d360-key": NUMBER},
        pair_limit_s=6.0,
    )
    return world.model_copy(update=changes)


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class WebhookSink:
    """Collects webhook POSTs; can refuse the first N with 500 to exercise retries."""

    fail_first: int = 0
    always_fail: bool = False
    received: list[Received] = field(default_factory=list)
    refused: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            body = await request.body()
            with self._cond:
                if self.always_fail or self.refused < self.fail_first:
                    self.refused += 1
                    self._cond.notify_all()
                    return Response(status_code=500)
                self.received.append(Received(body, dict(request.headers)))
                self._cond.notify_all()
            return Response(status_code=200)

        return Starlette(routes=[Route("/webhooks", hook, methods=["POST"])])

    def wait_refused(self, count: int, timeout: float = 10.0) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: self.refused >= count, timeout)

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 10.0
    ) -> list[Received]:
        with self._cond:
            ok = self._cond.wait_for(lambda: predicate(self.received), timeout)
            assert ok, f"condition not met within {timeout}s; got {len(self.received)} webhooks"
            return list(self.received)


def statuses(received: list[Received]) -> list[dict[str, Any]]:
    out = []
    for r in received:
        for entry in r.json["entry"]:
            for change in entry["changes"]:
                out.extend(change["value"].get("statuses", []))
    return out


def changes(received: list[Received], field_name: str) -> list[dict[str, Any]]:
    return [
        change["value"]
        for r in received
        for entry in r.json["entry"]
        for change in entry["changes"]
        if change["field"] == field_name
    ]
