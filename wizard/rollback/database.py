"""The step that puts the database back from the backup the wizard took, as real argv per engine; or why it cannot.

PostgreSQL: ``pg_restore --clean --create`` as the cluster's superuser drops the database and makes it again
as the dump describes it (owner, encoding, grants), so tables a new migration added go with it; the dump is
handed to it on standard input by the step's wrapper, which can read the 0600 file. SQLite: the backup copy is
written into the database through SQLite's own backup API by the venv's Python, so a process that still has
the file open makes it wait rather than corrupting it. MySQL and MariaDB are not restored by the wizard yet:
the backup's recorded command is shown for a person to run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from wizard.backup.take import UNFINISHED, sha256_of
from wizard.config.context import InstanceContext
from wizard.errors import WizardError
from wizard.lockwatch.pgsuper import cluster_superuser
from wizard.session.state import Backup, StepRecord

KEEP_HINT = "or roll back the packages alone with --keep-database (the database stays as the upgrade left it)"

# Run by the venv's Python as the app's user: the dump arrives on standard input (the wrapper opened it).
SQLITE_RESTORE = (
    "import shutil, sqlite3, sys, tempfile; copy = tempfile.NamedTemporaryFile(prefix='restore-'); "
    "shutil.copyfileobj(sys.stdin.buffer, copy); copy.flush(); "
    "target = sqlite3.connect(sys.argv[1], timeout=120); sqlite3.connect(copy.name).backup(target); "
    "target.close(); print('restored', sys.argv[1], 'from the backup')"
)


class CannotRestore(WizardError):
    """The database cannot be put back by the wizard: the message says why, the hint what a person can do."""


def dump_of(context: InstanceContext, backup: Backup) -> Path:
    """The backup's database dump, read again now and found to be the file that was verified when it was taken."""
    if backup.kind != "taken":
        raise CannotRestore("the backup was declared by the operator, not taken by the wizard: it cannot restore it",
                            "restore your own backup by hand first, then " + KEEP_HINT.removeprefix("or "))  # fmt: skip
    db = context.database
    if db is None:
        raise CannotRestore("the app's config names no database the wizard can read", KEEP_HINT)
    folder = Path(backup.path)
    name = f"{db.name or 'database'}.dump" if db.kind == "postgresql" else Path(db.name).name
    dump = folder / name
    if (folder / UNFINISHED).exists() or not dump.is_file():
        raise CannotRestore(f"the backup's database dump {dump} is not there (or the backup was never finished)",
                            KEEP_HINT)  # fmt: skip
    if backup.checksum and backup.checksum != "sha256:" + sha256_of(dump):
        raise CannotRestore(f"the dump {dump} is no longer the file that was verified when the backup was taken "
                            "(its checksum differs)", "find out who changed it; " + KEEP_HINT)  # fmt: skip
    return dump


def restore_step(context: InstanceContext, backup: Backup) -> StepRecord:
    """The step that restores the database (CannotRestore when the wizard cannot do it safely)."""
    dump = dump_of(context, backup)
    db = context.database
    assert db is not None
    title = f"Restore the database from the backup of {backup.at.astimezone():%Y-%m-%d %H:%M}"
    if db.kind == "postgresql":
        superuser = cluster_superuser(db)
        pg_restore = shutil.which("pg_restore")
        if superuser is None or pg_restore is None:
            raise CannotRestore(
                "the database can be restored only as the PostgreSQL cluster's superuser, which the wizard reaches as "
                "root on the database's own host" + ("" if pg_restore else " (and pg_restore is not installed)"),
                "restore it by hand: " + "; ".join(backup.restore[:1]) + "; " + KEEP_HINT,
            )
        argv = ["runuser", "-u", superuser.os_user or "postgres", "--", pg_restore, "--clean", "--if-exists",
                "--create", "--exit-on-error", "--no-password", f"--host={superuser.host}",
                f"--port={superuser.port}", f"--username={superuser.user}", "--dbname=template1"]  # fmt: skip
        return StepRecord(id="rollback-database", title=title, argv=argv, run_as="root", stdin=str(dump),
                          needs=["pg_restore", "runuser"],
                          advice="The database is dropped and made again from the dump, as it was when the backup "
                                 "was taken: whatever was written since is gone. Every service is stopped first.")  # fmt: skip
    if db.kind == "sqlite":
        argv = [str(context.instance.python), "-c", SQLITE_RESTORE, db.name]
        return StepRecord(id="rollback-database", title=title, argv=argv, stdin=str(dump),
                          advice="The backup copy is written into the database file through SQLite itself: "
                                 "whatever was written since is gone.")  # fmt: skip
    raise CannotRestore(f"the wizard does not restore {db.kind} databases yet",
                        "restore it by hand: " + "; ".join(backup.restore[:1]) + "; " + KEEP_HINT)  # fmt: skip
