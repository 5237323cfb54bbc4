"""A command that cannot reach Kafka says so in one line, with how to start the local broker."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CSV = "waba_id,phone_number_id,to,template,language\n1022,1065,+44 7911 123456,spring_sale,en_US\n"
HINT = "start the local broker with 'mmbus kafka up' (or set MMBUS_KAFKA_BOOTSTRAP_SERVERS)"


@pytest.fixture
def unused_port() -> Iterator[int]:
    """A port bound but not listening: connecting is refused, and nothing else can take it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def mmbus(args: list[str], tmp_path: Path, servers: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={
            "PATH": "/usr/bin:/bin",
            "MMBUS_HOME": str(tmp_path / "home"),
            "MMBUS_KAFKA_BOOTSTRAP_SERVERS": servers,
        },
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["topics", "create"],
        ["send-csv", "{tmp}/campaign.csv", "--campaign", "c"],
        ["replay"],
        ["replay", "--store", "{tmp}/replay.db"],
        ["sender"],
        ["ingest", "--port", "0"],
        ["projector", "--store", "{tmp}/projections.db", "--port", "0"],
        ["run", "--exit-when-settled", "--workdir", "{tmp}/run"],
    ],
    ids=lambda args: " ".join(a for a in args if not a.startswith("{")),
)
def test_one_line_names_the_servers_and_the_way_out(
    args: list[str], tmp_path: Path, unused_port: int
) -> None:
    (tmp_path / "campaign.csv").write_text(CSV)
    servers = f"127.0.0.1:{unused_port}"
    done = mmbus([a.format(tmp=tmp_path) for a in args], tmp_path, servers)
    output = done.stdout + done.stderr
    assert (done.returncode, output.splitlines()) == (
        1,
        [f"Error: cannot reach Kafka at {servers} (Connection refused): {HINT}"],
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["campaign.csv"], "no store opened"


def test_several_servers_refusing_alike_are_one_reason(tmp_path: Path) -> None:
    with socket.socket() as one, socket.socket() as two:
        one.bind(("127.0.0.1", 0))
        two.bind(("127.0.0.1", 0))
        servers = ",".join(f"127.0.0.1:{s.getsockname()[1]}" for s in (one, two))
        done = mmbus(["topics", "create"], tmp_path, servers)
    assert (done.returncode, done.stdout, done.stderr) == (
        1,
        "",
        f"Error: cannot reach Kafka at {servers} (Connection refused): {HINT}\n",
    )
