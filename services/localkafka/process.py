"""The broker JVM as an operating-system process: format, start, recognise, stop.

Shared by the single broker (``broker.py``) and the multi-node cluster
(``cluster.py``); neither knows how a JVM is launched or reaped.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from services.localkafka.config import BrokerLayout

STOP_TIMEOUT_S = 30.0


class BrokerError(RuntimeError):
    """A broker operation failed; the message says what to do about it."""


def is_ours(pid: int, lay: BrokerLayout) -> bool:
    """True when ``pid`` is alive and is the JVM started with this instance's config."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(lay.server_properties).encode() in cmdline


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def wait_port_free(port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not port_in_use(port):
            return True
        time.sleep(0.1)
    return False


def claim_ports(ports: Iterable[int], hint: str) -> None:
    """Fail clearly when a port is held by someone else (a dying JVM gets a few seconds)."""
    for p in ports:
        if port_in_use(p) and not wait_port_free(p, timeout_s=10.0):
            raise BrokerError(f"port {p} on 127.0.0.1 is taken by another process; {hint}")


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise BrokerError(
            "java is not on PATH; install a JDK 17+ (Debian: openjdk-17-jre-headless)"
        )
    return found


def format_storage(libs: Path, lay: BrokerLayout, cluster_id: str) -> None:
    """What ``kafka-storage.sh format`` does: write meta.properties and the bootstrap metadata."""
    result = subprocess.run(
        [
            java(),
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


def start_jvm(libs: Path, lay: BrokerLayout, heap: str) -> subprocess.Popen[bytes]:
    """Start ``kafka.Kafka`` with the layout's config; its output goes to the layout's logs."""
    with lay.stdout_log.open("ab") as out:
        return subprocess.Popen(
            [
                java(),
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


def _exited(pid: int) -> bool:
    """True once the process has released its sockets (gone, or a zombie).

    Its command line vanishes before its files are closed, so ``is_ours`` alone
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
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _exited(pid):
            return True
        time.sleep(0.05)
    return False


def stop_pids(targets: Iterable[tuple[int, BrokerLayout]], *, kill: bool = False) -> list[int]:
    """Stop each JVM that is ours, all at once; return the pids that were signalled.

    Nodes of one cluster are signalled together: a broker's clean shutdown asks the
    controller quorum for leave, and a node stopped after the others would wait
    for a quorum that is already gone.
    """
    signalled = [pid for pid, lay in targets if is_ours(pid, lay)]
    for pid in signalled:
        os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    for pid in signalled:
        if not wait_exited(pid, STOP_TIMEOUT_S):
            os.kill(pid, signal.SIGKILL)
            wait_exited(pid, STOP_TIMEOUT_S)
    return signalled
