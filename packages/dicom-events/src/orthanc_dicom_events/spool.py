"""A durable queue of deleted-resource notices and a map of each resource's parent.

Orthanc does not log deletions in `/changes` (its Changes rows cascade with the resource), so a
deletion exists only as a callback: it is kept here, in SQLite beside Orthanc's index, until the
broker confirmed it. Deleted resources can no longer be asked for their parents, so the parents
seen while publishing are remembered here too, with their level: what the spool knows and
Orthanc no longer holds after a crash was deleted without a callback (see `known`).
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

FILE_NAME = "dicom-events.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deleted(
    row INTEGER PRIMARY KEY AUTOINCREMENT,
    level INTEGER NOT NULL,
    resource_id TEXT NOT NULL,
    time TEXT NOT NULL,
    after_seq INTEGER NOT NULL,
    patient_id TEXT, study_id TEXT, series_id TEXT
);
CREATE TABLE IF NOT EXISTS parents(
    resource_id TEXT PRIMARY KEY, parent_id TEXT NOT NULL, level INTEGER
);
CREATE INDEX IF NOT EXISTS parents_by_level ON parents(level);
CREATE TABLE IF NOT EXISTS dead_letters(
    row INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL, type TEXT NOT NULL, subject TEXT NOT NULL,
    reason TEXT NOT NULL, time TEXT NOT NULL, body BLOB
);
"""
# Dead letters kept at most; the oldest go first (the count in the status keeps growing).
MAX_DEAD_LETTERS = 10_000


@dataclass(frozen=True, slots=True)
class DeletedNotice:
    """A deletion as the change callback saw it."""

    level: int
    resource_id: str
    time: str
    after_seq: int | None = None  # the log's end when the callback saw it, when known


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event that could not be published as it is, kept with the reason instead."""

    event_id: str
    type: str
    subject: str
    reason: str
    time: str
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class SpooledDeletion:
    row: int
    level: int
    resource_id: str
    time: str
    after_seq: int
    patient_id: str | None
    study_id: str | None
    series_id: str | None


class Spool:
    """Owned by the publisher thread alone (sqlite3 connections stay on their thread)."""

    def __init__(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, FILE_NAME)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._synchronous = ""
        self._add_level_column()
        self._db.executescript(_SCHEMA)
        self.identity = self._identity()

    def _add_level_column(self) -> None:
        # Spools written before links had a level: their rows stay out of reconciliation.
        columns = self._db.execute("PRAGMA table_info(parents)").fetchall()
        if columns and "level" not in {str(column[1]) for column in columns}:
            self._db.execute("ALTER TABLE parents ADD COLUMN level INTEGER")

    def _identity(self) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key='identity'").fetchone()
        if row:
            return str(row[0])
        identity = uuid.uuid4().hex
        self._db.execute("INSERT INTO meta VALUES('identity', ?)", (identity,))
        return identity

    def high_water(self) -> str | None:
        """The last change published, as `set_high_water` stored it (see EventWorker)."""
        row = self._db.execute("SELECT value FROM meta WHERE key='high-water'").fetchone()
        return str(row[0]) if row else None

    def set_high_water(self, value: str) -> None:
        with self._transaction(durable=False):
            self._db.execute("INSERT OR REPLACE INTO meta VALUES('high-water', ?)", (value,))

    def remember_parents(self, links: Iterable[tuple[str, str, int]]) -> None:
        """Record (child, parent, level of the child) links (idempotent).

        Written for every stored instance, so without waiting for the disk: in WAL mode such a
        commit survives an Orthanc crash, and a link lost to a power cut only leaves an ancestor
        ID out of a later deleted event.
        """
        with self._transaction(durable=False):
            self._db.executemany("INSERT OR REPLACE INTO parents VALUES(?, ?, ?)", links)

    def known(self, level: int) -> set[str]:
        """Resources of `level` seen while stored, whose deletion is not queued already."""
        if level == 0:  # patients are only ever parents (of studies)
            query = "SELECT DISTINCT parent_id FROM parents WHERE level=1"
        else:
            query = "SELECT resource_id FROM parents WHERE level=?"
        rows = self._db.execute(query, () if level == 0 else (level,)).fetchall()
        queued = {str(row[0]) for row in self._db.execute("SELECT resource_id FROM deleted")}
        return {str(row[0]) for row in rows} - queued

    def ancestors(self, resource_id: str) -> list[str]:
        """The known parents of a resource, nearest first."""
        found: list[str] = []
        current = resource_id
        for _ in range(3):
            row = self._db.execute(
                "SELECT parent_id FROM parents WHERE resource_id=?", (current,)
            ).fetchone()
            if row is None:
                break
            current = str(row[0])
            found.append(current)
        return found

    def add(self, notices: Iterable[DeletedNotice], after_seq: int) -> None:
        """Queue deletions, with the ancestors known now, after change `after_seq`."""
        with self._transaction(durable=True):  # the only record of a deletion: on disk first
            for notice in notices:
                ids = _by_level(notice.level, self.ancestors(notice.resource_id))
                self._db.execute(
                    "INSERT INTO deleted(level, resource_id, time, after_seq, patient_id,"
                    " study_id, series_id) VALUES(?, ?, ?, ?, ?, ?, ?)",
                    (
                        notice.level,
                        notice.resource_id,
                        notice.time,
                        notice.after_seq if notice.after_seq is not None else after_seq,
                        *ids,
                    ),
                )

    def pending(self, limit: int, up_to_seq: int | None = None) -> list[SpooledDeletion]:
        """The oldest queued deletions (only those after changes <= `up_to_seq` when given)."""
        query = "SELECT * FROM deleted"
        params: tuple[int, ...] = ()
        if up_to_seq is not None:
            query += " WHERE after_seq <= ?"
            params = (up_to_seq,)
        rows = self._db.execute(query + " ORDER BY row LIMIT ?", (*params, limit)).fetchall()
        return [SpooledDeletion(*row) for row in rows]

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM deleted").fetchone()[0])

    def done(self, deletions: Iterable[SpooledDeletion]) -> None:
        """Forget published deletions and the parent links of the deleted resources."""
        with self._transaction(durable=True):
            for deletion in deletions:
                self._db.execute("DELETE FROM deleted WHERE row=?", (deletion.row,))
                self._db.execute("DELETE FROM parents WHERE resource_id=?", (deletion.resource_id,))
                if deletion.level == 0:  # a patient is known through its studies' links
                    self._db.execute(
                        "DELETE FROM parents WHERE parent_id=? AND level=1", (deletion.resource_id,)
                    )

    def dead_letter(self, letters: Iterable[DeadLetter]) -> None:
        """Keep events given up on, durably, before the cursor moves past them."""
        with self._transaction(durable=True):
            self._db.executemany(
                "INSERT INTO dead_letters(event_id, type, subject, reason, time, body)"
                " VALUES(?, ?, ?, ?, ?, ?)",
                [(d.event_id, d.type, d.subject, d.reason, d.time, d.body) for d in letters],
            )
            self._db.execute(
                "DELETE FROM dead_letters WHERE row <= (SELECT MAX(row) FROM dead_letters) - ?",
                (MAX_DEAD_LETTERS,),
            )

    def close(self) -> None:
        self._db.close()

    def _transaction(self, durable: bool) -> _Transaction:
        # The pragma cannot change inside a transaction, so it is set before each one.
        wanted = "FULL" if durable else "NORMAL"
        if wanted != self._synchronous:
            self._db.execute(f"PRAGMA synchronous={wanted}")
            self._synchronous = wanted
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN")

    def __exit__(self, kind: object, *_: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")


def _by_level(level: int, ancestors: list[str]) -> tuple[str | None, str | None, str | None]:
    """(patient, study, series) ids from a resource's ancestors, nearest first."""
    names: list[str | None] = [None, None, None]
    # level 3 (instance): series, study, patient; level 2 (series): study, patient; ...
    slots = {3: (2, 1, 0), 2: (1, 0), 1: (0,), 0: ()}.get(level, ())
    for slot, ancestor in zip(slots, ancestors, strict=False):
        names[slot] = ancestor
    return names[0], names[1], names[2]


def read_dead_letters(directory: str, limit: int) -> list[dict[str, str]]:
    """The newest dead letters, for the REST route (its own read-only connection)."""
    path = os.path.join(directory, FILE_NAME)
    if not os.path.exists(path):
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT event_id, type, subject, reason, time FROM dead_letters"
            " ORDER BY row DESC LIMIT ?",
            (limit,),
        ).fetchall()
    except sqlite3.OperationalError:  # written by a version without dead letters
        return []
    finally:
        db.close()
    keys = ("Id", "Type", "Subject", "Reason", "Time")
    return [dict(zip(keys, (str(value) for value in row), strict=True)) for row in rows]
