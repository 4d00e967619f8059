"""P2: a step printing a flood of lines, shown live in the TUI's log pane and printed headless.

The step (programs.py flood) says it is ready, waits for a go file, prints N
lines (51 bytes each, like pip's; --line-length pads them with pip-like words)
and an end mark, then stays alive and silent until released, so the mark stays
the newest line of a running step.  All of it must fit in the part of the log
the wizard writes as it comes (project.LOG_LIVE_BYTES): see lines_that_fit.

TUI: `run --yes` starts the step and is killed (see common.seed_running_step);
the TUI reattaches (Enter on the resume screen) and shows the step's log. With
the ready line painted, the bench creates the go file and times until the end
mark is painted: lines/s.  Meanwhile the wizard's RSS is sampled every 20 ms
(growth = highest minus the value just before the go), and an event-loop probe
inside the wizard (stallprobe.py, put in before `python -m wizard` starts)
notes every late wake-up of a 5 ms sleep: the longest inside the window is
the longest stall.  Anchor: bare_app.py flood, the same program started with
asyncio's subprocess and piped chunk by chunk into Log.write_lines, measured
the same way.

Headless: `run --yes` with its output going to a file; from the go file to the
end mark in that file.  Anchor: programs.py relay, a plain loop reading the
same step log afterwards and writing each line with a timestamp prefix through
buffered stdout, timed by itself.  The producer's own rate (go to its last
write) is printed too, since the wizard's figure cannot beat it.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import project
from .common import (
    BARE_APP,
    PROGRAMS,
    PYTHON,
    Row,
    Site,
    Step,
    file_has,
    load,
    make_site,
    nonce,
    phase,
    reattach,
    rss,
    seed_running_step,
    stop_leftovers,
    wait_until,
)  # fmt: skip
from .programs import FLOOD_LINE_LENGTH, flood_line
from .stallprobe import LAUNCHER, longest_stall
from .terminal import Terminal, WaitTimeout

MB = 1_000_000
STUCK_SECONDS = 30.0
LINE_NUMBER = re.compile(r"example_pkg-(\d{7})")
DEFAULT_LINES = 1_000_000


def line_bytes(length: int) -> int:
    """Bytes of one flood line of ``length`` characters (0: the step's own), its newline included."""
    return len(flood_line(length).format(0)) + 1


def default_lines(length: int) -> int:
    """The lines P2 floods by default: 1,000,000 of the step's own; longer lines, as many as make the same
    bytes (51 MB), in thousands, so that the log holds every one as it comes."""
    if length <= FLOOD_LINE_LENGTH:
        return DEFAULT_LINES
    return DEFAULT_LINES * line_bytes(0) // line_bytes(length) // 1000 * 1000


def lines_that_fit(length: int) -> int:
    """The most lines of this length the wizard writes to the step's log as they come (project.LOG_LIVE_BYTES,
    with room for the ready line, the end mark and the wrapper's own lines); past them the end mark would
    reach the log only when the step ends, and the bench would wait for it in vain."""
    return (project.LOG_LIVE_BYTES - 64 * 1024) // line_bytes(length)


def length_text(length: int) -> str:
    return f"{len(flood_line(length).format(0))}-character"


@dataclass
class Flood:
    """The files one flood is steered and observed by."""

    folder: Path
    lines: int
    mark: str
    length: int = 0  # characters per line; 0: the step's own (FLOOD_LINE_LENGTH)

    @property
    def go(self) -> Path:
        return self.folder / f"go-{self.mark}"

    @property
    def done(self) -> Path:
        return self.folder / f"done-{self.mark}"

    @property
    def hold(self) -> Path:
        return self.folder / f"hold-{self.mark}"

    def args(self, owner: Path) -> list[str]:
        return ["flood", "--go", str(self.go), "--lines", str(self.lines), "--mark", self.mark,
                "--done", str(self.done), "--hold", str(self.hold), "--owner", str(owner),
                "--length", str(self.length)]  # fmt: skip

    @property
    def ready_text(self) -> str:
        return f"flood ready {self.mark}"

    @property
    def end_text(self) -> str:
        return f"FLOOD-END {self.mark}"

    def producer_seconds(self, started: float) -> float:
        return float(self.done.read_text()) - started


@dataclass
class Result:
    seconds: float
    rss_growth: float  # bytes
    stall: float  # seconds
    producer: float  # seconds from go to the step's last write


class RssSampler(threading.Thread):
    """The highest RSS of one process, sampled every 20 ms until stopped."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.highest, self.halt = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                self.highest = max(self.highest, rss(self.pid))
            except Exception:
                return
            self.halt.wait(0.02)

    def stop(self) -> int:
        self.halt.set()
        self.join(5)
        return self.highest


def highest_line(text: str) -> int:
    """The highest flood line number on the screen (0 for none)."""
    return max((int(number) for number in LINE_NUMBER.findall(text)), default=0)


def wait_for_end(terminal: Terminal, flood: Flood, what: str, timeout: float) -> float:
    """The moment the end mark is painted; gives up early, saying so, when the pane stops moving on.

    A log pane that stopped repainting would otherwise keep the bench waiting
    for the whole timeout: when the highest line number on the screen has not
    grown for STUCK_SECONDS, that is the answer.
    """
    deadline = time.monotonic() + timeout
    highest, since = 0, time.monotonic()
    while True:
        try:
            return terminal.wait_for(flood.end_text, 2.0, f"the end mark in {what}'s log pane")
        except WaitTimeout:
            now, shown = time.monotonic(), highest_line(terminal.text())
            if shown > highest:
                highest, since = shown, now
            if now - since > STUCK_SECONDS or now > deadline:
                why = f"showed no line after {highest:,} for {now - since:.0f} s" if now <= deadline else "is too slow"
                raise WaitTimeout(
                    f"waited {now - deadline + timeout:.0f} s for the end mark {flood.end_text!r} in {what}'s log pane, "
                    f"which {why} (the step {'had' if flood.done.exists() else 'had not'} written all {flood.lines:,} lines); "
                    f"the screen shows:\n{terminal.text()}"
                ) from None


def flood_on_screen(terminal: Terminal, flood: Flood, probe: Path, what: str, timeout: float) -> Result:
    """With the ready line painted: go, and time until the end mark is painted; RSS and stalls meanwhile."""
    terminal.wait_for(flood.ready_text, 60, f"the ready line in {what}'s log pane")
    time.sleep(1.0)  # let the first paint settle: the baseline is the app at rest, showing the step
    baseline = rss(terminal.pid)
    sampler = RssSampler(terminal.pid)
    sampler.start()
    started = time.monotonic()
    flood.go.touch()
    seen = wait_for_end(terminal, flood, what, timeout)
    time.sleep(1.0)  # growth may land just after the last paint
    highest = sampler.stop()
    flood.hold.touch()
    return Result(seen - started, highest - baseline, longest_stall(str(probe), started, seen + 0.5),
                  flood.producer_seconds(started))  # fmt: skip


def wizard_tui(work: Path, tree: Path, lines: int, size: tuple[int, int], timeout: float, length: int) -> Result:
    flood = Flood(work, lines, nonce(), length)
    site = make_site(work, "p2-tui", [Step("flood", flood.args(work))], tree)
    try:
        seed_running_step(site, "flood", flood.ready_text)
        probe = site.root / "probe.txt"
        terminal = site.tui(probe_out=probe, size=size)
        try:
            reattach(terminal, flood.ready_text)
            return flood_on_screen(terminal, flood, probe, "the wizard", timeout)
        finally:
            terminal.close()
    finally:
        stop_leftovers(work)  # the step names the run's folder (--owner), its wrapper the site's


def bare_tui(work: Path, tree: Path, lines: int, size: tuple[int, int], timeout: float, length: int) -> Result:
    flood = Flood(work, lines, nonce(), length)
    probe = work / f"probe-bare-{flood.mark}.txt"
    step = [PYTHON, str(PROGRAMS), *flood.args(work)]
    argv = [PYTHON, "-c", LAUNCHER, str(probe), str(BARE_APP.parent), "path", str(BARE_APP), "flood", *step]
    terminal = Terminal(argv, cwd=tree, env=project.cli_env(tree), columns=size[0], rows=size[1])
    try:
        return flood_on_screen(terminal, flood, probe, "the bare app", timeout)
    finally:
        terminal.close()
        flood.hold.touch()


def wizard_headless(work: Path, tree: Path, lines: int, timeout: float, length: int) -> tuple[float, float, Site]:
    """Seconds from go to the end mark in `run --yes`'s output, and the producer's seconds."""
    flood = Flood(work, lines, nonce(), length)
    site = make_site(work, "p2-headless", [Step("flood", flood.args(work))], tree)
    out = site.root / "headless.out"
    wizard = site.headless(out)
    try:
        wait_until(lambda: file_has(out, flood.ready_text), 60, f"{flood.ready_text!r} in `run --yes`'s output {out}")
        started = time.monotonic()
        flood.go.touch()
        wait_until(lambda: file_has(out, flood.end_text, tail=4096), timeout,
                   f"{flood.end_text!r} in `run --yes`'s output {out}", interval=0.01)  # fmt: skip
        seconds = time.monotonic() - started
        producer = flood.producer_seconds(started)
        flood.hold.touch()
        wizard.wait(60)
        return seconds, producer, site
    finally:
        if wizard.poll() is None:
            wizard.kill()
            wizard.wait(10)
        stop_leftovers(work)  # the step names the run's folder (--owner), its wrapper the site's


def relay_rate(log: Path, folder: Path) -> tuple[float, int]:
    """The plain loop over the same log: (lines/s, lines)."""
    with open(folder / "relay.out", "wb") as sink:
        done = subprocess.run([PYTHON, str(PROGRAMS), "relay", str(log), "flood"], stdout=sink,
                              stderr=subprocess.PIPE, text=True, timeout=600, check=True)  # fmt: skip
    said = json.loads(done.stderr.strip().splitlines()[-1])
    return said["lines"] / said["seconds"], said["lines"]


def rows(lines: int, length: int = 0) -> dict[str, Row]:
    ratio_at_least = lambda value, anchor: value >= 0.8 * anchor  # noqa: E731
    long = f" {length_text(length)}" if length > FLOOD_LINE_LENGTH else ""
    return {
        "rate": Row("P2a", f"TUI: {lines:,}{long} lines into the log pane", "lines/s", target="≥ 0.8x the bare app",
                    judge=ratio_at_least),
        "rss": Row("P2b", "TUI: the wizard's RSS growth during that flood", "MB", target="≤ 30 MB",
                   judge=lambda value, anchor: value <= 30),
        "stall": Row("P2c", "TUI: the longest event-loop stall during that flood", "ms", target="≤ 50 ms",
                     judge=lambda value, anchor: value <= 50),
        "headless": Row("P2d", f"headless: {lines:,}{long} lines printed by run --yes", "lines/s",
                        target="≥ 0.8x a plain loop", judge=ratio_at_least),
    }  # fmt: skip


def tui_run(table: dict[str, Row], folder: Path, tree: Path, lines: int, size: tuple[int, int], timeout: float,
            length: int) -> None:  # fmt: skip
    """One run of P2a-c: the bare app, then the reattached wizard."""
    phase(f"  the bare app's log pane (load {load()})")
    bare = bare_tui(folder, tree, lines, size, timeout, length)
    phase("  the wizard's log pane, reattached")
    wizard = wizard_tui(folder, tree, lines, size, timeout, length)
    table["rate"].values.append(lines / wizard.seconds)
    table["rate"].anchors.append(lines / bare.seconds)
    table["rss"].values.append(wizard.rss_growth / MB)
    table["rss"].anchors.append(bare.rss_growth / MB)
    table["stall"].values.append(wizard.stall * 1000)
    table["stall"].anchors.append(bare.stall * 1000)
    phase(f"  wizard {lines / wizard.seconds:,.0f} lines/s (+{wizard.rss_growth / MB:.1f} MB, stall "
          f"{wizard.stall * 1000:.0f} ms); bare {lines / bare.seconds:,.0f} lines/s (+{bare.rss_growth / MB:.1f} MB, "
          f"stall {bare.stall * 1000:.0f} ms); the step itself: {lines / wizard.producer:,.0f} and "
          f"{lines / bare.producer:,.0f} lines/s")  # fmt: skip


def headless_run(row: Row, folder: Path, tree: Path, lines: int, timeout: float, length: int) -> float:
    """One run of P2d: `run --yes`, then the plain loop over the log it followed; the step's own rate."""
    phase("  headless `run --yes`, then the plain loop over its log")
    seconds, producer, site = wizard_headless(folder, tree, lines, timeout, length)
    anchor, relayed = relay_rate(site.step_log("flood"), folder)
    row.values.append(lines / seconds)
    row.anchors.append(anchor)
    phase(f"  run --yes {lines / seconds:,.0f} lines/s (the step itself {lines / producer:,.0f}); "
          f"plain loop {anchor:,.0f} lines/s over {relayed:,} lines")  # fmt: skip
    return lines / producer


def measure(work: Path, tree: Path, runs: int, lines: int, size: tuple[int, int], length: int = 0) -> list[Row]:
    """P2a-d over ``runs``, lines of ``length`` characters (0: the step's own); a part that gives up is
    reported on its rows and not tried again, the other goes on."""
    if lines > lines_that_fit(length):
        raise ValueError(f"{lines:,} lines of {line_bytes(length)} bytes do not fit in the part of the step's log "
                         f"the wizard writes as they come ({project.LOG_LIVE_BYTES:,} bytes): at most "
                         f"{lines_that_fit(length):,}")  # fmt: skip
    table = rows(lines, length)
    timeout = max(120.0, lines / 2_000)  # 2,000 lines/s would be very slow indeed
    producers: list[str] = []
    loads: list[str] = []
    for run in range(1, runs + 1):
        folder = work / f"p2-run{run}"
        folder.mkdir()
        loads.append(load())
        phase(f"P2 run {run}/{runs} (load {loads[-1]})")
        if not table["rate"].failure:
            try:
                tui_run(table, folder, tree, lines, size, timeout, length)
            except WaitTimeout as exc:
                give_up([table["rate"], table["rss"], table["stall"]], exc)
        if not table["headless"].failure:
            try:
                producers.append(f"{headless_run(table['headless'], folder, tree, lines, timeout, length):,.0f}")
            except WaitTimeout as exc:
                give_up([table["headless"]], exc)
    for row in table.values():
        row.loads = loads
    if producers:
        table["headless"].note = f"the step alone wrote {', '.join(producers)} lines/s"
    return list(table.values())


def give_up(rows: list[Row], error: Exception) -> None:
    """Say loudly why these rows have no figure, and keep it for the table."""
    first = str(error).splitlines()[0]
    phase(f"  GAVE UP: {error}")
    for row in rows:
        row.failure = first
