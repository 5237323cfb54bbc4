"""Golden log: a fixed, committed log must always fold to the same state (Karapace-style).

``golden/log.jsonl`` holds encoded records (headers, key, value) of a small
campaign with the awkward cases: duplicates, wamid-only statuses, a status for
an unknown message, a failure, a suppression, an indeterminate send, account,
template and preference events. ``golden/digests.json`` pins the digest of each
projection. A change to a fold that changes what an audit of an existing log
says fails here; if the change is intended, regenerate with
``MMBUS_REGENERATE_GOLDEN=1 pytest tests/projections/test_golden_log.py`` and
say why in the commit.
"""

from __future__ import annotations

import gc
import os
import weakref
from pathlib import Path

import orjson

from mmbus.contracts.codec import DecodeFailure, decode
from services.projections.projection import Projection, choose
from services.projections.shard import state_out_of_gc

GOLDEN = Path(__file__).parent / "golden"


def fold_golden() -> Projection:
    projection = Projection(choose(None))
    for line in (GOLDEN / "log.jsonl").read_bytes().splitlines():
        record = orjson.loads(line)
        headers = [(k, v.encode()) for k, v in record["headers"]]
        event = decode(orjson.dumps(record["value"]), headers, trusted=True)
        assert not isinstance(event, DecodeFailure), event
        projection.apply(event)
    return projection


def test_the_golden_log_folds_to_the_pinned_digests() -> None:
    projection = fold_golden()
    digests = {spec.name: projection.digest(spec.kinds) for spec in projection.specs}
    pinned = GOLDEN / "digests.json"
    if os.environ.get("MMBUS_REGENERATE_GOLDEN"):
        pinned.write_bytes(orjson.dumps(digests, option=orjson.OPT_INDENT_2) + b"\n")
    assert digests == orjson.loads(pinned.read_bytes())
    messages = projection.entities["message"]
    assert sum(m.state == "failed" for m in messages.values()) == 2
    assert "w:wamid.unknown" in messages


def test_a_folded_projection_is_freed_with_its_last_reference() -> None:
    """No reference cycle holds a state: a replay's is freed when it is dropped, not
    at some later full garbage collection (which, on the benchmark's log, had 186,070
    objects to find)."""
    projection = fold_golden()
    assert projection.applied > 0
    message = next(iter(projection.entities["message"].values()))
    gone = weakref.ref(projection)
    was = gc.isenabled()
    gc.disable()
    try:
        del projection
        assert gone() is None
    finally:
        if was:
            gc.enable()
    assert message is not None  # what a caller kept of it stays


def test_the_replay_keeps_its_state_out_of_collections_until_the_outermost_use_ends() -> None:
    """A batch's survivors are frozen, never walked; only the outermost use gives them
    back to the collector and turns it on again (an inner use ending, as run_shard's
    does inside replay's, must not expose the state to a collection)."""
    was = gc.isenabled()
    gc.enable()
    try:
        with state_out_of_gc():
            assert not gc.isenabled()
            with state_out_of_gc():
                gc.freeze()
                assert gc.get_freeze_count() > 0
            assert not gc.isenabled()
            assert gc.get_freeze_count() > 0
        assert gc.isenabled()
        assert gc.get_freeze_count() == 0
    finally:
        if not was:
            gc.disable()


def test_replays_that_interleave_turn_the_collector_back_on_whichever_leaves_last() -> None:
    """Two replays on one event loop may leave in either order: the one that found the
    collector already off (the second) must not leave it off when it is the last out."""
    was = gc.isenabled()
    gc.enable()
    try:
        first, second = state_out_of_gc(), state_out_of_gc()
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)
        assert not gc.isenabled()
        second.__exit__(None, None, None)
        assert gc.isenabled()
        assert gc.get_freeze_count() == 0
    finally:
        if not was:
            gc.disable()
