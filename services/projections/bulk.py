"""A replay's one bulk load into a fresh SQLite store: how the rows go in cheaply.

A replay writes its whole state once, in one transaction, into a new file. Three
things made that cost more than the rows themselves, measured on the benchmark's
26,000 rows (30 MB of documents): the secondary indexes kept up row by row, the
write-ahead log (every page written to the WAL, then copied into the database
at the checkpoint: the whole state twice), and 4 KiB pages for documents of
about 1.5 KiB. So, for the load only:

- the journal is a rollback journal (``DELETE``): a new page has no old content
  to save, so the pages are written once, and the transaction stays atomic;
- pages are 16 KiB (a new file's page size can still change: ``VACUUM`` rewrites
  the empty schema);
- the secondary indexes are dropped and built again after the rows, in the same
  transaction (one sort instead of a B-tree insert per row).

Afterwards the store goes back to WAL, as the projector and the query API use
it. If another connection holds the file, the journal stays WAL and only the
index step applies.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from services.projections.rows import Row

# In a row's own field order, so a chunk of rows goes in as it is, no tuple made per
# row; the document is bytes (UTF-8), stored as the text it is (the database's
# encoding is UTF-8) without decoding it in Python first.
INSERT_ROW = (
    "INSERT INTO mmbus_rows (kind, key, doc, ref, grp, ts) VALUES (?, ?, CAST(? AS TEXT), ?, ?, ?)"
)
BULK_PAGE_SIZE = 16384
_INDEX_NAME = re.compile(r"CREATE INDEX IF NOT EXISTS (\w+) ")


def prepare(conn: Any) -> bool:
    """Before the load's transaction: rollback journal and large pages, when the file
    is ours alone. True when the journal changed (``restore`` puts WAL back)."""
    try:
        mode = conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
    except sqlite3.OperationalError:  # "database is locked": another connection has it open
        return False
    if str(mode).lower() != "delete":
        return False  # WAL stays
    conn.execute(f"PRAGMA page_size={BULK_PAGE_SIZE}")
    # The page size of a database with content changes only so. Someone who opened the
    # file meanwhile makes it fail: 4 KiB pages then, still correct.
    with contextlib.suppress(sqlite3.OperationalError):
        conn.execute("VACUUM")
    return True


def restore(conn: Any) -> None:
    # Locked by a reader that came meanwhile: every Store.open sets WAL again anyway.
    with contextlib.suppress(sqlite3.OperationalError):
        conn.execute("PRAGMA journal_mode=WAL")


def insert(cur: Any, chunks: Iterable[Sequence[Row]], indexes: Sequence[str]) -> int:
    """Every row, inside the caller's transaction, with the secondary ``indexes`` (their
    ``CREATE INDEX`` statements) built once after the rows; the rows written."""
    for statement in indexes:
        found = _INDEX_NAME.match(statement)
        if found is None:
            raise ValueError(f"not an index of the schema: {statement}")
        cur.execute(f"DROP INDEX IF EXISTS {found.group(1)}")
    written = 0
    for chunk in chunks:
        cur.executemany(INSERT_ROW, chunk)
        written += len(chunk)
    for statement in indexes:
        cur.execute(statement)
    return written
