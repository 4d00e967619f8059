"""Which (re)start a service's main process must be younger than: the last step's, or the lock watch's after it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from steps import load_recipe
from wizard.config.context import InstanceContext
from wizard.health.check import restart_times
from wizard.session.state import Session, SideJob, StepRecord, StepStatus

from ..helpers.planning import instance

T0 = datetime(2026, 12, 2, 4, 0, tzinfo=UTC)


def record(step_id: str, minute: int, status: StepStatus = StepStatus.SUCCEEDED) -> StepRecord:
    return StepRecord(id=step_id, title=step_id, argv=["true"], status=status, started=T0 + timedelta(minutes=minute))


def session(side_jobs: list[SideJob], finished: bool = True) -> Session:
    steps = [record("stop-celery", 0), record("pip-core", 1), record("db-upgrade", 2),
             record("reload-uwsgi", 3, StepStatus.SKIPPED), record("start-celery", 4)]  # fmt: skip
    return Session(id="s", instance="main", recipe="indico", steps=steps, side_jobs=side_jobs,
                   finished=T0 + timedelta(minutes=5) if finished else None)  # fmt: skip


def context() -> InstanceContext:
    return InstanceContext(instance("indico"), load_recipe("indico"), [], [])


def test_a_started_service_and_one_the_lock_watch_restarted_each_have_their_moment():
    restart = SideJob(kind="restart", role="uwsgi", for_step="db-upgrade",
                      run=record("restart-uwsgi", 2).model_copy(update={"exit_code": 0}))  # fmt: skip
    found = restart_times(context(), session([restart]))
    assert found["celery"].by == "started by step 5" and found["celery"].began == T0 + timedelta(minutes=4)
    assert found["uwsgi"].by == "restarted beside step 3 (the lock wait)"


def test_a_failed_restart_and_an_unfinished_upgrade_set_no_expectation():
    failed = SideJob(kind="restart", role="uwsgi", for_step="db-upgrade",
                     run=record("restart-uwsgi", 2).model_copy(update={"exit_code": 1}))  # fmt: skip
    assert "uwsgi" not in restart_times(context(), session([failed]))
    assert restart_times(context(), session([], finished=False)) == {}
