"""Ledger rebuilds beside the consumer: gates open only after a whole rebuild.

The rebuild itself is a fake here (its Kafka side is tested on the broker in
test_sender_rebuild_in_group.py); what is checked is what the runner relies on:
a partition's gate opens once its rebuild is done and its checkpoint kept, a
failed rebuild stops the sender with its gates closed, and a revocation stops a
rebuild in progress without opening anything.
"""

from __future__ import annotations

import asyncio

from pydantic import SecretStr

from services.sender.ledger import Ledger
from services.sender.metrics import SenderMetrics
from services.sender.offsets import LedgerCheckpoint
from services.sender.rebuilds import Rebuilds
from services.sender.settings import SenderSettings

SETTINGS = SenderSettings(meta_access_token=SecretStr("t"))


class FakeRebuild:
    """Rebuilds once ``release`` is set, or raises ``error``."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls: list[list[int]] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = False

    async def __call__(
        self, ledger: Ledger, settings: SenderSettings, partitions: list[int]
    ) -> tuple[dict[int, LedgerCheckpoint], int]:
        self.calls.append(partitions)
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        if self.error is not None:
            raise self.error
        checkpoints = {
            p: LedgerCheckpoint(earlier_results_from=None, scanned_to=10 * p, commands_end=p)
            for p in partitions
        }
        return checkpoints, 7


class Failures(list[Exception]):
    """What the runner is told when a rebuild fails; ``told`` is set at the first."""

    def __init__(self) -> None:
        super().__init__()
        self.told = asyncio.Event()

    def __call__(self, exc: Exception) -> None:
        self.append(exc)
        self.told.set()


def _rebuilds(fake: FakeRebuild) -> tuple[Rebuilds, dict[int, LedgerCheckpoint], Failures]:
    checkpoints: dict[int, LedgerCheckpoint] = {}
    failures = Failures()
    rebuilds = Rebuilds(Ledger(), SETTINGS, checkpoints, SenderMetrics(), failures, rebuild=fake)
    return rebuilds, checkpoints, failures


async def test_gates_open_once_the_rebuild_is_done_and_the_checkpoints_kept() -> None:
    fake = FakeRebuild()
    rebuilds, checkpoints, failures = _rebuilds(fake)
    gates = {2: asyncio.Event(), 0: asyncio.Event()}
    rebuilds.start(gates)
    await fake.started.wait()
    assert not any(g.is_set() for g in gates.values()), "closed while the rebuild runs"
    fake.release.set()
    await asyncio.wait_for(asyncio.gather(*(g.wait() for g in gates.values())), 5)
    assert fake.calls == [[0, 2]], "one rebuild of the partitions, in order"
    assert set(checkpoints) == {0, 2}
    assert failures == []


async def test_a_failed_rebuild_stops_the_sender_and_opens_nothing() -> None:
    error = RuntimeError("broker gone")
    fake = FakeRebuild(error)
    rebuilds, checkpoints, failures = _rebuilds(fake)
    gates = {1: asyncio.Event()}
    rebuilds.start(gates)
    fake.release.set()
    await asyncio.wait_for(failures.told.wait(), 5)
    assert failures == [error]
    assert not gates[1].is_set()
    assert checkpoints == {}


async def test_a_revocation_stops_a_rebuild_in_progress_and_opens_nothing() -> None:
    fake = FakeRebuild()
    rebuilds, checkpoints, failures = _rebuilds(fake)
    gates = {3: asyncio.Event(), 4: asyncio.Event()}
    rebuilds.start(gates)
    await fake.started.wait()
    await rebuilds.cancel({3, 4})
    assert fake.cancelled
    fake.release.set()
    assert not any(g.is_set() for g in gates.values())
    assert checkpoints == {}
    assert failures == [], "a revocation is no failure"


async def test_a_revocation_of_other_partitions_leaves_a_rebuild_alone() -> None:
    fake = FakeRebuild()
    rebuilds, _, _ = _rebuilds(fake)
    gates = {5: asyncio.Event()}
    rebuilds.start(gates)
    await fake.started.wait()
    await rebuilds.cancel({6})
    assert not fake.cancelled
    fake.release.set()
    await asyncio.wait_for(gates[5].wait(), 5)
