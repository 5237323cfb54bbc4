"""The main job: every part of mmbus running on one machine, a campaign sent through it.

:class:`DemoStack` starts the simulator (demo world), ingest, sender and
projector as child processes of this one, each with its own log file, wired
together on free loopback ports and the given Kafka cluster. ``mmbus run``
uses it to send ``demo/campaign.csv`` and show the funnel as events arrive;
the end-to-end test uses it to compare the projection with what the simulator
did, message by message.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from services.common.ports import free_port
from services.common.settings import CommonSettings

DEMO_SECRET = "demo-app-secret"  # noqa: S105 - the simulator's own demo secret
DEMO_TOKEN = "sim-token"  # noqa: S105 - the demo world's token
DEMO_CSV = Path(__file__).resolve().parents[1] / "demo" / "campaign.csv"
CHILD = (sys.executable, "-m", "services.common.child")
TERMINAL = ("accepted", "failed", "suppressed", "rejected", "indeterminate")


class DemoError(Exception):
    """A part did not start or the campaign did not settle; the message says where to look."""


@dataclass
class Part:
    """One child process, with what it takes to start it again after a crash."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    health_url: str
    process: subprocess.Popen[bytes] | None = None

    def launch(self) -> None:
        # Appended: a restarted part's log follows the log of the one that died.
        with self.log.open("ab") as handle:
            self.process = subprocess.Popen(
                # Dies with us even if we are killed with SIGKILL (services/common/child.py).
                [*CHILD, str(os.getpid()), "services.cli", *self.args],
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches us; we stop the parts in order
            )

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class DemoStack:
    settings: CommonSettings
    workdir: Path
    simulator_behaviour: dict[str, Any] = field(default_factory=dict)
    world_file: Path | None = None
    senders: int = 1
    # Extra environment per part name ("sender" reaches every sender), e.g. tuning.
    part_env: dict[str, dict[str, str]] = field(default_factory=dict)
    parts: dict[str, Part] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def simulator_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['simulator']}"

    @property
    def query_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['projector']}"

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.workdir / 'projections.db'}"

    def _env(self, extra: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MMBUS_")}
        env.update(
            {
                "MMBUS_KAFKA_BOOTSTRAP_SERVERS": self.settings.kafka_bootstrap_servers,
                "MMBUS_TOPIC_PREFIX": self.settings.topic_prefix,
                "MMBUS_PARTITIONS": str(self.settings.partitions),
                "MMBUS_REPLICATION_FACTOR": str(self.settings.replication_factor),
                "MMBUS_LOG_FORMAT": "json",
                "MMBUS_LOG_LEVEL": "INFO",
            }
        )
        env.update(extra)
        return env

    @property
    def sender_names(self) -> list[str]:
        return ["sender", *(f"sender-{i}" for i in range(2, self.senders + 1))]

    def _start(self, name: str, args: list[str], env: dict[str, str], health: str) -> None:
        kind = "sender" if name in self.sender_names else name
        log = self.workdir / f"{name}.log"
        log.write_bytes(b"")
        part = Part(name, args, self._env({**env, **self.part_env.get(kind, {})}), log, health)
        part.launch()
        self.parts[name] = part

    def start(self, wait_s: float = 90) -> DemoStack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for name in ("simulator", "ingest", *self.sender_names, "projector"):
            self.ports[name] = free_port()
        ingest = f"http://127.0.0.1:{self.ports['ingest']}"
        world = ["--seed", str(self.world_file)] if self.world_file else []
        self._start(
            "simulator",
            ["simulator", "--port", str(self.ports["simulator"]), *world],
            {
                "MMBUS_SIMULATOR_WEBHOOK_URL": f"{ingest}/webhooks/meta",
                "MMBUS_SIMULATOR_APP_SECRET": DEMO_SECRET,
            },
            f"{self.simulator_url}/_admin/health",
        )
        self._start(
            "ingest",
            ["ingest"],
            {
                "MMBUS_INGEST_PORT": str(self.ports["ingest"]),
                "MMBUS_INGEST_APP_SECRETS": json.dumps([DEMO_SECRET]),
                "MMBUS_NORMALIZER_GROUP_ID": f"{self.settings.topic_prefix}normalizer",
            },
            f"{ingest}/health",
        )
        for sender in self.sender_names:  # one consumer group: they share the partitions
            self._start(
                sender,
                ["sender"],
                {
                    "MMBUS_META_BASE_URL": self.simulator_url,
                    "MMBUS_META_ACCESS_TOKEN": DEMO_TOKEN,
                    "MMBUS_D360_BASE_URL": f"{self.simulator_url}/360dialog",
                    "MMBUS_SENDER_HTTP_PORT": str(self.ports[sender]),
                    "MMBUS_SENDER_GROUP_ID": f"{self.settings.topic_prefix}sender",
                },
                f"http://127.0.0.1:{self.ports[sender]}/ready",
            )
        self._start(
            "projector",
            ["projector"],
            {
                "MMBUS_PROJECTOR_STORE": self.store_url,
                "MMBUS_PROJECTOR_HTTP_PORT": str(self.ports["projector"]),
            },
            f"{self.query_url}/ready",
        )
        self._wait_healthy(self.parts, wait_s)
        if self.simulator_behaviour:
            with httpx.Client(base_url=self.simulator_url, timeout=10) as client:
                current = client.get("/_admin/behaviour").json()
                client.put("/_admin/behaviour", json={**current, **self.simulator_behaviour})
        return self

    def kill(self, name: str) -> None:
        """SIGKILL one part (its whole process group), as a crash would."""
        part = self.parts[name]
        if part.process is not None and part.process.poll() is None:
            os.killpg(part.process.pid, signal.SIGKILL)
            part.process.wait(30)

    def restart(self, name: str, wait_s: float = 90) -> None:
        """Start a part that died again, with the same ports and settings; wait until ready."""
        part = self.parts[name]
        if part.exited() is None:
            raise DemoError(f"{name} is still running; kill it first")
        part.launch()
        self._wait_healthy({name: part}, wait_s)

    def _wait_healthy(self, parts: dict[str, Part], wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        pending = dict(parts)
        with httpx.Client(timeout=2) as client:
            while pending:
                for name, part in list(pending.items()):
                    if (code := part.exited()) is not None:
                        raise DemoError(
                            f"{name} exited with {code}; its log ({part.log}) ends:\n{part.tail()}"
                        )
                    try:
                        if client.get(part.health_url).status_code == 200:
                            del pending[name]
                    except httpx.HTTPError:
                        pass
                if pending and time.monotonic() > deadline:
                    names = ", ".join(pending)
                    raise DemoError(
                        f"{names} not ready after {wait_s:.0f} s; logs in {self.workdir}"
                    )
                if pending:
                    time.sleep(0.2)

    def check_alive(self) -> None:
        for name, part in self.parts.items():
            if (code := part.exited()) is not None:
                raise DemoError(f"{name} exited with {code}; log {part.log}:\n{part.tail()}")

    def stop(self, grace_s: float = 30) -> None:
        # Producers of events first, the projector last, so it sees everything written.
        for name in ("simulator", *self.sender_names, "ingest", "projector"):
            part = self.parts.get(name)
            if part is None or part.process is None or part.process.poll() is not None:
                continue
            part.process.send_signal(signal.SIGTERM)
            try:
                part.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                part.process.kill()
                part.process.wait(10)

    def __enter__(self) -> DemoStack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- reading what happened
    def funnel(self, client: httpx.Client, campaign_id: str) -> dict[str, Any] | None:
        response = client.get(f"{self.query_url}/v1/campaigns/{campaign_id}/funnel")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def settle(
        self,
        campaign_id: str,
        expected: int | None,
        *,
        timeout_s: float = 120,
        quiet_s: float = 3.0,
        on_change: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Wait until every command has a result and the funnel stopped moving for ``quiet_s``.

        ``expected`` None: the caller knows every command has its result (from the log);
        the funnel's stages cannot tell it when some indeterminate sends were settled by
        status webhooks (they count as sent, not as indeterminate).
        """
        deadline = time.monotonic() + timeout_s
        last: dict[str, Any] | None = None
        changed_at = time.monotonic()
        with httpx.Client(timeout=5) as client:
            while True:
                self.check_alive()
                current = self.funnel(client, campaign_id)
                if current != last:
                    last, changed_at = current, time.monotonic()
                    if current is not None and on_change is not None:
                        on_change(current)
                if last is not None:
                    stages = last["funnel"]
                    done = sum(stages.get(name, 0) for name in TERMINAL)
                    pending = self._pending_webhooks(client)
                    if (
                        (expected is None or done >= expected)
                        and pending == 0
                        and time.monotonic() - changed_at >= quiet_s
                    ):
                        return last
                if time.monotonic() > deadline:
                    raise DemoError(
                        f"campaign {campaign_id} did not settle in {timeout_s:.0f} s: {last}"
                    )
                time.sleep(0.5)

    def _pending_webhooks(self, client: httpx.Client) -> int:
        try:
            counters = client.get(f"{self.simulator_url}/_admin/counters").json()
        except httpx.HTTPError:
            return 0
        pending: int = counters.get("pending_webhooks", 0)
        return pending
