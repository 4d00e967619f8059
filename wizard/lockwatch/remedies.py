"""Beside the plan: the lock-hang watch for a step, and the remedies the operator may take.

A restart of the app server runs as a detached side job (the Engine records
and launches it); a blocking database session can be ended.  Nothing here
ever touches the running step.
"""

from __future__ import annotations

from wizard.config.context import InstanceContext
from wizard.errors import WizardError
from wizard.host.pgquery import QueryError, terminate
from wizard.lockwatch.watchdog import LockWatch
from wizard.session.state import StepRecord, StepStatus


class LockRemedies:
    """What an instance offers against a lock hang: its app server's unit and pid, a restart, its database."""

    def __init__(self, context: InstanceContext):
        self.context = context
        self.instance = context.instance
        self.recipe = context.recipe

    def watch(self, step: StepRecord, threshold: float | None, unit: str | None) -> LockWatch | None:
        """A watch for a step that can hang on a database lock (None for other steps).

        ``unit``: the app server's service, whose main pid marks the sessions it holds.
        """
        if not step.can_hang_on_lock:
            return None

        def app_server_pids() -> set[int]:
            pid = self.context.services.main_pid(unit) if unit else None
            return {pid} if pid else set()

        return LockWatch(step, threshold or self.recipe.lock_wait_seconds, self.context.database, app_server_pids)

    def restart_record(self, role: str, unit: str | None) -> StepRecord:
        """The side job that restarts the service of ``role`` (launched by the Engine, with its own log)."""
        if unit is None:
            raise WizardError(f"instance {self.instance.name!r} names no {role!r} service to restart")
        return StepRecord(id=f"restart-{role}", title=f"Restart {unit}", argv=self.context.services.argv("restart", unit),
                          run_as="root", status=StepStatus.RUNNING, attempts=1)  # fmt: skip

    def end_session(self, backend_pid: int) -> bool:
        """pg_terminate_backend on one session (only the query: safe to run in a thread)."""
        database = self.context.database
        if database is None or database.kind != "postgresql":
            raise WizardError("only a PostgreSQL session can be ended this way")
        try:
            return terminate(database, backend_pid)
        except QueryError as exc:
            raise WizardError(f"could not end session {backend_pid}: {exc}") from None
