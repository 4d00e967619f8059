"""Running a database client for its answer: its output, or one error saying what went wrong."""

from __future__ import annotations

import sh


def last_line(exc: sh.ErrorReturnCode) -> str:
    """What a failed client said last on stderr (where clients put the reason), or its exit code."""
    lines = exc.stderr.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else f"exit code {exc.exit_code}"


def client_output(argv: list[str], env: dict[str, str], timeout: float, error: type[Exception],
                  what: str = "the database") -> str:  # fmt: skip
    """The client's standard output, stripped; any failure raised as ``error`` with a readable reason."""
    try:
        out = sh.Command(argv[0])(*argv[1:], _env=env, _tty_out=False, _timeout=timeout, _decode_errors="replace")
    except sh.ErrorReturnCode as exc:
        raise error(last_line(exc)) from None
    except sh.TimeoutException:
        raise error(f"{what} did not answer within {timeout:.0f} s") from None
    except (sh.ForkException, sh.CommandNotFound, OSError) as exc:
        raise error(f"{argv[0]} could not be run: {exc}") from None
    return str(out).strip()
