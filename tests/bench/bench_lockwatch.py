"""How soon the lock watch names a real lock wait, and whether a silent busy step ever raises an alarm.

Run on demand (not part of the test suite):

    .venv/bin/python -m tests.bench.bench_lockwatch [--runs 5] [--thresholds 2 5]

It starts a private PostgreSQL (as the tests do).  For each threshold it runs,
`--runs` times, a step that prints one line and then an ALTER TABLE that waits
on a table another session holds; the watch is asked every WATCH_SECONDS (as the
driver does, for both faces) and the time from the step's last line to the first
confirmed lock-wait verdict is taken.  Goal: no more than threshold + 1 s.
Then a step that prints one line and computes silently for three thresholds:
every verdict that is not "running" or "busy" is an alarm.  Goal: none.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from wizard.config.dbconf import Database
from wizard.execution.driver import WATCH_SECONDS
from wizard.execution.runner import launch, prepare_attempt
from wizard.lockwatch.watchdog import LockWatch, application_tag
from wizard.session.state import StepRecord

from ..helpers.pg import start_postgres, stop_postgres

# The step prints the moment of its last line (CLOCK_MONOTONIC is one clock for every process).
LOCKED_STEP = """
import os, subprocess, time
print(f"last line at {time.monotonic()!r}", flush=True)
subprocess.run(["psql", "-X", "-q", "-c", "ALTER TABLE labels ADD COLUMN c%d int"], check=True)
"""
BUSY_STEP = """
import time
print(f"last line at {time.monotonic()!r}", flush=True)
end = time.monotonic() + %f
while time.monotonic() < end:
    pass
"""


def start_step(work: Path, name: str, code: str, env: dict[str, str]) -> StepRecord:
    record = StepRecord(id=name, title=name, argv=[sys.executable, "-c", code], can_hang_on_lock=True,
                        env={"PGAPPNAME": application_tag(name), **env})  # fmt: skip
    prepare_attempt(record, work, 1)
    launch(record, app_user=None)
    return record


def last_line_at(record: StepRecord) -> float | None:
    text = Path(record.log).read_text() if Path(record.log).exists() else ""
    marks = [line.rsplit(" ", 1)[-1] for line in text.splitlines() if line.startswith("last line at")]
    return float(marks[-1]) if marks else None


def verdict_latency(pg, database: Database, threshold: float, run: int, work: Path) -> float:
    holder = subprocess.Popen(
        ["psql", "-X", "-q"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=pg.env()
    )
    holder.stdin.write("BEGIN;\nSELECT count(*) FROM labels;\n")
    holder.stdin.flush()
    try:
        record = start_step(work, f"alter{threshold:g}-{run}", LOCKED_STEP % run, pg.env())
        watch = LockWatch(record, threshold, database)
        deadline = time.monotonic() + threshold + 30
        while time.monotonic() < deadline:
            verdict = watch.observe()
            if verdict.kind == "lock_wait" and verdict.confirmed:
                seen = time.monotonic()
                started = last_line_at(record)
                if started is None:
                    raise RuntimeError("the step's last line was not in its log")
                return seen - started
            time.sleep(WATCH_SECONDS)
        raise RuntimeError(f"no lock-wait verdict within {threshold + 30:.0f} s")
    finally:
        holder.kill()
        holder.wait()


def busy_alarms(database: Database, threshold: float, work: Path) -> tuple[int, int]:
    record = start_step(work, f"busy{threshold:g}", BUSY_STEP % (3 * threshold), {})
    watch = LockWatch(record, threshold, database)
    alarms = looks = 0
    end = time.monotonic() + 3 * threshold
    while time.monotonic() < end:
        looks += 1
        alarms += watch.observe().kind not in ("running", "busy")
        time.sleep(WATCH_SECONDS)
    return alarms, looks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[2.0, 5.0])
    args = parser.parse_args()
    pg = start_postgres()
    if pg is None:
        sys.exit("PostgreSQL is not installed (Debian's postgresql package)")
    table = Table(title=f"lock watch on PostgreSQL, looked at every {WATCH_SECONDS} s")
    for column in (
        "threshold",
        "runs",
        "median to verdict",
        "max",
        "median over threshold",
        "busy step: alarms / looks",
    ):
        table.add_column(column, justify="right")
    try:
        pg.sql("CREATE TABLE labels (id serial PRIMARY KEY, title text); INSERT INTO labels (title) VALUES ('x')")
        database = Database("postgresql", pg.dbname, pg.host, pg.port, pg.user, pg.password)
        with tempfile.TemporaryDirectory() as folder:
            for threshold in args.thresholds:
                latencies = [verdict_latency(pg, database, threshold, run, Path(folder)) for run in range(args.runs)]
                alarms, looks = busy_alarms(database, threshold, Path(folder))
                median = statistics.median(latencies)
                table.add_row(f"{threshold:g} s", str(args.runs), f"{median:.2f} s", f"{max(latencies):.2f} s",
                              f"{median - threshold:+.2f} s", f"{alarms} / {looks}")  # fmt: skip
    finally:
        stop_postgres(pg)
    Console().print(table)


if __name__ == "__main__":
    main()
