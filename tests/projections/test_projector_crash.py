"""kill -9 of the projector mid-stream, then a restart: counts exact on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services.common.ports import free_port
from services.common.settings import CommonSettings
from services.localkafka import broker
from services.projections.store import Store
from tests.projections.support import (
    campaign,
    caught_up,
    expected_state,
    projector_running,
    publish_log,
)

MESSAGES = 6000  # about 40,000 events: enough to kill the projector half-way


def start_projector(settings: CommonSettings, store_url: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMBUS_")}
    env.update(
        {
            "MMBUS_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "MMBUS_TOPIC_PREFIX": settings.topic_prefix,
            "MMBUS_PARTITIONS": str(settings.partitions),
            "MMBUS_PROJECTOR_STORE": store_url,
            "MMBUS_PROJECTOR_HTTP_PORT": str(free_port()),
            # Small transactions, so a kill lands between many of them.
            "MMBUS_PROJECTOR_BATCH_RECORDS": "200",
            # Each stored batch is logged (JSON lines): the test follows them.
            "MMBUS_LOG_FORMAT": "json",
            "MMBUS_LOG_LEVEL": "DEBUG",
        }
    )
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", "projector"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def follow(
    process: subprocess.Popen[bytes],
    until: Callable[[dict[str, Any]], bool],
    log: Path,
    timeout_s: float = 120,
) -> dict[str, Any]:
    """Read the process's log lines until one satisfies ``until`` (or fail with the log)."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as selector, log.open("ab") as copy:
        selector.register(process.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not selector.select(left):
                continue
            line = process.stdout.readline()
            if not line:
                pytest.fail(f"projector exited ({process.wait()}):\n{log.read_text()[-3000:]}")
            copy.write(line)
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and until(record):
                return record
    pytest.fail(f"timed out; the projector's log ends:\n{log.read_text()[-3000:]}")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_kill_9_mid_stream_then_restart_counts_exactly(
    backend: str, kafka_settings: CommonSettings, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store_url = (
        f"sqlite:///{tmp_path / 'projections.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_database")
    )
    log = campaign(MESSAGES)
    await publish_log(kafka_settings, log)
    total = len(log)
    out = tmp_path / "projector.log"

    def stored_at_least(n: int) -> Callable[[dict[str, Any]], bool]:
        return lambda r: r.get("event") == "projection stored" and r.get("stored", 0) >= n

    first = start_projector(kafka_settings, store_url)
    try:
        follow(first, stored_at_least(total // 3), out)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    with Store(store_url) as store:
        at_kill = sum(store.offsets("mmbus-projector").values())
    assert total // 3 <= at_kill < total, "killed mid-stream"
    second = start_projector(kafka_settings, store_url)
    try:
        loaded = follow(second, lambda r: r.get("event") == "projector state loaded", out)
        assert loaded["rows"] > 0, "the restart resumed from the stored rows"
        follow(second, stored_at_least(total), out)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    expected = expected_state(log)
    with Store(store_url) as store:
        offsets = store.offsets("mmbus-projector")
        digest = store.digest(expected.kinds)
        campaign_rows = store.find("aggregate", grp="spring")
    assert sum(offsets.values()) == total
    assert digest == expected.digest(), "the stored state is exactly the fold of the log"
    assert campaign_rows, "the campaign's counts are there"


async def test_a_broker_restart_under_a_running_projector_loses_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    name = f"pytest-projector-{uuid.uuid4().hex[:6]}"
    try:
        started = await asyncio.to_thread(broker.up, name, free_ports=True)
        kafka = CommonSettings(
            kafka_bootstrap_servers=started.instance.bootstrap_servers,
            topic_prefix="p.",
            partitions=2,
        )
        first, second = campaign(30), campaign(30, first=31)
        await publish_log(kafka, first)
        with Store(f"sqlite:///{tmp_path / 'live.db'}") as store:
            async with projector_running(kafka, store) as projector:
                await caught_up(projector, len(first))
                await asyncio.to_thread(broker.down, name, kill=True)
                await asyncio.to_thread(broker.up, name)
                await publish_log(kafka, second)
                await caught_up(projector, len(first) + len(second), timeout_s=120)
            _, digest = store.snapshot("live", projector.projection.kinds)
        assert digest == expected_state(first + second).digest()
    finally:
        await asyncio.to_thread(broker.down, name, purge=True, kill=True)
