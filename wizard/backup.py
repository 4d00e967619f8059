"""Backups the wizard takes itself, and proves readable before anything changes.

A backup is a folder ``wizard-<time>`` under the instance's backup directory:
the database (PostgreSQL: ``pg_dump -Fc``, read back whole with ``pg_restore``;
SQLite: the online backup API, checked with ``PRAGMA integrity_check``) and a
copy of the app's config files.  Free space is checked first; nothing is
written when it is short.  Older wizard backups are rotated away.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import sqlite3
import tarfile
from pathlib import Path
from typing import Callable

import sh

from .appfiles import AppFile
from .sizes import free_space, human_bytes, tree_size
from .dbconf import Database
from .errors import WizardError
from .pgquery import QueryError, psql_env, run_sql
from .privilege import as_runner
from .state import Backup, now

Progress = Callable[[int, int], None]  # bytes written, bytes expected
HEADROOM = 64 * 1024**2
PREFIX = "wizard-"


class BackupError(WizardError):
    pass


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- SQLite -----------------------------------------------------------------


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


def copy_sqlite(database: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database (the online backup API)."""
    if not database.is_file():
        raise BackupError(f"database {database} not found: nothing to back up")
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    dest = sqlite3.connect(target)
    try:
        source.backup(dest)
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"cannot read the database {database}: {exc}") from None
    finally:
        dest.close()
        source.close()
    target.chmod(0o600)
    verify_sqlite(target)


# -- PostgreSQL ---------------------------------------------------------------


def database_size(db: Database) -> int:
    try:
        return int(run_sql(db, "SELECT pg_database_size(current_database())") or 0)
    except (QueryError, ValueError) as exc:
        raise BackupError(f"cannot measure the database before backing it up: {exc}") from None


def dump_postgres(db: Database, target: Path, expected: int, progress: Progress | None = None) -> None:
    """pg_dump -Fc into ``target``, as the app's user; the password only in pg_dump's environment."""
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise BackupError("pg_dump is not installed on this host", "install the PostgreSQL client (postgresql-client)")
    argv = as_runner([pg_dump, "-Fc", "--no-password"], "app", db.os_user, {})
    with open(target, "wb") as out:
        target.chmod(0o600)
        job = sh.Command(argv[0])(*argv[1:], _env=psql_env(db), _out=out, _bg=True, _bg_exc=False, _tty_out=False)
        while True:
            try:
                job.wait(timeout=0.25)
                break
            except sh.TimeoutException:
                if progress:
                    progress(target.stat().st_size, expected)
            except sh.ErrorReturnCode as exc:
                lines = exc.stderr.decode(errors="replace").strip().splitlines()
                raise BackupError(f"pg_dump failed: {lines[-1] if lines else exc.exit_code}",
                                  "the gate stays closed; fix the cause and take the backup again") from None  # fmt: skip
    if progress:
        progress(target.stat().st_size, expected)


def verify_postgres_dump(path: Path) -> int:
    """Read the whole dump back; returns how many entries its table of contents has.

    ``--list`` reads only the table of contents at the start of the file, so a
    dump cut in half would pass it; replaying the archive into /dev/null reads
    every data block too.
    """
    try:
        out = sh.Command("pg_restore")("--list", str(path), _tty_out=False, _timeout=300)
        sh.Command("pg_restore")("--file=/dev/null", str(path), _tty_out=False, _timeout=3600)
    except sh.ErrorReturnCode as exc:
        lines = exc.stderr.decode(errors="replace").strip().splitlines()
        raise BackupError(f"the dump {path} cannot be read back: {lines[-1] if lines else exc.exit_code}",
                          "take the backup again; nothing was changed") from None  # fmt: skip
    entries = [line for line in str(out).splitlines() if line and not line.startswith(";")]
    if not entries:
        raise BackupError(f"the dump {path} holds nothing", "take the backup again; nothing was changed")
    return len(entries)


# -- the whole backup -----------------------------------------------------------


def check_space(folder: Path, needed: int) -> None:
    free = free_space(folder)
    if free < needed + HEADROOM:
        raise BackupError(
            f"not enough free space for the backup in {folder}: about {human_bytes(needed)} needed "
            f"(plus {human_bytes(HEADROOM)} to spare), {human_bytes(free)} free",
            "free some space there, or set backup_dir in the instance to a bigger filesystem; nothing was written",
        )


def take_backup(
    db: Database,
    config_files: list[Path],
    root: Path,
    keep: int,
    progress: Progress | None = None,
    files: list[AppFile] = (),
) -> Backup:
    """Back up the database, the config files and the app's files into a new folder under ``root``; verify; rotate."""
    if db.kind == "postgresql":
        expected = database_size(db)
    elif db.kind == "sqlite":
        expected = Path(db.name).stat().st_size if Path(db.name).is_file() else 0
    else:
        raise BackupError(f"the wizard cannot back up a {db.kind} database yet", "back it up yourself and declare it")
    configs = [path for path in config_files if path.is_file()]
    included = [f for f in files if f.included]
    sizes = {f.label: tree_size(f.path) for f in files}
    check_space(root, expected + sum(path.stat().st_size for path in configs) + sum(sizes[f.label] for f in included))
    folder = root / f"{PREFIX}{now().strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True, mode=0o700)
    try:
        return _fill(folder, db, expected, configs, files, sizes, root, keep, progress)
    except BaseException:
        # Kept for a look, but never mistaken for a backup (nor counted when rotating).
        folder.rename(folder.with_name("incomplete-" + folder.name))
        raise


def _fill(folder: Path, db: Database, expected: int, configs: list[Path], files, sizes: dict, root: Path,
          keep: int, progress: Progress | None) -> Backup:  # fmt: skip
    restore: list[str] = []
    if db.kind == "postgresql":
        dump = folder / f"{db.name or 'database'}.dump"
        dump_postgres(db, dump, expected, progress)
        checked = f"{verify_postgres_dump(dump)} entries, read back whole"
        restore.append(shlex.join(["pg_restore", "--clean", "--if-exists", "--no-owner", "--dbname", db.name, str(dump)]))
    else:
        dump = folder / Path(db.name).name
        copy_sqlite(Path(db.name), dump)
        checked = "integrity checked"
        restore.append(shlex.join(["cp", "--", str(dump), db.name]))
    for path in configs:
        copy = folder / "config" / path.name
        copy.parent.mkdir(exist_ok=True, mode=0o700)
        shutil.copy2(path, copy)
        copy.chmod(0o600)
        restore.append(shlex.join(["cp", "--", str(copy), str(path)]))
    contents = [f"{dump.name} ({checked})", *(f"config/{p.name}" for p in configs)]
    for item in files:
        if not item.included:
            contents.append(f"NOT included: {item.label} ({item.path}, {human_bytes(sizes[item.label])}): {item.why_not}")
            continue
        contents.append(f"{item.label} ({item.path}, {human_bytes(sizes[item.label])})")
        restore.append(save_files(item, folder / "files"))
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    rotate(root, keep)
    return Backup(kind="taken", path=str(folder), size=size, checksum="sha256:" + sha256_of(dump), restore=restore,
                  contents=contents)  # fmt: skip


def save_files(item: AppFile, into: Path) -> str:
    """A folder as a .tar.gz (paths relative to its parent), a single file as a copy; returns how to restore it."""
    into.mkdir(exist_ok=True, mode=0o700)
    if item.path.is_file():
        copy = into / item.path.name
        shutil.copy2(item.path, copy)
        copy.chmod(0o600)
        return shlex.join(["cp", "--", str(copy), str(item.path)])
    archive = into / f"{item.label}.tar.gz"
    with os.fdopen(os.open(archive, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
        with tarfile.open(fileobj=out, mode="w:gz") as tar:
            tar.add(item.path, arcname=item.path.name)
    return shlex.join(["tar", "-xzf", str(archive), "-C", str(item.path.parent)])


def rotate(root: Path, keep: int) -> list[Path]:
    """Keep the newest ``keep`` wizard backups in ``root``; only folders the wizard made are touched."""
    ours = sorted((p for p in root.glob(f"{PREFIX}*") if p.is_dir()), key=lambda p: p.name)
    gone = ours[: max(len(ours) - keep, 0)]
    for folder in gone:
        shutil.rmtree(folder)
    return gone


def declared_backup(path: str) -> Backup:
    """The operator says a backup exists at ``path``; it must at least be there."""
    where = Path(path).expanduser()
    if not where.exists():
        raise BackupError(
            f"the declared backup {where} does not exist",
            "take the backup first, then pass the path where it is",
        )
    return Backup(kind="declared", path=str(where.resolve()))
