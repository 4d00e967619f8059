"""One instance's backups, as the backup gate uses them: can the wizard take one, what it would hold, taking it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from wizard.backup.dumps import ENGINES
from wizard.backup.take import Estimate, Progress, Unfinished, estimate, take_backup, unfinished_backups
from wizard.config.appfiles import app_files
from wizard.config.context import InstanceContext
from wizard.config.dbconf import Database
from wizard.errors import WizardError
from wizard.session.state import Backup


class InstanceBackups:
    """Backups of the instance in ``context``, kept under the folder ``root()`` names (asked when needed)."""

    def __init__(self, context: InstanceContext, root: Callable[[], Path]):
        self.context = context
        self._root = root

    @property
    def root(self) -> Path:
        return self._root()

    def possible(self) -> bool:
        """Can the wizard take the backup itself (the config names a database it can dump)?"""
        database = self.context.database
        return database is not None and database.kind in ENGINES

    def unfinished(self) -> list[Unfinished]:
        """This instance's backups that never finished (said, never deleted)."""
        return unfinished_backups(self.root, self.context.name)

    def estimate(self, chosen: set[str] | None = None) -> Estimate:
        """What a backup taken now would hold, each part measured (asks the database: call it from a worker)."""
        return estimate(self._database(), self.context.config_files, self.root, app_files(self.context, chosen))

    def take(
        self, progress: Progress | None = None, chosen: set[str] | None = None, measured: Estimate | None = None
    ) -> Backup:
        """Dump the database, copy the config and the app's files, verified (runs long: call it from a worker).

        ``chosen``: the optional parts the operator picked (None: as the instance's settings say);
        ``measured``: the estimate made for those same choices, when there is one.
        """
        instance = self.context.instance
        return take_backup(self._database(), self.context.config_files, self.root, instance.backup_keep, progress,
                           files=app_files(self.context, chosen), measured=measured, instance=instance.name)  # fmt: skip

    def _database(self) -> Database:
        database = self.context.database
        if database is None:
            raise WizardError("the instance's database settings were not found in its config",
                              "back it up yourself, then declare it (--backup-done PATH)")  # fmt: skip
        return database
