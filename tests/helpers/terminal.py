"""A real terminal for the real program: a tmux session on a private server, driven like a person at a keyboard."""

from __future__ import annotations

import os
import re
import subprocess
import time

BOX = re.compile("[\u2500-\u257f\u2580-\u259f]")


class Terminal:
    """One tmux session on a private tmux server, driven like a person at a keyboard."""

    def __init__(self, socket: str, name: str):
        self.socket, self.name = socket, name

    def tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10)
        return done.stdout

    def start(self, argv: list[str], width: int = 80, height: int = 24) -> None:
        # tmux runs the command's arguments directly (no shell) when given more than one; the pane
        # stays after the program ends, so a failure shows its last screen instead of nothing.
        self.tmux("new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height), *argv,
                  ";", "set-option", "-t", self.name, "remain-on-exit", "on")  # fmt: skip

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.name)

    def scrollback(self, lines: int = 200) -> str:
        """The screen and up to ``lines`` lines that scrolled off above it."""
        return self.tmux("capture-pane", "-p", "-S", f"-{lines}", "-t", self.name)

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.tmux("send-keys", "-t", self.name, key)
            time.sleep(0.15)

    def text(self) -> str:
        """The screen as a person reads it: across line wraps, without the panels' box lines."""
        return " ".join(BOX.sub(" ", self.screen()).split())

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.text()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared; the screen shows:\n{self.screen()}")

    def holders(self) -> str:
        """Why the pane is not dead yet, for a failure message: whether its program still runs (and its threads),
        and every process that still has the pane's terminal open (tmux marks the pane dead only when none has)."""
        import psutil

        pid_text, tty = self.tmux("display-message", "-p", "-t", self.name, "#{pane_pid} #{pane_tty}").split()
        said = []
        try:
            program = psutil.Process(int(pid_text))
            threads = [thread.id for thread in program.threads()]
            said.append(f"the program (pid {program.pid}) is {program.status()}, with {len(threads)} threads")
        except psutil.Error:
            said.append(f"the program (pid {pid_text}) has ended")
        for proc in psutil.process_iter(["pid", "cmdline"]):
            try:
                if any(getattr(f, "path", "") == tty for f in proc.open_files()) or any(
                    os.path.realpath(f"/proc/{proc.pid}/fd/{fd}") == tty for fd in (0, 1, 2)
                ):
                    said.append(f"pid {proc.pid} has {tty} open: {' '.join(proc.info['cmdline'] or [])[:200]}")
            except (psutil.Error, OSError):
                continue
        return "\n".join(said)

    def hang_up(self) -> None:
        """What a dropped SSH link does: the terminal goes, its processes get SIGHUP."""
        self.tmux("kill-session", "-t", self.name)

    def leave(self) -> None:
        self.tmux("kill-session", "-t", self.name)
