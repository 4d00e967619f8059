"""Where the TUI's thread workers run: daemon threads that a quitting wizard never waits for.

Textual runs a thread worker in the event loop's default executor. A ThreadPoolExecutor's threads are joined
when the loop shuts down and again when the interpreter exits, so one worker still asking a slow service (a
site restarting, pip resolving) would hold `q` for as long as it takes. The work itself never needs the wizard
to wait: a step runs detached, and the session is saved by the Engine before each change is shown.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class DaemonThreads(ThreadPoolExecutor):
    """Each task in a daemon thread of its own; shutting down waits for none of them.

    A ThreadPoolExecutor only in name (asyncio's default executor must be one): none of its own threads is ever
    started, so none is registered to be joined at exit."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # handed to whoever awaits the future, as an executor does
                future.set_exception(exc)
            else:
                future.set_result(result)

        threading.Thread(target=run, name=f"worker-{getattr(fn, '__name__', 'task')}", daemon=True).start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Nothing to wait for: a worker left running ends with the process."""
