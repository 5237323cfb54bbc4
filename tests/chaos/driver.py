"""One chaos run: the whole stack on a three-node cluster, a campaign, crashes on schedule.

The stack is ``services.demo.DemoStack`` with two senders in one group; every part is
a child process that can be SIGKILLed and started again with its ports and
settings. Progress (commands with a terminal event) is counted from the
send.events headers alone, so watching costs the machine little.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from mmbus.contracts.codec import header_attributes
from mmbus.contracts.topics import Stream, topic_name
from mmbus.publisher import SendCommandPublisher
from services.common.kafka_admin import ensure_project_topics
from services.common.settings import CommonSettings
from services.demo import DemoStack
from services.localkafka import cluster
from services.sender.ledger import TERMINAL_TYPES
from tests.chaos.campaign import PAIR_LIMIT_S, SENDER_RATE_PER_S, Campaign, world
from tests.chaos.schedule import KillBroker, Schedule, Step
from tests.waiting import eventually

SENDER_READ_TIMEOUT_S = 10.0
# What a run writes in its directory (parts' and brokers' logs, the store, the findings).
EARLIER_RUN_FILES = (
    "projections.db",
    "findings.json",
    "settings.json",
    "world.yaml",
    "driver.log",
    "broker-",
    "simulator.log",
    "ingest.log",
    "projector.log",
    "sender",
)


def clear_earlier_run(workdir: Path) -> None:
    """A seed's directory holds one run: the projector would load an earlier run's store
    (other topics, other messages) and the checker find everything mismatched."""
    if not workdir.is_dir():
        return
    for path in workdir.iterdir():
        if path.is_file() and path.name.startswith(EARLIER_RUN_FILES):
            path.unlink()


SENDER_TUNING = {
    "MMBUS_SENDER_RATE_PER_S": str(SENDER_RATE_PER_S),
    "MMBUS_SENDER_PAIR_WINDOW_S": str(PAIR_LIMIT_S + 0.2),
    # Shorter than the simulator's hang after accepting (those sends are ambiguous), and
    # long enough that a simulator queueing calls on two busy cores is not taken for one.
    "MMBUS_SENDER_READ_TIMEOUT_S": str(SENDER_READ_TIMEOUT_S),
    "MMBUS_SENDER_HTTP_CONNECTIONS": "64",
    "MMBUS_SENDER_MAX_ATTEMPTS": "30",
    "MMBUS_SENDER_BACKOFF_BASE_S": "0.05",
    "MMBUS_SENDER_BACKOFF_CAP_S": "1",
}


@dataclass(frozen=True)
class Crashed:
    what: str  # "broker 2", "sender-2", ...
    at_progress: float
    killed_at: float  # wall clock
    restarted_at: float


@dataclass
class Progress:
    terminal: set[str] = field(default_factory=set)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            self.changed.clear()
            await self.changed.wait()

    def share(self, total: int) -> float:
        return len(self.terminal) / total


async def watch_terminals(settings: CommonSettings, progress: Progress) -> None:
    """Count commands with a terminal event, forever (cancelled by the run)."""
    consumer = AIOKafkaConsumer(
        topic_name(Stream.SEND_EVENTS, settings.topic_prefix),
        auto_offset_reset="earliest",
        **settings.kafka_client_options(),
    )
    await consumer.start()
    try:
        while True:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    ce = header_attributes(record.headers)
                    if ce.get("ce_type") in TERMINAL_TYPES and ce.get("ce_subject"):
                        progress.terminal.add(ce["ce_subject"])  # the command id
            progress.changed.set()
    finally:
        await consumer.stop()


async def publish_paced(settings: CommonSettings, campaign: Campaign, per_s: int) -> None:
    """The campaign at a steady rate, as a scheduler would: the crashes fall while
    commands still arrive, not after the senders have emptied the topic."""
    commands = list(campaign.commands)
    started = time.monotonic()
    async with SendCommandPublisher.from_settings(settings) as publisher:
        for second, start in enumerate(range(0, len(commands), per_s)):
            await publisher.publish_many(commands[start : start + per_s])
            await asyncio.sleep(max(0.0, started + second + 1 - time.monotonic()))


async def _describe(settings: CommonSettings) -> list[dict[str, Any]]:
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith(settings.topic_prefix)]
        described: list[dict[str, Any]] = await admin.describe_topics(topics)
        return described
    finally:
        await admin.close()


async def full_isr(settings: CommonSettings, within_s: float = 120) -> None:
    """Wait until every partition of the project's topics has all its replicas in sync."""

    async def in_sync() -> bool:
        described = await _describe(settings)
        return all(set(p["isr"]) == set(p["replicas"]) for d in described for p in d["partitions"])

    await eventually(in_sync, within_s=within_s, poll_s=0.5, what="every replica back in sync")


async def leader_of_commands(settings: CommonSettings, partition: int) -> int:
    topic = topic_name(Stream.SEND_COMMANDS, settings.topic_prefix)
    for described in await _describe(settings):
        if described["topic"] == topic:
            for p in described["partitions"]:
                if p["partition"] == partition:
                    return int(p["leader"])
    raise LookupError(f"{topic} has no partition {partition}")


@dataclass
class ChaosRun:
    settings: CommonSettings
    cluster_name: str
    workdir: Path
    schedule: Schedule
    campaign: Campaign
    publish_per_s: int
    crashed: list[Crashed] = field(default_factory=list)
    progress: Progress = field(default_factory=Progress)
    _brokers_killed: list[int] = field(default_factory=list)
    _one_broker_at_a_time: asyncio.Lock = field(default_factory=asyncio.Lock)

    def stack(self) -> DemoStack:
        clear_earlier_run(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        world_file = self.workdir / "world.yaml"
        world_file.write_text(yaml.safe_dump(world().model_dump(mode="json")))
        return DemoStack(
            self.settings,
            self.workdir,
            simulator_behaviour=self.schedule.webhook_behaviour,
            world_file=world_file,
            senders=2,
            # Tracebacks in the parts' logs: a crash the run did not cause is a finding.
            part_env={
                "sender": {**SENDER_TUNING, "MMBUS_DEBUG": "1"},
                **{part: {"MMBUS_DEBUG": "1"} for part in ("simulator", "ingest", "projector")},
            },
        )

    async def drive(self, stack: DemoStack, deadline_s: float) -> None:
        """Publish, crash on schedule, and return once every command has a terminal event."""
        await ensure_project_topics(self.settings)
        async with httpx.AsyncClient(base_url=stack.simulator_url, timeout=10) as sim:
            (await sim.put("/_admin/faults", json=self.schedule.api_faults)).raise_for_status()
        total = len(self.campaign.commands)
        watcher = asyncio.create_task(watch_terminals(self.settings, self.progress))
        reporter = asyncio.create_task(self._report(total))
        publisher = asyncio.create_task(
            publish_paced(self.settings, self.campaign, self.publish_per_s)
        )
        crashes: list[asyncio.Task[None]] = []
        try:
            async with asyncio.timeout(deadline_s):
                # A crash does not wait for the one before to be over: a broker takes up
                # to a minute to rejoin on two busy cores, and the campaign goes on.
                for step in self.schedule.steps:
                    await self.progress.until(self._reached(step.at_progress, total))
                    crashes.append(asyncio.create_task(self._crash(stack, step)))
                await publisher
                await self.progress.until(lambda: self.progress.terminal >= self.campaign.ids)
                await asyncio.gather(*crashes)
        finally:
            for task in (publisher, watcher, reporter, *crashes):
                task.cancel()
            await asyncio.gather(publisher, watcher, reporter, *crashes, return_exceptions=True)

    async def _report(self, total: int) -> None:
        """A line every few seconds in driver.log: where a run that hangs got stuck."""
        started = time.monotonic()
        with (self.workdir / "driver.log").open("a") as log:
            while True:
                crashed = ", ".join(c.what for c in self.crashed)
                log.write(
                    f"{time.monotonic() - started:6.0f} s  {len(self.progress.terminal)}/{total}"
                    f" with a result; crashed so far: {crashed or 'none'}\n"
                )
                log.flush()
                await asyncio.sleep(5)

    def _reached(self, share: float, total: int) -> Callable[[], bool]:
        return lambda: self.progress.share(total) >= share

    async def _crash(self, stack: DemoStack, step: Step) -> None:
        crash = step.crash
        if isinstance(crash, KillBroker):
            async with self._one_broker_at_a_time:
                await self._crash_broker(crash, step)
            return
        killed_at = time.time()
        await asyncio.to_thread(stack.kill, crash.name)
        await asyncio.sleep(step.down_s)
        await asyncio.to_thread(stack.restart, crash.name)
        self.crashed.append(Crashed(crash.name, step.at_progress, killed_at, time.time()))

    async def _crash_broker(self, crash: KillBroker, step: Step) -> None:
        """One broker down at a time, and the next only once every replica caught up:
        two down of three is below min.insync.replicas, an outage, not a fault."""
        await full_isr(self.settings)
        leader = await leader_of_commands(self.settings, 0)
        victim = leader
        if crash.which == "other":
            others = [n for n in (1, 2, 3) if n != leader and n not in self._brokers_killed]
            victim = others[0] if others else next(n for n in (1, 2, 3) if n != leader)
        self._brokers_killed.append(victim)
        killed_at = time.time()
        await asyncio.to_thread(cluster.kill_node, self.cluster_name, victim)
        await asyncio.sleep(step.down_s)
        await asyncio.to_thread(cluster.restart_node, self.cluster_name, victim)
        what = f"broker {victim}{' (leader of send.commands/0)' if victim == leader else ''}"
        self.crashed.append(Crashed(what, step.at_progress, killed_at, time.time()))
