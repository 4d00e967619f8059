"""PostgreSQL: ``pg_dump -Fc`` (as the app's Unix user for a password-less login), the password only in its environment."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import sh

from wizard.backup.dumps.common import Dump, Progress, stream_to_file
from wizard.config.dbconf import Database
from wizard.errors import BackupError
from wizard.host.clientcall import last_line
from wizard.host.pgquery import QueryError, psql_env, run_sql
from wizard.host.privilege import as_db_client


def missing_tool() -> str | None:
    return next((tool for tool in ("pg_dump", "pg_restore") if shutil.which(tool) is None), None)


def size(db: Database) -> int:
    try:
        return int(run_sql(db, "SELECT pg_database_size(current_database())") or 0)
    except (QueryError, ValueError) as exc:
        raise BackupError(f"cannot measure the database before backing it up: {exc}") from None


def dump(db: Database, folder: Path, expected: int, progress: Progress | None = None) -> Dump:
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise BackupError("pg_dump is not installed on this host", "install the PostgreSQL client (postgresql-client)")
    target = folder / f"{db.name or 'database'}.dump"
    argv = as_db_client([pg_dump, "-Fc", "--no-password"], db.os_user, bool(db.password))
    stream_to_file(argv, psql_env(db, "backup"), target, expected, progress, "pg_dump")
    entries = verify(target)
    restore = shlex.join(["pg_restore", "--clean", "--if-exists", "--no-owner", *connection_options(db), "--dbname", db.name,
                          str(target)])  # fmt: skip
    return Dump(target, f"{entries} entries, read back whole", restore)


def connection_options(db: Database) -> list[str]:
    """Where the database is, for the restore command the operator will type (the password is asked for)."""
    given = (("--host", db.host), ("--port", db.port), ("--username", db.user))
    return [f"{option}={value}" for option, value in given if value]


def verify(path: Path) -> int:
    """Read the whole dump back; returns how many entries its table of contents has.

    ``--list`` reads only the table of contents at the start of the file, so a
    dump cut in half would pass it; replaying the archive into /dev/null reads
    every data block too.
    """
    try:
        out = sh.Command("pg_restore")("--list", str(path), _tty_out=False, _timeout=300)
        sh.Command("pg_restore")("--file=/dev/null", str(path), _tty_out=False, _timeout=3600)
    except sh.ErrorReturnCode as exc:
        raise BackupError(f"the dump {path} cannot be read back: {last_line(exc)}",
                          "take the backup again; nothing was changed") from None  # fmt: skip
    entries = [line for line in str(out).splitlines() if line and not line.startswith(";")]
    if not entries:
        raise BackupError(f"the dump {path} holds nothing", "take the backup again; nothing was changed")
    return len(entries)
