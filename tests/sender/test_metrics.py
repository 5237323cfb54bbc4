"""The gauges kept as plain integers read what the sender counted, when scraped."""

from __future__ import annotations

from services.sender.metrics import SenderMetrics


def test_in_flight_and_queue_depth_are_read_at_scrape_time() -> None:
    metrics = SenderMetrics()
    sample = metrics.registry.get_sample_value
    metrics.started()
    metrics.started()
    metrics.finished()
    assert sample("mmbus_sender_in_flight") == 1
    depth = metrics.waiting("106540352242922")
    assert metrics.waiting("106540352242922") is depth
    depth.inc()
    depth.inc()
    metrics.waiting("106540352242923").inc()
    depth.dec()
    labels = {"phone_number_id": "106540352242922"}
    assert sample("mmbus_sender_queue_depth", labels) == 1
    assert sample("mmbus_sender_queue_depth", {"phone_number_id": "106540352242923"}) == 1
    depth.dec()
    assert sample("mmbus_sender_queue_depth", labels) == 0
