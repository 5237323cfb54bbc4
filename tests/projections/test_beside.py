"""A one-worker replay's store loaded by a forked process (beside.py): the same rows,
offsets and digests as loading it in one process, and a loader that fails or dies
fails the replay in one line, the store left open as it was handed over."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from services.projections.audit import finish
from services.projections.beside import finish_beside
from services.projections.shard import Stages
from services.projections.store import Store, StoreError
from tests.projections.test_golden_log import fold_golden

OFFSETS = {("p.send.events", 0): 7, ("p.message.status", 1): 3}


def test_the_loader_stores_what_one_process_would(tmp_path: Path) -> None:
    projection = fold_golden()
    in_memory = finish(fold_golden(), None, name="r", offsets=OFFSETS)
    with Store(f"sqlite:///{tmp_path / 'r.db'}") as store:
        stages = Stages()
        digests = finish_beside(projection, store, name="r", offsets=OFFSETS, stages=stages)
        assert digests == in_memory
        assert store.digest(projection.kinds) == digests["all"]  # open again, usable
        assert store.offsets("r") == OFFSETS
    assert stages.seconds["store"] > 0
    assert stages.seconds["verify"] > 0


def test_a_loader_that_fails_fails_the_replay_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*_: Any) -> int:
        raise StoreError("disk full")

    monkeypatch.setattr(Store, "load", full)
    with Store(f"sqlite:///{tmp_path / 'r.db'}") as store:
        with pytest.raises(StoreError, match=r"^StoreError: disk full$"):
            finish_beside(fold_golden(), store, name="r", offsets=OFFSETS)
        assert store.is_empty()


def test_a_loader_that_dies_fails_the_replay_with_its_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def killed(*_: Any) -> int:
        os._exit(3)

    monkeypatch.setattr(Store, "load", killed)
    with Store(f"sqlite:///{tmp_path / 'r.db'}") as store:
        with pytest.raises(StoreError, match=r"stopped \(exit code 3\)"):
            finish_beside(fold_golden(), store, name="r", offsets=OFFSETS)
        assert store.is_empty()
