"""The TUI's executor for thread workers: results and errors come back; shutting down waits for nothing."""

from __future__ import annotations

import threading

import pytest

from screens.threads import DaemonThreads


def test_a_task_s_result_and_its_exception_reach_the_future():
    pool = DaemonThreads()
    assert pool.submit(lambda a, b: a + b, 2, 3).result(timeout=30) == 5
    with pytest.raises(ZeroDivisionError):
        pool.submit(lambda: 1 / 0).result(timeout=30)


def test_shutting_down_does_not_wait_for_a_task_still_running_and_its_thread_is_a_daemon():
    release, started = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(60)
        return "done"

    pool = DaemonThreads()
    future = pool.submit(slow)
    assert started.wait(30), "the task never started"
    pool.shutdown(wait=True)  # returns at once: the task is still running
    assert future.running()
    worker = next(t for t in threading.enumerate() if t.name == "worker-slow")
    assert worker.daemon  # the interpreter does not wait for it either
    release.set()
    assert future.result(timeout=30) == "done"
