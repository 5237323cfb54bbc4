"""A query API serving the golden log's projections: a small campaign with every awkward case."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from services.common.serving import ServeInThread
from services.projections.api import query_app
from services.projections.store import Store
from tests.projections.test_golden_log import fold_golden

READY: dict[str, Any] = {"ready": True, "lag": 0, "read": 163, "failed": None, "anomalies": {}}


def golden_store(path: Path) -> Store:
    """A SQLite store holding what the projector makes of the golden log (no broker needed)."""
    store = Store(f"sqlite:///{path}").open()
    upserts, deletes = fold_golden().take_dirty()
    store.write("live", upserts, deletes, {})
    return store


@contextmanager
def golden_api(path: Path) -> Iterator[str]:
    """The query API on the golden store, served on a loopback port; yields its base URL."""
    with golden_store(path) as store, ServeInThread(query_app(store, ready=lambda: READY)) as s:
        yield s.base_url
