"""A probe of the event loop's responsiveness, put into a program before it starts.

``install(path)`` makes every asyncio loop the program runs also run a task
that sleeps 5 ms again and again and notes how late each wake-up is.  A late
wake-up is a stall: the loop was busy with something else (a long callback,
rendering, a synchronous read).  Each overshoot of 5 ms or more is appended
to ``path`` as "<time.monotonic()> <overshoot seconds>", so the bench can keep
only those inside the window it measures (CLOCK_MONOTONIC is one clock for
every process on the host).  It needs nothing from the program it probes.
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import time
from typing import TextIO

INTERVAL = 0.005
NOTED = 0.005  # overshoots below this are noise, not stalls


async def _probe(out: TextIO) -> None:
    while True:
        before = time.monotonic()
        await asyncio.sleep(INTERVAL)
        after = time.monotonic()
        late = after - before - INTERVAL
        if late >= NOTED:
            out.write(f"{after:.6f} {late:.6f}\n")


def install(path: str) -> None:
    """Start the probe in each event loop as it starts running (Textual's included)."""
    run_forever = asyncio.base_events.BaseEventLoop.run_forever

    def run_forever_probed(loop: asyncio.base_events.BaseEventLoop) -> None:
        if not getattr(loop, "_bench_probed", False):
            loop._bench_probed = True  # type: ignore[attr-defined]
            out = open(path, "a", buffering=1)  # open for the program's whole life
            loop.call_soon(lambda: setattr(loop, "_bench_probe_task", loop.create_task(_probe(out))))
        return run_forever(loop)

    asyncio.base_events.BaseEventLoop.run_forever = run_forever_probed  # type: ignore[method-assign,assignment]


def longest_stall(path: str, start: float, end: float) -> float:
    """The longest overshoot noted between ``start`` and ``end`` (a stall is noted when it ends), in seconds."""
    longest = 0.0
    try:
        with open(path) as handle:
            for line in handle:
                moment, late = (float(part) for part in line.split())
                if start <= moment <= end:
                    longest = max(longest, late)
    except FileNotFoundError:
        pass
    return longest


#: Run by the bench as `python -c LAUNCHER OUT BENCH_DIR module|path TARGET ARGS...`: the probe, then the program.
LAUNCHER = """
import runpy, sys
out, bench, kind, target = sys.argv[1:5]
sys.path.append(bench)
import stallprobe
stallprobe.install(out)
sys.argv = [target, *sys.argv[5:]]
if kind == "module":
    runpy.run_module(target, run_name="__main__", alter_sys=True)
else:
    runpy.run_path(target, run_name="__main__")
"""
