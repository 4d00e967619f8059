"""Backups the wizard takes itself, and proves readable before anything changes.

So far: SQLite, through the online backup API (consistent while the app
runs), checked with ``PRAGMA integrity_check`` on the copy.
"""

from __future__ import annotations

import hashlib
import shlex
import sqlite3
from pathlib import Path

from .errors import WizardError
from .state import Backup, now


class BackupError(WizardError):
    pass


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sqlite(path: Path) -> None:
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


def backup_sqlite(database: Path, folder: Path) -> Backup:
    """Copy a live SQLite database consistently, verify the copy, and say how to restore it."""
    if not database.is_file():
        raise BackupError(f"database {database} not found: nothing to back up")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = folder / f"{database.stem}-{now().strftime('%Y%m%d-%H%M%S')}.sqlite3"
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    dest = sqlite3.connect(target)
    try:
        source.backup(dest)
    finally:
        dest.close()
        source.close()
    target.chmod(0o600)
    verify_sqlite(target)
    return Backup(
        kind="taken",
        path=str(target),
        size=target.stat().st_size,
        checksum="sha256:" + sha256_of(target),
        restore=[shlex.join(["cp", "--", str(target), str(database)])],
    )


def declared_backup(path: str) -> Backup:
    """The operator says a backup exists at ``path``; it must at least be there."""
    where = Path(path).expanduser()
    if not where.exists():
        raise BackupError(
            f"the declared backup {where} does not exist",
            "take the backup first, then pass the path where it is",
        )
    return Backup(kind="declared", path=str(where.resolve()))
