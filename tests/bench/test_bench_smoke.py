"""The benchmarks still run: each one, tiny, on the test broker.

These are not measurements (figures from a few hundred records mean nothing and
no figure is asserted); they catch a benchmark that no longer fits the code it
drives, which would otherwise surface only when somebody next runs ``make bench-*``.
"""

from __future__ import annotations

import logging

import pytest

from bench import replay as replay_bench
from bench import sender as sender_bench


@pytest.fixture(autouse=True)
def _quiet_aiokafka() -> None:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


async def test_the_sender_benchmark_runs_every_variant(
    kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await sender_bench.bench(kafka_bootstrap, 200, [0], 1.0)
    report = capsys.readouterr().out
    for row in (
        "raw aiokafka+httpx",
        "raw aiokafka+aiohttp",
        "raw aiokafka+aiohttp +attempt",
        "naive FastStream handler",
        "mmbus sender (aiohttp)",
        "mmbus sender (httpx)",
    ):
        assert row in report, f"{row!r} missing from:\n{report}"
    assert "CPU ms/send" in report, report
    # The pair the target is set on ran in two rounds, each round's figures printed.
    rounds = [line for line in report.splitlines() if line.startswith("rounds (")]
    assert len(rounds) == 1, report
    assert rounds[0].count(" = ") == 2, report
    assert "best of 2" in rounds[0], report


async def test_the_replay_benchmark_runs_and_both_stores_agree(
    kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await replay_bench.bench(kafka_bootstrap, 100)
    report = capsys.readouterr().out
    assert "mmbus replay into memory" in report
    assert "mmbus replay into SQLite" in report
    assert "digest (memory = SQLite)" in report
