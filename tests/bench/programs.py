"""The steps the benchmarks run, and the plain loop P2 compares headless output with.

Run by path (``python tests/bench/programs.py KIND ...``) so that a recipe can
name them in a step's argv and the bare apps can start them too: the wizard
and its anchor run the very same program.

- ``flood``: says it is ready, waits for a go file, prints N lines as fast as
  Python can through a pipe, then an end mark; notes when it finished, and
  may then wait, silent, for a file that lets it end.  ``--length L`` pads
  each line to L characters with pip-like words (see ``flood_line``), so a
  pane that wraps breaks them at spaces.
- ``quiet``: prints some lines and a mark, then sleeps (silent, idle: what a
  lock wait looks like to the watch).
- ``relay``: the plain loop of P2's headless anchor: reads a log and writes
  each line with a timestamp prefix through buffered stdout; says how long it took.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

FLOOD_LINE = "  Downloading example_pkg-{:07d}-py3-none-any.whl"  # 50 characters, 51 bytes: 1M lines fit the log cap
FLOOD_LINE_LENGTH = len(FLOOD_LINE.format(0))
#: What a longer line goes on with, repeated: pip's words and a path, spaces every few words.
FLOOD_PADDING = (
    "(from indico-demo==2.0) requires sqlalchemy<2.1,>=2.0 alembic>=1.13 celery[redis]>=5.3 "
    "in /srv/site/venv/lib/python3.11/site-packages"
)


def flood_line(length: int = 0) -> str:
    """The format of one flood line (its number left to fill), without its newline.

    ``length`` 0 (or at most 50): the 50 characters of pip's Downloading line.
    Longer: that line, a space, then FLOOD_PADDING repeated and cut to exactly
    ``length`` characters (never ending on a space).  Every line of a flood
    has the same length, only the number differs.
    """
    if length <= FLOOD_LINE_LENGTH:
        return FLOOD_LINE
    room = length - FLOOD_LINE_LENGTH
    tail = (" " + " ".join([FLOOD_PADDING] * (room // len(FLOOD_PADDING) + 1)))[:room]
    if tail.endswith(" "):
        tail = tail[:-1] + "."
    return FLOOD_LINE + tail.replace("{", "{{").replace("}", "}}")


def flood(go: Path, lines: int, mark: str, done: Path, hold: Path | None, length: int = 0) -> None:
    line = flood_line(length) + "\n"
    print(f"flood ready {mark}", flush=True)
    while not go.exists():
        time.sleep(0.002)
    write = sys.stdout.write
    for number in range(1, lines + 1):
        write(line.format(number))
    write(f"FLOOD-END {mark}\n")
    sys.stdout.flush()
    done.write_text(repr(time.monotonic()))
    if hold is not None:  # stay alive, silent, until told: the end mark stays the newest line of a running step
        deadline = time.monotonic() + 900
        while not hold.exists() and time.monotonic() < deadline:
            time.sleep(0.05)


def quiet(lines: int, mark: str, seconds: float) -> None:
    for number in range(1, lines + 1):
        print(f"  step output line {number}")
    print(f"QUIET {mark}", flush=True)
    time.sleep(seconds)


def relay(log: Path, step: str) -> None:
    """What a reasonable person would write: no batching tricks, a timestamp per line, stdout buffered."""
    started = time.monotonic()
    count = 0
    out = sys.stdout
    with open(log, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            out.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} [{step}] {line}")
            count += 1
    out.flush()
    print(json.dumps({"lines": count, "seconds": time.monotonic() - started}), file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    kinds = parser.add_subparsers(dest="kind", required=True)
    one = kinds.add_parser("flood")
    one.add_argument("--go", type=Path, required=True)
    one.add_argument("--lines", type=int, required=True)
    one.add_argument("--mark", required=True)
    one.add_argument("--done", type=Path, required=True)
    one.add_argument("--hold", type=Path, help="after the end mark, wait until this file exists")
    one.add_argument("--length", type=int, default=0, help="pad each line to N characters (0: 50)")
    two = kinds.add_parser("quiet")
    two.add_argument("--lines", type=int, default=0)
    two.add_argument("--mark", required=True)
    two.add_argument("--seconds", type=float, required=True)
    for sub in (one, two):
        sub.add_argument("--owner", help="the bench's folder: names the process as the bench's to clean up")
    three = kinds.add_parser("relay")
    three.add_argument("log", type=Path)
    three.add_argument("step")
    args = parser.parse_args()
    if args.kind == "flood":
        flood(args.go, args.lines, args.mark, args.done, args.hold, args.length)
    elif args.kind == "quiet":
        quiet(args.lines, args.mark, args.seconds)
    else:
        relay(args.log, args.step)


if __name__ == "__main__":
    main()
