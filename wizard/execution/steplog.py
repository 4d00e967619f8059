"""One attempt's log, as the step wrapper writes it: appended, never through a link, capped.

Each attempt's output is capped (``LOG_CAP`` by default): the first bytes go
to the log as they come; past them, only the last eighth of the cap is kept,
in memory, and written at the end after a line saying how much was left out.
Lines stay whole.  While output is held back a short line says so every
``CAP_NOTICE_SECONDS``, so the log still grows while the step talks (the lock
watch reads silence as a possible lock wait).
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

LOG_CAP = 64 * 1024 * 1024  # bytes of one attempt's output in the log: 7/8 from its start, 1/8 from its end
LINE_MAX = 1024 * 1024  # an unfinished line is passed on in pieces past this, and cut past the cap by as much
CAP_NOTICE_SECONDS = 10.0
NO_FOLLOW = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # O_NONBLOCK: a FIFO planted in our place never blocks us


def open_regular(path: Path, flags: int, mode: int = 0o600) -> int:
    """Open without following a symlink at ``path``, and only a regular file (not a FIFO or a device)."""
    fd = os.open(path, flags | NO_FOLLOW, mode)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


class LogFile:
    """The log, appended to with plain writes (nothing buffered that could land after the exit line)."""

    def __init__(self, path: Path):
        # O_NOFOLLOW: a symlink planted at the log's path is refused, not written through.
        self.fd = open_regular(path, os.O_RDWR | os.O_CREAT | os.O_APPEND)
        size = os.fstat(self.fd).st_size
        self.at_line_start = size == 0 or os.pread(self.fd, 1, size - 1) == b"\n"

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            if written:
                self.at_line_start = view[written - 1] == ord("\n")
            view = view[written:]

    def line(self, data: bytes) -> None:
        """A line of its own, even after output that ended without a newline."""
        self.write(data if self.at_line_start else b"\n" + data)

    def close(self) -> None:
        os.close(self.fd)


class CappedLog:
    """One attempt's output into the log: its first bytes as they come, then only its last ones, at the end.

    Output goes straight to the log until ``head`` bytes are written and the
    line under way is complete.  From then on it is kept in memory, the oldest
    whole lines dropped to stay within ``tail`` bytes; ``finish`` writes a line
    saying what was left out, then what was kept.  A line longer than all of
    the tail is left out whole.
    """

    def __init__(
        self, log: LogFile, cap: int, note: Callable[[str], object], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.log, self.cap, self.note, self.clock = log, cap, note, clock
        self.tail = max(cap // 8, 1)
        self.head_left = cap - self.tail
        self.holding = False
        self.ring = bytearray()
        self.left_lines = self.left_bytes = 0
        self.dropping_line = False  # the line under way is longer than the tail: it goes, up to its newline
        self.held_since_notice = 0
        self.last_notice = clock()

    def write(self, data: bytes) -> None:
        while data and not self.holding:
            if self.head_left > 0:
                # Up to the head; the line that crosses it is finished.
                take = (
                    len(data)
                    if len(data) <= self.head_left
                    else (data.find(b"\n", self.head_left - 1) + 1 or len(data))
                )
            elif self.log.at_line_start:
                self.holding = True
                break
            elif self.head_left <= -LINE_MAX:
                self.log.write(b"\n")  # one endless line: cut, rather than no cap at all
                self.holding = True
                break
            else:
                take = data.find(b"\n") + 1 or len(data)
            part, data = data[:take], data[take:]
            self.log.write(part)
            self.head_left -= len(part)
            if self.head_left <= 0 and self.log.at_line_start:
                self.holding = True
        if data:
            self._hold(data)

    def _hold(self, data: bytes) -> None:
        self.held_since_notice += len(data)
        if self.dropping_line:
            end = data.find(b"\n")
            if end == -1:
                self.left_bytes += len(data)
                return
            self.left_bytes += end + 1
            self.left_lines += 1
            self.dropping_line = False
            data = data[end + 1 :]
        self.ring += data
        if len(self.ring) > 2 * self.tail:
            self._trim()

    def _trim(self) -> None:
        """Drop the oldest lines so that at most ``tail`` bytes stay, starting at a line's start."""
        excess = len(self.ring) - self.tail
        if excess <= 0:
            return
        end = self.ring.find(b"\n", excess - 1)
        cut = end + 1 if end != -1 else len(self.ring)
        self.left_lines += self.ring.count(b"\n", 0, cut)
        self.left_bytes += cut
        if end == -1:
            self.dropping_line = True  # its rest is dropped as it comes
        del self.ring[:cut]

    def tick(self) -> None:
        """While output is held back, say so now and then: the log keeps growing while the step talks."""
        if self.holding and self.held_since_notice and self.clock() - self.last_notice >= CAP_NOTICE_SECONDS:
            self.last_notice, self.held_since_notice = self.clock(), 0
            self.note(
                f"output goes on, held back: the log is capped at {self.cap} bytes per attempt (its last {self.tail} come at the end)"
            )

    def finish(self) -> None:
        if not self.holding:
            return
        self._trim()
        if self.dropping_line:
            self.left_lines, self.dropping_line = self.left_lines + 1, False
        if self.left_bytes:
            self.note(
                f"{self.left_lines} lines ({self.left_bytes} bytes) of output left out here: the log is capped at"
                f" {self.cap} bytes per attempt, the first {self.cap - self.tail} and the last {self.tail} kept"
            )
        if self.ring:
            self.log.write(bytes(self.ring) if self.ring.endswith(b"\n") else bytes(self.ring) + b"\n")
            self.ring.clear()
