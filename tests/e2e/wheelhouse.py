"""Wheelhouses for the end-to-end tests: built once from the package index, then reused.

A wheelhouse is a folder of wheels (sdists built into wheels, so an install
from it needs no index and no build tools).  It lives in a cache folder named
by what it holds: the requirement sets, the interpreter's version and the
machine, so a changed pin builds a new one and an unchanged one is reused.
`python -m tests.e2e.wheelhouse` builds every wheelhouse the tests use (CI does
this as a phase of its own, so its duration is printed apart).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

# The interpreter the app's Unix user can run (a venv under /root would not be readable).
APP_PYTHON = "/usr/bin/python3"
CACHE_ROOT = Path(os.environ.get("UPGRADE_WIZARD_TEST_CACHE", "/var/cache/upgrade-wizard-tests"))


def interpreter_tag(python: str = APP_PYTHON) -> str:
    out = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return out.stdout.strip()


def folder_for(name: str, requirement_sets: list[list[str]], python: str = APP_PYTHON) -> Path:
    key = json.dumps(
        [
            requirement_sets,
            interpreter_tag(python),
            platform.machine(),
            platform.freedesktop_os_release().get("VERSION_ID", ""),
        ]
    )
    return CACHE_ROOT / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def _builder(python: str) -> Path:
    """A venv of the app's interpreter with a current pip, to build the wheels with."""
    venv = CACHE_ROOT / f"builder-py{interpreter_tag(python)}"
    with open(CACHE_ROOT / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / "READY").exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([python, "-m", "venv", str(venv)], check=True)
            subprocess.run(
                [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-U", "pip", "wheel"], check=True
            )
            (venv / "READY").touch()
    return venv


def wheelhouse(name: str, requirement_sets: list[list[str]], python: str = APP_PYTHON) -> Path:
    """The folder of wheels for these requirement sets (each resolved on its own), built when missing.

    Each set is one `pip wheel` run: two versions of one package cannot be in one
    resolution, but their wheels can share a folder.
    """
    folder = folder_for(name, requirement_sets, python)
    if (folder / "COMPLETE").exists():
        return folder
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with open(CACHE_ROOT / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test process may be building the same one
        if (folder / "COMPLETE").exists():
            return folder
        building = folder.with_name(folder.name + ".partial")
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir()
        pip = [str(_builder(python) / "bin" / "python"), "-m", "pip"]
        for requirements in requirement_sets:
            started = time.monotonic()
            # The machine's own pip config (extra local indexes) only adds noise here: the real index decides.
            env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
            subprocess.run([*pip, "wheel", "-q", "-w", str(building), *requirements], check=True, env=env)
            print(f"wheelhouse {name}: {' '.join(requirements)} in {time.monotonic() - started:.0f} s", file=sys.stderr)
        (building / "COMPLETE").write_text(json.dumps(requirement_sets) + "\n")
        building.rename(folder)
    return folder


def pip_env(folder: Path) -> dict[str, str]:
    """An environment under which pip installs only from this wheelhouse (no index, no machine-wide config)."""
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(folder), "PIP_CONFIG_FILE": os.devnull,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1"}  # fmt: skip


def all_wheelhouses() -> dict[str, Path]:
    """Every wheelhouse the end-to-end tests use (each site module names its own)."""
    from . import sites

    return {name: wheelhouse(name, sets) for name, sets in sites.WHEELHOUSES.items()}


if __name__ == "__main__":
    for name, path in all_wheelhouses().items():
        print(f"{name}: {path}")
