"""Everything the benchmarks assume about the wizard, in one place.

The benchmarks drive the real program through its command line on a pty, so
they import no project code: what they rely on is the command line (a promise
to users' scripts), the state folder's layout (documented in the README) and
a few texts and keys of the screens.  Those texts and keys are here, so that
when the screens are reworded or the code is restructured, this is the one
file to fix.  When a measure one day needs project code in-process, import it
here, with a fallback for each layout the bench must still measure.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: The module `python -m` runs: the wizard's command line.
CLI_MODULE = "wizard"

#: On the detection screen (the first screen of a new upgrade), painted before detection ends.
FIRST_SCREEN_TEXT = "Looking at the installation"
#: The intro sentence the bare app shows in the same place (the detection screen's words).
FIRST_SCREEN_INTRO = (
    "Looking at the installation: its venv's Python, the database, and what pip would install "
    "there (pip resolving against a real index can take a minute)…"
)

#: On the resume screen, for a session whose step still runs; Enter takes the highlighted choice.
RESUME_TEXT = "Reattach"
RESUME_KEY = b"\r"

#: The run screen's log pane keeps this many lines (screens/run.py MAX_LOG_LINES); the bare app does the same.
LOG_PANE_LINES = 10_000

#: A step's output goes to its log as it comes up to this many bytes; past them it is held back until the
#: step ends (wizard/execution/steplog.py: 7/8 of LOG_CAP, 64 MiB).  P2's flood must fit in it, or its end
#: mark reaches the log only when the step ends, and the step waits, silent, for the bench.
LOG_LIVE_BYTES = 64 * 1024 * 1024 * 7 // 8


def state_logs(state_dir: Path, instance: str, step_id: str) -> list[Path]:
    """The log files of a step's attempts: runs/<session>/NN-<step>.log in the instance's state folder."""
    return sorted((state_dir / instance / "runs").glob(f"*/[0-9]*-{step_id}.log"))


def cli_argv(*args: str) -> list[str]:
    """The wizard's command line, as `python -m wizard ARGS` with the bench's Python (the project venv)."""
    return [sys.executable, "-m", CLI_MODULE, *args]


def cli_env(tree: Path) -> dict[str, str]:
    """The environment for a wizard from ``tree``: that checkout first on the path, whatever is installed.

    Run with the checkout as its working directory, ``python -m`` finds the
    checkout's packages before the editable install of /work/main (whose
    finder comes after the path); PYTHONPATH says the same for anything the
    wizard starts with ``sys.executable`` (the step wrapper).
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "TEXTUAL"))}
    env["PYTHONPATH"] = str(tree)
    env.pop("NO_COLOR", None)
    return env


def which_wizard(tree: Path) -> str:
    """Where `import wizard` leads from ``tree`` (printed, so a run shows which code it measured)."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", f"import {CLI_MODULE}; print({CLI_MODULE}.__file__)"],
        cwd=tree, env=cli_env(tree), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return (done.stdout or done.stderr).strip()
