"""The README's Python examples run as written, against the real broker.

Every ```python block of README.md is executed in order in one namespace
(top-level ``await`` allowed, as in the README), with the ``MMBUS_*``
variables pointing at the test broker. Then the consumer the README defines is
started and fed a result for the command the README published.
"""

from __future__ import annotations

import ast
import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from mmbus import encode
from mmbus.contracts.commands import SendTemplate
from services.common.kafka_admin import ensure_project_topics
from services.common.settings import CommonSettings
from tests.projections import events as ev
from tests.waiting import eventually

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def test_the_readme_has_the_examples_this_test_runs() -> None:
    blocks = BLOCK.findall(README.read_text())
    assert len(blocks) == 2
    assert all("services" not in block for block in blocks)  # the library only


async def test_the_readme_examples_publish_and_consume(
    kafka_settings: CommonSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    await ensure_project_topics(kafka_settings)
    monkeypatch.setenv("MMBUS_KAFKA_BOOTSTRAP_SERVERS", kafka_settings.kafka_bootstrap_servers)
    monkeypatch.setenv("MMBUS_TOPIC_PREFIX", kafka_settings.topic_prefix)
    namespace: dict[str, Any] = {"__name__": "readme"}
    for block in BLOCK.findall(README.read_text()):
        code = compile(block, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, namespace)  # noqa: S307 (our own README)
        if asyncio.iscoroutine(result):
            await result

    command: SendTemplate = namespace["command"]
    broker = namespace["events"].broker
    outcomes: dict[str, str] = namespace["outcomes"]
    await broker.start()
    try:
        accepted = ev.accepted(1).model_copy(
            update={"data": ev.accepted(1).data.model_copy(update={"command_id": command.id})}
        )
        record = encode(accepted)
        await broker.publish(
            record.value,
            f"{kafka_settings.topic_prefix}send.events",
            key=record.key,
            headers={k: v.decode() for k, v in record.headers},
        )
        await eventually(lambda: command.id in outcomes, what="the README consumer saw the result")
    finally:
        await broker.stop()
    assert outcomes == {command.id: "send.accepted"}
