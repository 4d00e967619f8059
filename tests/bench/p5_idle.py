"""P5: the wizard's own CPU while the step it follows is silent, against `tail -f`.

Four wizards follow a silent step at the same time, each on its own instance:
the TUI and `run --yes`, each with a step the recipe marks can_hang_on_lock
(so the lock watch runs: a silent, idle step is just what it looks for) and
with one it does not.  The step (programs.py quiet) prints a few lines and a
mark, then sleeps.  The TUIs reach their run screens by reattaching (see
common.seed_running_step; Enter on the resume screen); a `tail -f` on one
step's log runs beside them.  Once every wizard shows the mark and two
seconds have passed, the CPU time (user + system, all threads; not the step,
which is another process, nor the children the wizard waited for, which are
printed apart) of each is taken over --silent-seconds.

Running the four together keeps a run short; their CPU time is their own,
and together they use far less than the two cores (the table notes the load).
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from .common import (
    Row,
    Site,
    Step,
    file_has,
    load,
    make_site,
    nonce,
    phase,
    reattach,
    seed_running_step,
    stop_leftovers,
    wait_until,
)
from .terminal import Terminal, WaitTimeout

SETTLE_SECONDS = 2.0
QUIET_LINES = 20


@dataclass
class Follower:
    """One process to measure: a wizard (on a pty or headless) or tail -f."""

    label: str
    pid: int
    terminal: Terminal | None = None
    process: subprocess.Popen | None = None

    def cpu(self) -> tuple[float, float]:
        """(own seconds, seconds of the children it has waited for)."""
        times = psutil.Process(self.pid).cpu_times()
        return times.user + times.system, times.children_user + times.children_system

    def stop(self) -> None:
        if self.terminal is not None:
            self.terminal.close()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def quiet_step(work: Path, mark: str, watched: bool, seconds: float) -> Step:
    args = ["quiet", "--lines", str(QUIET_LINES), "--mark", mark, "--seconds", str(seconds), "--owner", str(work)]
    return Step("quiet", args, can_hang_on_lock=watched)


def start_tui(site: Site, mark: str, size: tuple[int, int]) -> Follower:
    seed_running_step(site, "quiet", f"QUIET {mark}")
    terminal = site.tui(size=size)
    reattach(terminal, f"QUIET {mark}")
    return Follower(f"tui {site.root.name}", terminal.pid, terminal=terminal)


def start_headless(site: Site, mark: str) -> Follower:
    out = site.root / "headless.out"
    process = site.headless(out)
    wait_until(lambda: file_has(out, f"QUIET {mark}"), 60, f"the silent step's mark in `run --yes`'s output {out}")
    return Follower(f"headless {site.root.name}", process.pid, process=process)


LABELS = ("tui-watch", "tui-plain", "headless-watch", "headless-plain")


def start_all(
    sites: dict[str, tuple[Site, str]], size: tuple[int, int], failures: dict[str, str]
) -> dict[str, Follower]:
    """Every follower that reaches its silent step; one that gives up is said and noted in ``failures``."""
    followers: dict[str, Follower] = {}
    for label, (site, mark) in sites.items():
        if label in failures:
            continue
        try:
            followers[label] = start_tui(site, mark, size) if label.startswith("tui") else start_headless(site, mark)
        except WaitTimeout as exc:
            failures[label] = str(exc).splitlines()[0]
            phase(f"  GAVE UP on {label}: {exc}")
    return followers


def one_run(
    work: Path, tree: Path, silent: float, size: tuple[int, int], failures: dict[str, str]
) -> dict[str, tuple[float, float]]:
    """CPU % of a core (own, waited-for children) for each follower over one silent window."""
    keep = silent + 600  # the step outlives the window; the bench kills it after
    sites: dict[str, tuple[Site, str]] = {}
    for label in LABELS:
        mark = nonce()
        sites[label] = (make_site(work, label, [quiet_step(work, mark, label.endswith("watch"), keep)], tree), mark)
    followers: dict[str, Follower] = {}
    try:
        followers = start_all(sites, size, failures)
        first = sites["headless-plain"][0]
        tail = subprocess.Popen(["tail", "-f", str(first.step_log("quiet"))], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        followers["tail"] = Follower("tail -f", tail.pid, process=tail)
        time.sleep(SETTLE_SECONDS)
        before = {label: follower.cpu() for label, follower in followers.items()}
        started = time.monotonic()
        phase(
            f"  {len(followers) - 1} wizards and tail -f follow a silent step; measuring for {silent:.0f} s (load {load()})"
        )
        time.sleep(silent)
        elapsed = time.monotonic() - started
        after = {label: follower.cpu() for label, follower in followers.items()}
        return {label: ((after[label][0] - before[label][0]) / elapsed * 100,
                        (after[label][1] - before[label][1]) / elapsed * 100) for label in followers}  # fmt: skip
    finally:
        for follower in followers.values():
            follower.stop()
        stop_leftovers(work)  # the steps name this folder (--owner), their wrappers their sites'


def measure(work: Path, tree: Path, runs: int, silent: float, size: tuple[int, int]) -> list[Row]:
    judge = lambda value, anchor: value <= 1.0  # noqa: E731
    rows = {
        "tui-watch": Row("P5a", f"TUI, step silent {silent:.0f} s, lock watch on", "% core", target="≤ 1 % of a core", judge=judge),
        "tui-plain": Row("P5b", f"TUI, step silent {silent:.0f} s, no lock watch", "% core", target="≤ 1 % of a core", judge=judge),
        "headless-watch": Row("P5c", f"headless, step silent {silent:.0f} s, lock watch on", "% core",
                              target="≤ 1 % of a core", judge=judge),
        "headless-plain": Row("P5d", f"headless, step silent {silent:.0f} s, no lock watch", "% core",
                              target="≤ 1 % of a core", judge=judge),
    }  # fmt: skip
    children: dict[str, list[float]] = {label: [] for label in rows}
    failures: dict[str, str] = {}
    loads = []
    for run in range(1, runs + 1):
        folder = work / f"p5-run{run}"
        folder.mkdir()
        phase(f"P5 run {run}/{runs}: starting two TUIs (reattached) and two `run --yes` on silent steps, and tail -f")
        loads.append(load())
        shares = one_run(folder, tree, silent, size, failures)
        for label in shares.keys() - {"tail"}:
            rows[label].values.append(shares[label][0])
            rows[label].anchors.append(shares["tail"][0])
            children[label].append(shares[label][1])
        phase("  " + "; ".join(f"{label} {share[0]:.2f} %" for label, share in shares.items())
              + f" (children waited for: {', '.join(f'{label} {shares[label][1]:.2f} %' for label in shares)})")  # fmt: skip
    for label, row in rows.items():
        row.loads = loads
        row.failure = failures.get(label, "")
        if any(children[label]):
            row.note = f"+ children it started and waited for: {max(children[label]):.2f} % at most"
    return list(rows.values())
