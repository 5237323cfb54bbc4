"""Start, stop and inspect named local broker instances.

``up`` is idempotent: a running, answering instance is reused. ``down`` only
signals a process this module started (its pid is recorded and its command line
must name the instance's own config), so it never stops someone else's broker.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
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

DEFAULT_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


class BrokerError(RuntimeError):
    """A broker operation failed; the message says what to do about it."""


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


def _read_instance(lay: BrokerLayout) -> BrokerInstance | None:
    try:
        raw = json.loads(lay.state_file.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise BrokerError(f"{lay.state_file} is unreadable ({exc}); remove the directory") from exc
    return BrokerInstance(**raw)


def _write_instance(lay: BrokerLayout, inst: BrokerInstance) -> None:
    tmp = lay.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(inst), indent=2))
    os.replace(tmp, lay.state_file)


def _is_ours(pid: int, lay: BrokerLayout) -> bool:
    """True when ``pid`` is alive and is the JVM started with this instance's config."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(lay.server_properties).encode() in cmdline


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@contextmanager
def _quiet_aiokafka() -> Iterator[None]:
    """A probe expects refused connections while the broker boots; they are not news."""
    logger = logging.getLogger("aiokafka")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


async def _metadata_ok(bootstrap: str, timeout_s: float) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=max(1000, int(timeout_s * 1000)),
        client_id="mmbus-localkafka-probe",
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        await asyncio.wait_for(admin.describe_cluster(), timeout_s)
    except Exception:
        return False
    finally:
        # A failed close of a probe has nothing to report.
        with suppress(Exception):
            await admin.close()
    return True


def metadata_ok(bootstrap: str, timeout_s: float = 5.0) -> bool:
    """True when a Kafka client can fetch cluster metadata from ``bootstrap``."""
    with _quiet_aiokafka():
        return asyncio.run(_metadata_ok(bootstrap, timeout_s))


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise BrokerError(
            "java is not on PATH; install a JDK 17+ (Debian: openjdk-17-jre-headless)"
        )
    return found


def _format_storage(libs: Path, lay: BrokerLayout, cluster_id: str) -> None:
    result = subprocess.run(
        [
            _java(),
            "-Xmx256m",
            f"-Dlog4j2.configurationFile=file:{lay.log4j2_xml}",
            "-cp",
            f"{libs}/*",
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={cluster_id}",
            "-c",
            str(lay.server_properties),
            "--ignore-formatted",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        raise BrokerError(
            f"formatting storage in {lay.data} failed (exit {result.returncode}):\n"
            f"{result.stdout}{result.stderr}"
        )


def _wait_port_free(port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _port_in_use(port):
            return True
        time.sleep(0.1)
    return False


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
    if existing and existing.pid and _is_ours(existing.pid, lay):
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
    for p in (broker_port, controller_port):
        if _port_in_use(p) and not _wait_port_free(p, timeout_s=10.0):
            raise BrokerError(
                f"port {p} on 127.0.0.1 is taken by another process; "
                "stop it, pass --port, or use --free-ports with a new --name"
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
        _format_storage(libs, lay, inst.cluster_id)

    with lay.stdout_log.open("ab") as out:
        proc = subprocess.Popen(
            [
                _java(),
                f"-Xmx{heap}",
                "-Xms256m",
                "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile=file:{lay.log4j2_xml}",
                f"-Dkafka.logs.dir={lay.logs}",
                "-cp",
                f"{libs}/*",
                "kafka.Kafka",
                str(lay.server_properties),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            # Own session: Ctrl-C in the terminal that ran `up` must not kill the broker.
            start_new_session=True,
            cwd=lay.root,
        )
    inst = replace(inst, pid=proc.pid, started_at=time.time())
    _write_instance(lay, inst)

    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _write_instance(lay, replace(inst, pid=None))
            raise BrokerError(
                f"broker {name!r} exited with code {proc.returncode} while starting; "
                f"last lines of {lay.server_log}:\n{_tail(lay.server_log)}\n{_tail(lay.stdout_log)}"
            )
        if metadata_ok(inst.bootstrap_servers, timeout_s=2.0):
            return UpResult(
                inst, reused=False, formatted=formatted, seconds=time.monotonic() - started
            )
        time.sleep(0.2)
    _stop_pid(proc.pid, lay)
    _write_instance(lay, replace(inst, pid=None))
    raise BrokerError(
        f"broker {name!r} did not answer within {ready_timeout_s:.0f}s; "
        f"see {lay.server_log}:\n{_tail(lay.server_log)}"
    )


def _exited(pid: int) -> bool:
    """True once the process has released its sockets (gone, or a zombie).

    Its command line vanishes before its files are closed, so ``_is_ours`` alone
    would report a dying broker gone while its port is still bound.
    """
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)  # reaps it when it is our child
        if finished == pid:
            return True
    except ChildProcessError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    if stat.rsplit(")", 1)[-1].split()[0] not in {"Z", "X"}:
        return False
    # A JVM's main thread turns zombie while its other threads are still exiting
    # and still hold the sockets; it is gone only when it is the last one left.
    try:
        return len(os.listdir(f"/proc/{pid}/task")) <= 1
    except OSError:
        return True


def wait_exited(pid: int, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """Wait until process ``pid`` has exited and released its ports."""
    return _wait_gone(pid, timeout_s)


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _exited(pid):
            return True
        time.sleep(0.05)
    return False


def _stop_pid(pid: int, lay: BrokerLayout, *, kill: bool = False) -> None:
    if not _is_ours(pid, lay):
        return
    os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    if not _wait_gone(pid, STOP_TIMEOUT_S):
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, STOP_TIMEOUT_S)


def down(name: str = "default", *, purge: bool = False, kill: bool = False) -> bool:
    """Stop instance ``name`` if this module started it; True when a process was stopped.

    ``kill`` sends SIGKILL at once (what a crash looks like); ``purge`` also deletes its data.
    """
    lay = layout(name)
    inst = _read_instance(lay)
    stopped = False
    if inst and inst.pid and _is_ours(inst.pid, lay):
        _stop_pid(inst.pid, lay, kill=kill)
        stopped = True
    if inst:
        _write_instance(lay, replace(inst, pid=None))
    if purge and lay.root.exists():
        shutil.rmtree(lay.root)
    return stopped


def status(name: str = "default", *, probe_timeout_s: float = 3.0) -> BrokerStatus:
    lay = layout(name)
    inst = _read_instance(lay)
    running = bool(inst and inst.pid and _is_ours(inst.pid, lay))
    ready = bool(running and inst and metadata_ok(inst.bootstrap_servers, probe_timeout_s))
    return BrokerStatus(name=name, root=lay.root, instance=inst, running=running, ready=ready)


def instance_names() -> list[str]:
    root = brokers_dir()
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "instance.json").exists())
