"""Waiting on real processes and files, and stopping what a test left running."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import psutil


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_for_line(path: Path, text: str, timeout: float = 60.0) -> None:
    wait_for(lambda: path.exists() and text in path.read_text(), timeout, what=f"{text!r} in {path}")


def kill_tree_leftovers(root: Path) -> None:
    """Stop any process still running from a test's folder (demo services, step wrappers)."""
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(str(root) in part for part in proc.info["cmdline"] or []):
                proc.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass
