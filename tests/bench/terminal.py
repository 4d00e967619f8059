"""A program on a pseudo-terminal of a fixed size, read as a person would see it.

The benchmarks time what reaches the screen, not what a program says it did:
everything the program writes is fed to a terminal emulator (pyte), and a wait
ends at the first read after which the awaited text is on the screen.  A
reader thread drains the terminal all the time, so the program never blocks
on a full pty buffer (that would slow it down and distort every measure).
"""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import struct
import subprocess
import termios
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyte


class WaitTimeout(RuntimeError):
    """A wait gave up: it says what it waited for and what the screen showed instead."""


@dataclass
class _Expectation:
    text: str
    seen: threading.Event = field(default_factory=threading.Event)
    at: float = 0.0


class Terminal:
    """One program on a pty of ``columns`` x ``rows``, its screen kept by pyte."""

    def __init__(self, argv: list[str], *, cwd: Path, env: dict[str, str], columns: int = 80, rows: int = 24):
        self.columns, self.rows = columns, rows
        self.screen = pyte.Screen(columns, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.lock = threading.Lock()
        self.expectations: list[_Expectation] = []
        self.bytes_read = 0
        self.closed = threading.Event()
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        full_env = {**env, "TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": str(rows)}
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            argv, cwd=cwd, env=full_env, stdin=slave, stdout=slave, stderr=slave,
            start_new_session=True, close_fds=True,
        )  # fmt: skip
        os.close(slave)  # the program runs in a session of its own, with the pty as its only terminal
        self.master = master
        self.reader = threading.Thread(target=self._drain, name="pty-reader", daemon=True)
        self.reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    # -- reading -------------------------------------------------------------------

    def _drain(self) -> None:
        """Feed everything the program writes to the emulator; note when awaited texts appear."""
        while True:
            try:
                data = os.read(self.master, 1 << 16)
            except OSError:  # EIO: the program and every holder of the pty's other side are gone
                break
            if not data:
                break
            moment = time.monotonic()
            with self.lock:
                self.bytes_read += len(data)
                self.stream.feed(data)
                pending = [e for e in self.expectations if not e.seen.is_set()]
                if pending:
                    shown = self._text_locked()
                    for expectation in pending:
                        if expectation.text in shown:
                            expectation.at = moment
                            expectation.seen.set()
        self.closed.set()

    def _text_locked(self) -> str:
        return "\n".join(self.screen.display)

    def text(self) -> str:
        """The screen as it stands, one line per row."""
        with self.lock:
            return self._text_locked()

    def wait_for(self, text: str, timeout: float, what: str = "") -> float:
        """The moment (time.monotonic) ``text`` was first on the screen; gives up loudly after ``timeout`` s."""
        return self.wait_for_any([text], timeout, what)[1]

    def wait_for_any(self, texts: list[str], timeout: float, what: str = "") -> tuple[str, float]:
        """The first of ``texts`` to be on the screen, and the moment it was first there."""
        expectations = [_Expectation(text) for text in texts]
        with self.lock:
            shown = self._text_locked()
            for expectation in expectations:
                if expectation.text in shown:
                    return expectation.text, time.monotonic()
            self.expectations.extend(expectations)
        deadline = time.monotonic() + timeout
        while True:
            seen = [e for e in expectations if e.seen.is_set()]
            if seen:
                first = min(seen, key=lambda e: e.at)
                return first.text, first.at
            ended = self.closed.is_set()
            if time.monotonic() > deadline or ended:
                gone = f" (the program ended with {self.process.poll()})" if self.process.poll() is not None else ""
                raise WaitTimeout(
                    f"waited {timeout:.0f} s for {what or 'the text'} {' or '.join(map(repr, texts))} on the screen"
                    f"{gone}; the screen shows:\n{self.text()}"
                )
            time.sleep(0.005)

    # -- acting ---------------------------------------------------------------------

    def press(self, keys: bytes) -> None:
        """Type ``keys`` as a person at the keyboard (b"\\r" is Enter)."""
        os.write(self.master, keys)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the program itself (not its process group): a step it started goes on, as it should."""
        if self.process.poll() is None:
            try:
                os.kill(self.process.pid, sig)
            except ProcessLookupError:
                pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def close(self) -> None:
        """Kill the program if it still runs and let go of the pty."""
        self.kill()
        try:
            os.close(self.master)
        except OSError:
            pass
        self.reader.join(5)
