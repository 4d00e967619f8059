"""Beside the plan: what the lock-hang watch needs from the engine, and the remedies it offers.

A restart of the app server runs as a detached side job with its own log, and
a blocking database session can be ended; both are recorded in the session.
Nothing here ever touches the running step.
"""

from __future__ import annotations

from .dbconf import Database, database_of
from .errors import WizardError
from .pgquery import QueryError, terminate
from .runner import Finished, Gone, inspect, launch, prepare_attempt
from .secrets import secret_env
from .state import SideJob, StepRecord, StepStatus, now
from .watchdog import LockWatch


class LockRemedies:
    """Mixed into the Engine: uses its instance, store, session, save and notes."""

    def service_unit(self, role: str) -> str | None:
        """The unit this session found for a role at planning time (else the configured one)."""
        found = self.session.services.get(role) if self.session else None
        return found or self.instance.service_unit(self.recipe, role)

    def lock_watch(self, step: StepRecord, threshold: float | None = None) -> LockWatch | None:
        """A watch for a step that can hang on a database lock (None for other steps)."""
        if not step.can_hang_on_lock:
            return None
        recipe = self.recipe
        unit = self.service_unit(recipe.app_server_role)

        def app_server_pids() -> set[int]:
            pid = self.instance.service_main_pid(unit) if unit else None
            return {pid} if pid else set()

        return LockWatch(step, threshold or recipe.lock_wait_seconds, self.database(), app_server_pids)

    def database(self) -> Database | None:
        """The instance's database as its config says, asked as the app's own Unix user."""
        return database_of(self.recipe, self.instance)

    def restart_service(self, role: str, reason: str, for_step: str | None = None) -> SideJob:
        """Restart a service beside the running step (never touching it), detached, with its own log."""
        assert self.session is not None
        unit = self.service_unit(role)
        if unit is None:
            raise WizardError(f"instance {self.instance.name!r} names no {role!r} service to restart")
        run = StepRecord(id=f"restart-{role}", title=f"Restart {unit}", argv=self.instance.service_argv("restart", unit),
                         run_as="root", status=StepStatus.RUNNING, attempts=1)  # fmt: skip
        job = SideJob(kind="restart", role=role, reason=reason, for_step=for_step, run=run)
        prepare_attempt(run, self.store.run_dir(self.session), 90 + len(self.session.side_jobs))
        self.session.side_jobs.append(job)
        self.save()
        child = launch(run, app_user=self.instance.user, secret_env=secret_env(self.instance.env), redact=self._secrets)
        if child is not None:
            self._children[f"side-{len(self.session.side_jobs)}"] = child
        self._save_note(f"{unit} restart started: {reason}")
        return job

    def restart_running(self, role: str) -> StepRecord | None:
        jobs = self.session.side_jobs if self.session else []
        return next((j.run for j in jobs if j.kind == "restart" and j.role == role and j.run.status == StepStatus.RUNNING), None)

    def poll_side_jobs(self) -> list[SideJob]:
        """Record the end of side jobs that have finished; returns those that just did."""
        ended = []
        for job in self.session.side_jobs if self.session else []:
            if job.run.status != StepStatus.RUNNING:
                continue
            outcome = inspect(job.run)
            if isinstance(outcome, Finished):
                job.run.exit_code, job.run.ended = outcome.exit_code, outcome.ended or now()
                job.run.status = StepStatus.SUCCEEDED if outcome.exit_code == 0 else StepStatus.FAILED
            elif isinstance(outcome, Gone):
                job.run.status, job.run.ended = StepStatus.INTERRUPTED, now()
            else:
                continue
            ended.append(job)
            self._save_note(f"{job.run.title}: {job.run.status.value} (exit code {job.run.exit_code})")
        return ended

    def end_session(self, backend_pid: int) -> bool:
        """pg_terminate_backend on one session (only the query: safe to run in a thread)."""
        database = self.database()
        if database is None or database.kind != "postgresql":
            raise WizardError("only a PostgreSQL session can be ended this way")
        try:
            return terminate(database, backend_pid)
        except QueryError as exc:
            raise WizardError(f"could not end session {backend_pid}: {exc}") from None

    def record_ended_session(self, backend_pid: int, ended: bool, reason: str) -> None:
        assert self.session is not None
        run = StepRecord(id="terminate-session", title=f"End database session {backend_pid}",
                         argv=["pg_terminate_backend", str(backend_pid)], attempts=1, started=now(), ended=now(),
                         exit_code=0 if ended else 1, status=StepStatus.SUCCEEDED if ended else StepStatus.FAILED)  # fmt: skip
        self.session.side_jobs.append(SideJob(kind="terminate", role="database", reason=reason, run=run))
        self._save_note(f"database session {backend_pid} {'ended' if ended else 'was already gone'}: {reason}")
