"""Kafka's default partitioner (murmur2 of the key, as the Java client), with the hash cached.

aiokafka computes murmur2 in pure Python for every keyed record. mmbus keys by
business number, WABA or wamid, and the same keys recur constantly, so the hash
is cached. Partitions are the Java client's, which co-partitioning relies on.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence


@functools.lru_cache(maxsize=65_536)
def _positive_hash(key: bytes) -> int:
    # Imported here: settings import this module, and code that only reads settings
    # (the sender's handler) must not pull in the Kafka client.
    from aiokafka.partitioner import murmur2

    return int(murmur2(key)) & 0x7FFFFFFF


def partition_for(
    key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
) -> int:
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[_positive_hash(key) % len(all_partitions)]
