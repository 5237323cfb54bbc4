"""Real Apache Kafka (KRaft, combined mode) on loopback, without Docker.

One broker (``broker``) or a cluster of several nodes, each broker and
controller (``cluster``, for replication and fault tests). The jars come from
Maven Central through Maven and are cached outside the repository; each named
instance keeps its config, data, logs and pids under ``$MMBUS_HOME/brokers/<name>``.
"""

from services.localkafka.broker import (
    BrokerError,
    BrokerInstance,
    BrokerStatus,
    down,
    status,
    up,
)
from services.localkafka.distribution import DEFAULT_KAFKA_VERSION, fetch_distribution

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "BrokerError",
    "BrokerInstance",
    "BrokerStatus",
    "down",
    "fetch_distribution",
    "status",
    "up",
]
