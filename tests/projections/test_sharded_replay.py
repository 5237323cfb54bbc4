"""Sharded replay on the real broker: the same digest for every worker count and bound.

The partitions are shared among workers whose partial states are joined; the
digest must equal the single-process replay's, the live projector's, and the
fold of the events, at every point in time, into memory, SQLite and
PostgreSQL, and with workers that are separate processes sharing nothing but
Kafka and a directory.
"""

from __future__ import annotations

import asyncio
import gc
import json
import multiprocessing
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from mmbus.contracts.codec import encode
from mmbus.contracts.envelope import Message
from mmbus.contracts.topics import Stream, topic_name
from services.common.settings import CommonSettings
from services.projections.plan import PlanError
from services.projections.projection import choose
from services.projections.replay import replay
from services.projections.shard import Stages, fold_spans
from services.projections.store import Store
from tests.projections import events as ev
from tests.projections.support import (
    campaign,
    caught_up,
    expected_state,
    projector_running,
    publish_log,
)
from tests.waiting import eventually


async def _pause_past(cut: datetime) -> None:
    # Records logged after the cut must carry a later millisecond timestamp.
    while datetime.now(UTC) - cut < timedelta(milliseconds=3):
        pass


async def test_every_worker_count_and_point_in_time_gives_the_same_digest(
    kafka_settings: CommonSettings, tmp_path: Path
) -> None:
    before = [*campaign(25), ev.status(None, "delivered", 4, wamid="wamid.unknown")]
    await publish_log(kafka_settings, before)
    cut = datetime.now(UTC)
    await _pause_past(cut)
    after = campaign(15, first=26)
    await publish_log(kafka_settings, after)
    specs = choose(None)
    expected = {
        cut: expected_state(before).digest(),
        None: expected_state(before + after).digest(),
    }
    for until, digest in expected.items():
        for workers in (1, 2, 3):
            report = await replay(
                kafka_settings, specs, store_url=None, until=until, workers=workers
            )
            assert report.digests["all"] == digest, (until, workers)
            assert report.records_read == len(before if until else before + after)
            assert report.workers == workers
            # The collector as the replay found it: on, nothing left frozen (shard.py).
            assert gc.isenabled()
            assert gc.get_freeze_count() == 0
    into_sqlite = await replay(
        kafka_settings, specs, store_url=f"sqlite:///{tmp_path / 'r.db'}", until=cut, workers=2
    )
    assert into_sqlite.digests["all"] == expected[cut]
    assert into_sqlite.anomalies["status_for_unknown_message"] == 1


async def test_statuses_passed_to_the_worker_of_their_send_give_the_same_state(
    kafka_settings: CommonSettings,
) -> None:
    """One number sent every message, so one worker folds the whole send side and the
    others pass it the statuses they read (forward.py). Statuses keyed by something
    else than their wamid (another producer's choice) are passed wherever their key
    says, or not at all: the exchange after the fold merges what that leaves split,
    and the state is the one a single process folds."""
    log = campaign(40)
    await publish_log(kafka_settings, log)
    rekeyed: list[Message] = [ev.status(n, "read", 6, copy=7) for n in range(1, 41, 4)]
    rekeyed.append(ev.status(None, "read", 6, wamid="wamid.11", copy=7))  # no callback data
    producer = AIOKafkaProducer(**kafka_settings.kafka_client_options())
    await producer.start()
    try:
        for i, status in enumerate(rekeyed):
            record = encode(status)
            topic = topic_name(Stream.MESSAGE_STATUS, kafka_settings.topic_prefix)
            await producer.send_and_wait(
                topic, record.value, key=f"elsewhere-{i}".encode(), headers=record.headers
            )
    finally:
        await producer.stop()
    expected = expected_state(log + rekeyed).digest()
    for workers in (1, 2, 3):
        stages = Stages()
        report = await replay(
            kafka_settings, choose(None), store_url=None, workers=workers, stages=stages
        )
        assert report.digests["all"] == expected, workers
        assert report.records_read == len(log) + len(rekeyed)
        if workers == 2:  # one worker sent everything; the other read some statuses
            assert stages.passed + stages.received > 0


async def test_a_sharded_replay_equals_the_live_projection_at_its_offsets(
    kafka_settings: CommonSettings, tmp_path: Path
) -> None:
    log = campaign(30)
    await publish_log(kafka_settings, log)
    live_url = f"sqlite:///{tmp_path / 'live.db'}"
    with Store(live_url) as store:
        async with projector_running(kafka_settings, store) as projector:
            await caught_up(projector, len(log))
        live_offsets, live_digest = store.snapshot("live", projector.projection.kinds)
    await publish_log(kafka_settings, campaign(5, first=31))  # past the live offsets
    report = await replay(
        kafka_settings, choose(None), store_url=None, offsets_of=(live_url, "live"), workers=3
    )
    assert report.digests["all"] == live_digest
    assert report.offsets == {f"{t}[{p}]": n for (t, p), n in sorted(live_offsets.items())}


@pytest.mark.parametrize("workers", [1, 2])
async def test_a_replay_into_postgresql(
    kafka_settings: CommonSettings, postgres_database: str, workers: int
) -> None:
    """One worker loads the store as it fingerprints the state; with two, worker 0
    loads it as it merges the shares."""
    log = campaign(20)
    await publish_log(kafka_settings, log)
    report = await replay(
        kafka_settings, choose(None), store_url=postgres_database, workers=workers
    )
    assert report.digests["all"] == expected_state(log).digest()
    with Store(postgres_database) as store:
        offsets = store.offsets("mmbus-replay")
        assert store.digest(expected_state([]).kinds) == report.digests["all"]
    assert sum(offsets.values()) == len(log), "offsets written with the rows"


def test_workers_in_separate_processes_share_only_kafka_and_a_directory(
    kafka_settings: CommonSettings, tmp_path: Path
) -> None:
    import asyncio

    log = campaign(20)
    asyncio.run(publish_log(kafka_settings, log))
    env = {
        "PATH": os.environ["PATH"],
        "MMBUS_KAFKA_BOOTSTRAP_SERVERS": kafka_settings.kafka_bootstrap_servers,
        "MMBUS_TOPIC_PREFIX": kafka_settings.topic_prefix,
    }
    shared = tmp_path / "shared"

    def cli(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli", "replay", "--dir", str(shared), *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finished(proc: subprocess.Popen[str]) -> str:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        return out

    finished(cli("--plan", "--workers", "3"))
    workers = [cli("--shard", str(n)) for n in range(3)]
    for worker in workers:
        finished(worker)
    assert sorted(p.name for p in shared.iterdir()) == [
        "part-0.jsonl",
        "part-1.jsonl",
        "part-2.jsonl",
        "plan.json",
    ]
    store = f"sqlite:///{tmp_path / 'audit.db'}"
    report = json.loads(finished(cli("--join", "--store", store, "--json")))
    assert report["digests"]["all"] == expected_state(log).digest()
    assert report["records_read"] == len(log)
    assert report["workers"] == 3
    again = cli("--join", "--store", store)
    _, err = again.communicate(timeout=120)
    assert again.returncode == 1
    assert "already holds projections" in err


async def test_a_worker_killed_mid_replay_fails_the_replay_and_leaves_no_state_behind(
    kafka_settings: CommonSettings, tmp_path: Path
) -> None:
    """The workers wait for each other's files: one that dies must not leave the
    others waiting. Killed with SIGKILL as soon as it runs, the replay fails with
    the worker's exit code, and the exchange's files (the state) are gone."""
    await publish_log(kafka_settings, campaign(30))
    replaying = asyncio.create_task(
        replay(kafka_settings, choose(None), store_url=None, workers=2, directory=tmp_path)
    )
    await eventually(
        lambda: bool(multiprocessing.active_children()), poll_s=0.001, what="a forked worker"
    )
    child = multiprocessing.active_children()[0]
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    with pytest.raises(PlanError, match="exit code -9"):
        await asyncio.wait_for(replaying, timeout=60)
    assert not [p for p in os.listdir(tmp_path) if p.startswith("exchange-")]
    report = await replay(kafka_settings, choose(None), store_url=None, workers=2)
    assert report.digests["all"] == expected_state(campaign(30)).digest()


async def test_a_worker_with_nothing_to_read_ends_cleanly(kafka_settings: CommonSettings) -> None:
    """A worker that claims nothing stops its consumer at once (aiokafka raised
    CancelledError for a consumer stopped before its first step); with more workers
    than units, some claim nothing."""
    empty = await fold_spans(kafka_settings, choose(None), [])
    assert empty.tally().read == 0
    log = [*campaign(1)]
    await publish_log(kafka_settings, log)
    report = await replay(kafka_settings, choose(None), store_url=None, workers=4)
    assert report.digests["all"] == expected_state(log).digest()
    assert report.workers == 4
