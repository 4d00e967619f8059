"""A stand-in for the step processes, for screen tests: ``make_app(..., processes=FakeSteps({...}))``.

Only the process is stood in for.  ``FakeSteps.launch`` spawns nothing: it
writes the step's log (the wrapper's "started:" line naming the command, the
lines the test scripted for that step id, the wrapper's sealed exit line) and
its status file with the wrapper's own ``write_status``, in the wrapper's
form.  The real Engine, Driver, session saving, ``runner.inspect`` and the
real screens then read a real outcome: exited with the scripted code, or,
for a step scripted ``hold=True``, running (its pid is this test process's
own, with its start ticks: alive as long as the test) until the test calls
``release(step_id)``.  A step not in the script succeeds and prints nothing.
A list scripts one attempt per launch of that step by this stand-in; the
last entry serves any further attempt.

Use it where a test needs steps to succeed, fail or be running only to reach
a screen state (the backup gate opening on to the run, retry and skip after
a failure, the done screen, what the step list shows).

Do not use it where the process is what the test proves: reattaching after
the wizard's death, a step outliving the wizard, quitting while a step runs,
interrupted steps, the lock watch (it refuses a step that can hang on a lock:
the watch would look at this test process), a log flooded faster than it is
read or output arriving while the operator scrolls, a full disk at launch,
the wrapper's own behaviour (tests/unit/test_stepwrap.py, tests/unit/test_runner.py),
and the demo, whose steps do real work on its sandbox.  Nor can it stand in
for a wizard started as another process (``site.cli``, ``site.spawn``): they
run the real wrapper.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from secrets import token_hex

from wizard.config.instance import Instance
from wizard.config.redact import Redactor
from wizard.errors import WizardError
from wizard.execution.runner import StepProcesses
from wizard.execution.stepwrap import stamp, write_status
from wizard.host.privilege import as_runner
from wizard.host.procs import boot_id, start_ticks
from wizard.session.state import StepRecord


@dataclass(frozen=True)
class Attempt:
    """What one attempt of a step prints and how it ends."""

    lines: Sequence[str] = ()
    exit_code: int = 0
    hold: bool = False  # stays running after its lines until FakeSteps.release


@dataclass
class _Held:
    record: StepRecord
    attempt: Attempt
    status: dict[str, object]  # the wrapper's "running" status, which its final one extends


class FakeSteps(StepProcesses):
    """Steps that end as the test scripted them, without a process; see the module's doc.

    An instance is also the factory ``make_app`` and ``Engine`` take (called
    with the instance and the secrets to mask, it returns itself), so the test
    keeps it to release held steps and to see what was launched.
    """

    def __init__(self, script: Mapping[str, Attempt | Sequence[Attempt]] | None = None):
        super().__init__(None, {}, [])
        self.script = {step_id: [plan] if isinstance(plan, Attempt) else list(plan)
                       for step_id, plan in (script or {}).items()}  # fmt: skip
        self.launched: list[str] = []  # step ids, one per launch, in order
        self._held: dict[str, _Held] = {}

    def __call__(self, instance: Instance, redact: list[str]) -> FakeSteps:
        self.app_user, self.redact = instance.user, list(redact)
        return self

    def launch(self, record: StepRecord, key: str) -> None:
        if not (record.status_file and record.log and record.token):
            raise WizardError(f"step {record.id!r} was not prepared for an attempt (no log, status file or token)")
        if record.can_hang_on_lock:
            raise AssertionError(f"step {record.id!r} is for the lock watch: run it as a real process")
        plan = self.script.get(record.id) or [Attempt()]
        attempt = plan[min(self.launched.count(record.id), len(plan) - 1)]
        self.launched.append(record.id)
        pid = os.getpid()
        status: dict[str, object] = {"token": record.token, "pid": pid, "start_ticks": start_ticks(pid),
                                     "boot_id": boot_id(), "seal": token_hex(4), "started": stamp()}  # fmt: skip
        write_status(Path(record.status_file), {**status, "state": "running"})
        record.pid, record.start_ticks = pid, start_ticks(pid)
        command = as_runner(record.argv, record.run_as, self.app_user, record.env)
        self._write(record, [self._note(f"started: {shlex.join(command)}"), *attempt.lines])
        held = _Held(record, attempt, status)
        if attempt.hold:
            self._held[record.id] = held
        else:
            self._end(held, attempt.exit_code)

    def reap(self, key: str | None = None) -> None:
        """Nothing to reap: no process was started."""

    def running(self) -> list[str]:
        """The ids of the steps held running."""
        return list(self._held)

    def release(self, step_id: str, exit_code: int | None = None) -> None:
        """End a held step, with its scripted exit code unless another is given."""
        held = self._held.pop(step_id)
        self._end(held, held.attempt.exit_code if exit_code is None else exit_code)

    def _end(self, held: _Held, exit_code: int) -> None:
        # As the wrapper ends: its sealed exit line last in the log, then the final status.
        how = f"was killed by signal {-exit_code}" if exit_code < 0 else f"exited with code {exit_code}"
        self._write(held.record, [self._note(f"the command {how} after 0.0 s · end {held.status['seal']}")], False)
        assert held.record.status_file is not None
        write_status(Path(held.record.status_file),
                     {**held.status, "state": "exited", "exit_code": exit_code, "ended": stamp()})  # fmt: skip

    @staticmethod
    def _note(text: str) -> str:
        return f"[upgrade-wizard] {stamp()[:19]}Z {text}"

    def _write(self, record: StepRecord, lines: Sequence[str], masked: bool = True) -> None:
        assert record.log is not None
        data = "".join(f"{line}\n" for line in lines).encode()
        with open(record.log, "ab") as log:
            log.write(Redactor(self.redact).mask_bytes(data) if masked else data)
