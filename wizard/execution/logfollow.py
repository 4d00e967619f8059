"""Reading a step's log as it grows: whole lines, cleaned for a terminal."""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Iterator
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[@-Z\\-_]")


def clean_line(line: str) -> str:
    """Strip colour codes and keep what a terminal would show after carriage returns."""
    line = ANSI.sub("", line.rstrip("\r"))
    if "\r" in line:
        line = line.rsplit("\r", 1)[-1]
    return line


class LogFollower:
    """Hands out the new complete lines of a log file each time it is asked."""

    def __init__(self, path: Path | str, offset: int = 0):
        self.path = Path(path)
        self.offset = offset
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    @classmethod
    def from_tail(cls, path: Path | str, lines: int, since: int = 0) -> tuple[LogFollower, list[str]]:
        """A follower placed at the end of the file, and the last few lines before it (none before ``since``)."""
        path = Path(path)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return cls(path, since), []
        start = max(size - 64 * 1024, since, 0)
        with open(path, "rb") as handle:
            handle.seek(start)
            data = handle.read(size - start)
        head, _, _ = data.rpartition(b"\n")
        text = head.decode("utf-8", errors="replace")
        tail = [clean_line(line) for line in text.split("\n")[-lines:]] if text else []
        return cls(path, start + len(head) + (1 if head else 0)), tail

    def read(self, limit: int = 1 << 20) -> list[str]:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return []
        try:
            data = os.pread(fd, limit, self.offset)
        finally:
            os.close(fd)
        if not data:
            return []
        self.offset += len(data)
        text = self._pending + self._decoder.decode(data)
        lines = text.split("\n")
        self._pending = lines.pop()
        return [clean_line(line) for line in lines]

    def rest(self, limit: int = 1 << 20) -> Iterator[list[str]]:
        """Once the writer is done: every line still unread, chunk by chunk, then the unfinished last one."""
        while True:
            before = self.offset
            lines = self.read(limit)
            if lines:
                yield lines
            elif self.offset == before:  # nothing more on disk (a chunk inside one long line yields no line)
                break
        if last := self.flush():
            yield last

    def flush(self) -> list[str]:
        """The last unfinished line, once the writer is known to be done."""
        rest, self._pending = self._pending + self._decoder.decode(b"", final=True), ""
        return [clean_line(rest)] if rest else []
