"""SQLite: the online backup API (a consistent copy while the app runs), then ``PRAGMA integrity_check``."""

from __future__ import annotations

import shlex
import sqlite3
from pathlib import Path

from wizard.backup.dumps.common import Dump, Progress
from wizard.config.dbconf import Database
from wizard.errors import BackupError

PAGES_PER_STEP = 1024


def missing_tool() -> str | None:
    return None  # Python's own sqlite3 does it all


def size(db: Database) -> int:
    path = Path(db.name)
    return path.stat().st_size if path.is_file() else 0


def dump(db: Database, folder: Path, expected: int, progress: Progress | None = None) -> Dump:
    database = Path(db.name)
    target = folder / database.name
    copy(database, target, progress)
    verify(target)
    return Dump(target, "integrity checked", shlex.join(["cp", "--", str(target), str(database)]))


def copy(database: Path, target: Path, progress: Progress | None = None) -> None:
    if not database.is_file():
        raise BackupError(f"database {database} not found: nothing to back up")
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    dest = sqlite3.connect(target)
    target.chmod(0o600)
    try:
        page = source.execute("PRAGMA page_size").fetchone()[0]

        def report(status: int, remaining: int, total: int) -> None:
            if progress:
                progress("database", (total - remaining) * page, total * page)

        source.backup(dest, pages=PAGES_PER_STEP, progress=report)
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"cannot read the database {database}: {exc}") from None
    finally:
        dest.close()
        source.close()


def verify(path: Path) -> None:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            result = conn.execute("PRAGMA integrity_check").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"the backup {path} is not a readable SQLite database: {exc}") from None
    if result != [("ok",)]:
        raise BackupError(f"the backup {path} failed its integrity check: {result[:3]}")
