"""What every engine's dump shares: its result, the progress callback, and streaming a client's output to a file."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sh

from wizard.errors import BackupError
from wizard.host.clientcall import last_line

Progress = Callable[[str, int, int], None]  # what is being written, bytes so far, bytes expected


@dataclass(frozen=True)
class Dump:
    path: Path
    checked: str  # what reading it back found, for the operator
    restore: str  # the command that puts it back, for the operator to type


def private_file(path: Path) -> io.BufferedWriter:
    """A new file only its owner can read (a dump holds every password hash of the app)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


def stream_to_file(argv: list[str], env: dict[str, str], target: Path, expected: int,
                   progress: Progress | None, tool: str) -> None:  # fmt: skip
    """Run a dump client with its standard output going to ``target``; report the file's growth."""
    with private_file(target) as out:
        job = sh.Command(argv[0])(*argv[1:], _env=env, _out=out, _bg=True, _bg_exc=False, _tty_out=False)
        try:
            while True:
                try:
                    job.wait(timeout=0.25)
                    break
                except sh.TimeoutException:
                    if progress:
                        progress("database", target.stat().st_size, expected)  # may raise: the wizard is stopping
        except sh.ErrorReturnCode as exc:
            raise BackupError(f"{tool} failed: {last_line(exc)}",
                              "the gate stays closed; fix the cause and take the backup again") from None  # fmt: skip
        except BaseException:
            stop(job)  # never leave a dump running on its own, writing into a backup nobody will finish
            raise
    if progress:
        progress("database", target.stat().st_size, expected)


def stop(job: sh.RunningCommand) -> None:
    try:
        job.terminate()
        job.wait(timeout=10)
    except (sh.ErrorReturnCode, sh.SignalException, sh.TimeoutException, ProcessLookupError, OSError):
        pass
