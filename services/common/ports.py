"""Loopback ports for servers that this process or a child process will bind.

A port from ``bind(("127.0.0.1", 0))`` lies in the kernel's ephemeral range, the
range outgoing connections take their local ports from. Between being picked and
being bound by a child process it can be taken by any outgoing connection, such
as a Kafka client's: CI saw `mmbus run`'s projector fail with "address already
in use" on a port picked that way, while the sender and ingest had just started
their Kafka clients. So ports are picked below that range, where only explicit
binds go, checked to be free, and never handed out twice by one process.
"""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
# Linux's default; macOS starts at 49152, so below 32768 is outside it too.
_DEFAULT_EPHEMERAL_LOW = 32_768
_SPAN = 12_000
_MIN_PORT = 1_024

_handed_out: set[int] = set()
_lock = threading.Lock()
# Not the module-level generator: a test that seeds `random` must not make two
# processes pick the same ports.
_random = random.SystemRandom()


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range."""
    try:
        return int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _DEFAULT_EPHEMERAL_LOW


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _kernel_pick() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port() -> int:
    """A loopback TCP port that is free now, outside the ephemeral range when it can be."""
    high = ephemeral_low()
    low = max(_MIN_PORT, high - _SPAN)
    with _lock:
        if high - low >= 1_000:
            for _ in range(500):
                port = _random.randrange(low, high)
                if port not in _handed_out and _bindable(port):
                    _handed_out.add(port)
                    return port
        # A machine whose ephemeral range starts near the bottom: let the kernel pick.
        port = _kernel_pick()
        _handed_out.add(port)
        return port
