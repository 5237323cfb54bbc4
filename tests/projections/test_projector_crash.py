"""kill -9 of the projector mid-stream, then a restart: counts exact on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.harness import free_port
from services.common.settings import CommonSettings
from services.projections.store import Store
from tests.projections.support import campaign, expected_state, publish_log

MESSAGES = 6000  # about 40,000 events: enough to kill the projector half-way


def start_projector(settings: CommonSettings, store_url: str, log: Path) -> subprocess.Popen[bytes]:
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
            "MMBUS_LOG_FORMAT": "json",
        }
    )
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli", "projector"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stored_progress(store_url: str) -> int:
    with Store(store_url) as store:
        return sum(store.offsets("mmbus-projector").values())


def wait_for(predicate: object, what: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while not predicate():  # type: ignore[operator]
        if process.poll() is not None:
            tail = log.read_text()[-3000:]
            pytest.fail(f"projector exited ({process.returncode}) waiting for {what}:\n{tail}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


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
    first = start_projector(kafka_settings, store_url, out)
    try:
        Store(store_url).open().close()  # the schema exists before we poll it
        wait_for(lambda: stored_progress(store_url) > total // 3, "a third", first, out)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        at_kill = stored_progress(store_url)
        assert 0 < at_kill < total, "killed mid-stream"
        second = start_projector(kafka_settings, store_url, out)
        try:
            wait_for(lambda: stored_progress(store_url) == total, "the end", second, out)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
    expected = expected_state(log)
    with Store(store_url) as store:
        all_digest = store.digest(expected.kinds)
        aggregates = [doc for _, doc in store.find("aggregate", grp="spring")]
    assert all_digest == expected.digest(), "the stored state is exactly the fold of the log"
    assert aggregates, "the campaign's counts are there"
    restarted = out.read_text().count("projector state loaded")
    assert restarted == 2
