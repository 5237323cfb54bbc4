"""The whole system under faults on a replicated cluster, checked over its whole history.

Simulator -> ingest -> normalizer, two senders in one group, the projector, on a
three-node KRaft cluster (replication factor 3, min.insync.replicas 2). A seeded
campaign is published while brokers and processes are SIGKILLed and restarted and
the simulated API fails, resets, answers late, and duplicates, delays and reorders
its webhooks. Then ``history.check`` compares the log, the simulator's records
and the projection (see there).

The short run is part of `make test`; `make test-chaos` runs the long one
(``CHAOS_SEED``, ``CHAOS_COMMANDS`` choose the seed and the size).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.settings import CommonSettings
from services.localkafka import cluster
from services.localkafka.cluster_state import node_layout
from services.projections.projection import choose
from services.projections.replay import replay
from services.projections.store import Store
from tests.chaos import schedule
from tests.chaos.campaign import campaign
from tests.chaos.driver import ChaosRun
from tests.chaos.history import Findings, Observed, check
from tests.chaos.observe import log_history, projection_history, simulator_history

pytestmark = pytest.mark.kafka
PARTITIONS = 6


@pytest.fixture(scope="module")
def three_nodes() -> Iterator[tuple[str, str]]:
    """(cluster name, bootstrap servers)."""
    name = f"pytest-chaos-{uuid.uuid4().hex[:8]}"
    try:
        yield name, cluster.up(name, nodes=3, free_ports=True).instance.bootstrap_servers
    finally:
        if not os.environ.get("CHAOS_KEEP_CLUSTER"):  # kept: to look into a failed run
            cluster.down(name, purge=True, kill=True)


async def run_chaos(
    nodes: tuple[str, str],
    workdir: Path,
    plan: schedule.Schedule,
    size: int,
    per_s: int,
    deadline_s: float,
) -> Findings:
    name, bootstrap = nodes
    settings = CommonSettings(
        kafka_bootstrap_servers=bootstrap,
        topic_prefix=f"chaos-{uuid.uuid4().hex[:10]}.",
        partitions=PARTITIONS,
        replication_factor=3,
    )
    chaos = ChaosRun(settings, name, workdir, plan, campaign(plan.seed, size), per_s)
    try:
        started = time.monotonic()
        stack = chaos.stack()
        with stack:
            await chaos.drive(stack, deadline_s)
            sent_s = time.monotonic() - started
            await asyncio.to_thread(
                # Every command has its terminal event (drive saw them on the log). Quiet
                # long enough to outlast a normalizer's rebalance after an ingest crash.
                stack.settle,
                chaos.campaign.campaign_id,
                None,
                timeout_s=deadline_s,
                quiet_s=20,
            )
            sim = await asyncio.to_thread(simulator_history, stack.simulator_url)
            projected = await asyncio.to_thread(
                projection_history, stack.query_url, chaos.campaign.campaign_id
            )
        # Stopped, the projector last: its store holds its final state and offsets.
        kinds = tuple(k for spec in choose(None) for k in spec.kinds)
        with Store(stack.store_url) as store:
            _, live_digest = store.snapshot("mmbus-projector", kinds)
        audit = await replay(
            settings, choose(None), store_url=None, offsets_of=(stack.store_url, "mmbus-projector")
        )
        observed = Observed(
            commands=chaos.campaign.ids,
            campaign_id=chaos.campaign.campaign_id,
            **sim,
            **projected,
            **await log_history(settings),
            live_digest=live_digest,
            replay_digest=audit.digests["all"],
            crashed=chaos.crashed,
        )
    except BaseException:
        (workdir / "settings.json").write_text(settings.model_dump_json())
        raise
    finally:
        keep_broker_logs(name, workdir)
    findings = check(observed)
    findings.figures["seed"] = plan.seed
    findings.figures["seconds to every terminal event"] = round(sent_s)
    findings.figures["seconds in all"] = round(time.monotonic() - started)
    (workdir / "findings.json").write_text(
        json.dumps({"figures": findings.figures, "problems": findings.problems}, indent=2)
    )
    return findings


def keep_broker_logs(name: str, workdir: Path) -> None:
    """Each node's logs beside the parts' logs: the fixture purges the cluster."""
    for node_id in (1, 2, 3):
        layout = node_layout(name, node_id)
        for log in (layout.server_log, layout.stdout_log):
            if log.exists():
                shutil.copy(log, workdir / f"broker-{node_id}-{log.name}")


def report(findings: Findings, capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print("\n--- chaos run ---\n" + findings.summary())


@pytest.mark.timeout(600)
async def test_the_whole_path_survives_a_broker_bounce_and_crashes(
    three_nodes: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The short version for `make test`: 2,000 commands, one broker, one sender and
    ingest killed, the API's and webhooks' faults on."""
    findings = await run_chaos(three_nodes, tmp_path, schedule.short(seed=7), 2000, 50, 240)
    report(findings, capsys)
    assert findings.ok, findings.summary()
    assert len(findings.figures["crashes"]) == 3


@pytest.mark.chaos
@pytest.mark.timeout(1500)
async def test_chaos_campaign_on_a_replicated_cluster(
    three_nodes: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = int(os.environ.get("CHAOS_SEED", "1"))
    size = int(os.environ.get("CHAOS_COMMANDS", "20000"))
    workdir = Path(os.environ.get("CHAOS_WORKDIR", str(tmp_path))) / f"seed-{seed}"
    findings = await run_chaos(three_nodes, workdir, schedule.full(seed), size, 100, 720)
    report(findings, capsys)
    assert findings.ok, findings.summary()
