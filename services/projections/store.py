"""Where projections live: SQLite by default, PostgreSQL when a DSN is given, same code.

Two tables. ``mmbus_rows`` holds every entity as canonical JSON with three
indexed columns to look it up by (``ref``, ``grp``, ``ts``).
``mmbus_offsets`` holds, per projector, the next offset to read on each
partition. Rows and offsets are written in **one transaction**: after a crash
the store holds exactly the state at its offsets, so a restart neither loses
nor double-counts an event.

The store is synchronous (sqlite3, psycopg); the projector calls it from a
worker thread so the event loop keeps consuming.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from services.projections import bulk
from services.projections.rows import Row, digest_lines
from services.projections.settings import parse_store_url, safe_url
from services.projections.sql import (
    COPY_ROWS,
    DELETE_ROW,
    INDEXES,
    SCHEMA,
    UPSERT_OFFSET,
    UPSERT_ROW,
    Cursor,
)

Offsets = dict[tuple[str, int], int]


class StoreError(Exception):
    """The store URL is wrong or the store cannot be used; the message says what to fix."""


class Store:
    """One connection, guarded by a lock: the projector writes, the query API reads."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.location = parse_store_url(url)
        except ValueError as exc:
            raise StoreError(f"{safe_url(url)}: {exc}") from exc
        self.kind = self.location.kind
        self._lock = threading.Lock()
        self._conn: Any = None

    # -- lifecycle
    def open(self) -> Store:
        if self.kind == "postgresql":
            try:
                import psycopg
            except ImportError as exc:  # pragma: no cover - psycopg is a dependency
                raise StoreError("PostgreSQL needs psycopg: pip install 'psycopg[binary]'") from exc
            try:
                self._conn = psycopg.connect(self.url, autocommit=False)
            except psycopg.Error as exc:
                raise StoreError(
                    f"cannot connect to PostgreSQL ({safe_url(self.url)}): {exc}"
                ) from exc
        else:
            path = self.location.target
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            try:
                self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open SQLite store {path}: {exc}") from exc
            self._conn.execute("PRAGMA journal_mode=WAL")
            # WAL with synchronous=NORMAL survives a process crash (not power loss)
            # without an fsync per transaction; FULL is the setting for power loss.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA busy_timeout=10000")
            # 64 MiB of page cache: a replay's bulk load touches every index page.
            self._conn.execute("PRAGMA cache_size=-65536")
        with self._tx() as cur:
            for statement in SCHEMA:
                cur.execute(statement)
        return self

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Store:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing
    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.kind == "postgresql" else statement

    @contextmanager
    def _tx(self) -> Iterator[Cursor]:
        """One transaction on the one connection; the lock keeps threads out of each other's."""
        if self._conn is None:
            raise StoreError("the store is not open")
        with self._lock:
            if self.kind == "sqlite":
                self._conn.execute("BEGIN IMMEDIATE")
            cur = self._conn.cursor()
            try:
                yield Cursor(cur, self._sql)
            except BaseException:
                self._finish(commit=False)
                raise
            else:
                self._finish(commit=True)
            finally:
                cur.close()

    def _finish(self, *, commit: bool) -> None:
        if self.kind == "postgresql":
            if commit:
                self._conn.commit()
            else:
                self._conn.rollback()
        else:
            self._conn.execute("COMMIT" if commit else "ROLLBACK")

    # -- writing
    def write(
        self,
        projector: str,
        upserts: Sequence[Row],
        deletes: Sequence[tuple[str, str]],
        offsets: Offsets,
    ) -> None:
        """Rows and the offsets they reflect, in one transaction."""
        with self._tx() as cur:
            cur.executemany(DELETE_ROW, deletes)
            cur.executemany(
                UPSERT_ROW,
                ((r.kind, r.key, r.ref, r.grp, r.ts, r.doc.decode()) for r in upserts),
            )
            cur.executemany(
                UPSERT_OFFSET,
                ((projector, topic, part, nxt) for (topic, part), nxt in offsets.items()),
            )

    def load(self, projector: str, chunks: Iterable[Sequence[Row]], offsets: Offsets) -> int:
        """A fresh store's whole state and its offsets in one transaction (a replay's).

        SQLite: prepared inserts in bulk (``executemany``, see :mod:`.bulk`);
        PostgreSQL: ``COPY``. Rows arrive in chunks so the caller never holds them
        all at once.
        """
        sqlite, journal_changed = self.kind == "sqlite", False
        if sqlite:
            with self._lock:
                journal_changed = bulk.prepare(self._conn)
        written = 0
        try:
            with self._tx() as cur:
                if sqlite:
                    written = bulk.insert(cur.cur, chunks, INDEXES)
                else:
                    with cur.cur.copy(COPY_ROWS) as copy:
                        for chunk in chunks:
                            for r in chunk:
                                copy.write_row((r.kind, r.key, r.ref, r.grp, r.ts, r.doc.decode()))
                            written += len(chunk)
                cur.executemany(
                    UPSERT_OFFSET,
                    ((projector, topic, part, nxt) for (topic, part), nxt in offsets.items()),
                )
        finally:
            if sqlite and journal_changed:
                with self._lock:
                    bulk.restore(self._conn)
        return written

    # -- reading
    def offsets(self, projector: str) -> Offsets:
        with self._tx() as cur:
            rows = cur.execute(
                "SELECT topic, part, next_offset FROM mmbus_offsets WHERE projector = ?",
                (projector,),
            ).fetchall()
        return {(topic, int(part)): int(nxt) for topic, part, nxt in rows}

    def is_empty(self) -> bool:
        with self._tx() as cur:
            rows = cur.execute("SELECT 1 FROM mmbus_rows LIMIT 1").fetchall()
            offsets = cur.execute("SELECT 1 FROM mmbus_offsets LIMIT 1").fetchall()
        return not rows and not offsets

    def rows(self, kinds: Iterable[str]) -> Iterator[tuple[str, str, str]]:
        kinds = list(kinds)
        if not kinds:
            return iter(())
        marks = ", ".join("?" for _ in kinds)
        with self._tx() as cur:
            found = cur.execute(
                f"SELECT kind, key, doc FROM mmbus_rows WHERE kind IN ({marks})",  # noqa: S608
                kinds,
            ).fetchall()
        return iter([(k, key, doc) for k, key, doc in found])

    def snapshot(self, projector: str, kinds: Iterable[str]) -> tuple[Offsets, str]:
        """The offsets and the digest of the rows, read in one transaction (consistent)."""
        kinds = list(kinds)
        marks = ", ".join("?" for _ in kinds)
        with self._tx() as cur:
            offsets = cur.execute(
                "SELECT topic, part, next_offset FROM mmbus_offsets WHERE projector = ?",
                (projector,),
            ).fetchall()
            found = cur.execute(
                f"SELECT kind, key, doc FROM mmbus_rows WHERE kind IN ({marks})",  # noqa: S608
                kinds,
            ).fetchall()
        digest = digest_lines((k, key, doc.encode()) for k, key, doc in found)
        return {(t, int(p)): int(n) for t, p, n in offsets}, digest

    def digest(self, kinds: Iterable[str]) -> str:
        """The digest of the stored rows, read in (kind, key) order a chunk at a time.

        The order is the digest's (code points: SQLite's binary collation, and
        ``COLLATE "C"`` on PostgreSQL, whose default collation sorts otherwise).
        """
        kinds = list(kinds)
        h = hashlib.sha256()
        if not kinds:
            return h.hexdigest()
        marks = ", ".join("?" for _ in kinds)
        if self.kind == "sqlite":
            # Each row's digest line made by SQLite, as the UTF-8 bytes it stores (the
            # rows of a replay are read back to check its digest: a Python string and
            # an encode per row took as long as reading them).
            line = "CAST(kind || char(9) || key || char(9) || doc || char(10) AS BLOB)"
            statement = (
                f"SELECT {line} FROM mmbus_rows WHERE kind IN ({marks}) "  # noqa: S608
                "ORDER BY kind, key"
            )
            with self._tx() as cur:
                found = cur.execute(statement, kinds)
                while chunk := found.fetchmany(10_000):
                    h.update(b"".join([line for (line,) in chunk]))
            return h.hexdigest()
        statement = (
            f"SELECT kind, key, doc FROM mmbus_rows WHERE kind IN ({marks}) "  # noqa: S608
            'ORDER BY kind COLLATE "C", key COLLATE "C"'
        )
        with self._tx() as cur:
            found = cur.execute(statement, kinds)
            while chunk := found.fetchmany(10_000):
                for kind, key, doc in chunk:
                    h.update(f"{kind}\t{key}\t{doc}\n".encode())  # one update per row
        return h.hexdigest()

    def get(self, kind: str, key: str) -> str | None:
        with self._tx() as cur:
            found = cur.execute(
                "SELECT doc FROM mmbus_rows WHERE kind = ? AND key = ?", (kind, key)
            ).fetchall()
        return found[0][0] if found else None

    def by_ref(self, kind: str, ref: str) -> list[tuple[str, str]]:
        with self._tx() as cur:
            found = cur.execute(
                "SELECT key, doc FROM mmbus_rows WHERE kind = ? AND ref = ? ORDER BY key",
                (kind, ref),
            ).fetchall()
        return [(k, d) for k, d in found]

    def find(
        self,
        kind: str,
        *,
        grp: str | None = None,
        grps: Sequence[str] | None = None,
        since: str | None = None,
        until: str | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> list[tuple[str, str]]:
        """Rows of one kind, by key order (``after`` is the page cursor), filtered."""
        where, params = ["kind = ?"], [kind]
        if grp is not None:
            where.append("grp = ?")
            params.append(grp)
        if grps is not None:
            if not grps:
                return []
            where.append(f"grp IN ({', '.join('?' for _ in grps)})")
            params.extend(grps)
        if since is not None:
            where.append("ts >= ?")
            params.append(since)
        if until is not None:
            where.append("ts < ?")
            params.append(until)
        if after is not None:
            where.append("key > ?")
            params.append(after)
        # Only placeholders are interpolated; every value travels as a parameter.
        clause = " AND ".join(where)
        statement = f"SELECT key, doc FROM mmbus_rows WHERE {clause} ORDER BY key"  # noqa: S608
        if limit is not None:
            statement += f" LIMIT {int(limit)}"
        with self._tx() as cur:
            found = cur.execute(statement, params).fetchall()
        return [(k, d) for k, d in found]
