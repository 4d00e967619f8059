"""MySQL / MariaDB (pretalx before 2024.3): ``mysqldump`` in one transaction, read back line by line.

A text dump cannot be replayed without a scratch database, which the app's
user may not be allowed to create.  So reading it back means: the whole file
is text (mysqldump writes binary columns as hex), it ends with mysqldump's
"Dump completed" line (a cut-off dump does not), and every table the database
had when the dump began has its CREATE TABLE in it.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from wizard.backup.dumps.common import Dump, Progress, stream_to_file
from wizard.config.dbconf import Database
from wizard.errors import BackupError
from wizard.host.mysqlclient import MySQLError, client, client_env, client_path, connection_options, run_query

DUMP_OPTIONS = ["--single-transaction", "--quick", "--routines", "--triggers", "--hex-blob",
                "--no-tablespaces", "--default-character-set=utf8mb4"]  # fmt: skip
CREATE_TABLE = re.compile(r"^CREATE TABLE `((?:[^`]|``)+)`")
AGAIN = "take the backup again; nothing was changed"


def missing_tool() -> str | None:
    return next((tool for tool in ("mysql", "mysqldump") if client_path(tool) is None), None)


def size(db: Database) -> int:
    """InnoDB's own statistics: close for a settled database, seconds behind right after a bulk change."""
    try:
        return int(run_query(db, "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables "
                                 "WHERE table_schema = DATABASE()") or 0)  # fmt: skip
    except (MySQLError, ValueError) as exc:
        raise BackupError(f"cannot measure the database before backing it up: {exc}") from None


def tables(db: Database) -> set[str]:
    try:
        out = run_query(db, "SELECT table_name FROM information_schema.tables "
                            "WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'")  # fmt: skip
    except MySQLError as exc:
        raise BackupError(f"cannot list the database's tables: {exc}") from None
    return {line for line in out.splitlines() if line}


def dump(db: Database, folder: Path, expected: int, progress: Progress | None = None) -> Dump:
    before = tables(db)
    target = folder / f"{db.name or 'database'}.sql"
    try:
        with client(db, "mysqldump") as argv:
            stream_to_file([*argv, *DUMP_OPTIONS, db.name], client_env(), target, expected, progress, "mysqldump")
    except MySQLError as exc:
        raise BackupError(exc.message, exc.hint) from None
    found = verify(target, before)
    asks_password = ["--password"] if db.password else []
    restore = shlex.join(["mysql", *connection_options(db), *asks_password, db.name]) + " < " + shlex.quote(str(target))
    return Dump(target, f"{found} tables, complete", restore)


def verify(path: Path, expected_tables: set[str]) -> int:
    """Read the dump back whole; returns how many tables it creates."""
    created: set[str] = set()
    last = ""
    try:
        with open(path, encoding="utf-8") as text:
            for line in text:
                if match := CREATE_TABLE.match(line):
                    created.add(match.group(1).replace("``", "`"))
                if line.strip():
                    last = line
    except UnicodeDecodeError as exc:
        raise BackupError(f"the dump {path} is damaged: it is not text at byte {exc.start}", AGAIN) from None
    if not last.startswith("-- Dump completed"):
        raise BackupError(f"the dump {path} is cut off: it does not end with mysqldump's 'Dump completed' line", AGAIN)
    missing = sorted(expected_tables - created)
    if missing:
        raise BackupError(f"the dump {path} lacks {len(missing)} table(s): {', '.join(missing[:5])}", AGAIN)
    return len(created)
