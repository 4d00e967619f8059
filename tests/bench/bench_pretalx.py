"""What the wizard costs on a real upgrade: pretalx 2024.3.1 -> 2025.1.0 -> 2025.2.2, plain script against `run --yes`.

Run on demand, as root (not part of the test suite):

    .venv/bin/python -m tests.bench.bench_pretalx [--runs 3]

It builds the end-to-end tests' real pretalx once (tests/e2e/pretalx_site.py:
its own Unix user, SQLite, gunicorn, the Celery worker and Redis under
supervisord, the same wheelhouse), asks the wizard for its plan in-process,
and then runs, interleaved, `--runs` times each, from the same old install:

- the script: the plan's steps as plain subprocess argv lists, one after the
  other, each as its user (runuser for the app's steps, as the wizard does),
  with the same environment the wizard gives them, output to a log file;
- the wizard: the real CLI, `python -m wizard ... run --yes`, with a state
  folder of its own (so it plans, takes its backup, and runs every step).

It prints each run, the medians and their ratio, and where the wizard's
extra time goes: start-up with detection and the plan (process start to the
session's creation), the backup gate (to the first step's start), the steps
as the wrapper timed them, the time between steps (noticing the end, saving
the session, launching the next wrapper), and the report after the last one;
then each step, script against wizard.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from wizard.config.instance import load_instances
from wizard.planning.plan import plan_for

from ..e2e.pretalx_site import APP_USER, INSTANCE, PretalxSite, missing_prerequisites, say
from ..e2e.sites import PRETALX_NEW, PRETALX_OLD


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text)


def script_run(site: PretalxSite, steps, logs: Path) -> tuple[float, dict[str, float]]:
    """The plan's commands, one after the other, as a shell script would run them."""
    logs.mkdir(mode=0o755)
    times: dict[str, float] = {}
    started = time.perf_counter()
    for step in steps:
        env = {**site.wizard_env(), **step.env}
        if env.get("VIRTUAL_ENV"):  # as the wizard's wrapper: an activated venv
            env["PATH"] = f"{env['VIRTUAL_ENV']}/bin:{env.get('PATH', os.defpath)}"
        argv = step.argv if step.run_as == "root" else ["runuser", "-u", APP_USER, "--", *step.argv]
        begun = time.perf_counter()
        with open(logs / f"{step.id}.log", "wb") as log:
            code = subprocess.run(argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  cwd=logs).returncode  # fmt: skip
        times[step.id] = time.perf_counter() - begun
        if code != 0:
            raise RuntimeError(f"script: {step.id} exited with {code}; see {logs / (step.id + '.log')}")
    return time.perf_counter() - started, times


def wizard_run(site: PretalxSite, state: Path) -> tuple[float, dict[str, float], dict[str, float]]:
    """`run --yes` as the real CLI; the total, each step as the wizard timed it, and where the rest went."""
    launched = datetime.now(UTC)
    started = time.perf_counter()
    done = subprocess.run(site.wizard_argv(state, "run", "--yes"), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env=site.wizard_env(), cwd=site.root, timeout=1800)  # fmt: skip
    total = time.perf_counter() - started
    finished = datetime.now(UTC)
    (state / "run.out").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"wizard: exit {done.returncode}; see {state / 'run.out'}")
    session = site.session(state)
    steps = session["steps"]
    times = {s["id"]: (utc(s["ended"]) - utc(s["started"])).total_seconds() for s in steps}
    first, last = utc(steps[0]["started"]), utc(steps[-1]["ended"])
    created = utc(session["created"])
    parts = {
        "start, detection, plan": (created - launched).total_seconds(),
        "backup gate": (first - created).total_seconds(),
        "steps (wrapper-timed)": sum(times.values()),
        "between steps": (last - first).total_seconds() - sum(times.values()),
        "after the last step": (finished - last).total_seconds(),
        "overhead (total - steps)": total - sum(times.values()),
    }
    return total, times, parts


def check_upgraded(site: PretalxSite) -> None:
    version = site.installed_version()
    if version != PRETALX_NEW:
        raise RuntimeError(f"after the run pretalx is {version}, not {PRETALX_NEW}")
    site.wait_serving()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    reason = missing_prerequisites()
    if reason:
        raise SystemExit(f"cannot run: {reason}")
    site = PretalxSite.create()
    try:
        instance = load_instances(site.instances)[INSTANCE]
        steps = plan_for(instance).steps
        say(f"plan: {len(steps)} steps: {', '.join(s.id for s in steps)}")
        rows, script_totals, wizard_totals = [], [], []
        script_steps: dict[str, list[float]] = {}
        wizard_steps: dict[str, list[float]] = {}
        wizard_parts: dict[str, list[float]] = {}
        for number in range(1, args.runs + 1):
            for kind in ("script", "wizard"):
                site.dirty = True
                site.reset()
                if kind == "script":
                    total, times = script_run(site, steps, site.root / f"script-{number}")
                    script_totals.append(total)
                    parts = {}
                else:
                    total, times, parts = wizard_run(site, site.root / f"state-bench-{number}")
                    wizard_totals.append(total)
                    for name, seconds in parts.items():
                        wizard_parts.setdefault(name, []).append(seconds)
                for step_id, seconds in times.items():
                    (script_steps if kind == "script" else wizard_steps).setdefault(step_id, []).append(seconds)
                check_upgraded(site)
                say(f"run {number} {kind}: {total:.1f} s  " + "  ".join(f"{k}={v:.1f}" for k, v in parts.items()))
                rows.append((number, kind, total, parts))
    finally:
        site.close()

    console = Console(width=160)
    med = statistics.median
    runs = Table(
        title=f"pretalx {PRETALX_OLD} -> 2025.1.0 -> {PRETALX_NEW}: plain script against `run --yes` (interleaved)"
    )
    part_names = list(wizard_parts)
    for column in ("run", "kind", "total", *part_names):
        runs.add_column(column, justify="left" if column in ("kind",) else "right")
    for number, kind, total, parts in rows:
        runs.add_row(
            str(number), kind, f"{total:.1f} s", *(f"{parts[n]:.1f} s" if n in parts else "" for n in part_names)
        )
    runs.add_row("median", "script", f"{med(script_totals):.1f} s", *("" for _ in part_names))
    runs.add_row(
        "median", "wizard", f"{med(wizard_totals):.1f} s", *(f"{med(wizard_parts[n]):.1f} s" for n in part_names)
    )
    runs.add_row(
        "ratio", "wizard / script", f"{med(wizard_totals) / med(script_totals):.2f}x", *("" for _ in part_names)
    )
    console.print(runs)

    per_step = Table(title="Each step, median seconds (the wizard's as its wrapper timed them)")
    for column in ("step", "script", "wizard", "wizard - script"):
        per_step.add_column(column, justify="left" if column == "step" else "right")
    for step_id in script_steps:
        s, w = med(script_steps[step_id]), med(wizard_steps.get(step_id, [float("nan")]))
        per_step.add_row(step_id, f"{s:.1f}", f"{w:.1f}", f"{w - s:+.1f}")
    console.print(per_step)


if __name__ == "__main__":
    main()
