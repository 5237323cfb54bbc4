"""Ports for the servers tests, demos and the local broker start."""

from __future__ import annotations

import socket

from services.common.ports import ephemeral_low, free_port


def test_ports_are_free_distinct_and_below_the_range_outgoing_connections_use() -> None:
    # An outgoing connection (a Kafka client's) takes its local port from the
    # ephemeral range; a port handed out there could be gone before it is bound.
    low = ephemeral_low()
    held: list[socket.socket] = []
    try:
        for _ in range(200):
            port = free_port()
            assert 1024 <= port < low
            sock = socket.socket()
            held.append(sock)
            sock.bind(("127.0.0.1", port))  # raises if the port was not free
            sock.listen()
        assert len({sock.getsockname()[1] for sock in held}) == 200
    finally:
        for sock in held:
            sock.close()
