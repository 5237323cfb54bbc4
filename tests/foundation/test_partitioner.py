"""The cached partitioner puts every key where Kafka's default (Java) partitioner does."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from mmbus.partitioner import partition_for


@given(key=st.binary(min_size=1, max_size=40), partitions=st.integers(1, 64))
def test_same_partition_as_the_default(key: bytes, partitions: int) -> None:
    every = list(range(partitions))
    assert partition_for(key, every, every) == DefaultPartitioner()(key, every, every)
    assert partition_for(key, every, every) == partition_for(key, every, [])


def test_keyless_records_spread_over_available_partitions() -> None:
    assert {partition_for(None, [0, 1, 2], [2]) for _ in range(20)} == {2}
