"""The store's SQL: its two tables, their indexes, and the statements that write them.

Written with ``?`` placeholders; :class:`Cursor` turns them into the driver's
(``%s`` for psycopg) so SQLite and PostgreSQL run the same statements.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

INDEXES = (
    "CREATE INDEX IF NOT EXISTS mmbus_rows_ref ON mmbus_rows (kind, ref)",
    "CREATE INDEX IF NOT EXISTS mmbus_rows_grp ON mmbus_rows (kind, grp, ts)",
    "CREATE INDEX IF NOT EXISTS mmbus_rows_ts ON mmbus_rows (kind, ts)",
)
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS mmbus_rows (
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        ref TEXT,
        grp TEXT,
        ts TEXT,
        doc TEXT NOT NULL,
        PRIMARY KEY (kind, key)
    )""",
    *INDEXES,
    """CREATE TABLE IF NOT EXISTS mmbus_offsets (
        projector TEXT NOT NULL,
        topic TEXT NOT NULL,
        part INTEGER NOT NULL,
        next_offset BIGINT NOT NULL,
        PRIMARY KEY (projector, topic, part)
    )""",
)

UPSERT_ROW = (
    "INSERT INTO mmbus_rows (kind, key, ref, grp, ts, doc) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (kind, key) DO UPDATE SET "
    "ref = excluded.ref, grp = excluded.grp, ts = excluded.ts, doc = excluded.doc"
)
COPY_ROWS = "COPY mmbus_rows (kind, key, ref, grp, ts, doc) FROM STDIN"
DELETE_ROW = "DELETE FROM mmbus_rows WHERE kind = ? AND key = ?"
UPSERT_OFFSET = (
    "INSERT INTO mmbus_offsets (projector, topic, part, next_offset) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (projector, topic, part) DO UPDATE SET next_offset = excluded.next_offset"
)


class Cursor:
    """A DB-API cursor taking ``?`` placeholders for either driver."""

    def __init__(self, cur: Any, sql: Callable[[str], str]) -> None:
        self.cur, self.sql = cur, sql

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Any:
        self.cur.execute(self.sql(statement), tuple(params))
        return self.cur

    def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if rows:
            self.cur.executemany(self.sql(statement), rows)
