"""Database dumps, one module per engine.

Each engine module answers the same three calls: ``missing_tool()``, the
client it needs that this host lacks (None: all there); ``size(db)``, the
bytes the database takes (to check free space and to show progress against);
and ``dump(db, folder, expected, progress)``, which writes the dump into
``folder``, reads it back and returns a :class:`Dump` saying what was checked
and how to restore it.
"""

from __future__ import annotations

from types import ModuleType

from wizard.backup.dumps import mysql, postgres, sqlite
from wizard.backup.dumps.common import Dump, Progress
from wizard.config.dbconf import Database
from wizard.errors import BackupError

ENGINES: dict[str, ModuleType] = {"postgresql": postgres, "sqlite": sqlite, "mysql": mysql}

__all__ = ["Dump", "Progress", "ENGINES", "engine_for"]


def engine_for(db: Database) -> ModuleType:
    try:
        return ENGINES[db.kind]
    except KeyError:
        raise BackupError(f"the wizard cannot back up a {db.kind} database",
                          "back it up yourself, then declare the backup") from None  # fmt: skip
