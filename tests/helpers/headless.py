"""`run --yes` started over a slow step and killed in the middle, as the resume tests need it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

import psutil

from .processes import wait_for
from .sites import step_toml


def counting_steps(runs: Path, slow_seconds: float = 3.0) -> str:
    """first / slow / last: each appends its name to ``runs`` once it has done its work."""
    record = f"open({str(runs)!r}, 'a').write(%r + '\\n')"
    return (
        step_toml("first", record % "first")
        + step_toml(
            "slow",
            f"import time\nprint('begin', flush=True)\ntime.sleep({slow_seconds})\n{record % 'slow'}\nprint('end')",
            safe_to_rerun=True,
        )
        + step_toml("last", record % "last")
    )


def running_slow_step(site) -> dict:
    """Wait until the slow step runs and has printed its first line; return its record."""

    def ready():
        try:
            step = next(s for s in json.loads(site.session_file.read_text())["steps"] if s["id"] == "slow")
        except (OSError, ValueError, StopIteration):
            return None
        log = Path(step["log"]) if step["log"] else None
        if step["status"] == "running" and step["pid"] and log and log.exists() and "begin" in log.read_text():
            return step
        return None

    return wait_for(ready, what="the slow step to start")


def start_and_kill(site, sig: int) -> dict:
    wizard = site.spawn("run", "--yes", "--backup-done", str(site.root))
    step = running_slow_step(site)
    if sig == signal.SIGHUP:
        os.killpg(wizard.pid, sig)  # the terminal hangs up on the whole foreground session
    else:
        wizard.send_signal(sig)
    output, _ = wizard.communicate(timeout=10)
    if sig == signal.SIGKILL:
        assert wizard.returncode == -sig
    else:  # a hang-up or SIGTERM stops following as Ctrl-C does, and says so
        assert wizard.returncode == 128 + sig, output
        assert "the step goes on" in output and "run again to reattach" in output
    assert psutil.pid_exists(step["pid"]), "the step must outlive the wizard"
    return step


def kill_step_and_wizard(site) -> dict:
    """As a reboot would: the wizard, the wrapper and the step all die, leaving no exit status."""
    step = start_and_kill(site, signal.SIGKILL)
    wrapper = psutil.Process(step["pid"])
    children = wrapper.children(recursive=True)
    # The wrapper first: killed after its step, it could still write how the step ended (a killed step is
    # then a failed one, by signal 9), which a reboot does not leave.
    wrapper.kill()
    psutil.wait_procs([wrapper], timeout=5)
    for proc in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(children, timeout=5)
    return step
