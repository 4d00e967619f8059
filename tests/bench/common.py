"""What the measures share: sites to run the wizard on, how to start it, waits, rows of the table.

A site is a throwaway instance over a small real venv (the metadata of a
pretend ``indico-demo 1.0``, target pinned to 2.0) whose recipe is a site
recipe written for one measure: its steps are the programs of programs.py.
No project code is imported; the wizard is always the real program, started
as ``python -m wizard`` from the checkout chosen with --tree.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import sysconfig
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from . import project
from .stallprobe import LAUNCHER
from .terminal import Terminal, WaitTimeout

BENCH_DIR = Path(__file__).resolve().parent
PROGRAMS = BENCH_DIR / "programs.py"
BARE_APP = BENCH_DIR / "bare_app.py"
PYTHON = sys.executable


def phase(text: str) -> None:
    """Say what the bench is doing now: a run of minutes must show where it is."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


@dataclass
class Row:
    """One line of the table: a measure, its anchor from the same run, and its target."""

    id: str
    measure: str
    unit: str
    values: list[float] = field(default_factory=list)
    anchors: list[float] = field(default_factory=list)
    target: str = ""
    #: (value, anchor) -> met?; None when the target cannot be judged
    judge: Callable[[float, float], bool] | None = None
    note: str = ""
    loads: list[str] = field(default_factory=list)
    #: why this measure has no figure (a wait gave up), empty when it has one
    failure: str = ""

    @property
    def value(self) -> float:
        return median(self.values)

    @property
    def anchor(self) -> float:
        return median(self.anchors)

    @property
    def ratio(self) -> float | None:
        if not self.anchors or not self.values or self.anchor <= 0:
            return None
        return self.value / self.anchor

    @property
    def met(self) -> bool | None:
        if self.judge is None or not self.values:
            return None
        return self.judge(self.value, self.anchor)

    def as_dict(self) -> dict:
        return {"id": self.id, "measure": self.measure, "unit": self.unit, "values": self.values,
                "anchors": self.anchors, "value": self.value, "anchor": self.anchor, "ratio": self.ratio,
                "target": self.target, "met": self.met, "note": self.note, "loads": self.loads,
                "failure": self.failure}  # fmt: skip


# -- sites ------------------------------------------------------------------------------


def toml_str(value: object) -> str:
    return json.dumps(str(value))


def make_venv(root: Path) -> Path:
    """A venv without pip that holds the metadata of indico-demo 1.0: what detection reads."""
    venv = root / "venv"
    if venv.exists():
        return venv
    subprocess.run([PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)})
    info = Path(purelib) / "indico_demo-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: indico-demo\nVersion: 1.0\n")
    (info / "INSTALLER").write_text("bench\n")
    (info / "RECORD").write_text("")
    return venv


@dataclass
class Step:
    """A recipe step running one of the bench programs."""

    id: str
    args: list[str]
    can_hang_on_lock: bool = False

    def toml(self) -> str:
        argv = ", ".join(toml_str(part) for part in [PYTHON, str(PROGRAMS), *self.args])
        lines = ["[[steps]]", f"id = {toml_str(self.id)}", f"title = {toml_str('Bench ' + self.id)}",
                 f"argv = [{argv}]", "safe_to_rerun = true"]  # fmt: skip
        if self.can_hang_on_lock:
            lines.append("can_hang_on_lock = true")
        return "\n".join(lines) + "\n"


@dataclass
class Site:
    """One instance of a site recipe, its state folder, and the checkout whose wizard runs on it."""

    root: Path
    tree: Path
    name: str = "site"

    @property
    def config(self) -> Path:
        return self.root / "instances.toml"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def backup(self) -> Path:
        return self.root / "backup"

    def args(self, *command: str) -> list[str]:
        return ["--config", str(self.config), "--state-dir", str(self.state), *command]

    def argv(self, *command: str) -> list[str]:
        """`python -m wizard --config ... --state-dir ... COMMAND`."""
        return project.cli_argv(*self.args(*command))

    def probed_argv(self, probe_out: Path, *command: str) -> list[str]:
        """The same command line, with the event-loop probe put in before the wizard starts."""
        return [PYTHON, "-c", LAUNCHER, str(probe_out), str(BENCH_DIR), "module", project.CLI_MODULE,
                *self.args(*command)]  # fmt: skip

    def env(self) -> dict[str, str]:
        return project.cli_env(self.tree)

    def tui(self, *, probe_out: Path | None = None, size: tuple[int, int] = (80, 24)) -> Terminal:
        """The interactive wizard on a pty: `tui site`."""
        argv = self.probed_argv(probe_out, "tui", self.name) if probe_out else self.argv("tui", self.name)
        return Terminal(argv, cwd=self.tree, env=self.env(), columns=size[0], rows=size[1])

    def headless(self, out: Path) -> subprocess.Popen:
        """`run --yes --backup-done DIR`, its output into ``out`` (a file, as a cron job or `| tee` would)."""
        with open(out, "wb") as sink:
            return subprocess.Popen(
                self.argv("run", self.name, "--yes", "--backup-done", str(self.backup)),
                cwd=self.tree, env=self.env(), stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def step_log(self, step_id: str) -> Path:
        logs = project.state_logs(self.state, self.name, step_id)
        if not logs:
            raise RuntimeError(f"no log of the step {step_id!r} under {self.state / self.name / 'runs'}")
        return logs[-1]


def make_site(work: Path, label: str, steps: list[Step], tree: Path) -> Site:
    """A fresh instance folder under ``work`` with its recipe, instances file and declared backup."""
    root = work / f"{label}-{uuid.uuid4().hex[:6]}"
    root.mkdir(parents=True)
    venv = make_venv(work)
    recipe = root / "recipe.toml"
    recipe.write_text('name = "site"\ntitle = "Bench site"\npackage = "indico-demo"\nconfig_format = "python"\n\n'
                      + "".join(step.toml() for step in steps))  # fmt: skip
    site = Site(root=root, tree=tree)
    site.config.write_text(f'[instances.site]\nrecipe = {toml_str(recipe)}\nvenv = {toml_str(venv)}\ntarget = "2.0"\n')
    site.backup.mkdir()
    (site.backup / "dump.sql").write_text("-- a declared backup, for the gate\n")
    return site


# -- waiting and cleaning up ------------------------------------------------------------------


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.02) -> object:
    """Poll until ``predicate`` holds; give up loudly, naming what was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise WaitTimeout(f"waited {timeout:.0f} s for {what}")


def file_has(path: Path, text: str, tail: int = 1 << 16) -> bool:
    """Whether ``text`` is in the last ``tail`` bytes of ``path`` (cheap enough to poll a growing 50 MB file)."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(max(0, size - tail))
            return text.encode() in handle.read()
    except FileNotFoundError:
        return False


def seed_running_step(site: Site, step_id: str, ready: str, timeout: float = 60) -> None:
    """Leave a session whose step runs detached with no wizard: `run --yes` starts it, then gets kill -9.

    This is how the TUI benches reach the run screen through the command line
    alone (no keys through detection and the backup gate): the next wizard
    finds the step alive and offers to reattach.
    """
    out = site.root / "seed.out"
    wizard = site.headless(out)
    try:
        wait_until(lambda: _step_log_has(site, step_id, ready), timeout,
                   f"{ready!r} in the log of the step {step_id!r} started by `run --yes` (output: {out})")  # fmt: skip
    finally:
        wizard.send_signal(signal.SIGKILL)
        wizard.wait(10)


def reattach(terminal: Terminal, newest: str, timeout: float = 60) -> tuple[float | None, float]:
    """Bring a relaunched TUI to the running step's log: (moment of the resume screen or None, moment of ``newest``).

    Today the wizard first asks, on its resume screen, and the bench presses
    its key as soon as the choice is painted; a wizard that goes straight to
    the log is measured all the same.
    """
    seen, moment = terminal.wait_for_any([project.RESUME_TEXT, newest], timeout, "the resume screen or the step's log")
    if seen == newest:
        return None, moment
    terminal.press(project.RESUME_KEY)
    return moment, terminal.wait_for(newest, timeout, "the step's newest line in the log pane")


def _step_log_has(site: Site, step_id: str, text: str) -> bool:
    logs = project.state_logs(site.state, site.name, step_id)
    return bool(logs) and file_has(logs[-1], text)


def stop_leftovers(root: Path) -> None:
    """Kill, by pid, the processes this bench left that name its folder (detached steps and their wrappers)."""
    me = os.getpid()
    for process in psutil.process_iter(["cmdline", "pid"]):
        try:
            if process.info["pid"] != me and any(str(root) in part for part in process.info["cmdline"] or []):
                process.kill()
        except psutil.Error:
            pass


def rss(pid: int) -> int:
    return psutil.Process(pid).memory_info().rss


def nonce() -> str:
    return uuid.uuid4().hex[:10]
