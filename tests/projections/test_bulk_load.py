"""A replay's bulk load into SQLite: the same rows and digest, the store left as the projector
expects it (WAL, every index), whether or not another connection holds the file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from services.projections.projection import Projection
from services.projections.rows import Row, digest_lines, to_row
from services.projections.store import Store
from tests.projections.test_golden_log import fold_golden


def _load(url: str, projection: Projection) -> None:
    rows = [to_row(kind, key, state) for kind, key, state in projection.sorted_entities()]
    with Store(url) as store:
        assert store.load("replay", [rows[:7], rows[7:]], {("t", 0): 3}) == len(rows)


def _pragma(path: Path, name: str) -> object:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


def _indexes(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        found = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
    return {name for (name,) in found if not name.startswith("sqlite_autoindex")}


def test_a_bulk_load_keeps_rows_digest_indexes_and_wal(tmp_path: Path) -> None:
    projection = fold_golden()
    path = tmp_path / "audit.db"
    _load(f"sqlite:///{path}", projection)
    with Store(f"sqlite:///{path}") as store:
        assert store.digest(projection.kinds) == projection.digest()
        assert store.offsets("replay") == {("t", 0): 3}
    assert str(_pragma(path, "journal_mode")).lower() == "wal"
    assert _indexes(path) == {"mmbus_rows_ref", "mmbus_rows_grp", "mmbus_rows_ts"}


def test_a_bulk_load_while_another_connection_holds_the_file(tmp_path: Path) -> None:
    projection = fold_golden()
    path = tmp_path / "shared.db"
    with Store(f"sqlite:///{path}") as reader:  # e.g. the query API, already open
        _load(f"sqlite:///{path}", projection)
        assert reader.digest(projection.kinds) == projection.digest()
    assert str(_pragma(path, "journal_mode")).lower() == "wal"
    assert _indexes(path) == {"mmbus_rows_ref", "mmbus_rows_grp", "mmbus_rows_ts"}


def test_the_stored_digest_is_taken_over_the_same_bytes_whatever_the_characters(
    tmp_path: Path,
) -> None:
    """SQLite makes each row's digest line itself (store.digest): keys and documents
    beyond ASCII, tabs escaped in JSON, must give the digest of the rows in memory."""
    docs = [
        ("message", "cmd-é", b'{"name":"caf\xc3\xa9 \xf0\x9f\x8e\x89","t":"a\\tb"}'),
        ("message", "cmd-a", b'{"x":1}'),
        ("token", "tok-\xe2\x82\xac".encode("latin-1").decode("utf-8"), b'{"n":"\xe2\x82\xac"}'),
    ]
    rows = [Row(kind, key, doc) for kind, key, doc in sorted(docs)]
    with Store(f"sqlite:///{tmp_path / 'chars.db'}") as store:
        store.load("replay", [rows], {})
        assert store.digest(["message", "token"]) == digest_lines(docs)
        assert store.digest(["token"]) == digest_lines(docs[2:])
