"""Start, stop and inspect named local broker instances.

``up`` is idempotent: a running, answering instance is reused. ``down`` only
signals a process this module started (its pid is recorded and its command line
must name the instance's own config), so it never stops someone else's broker.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from services.common.ports import free_port
from services.localkafka.config import BrokerLayout, log4j2_xml, server_properties
from services.localkafka.distribution import (
    DEFAULT_KAFKA_VERSION,
    DistributionError,
    fetch_distribution,
)
from services.localkafka.paths import brokers_dir

# Re-exported: callers and tests have always found these here.
from services.localkafka.probe import metadata_ok as metadata_ok
from services.localkafka.process import STOP_TIMEOUT_S as STOP_TIMEOUT_S
from services.localkafka.process import BrokerError as BrokerError
from services.localkafka.process import (
    claim_ports,
    format_storage,
    is_ours,
    start_jvm,
    stop_pids,
    tail,
)
from services.localkafka.process import wait_exited as wait_exited

DEFAULT_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
READY_TIMEOUT_S = 120.0
CLUSTER_MARKER = "nodes"


@dataclass(frozen=True)
class BrokerInstance:
    """What an instance's ``instance.json`` records."""

    name: str
    version: str
    port: int
    controller_port: int
    cluster_id: str
    pid: int | None = None
    started_at: float | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass(frozen=True)
class BrokerStatus:
    name: str
    root: Path
    instance: BrokerInstance | None
    running: bool
    ready: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "root": str(self.root),
            "running": self.running,
            "ready": self.ready,
            "instance": asdict(self.instance) if self.instance else None,
            "bootstrap_servers": self.instance.bootstrap_servers if self.instance else None,
        }


@dataclass(frozen=True)
class UpResult:
    instance: BrokerInstance
    reused: bool
    formatted: bool
    seconds: float


def layout(name: str) -> BrokerLayout:
    if not name or "/" in name or name.startswith("."):
        raise BrokerError(f"invalid broker name {name!r}: use letters, digits, '-' or '_'")
    return BrokerLayout(brokers_dir() / name)


def read_state(lay: BrokerLayout) -> dict[str, Any] | None:
    """The instance file as JSON, single broker or cluster; None when there is none."""
    try:
        raw = json.loads(lay.state_file.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise BrokerError(f"{lay.state_file} is unreadable ({exc}); remove the directory") from exc
    if not isinstance(raw, dict):
        raise BrokerError(f"{lay.state_file} is not an instance file; remove the directory")
    return raw


def is_cluster(name: str) -> bool:
    """True when instance ``name`` was started as a multi-node cluster."""
    raw = read_state(layout(name))
    return raw is not None and CLUSTER_MARKER in raw


def _read_instance(lay: BrokerLayout) -> BrokerInstance | None:
    raw = read_state(lay)
    if raw is None:
        return None
    if CLUSTER_MARKER in raw:
        raise BrokerError(
            f"instance {lay.root.name!r} is a {len(raw[CLUSTER_MARKER])}-node cluster, "
            "not a single broker (services.localkafka.cluster manages it); "
            "leave out --brokers or pick another --name"
        )
    return BrokerInstance(**raw)


def _write_instance(lay: BrokerLayout, inst: BrokerInstance) -> None:
    tmp = lay.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(inst), indent=2))
    os.replace(tmp, lay.state_file)


def new_cluster_id() -> str:
    """A KRaft cluster id: base64url of 16 random bytes, as Kafka's ``Uuid.randomUuid``.

    Like Kafka, never one that starts with '-': command-line parsers read it as an option.
    """
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not candidate.startswith("-"):
            return candidate


def _resolve_ports(
    existing: BrokerInstance | None, name: str, port: int | None, free_ports: bool
) -> tuple[int, int]:
    if port is not None:
        return port, (existing.controller_port if existing else free_port())
    if existing is not None:
        # Keep the ports across restarts: clients hold the bootstrap address.
        return existing.port, existing.controller_port
    if free_ports or name != "default":
        return free_port(), free_port()
    return DEFAULT_PORT, DEFAULT_CONTROLLER_PORT


def up(
    name: str = "default",
    *,
    version: str = DEFAULT_KAFKA_VERSION,
    port: int | None = None,
    free_ports: bool = False,
    heap: str = "1g",
    ready_timeout_s: float = READY_TIMEOUT_S,
) -> UpResult:
    """Start instance ``name`` (or reuse it when it already runs) and wait until it answers."""
    started = time.monotonic()
    lay = layout(name)
    existing = _read_instance(lay)
    if existing and existing.pid and is_ours(existing.pid, lay):
        if metadata_ok(existing.bootstrap_servers, timeout_s=ready_timeout_s):
            return UpResult(existing, reused=True, formatted=False, seconds=0.0)
        raise BrokerError(
            f"broker {name!r} (pid {existing.pid}) runs but does not answer on "
            f"{existing.bootstrap_servers}; see {lay.server_log} "
            f"or run `mmbus kafka down --name {name}`"
        )
    if existing and existing.version != version:
        raise BrokerError(
            f"broker {name!r} holds data of Kafka {existing.version}, not {version}; "
            f"use that version or `mmbus kafka down --name {name} --purge` first"
        )
    try:
        libs = fetch_distribution(version)
    except DistributionError as exc:
        raise BrokerError(str(exc)) from exc

    broker_port, controller_port = _resolve_ports(existing, name, port, free_ports)
    claim_ports(
        (broker_port, controller_port),
        "stop it, pass --port, or use --free-ports with a new --name",
    )
    lay.logs.mkdir(parents=True, exist_ok=True)
    lay.data.mkdir(parents=True, exist_ok=True)
    lay.server_properties.write_text(
        server_properties(port=broker_port, controller_port=controller_port, data_dir=lay.data)
    )
    lay.log4j2_xml.write_text(log4j2_xml(logs_dir=lay.logs))
    inst = BrokerInstance(
        name=name,
        version=version,
        port=broker_port,
        controller_port=controller_port,
        cluster_id=existing.cluster_id if existing else new_cluster_id(),
    )
    formatted = not (lay.data / "meta.properties").exists()
    if formatted:
        format_storage(libs, lay, inst.cluster_id)

    proc = start_jvm(libs, lay, heap)
    inst = replace(inst, pid=proc.pid, started_at=time.time())
    _write_instance(lay, inst)

    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _write_instance(lay, replace(inst, pid=None))
            raise BrokerError(
                f"broker {name!r} exited with code {proc.returncode} while starting; "
                f"last lines of {lay.server_log}:\n{tail(lay.server_log)}\n{tail(lay.stdout_log)}"
            )
        if metadata_ok(inst.bootstrap_servers, timeout_s=2.0):
            return UpResult(
                inst, reused=False, formatted=formatted, seconds=time.monotonic() - started
            )
        time.sleep(0.2)
    stop_pids([(proc.pid, lay)])
    _write_instance(lay, replace(inst, pid=None))
    raise BrokerError(
        f"broker {name!r} did not answer within {ready_timeout_s:.0f}s; "
        f"see {lay.server_log}:\n{tail(lay.server_log)}"
    )


def down(name: str = "default", *, purge: bool = False, kill: bool = False) -> bool:
    """Stop instance ``name`` if this module started it; True when a process was stopped.

    ``kill`` sends SIGKILL at once (what a crash looks like); ``purge`` also deletes its data.
    """
    lay = layout(name)
    inst = _read_instance(lay)
    stopped = False
    if inst and inst.pid and is_ours(inst.pid, lay):
        stop_pids([(inst.pid, lay)], kill=kill)
        stopped = True
    if inst:
        _write_instance(lay, replace(inst, pid=None))
    if purge and lay.root.exists():
        shutil.rmtree(lay.root)
    return stopped


def status(name: str = "default", *, probe_timeout_s: float = 3.0) -> BrokerStatus:
    lay = layout(name)
    inst = _read_instance(lay)
    running = bool(inst and inst.pid and is_ours(inst.pid, lay))
    ready = bool(running and inst and metadata_ok(inst.bootstrap_servers, probe_timeout_s))
    return BrokerStatus(name=name, root=lay.root, instance=inst, running=running, ready=ready)


def instance_names() -> list[str]:
    root = brokers_dir()
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "instance.json").exists())
