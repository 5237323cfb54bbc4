"""Asking the Graph API what the log does not know yet, once, and recording the answer.

Whether a WABA is onboarded and what category a template has are looked up
when no event has said so. Concurrent commands that need the same answer share
one call. The answer is written to its stream before it is used, so a decision
made on it is explained by the log and a restarted sender does not ask again.
"""

from __future__ import annotations

import asyncio
import random
from typing import Literal

from mmbus.contracts.commands import SendTemplate
from mmbus.contracts.send_events import ApiError
from mmbus.folds import template_key
from services.sender import results
from services.sender.knowledge import Knowledge
from services.sender.outcomes import backoff_s
from services.sender.ports import Api, Clock, Results

Question = Literal["waba_onboarding", "template_category"]
ATTEMPTS = 3


class UnknownTemplate(LookupError):
    """The API does not know the template: asking again will not help."""


class Lookups:
    def __init__(
        self,
        api: Api,
        out: Results,
        knowledge: Knowledge,
        clock: Clock,
        rng: random.Random,
    ) -> None:
        self._api = api
        self._out = out
        self._knowledge = knowledge
        self._clock = clock
        self._rng = rng
        self._pending: dict[tuple[Question, str], asyncio.Task[None]] = {}

    async def answer(self, what: Question, command: SendTemplate) -> ApiError | None:
        """Look up ``what`` for the command (sharing a call in flight); the error if it failed."""
        data = command.data
        subject = (
            data.waba_id
            if what == "waba_onboarding"
            else template_key(data.waba_id, data.template.name)
        )
        key = (what, subject)
        task = self._pending.get(key)
        if task is None or (task.done() and task.exception() is not None):
            task = asyncio.create_task(self._ask(what, command))
            self._pending[key] = task
        try:
            await asyncio.shield(task)
        except Exception as exc:
            self._pending.pop(key, None)
            return ApiError(message=f"{what} lookup failed: {exc}")
        return None

    async def _ask(self, what: Question, command: SendTemplate) -> None:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                if what == "waba_onboarding":
                    await self._onboarding(command)
                else:
                    await self._category(command)
                return
            except UnknownTemplate:
                raise
            except Exception:
                if attempt == ATTEMPTS:
                    raise
                await self._clock.sleep(backoff_s(attempt, base_s=0.2, cap_s=2.0, rng=self._rng))

    async def _onboarding(self, command: SendTemplate) -> None:
        answer = await self._api.waba_onboarding(command.data.waba_id)
        observed = results.onboarding_observed(command, answer, self._clock.now())
        await self._out.observed(observed)
        self._knowledge.apply(observed)

    async def _category(self, command: SendTemplate) -> None:
        data = command.data
        template = await self._api.template(
            data.waba_id, data.template.name, data.template.language.code
        )
        category = template.get("category") if template else None
        if template is None or not isinstance(category, str) or not category:
            raise UnknownTemplate(
                f"template {data.template.name} ({data.template.language.code}) "
                "is unknown to the API"
            )
        seen = results.category_observed(command, template, category, self._clock.now())
        # Recorded before it is used: see the module's docstring.
        await self._out.observed(seen)
        self._knowledge.apply(seen)
