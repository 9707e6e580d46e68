"""Running blocking work in a thread without leaving it behind on cancellation.

Theory of operation
-------------------
A thread cannot be cancelled.  ``asyncio.to_thread`` hands the cancellation to
the awaiting task at once and lets the thread run on, so a lock the task
held (say, the per-repository lock around an index write) would be released
while the thread still writes.  ``run_blocking`` shields the thread's future;
on cancellation it calls ``on_cancel`` (e.g. set a transfer's cancel flag)
and then waits for the thread at most ``grace`` seconds (style 5: awaited
cleanup is bounded) before re-raising ``CancelledError``.  No task is created.

``start_thread_pool`` gives a long-running server a default executor whose
threads are all started up front, so its thread count after the millionth
request is the one it had after the first (``ThreadPoolExecutor`` otherwise
adds threads whenever a load peak comes, up to its maximum).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

GRACE = 10.0
START_TIMEOUT = 30.0


def default_workers() -> int:
    """asyncio's own default size for its executor."""
    return min(32, (os.cpu_count() or 1) + 4)


def start_thread_pool(workers: int | None = None) -> ThreadPoolExecutor:
    """The running loop's default executor: ``workers`` threads, every one started now.

    Raises:
        threading.BrokenBarrierError: the threads did not all start in time.
    """
    n = workers or default_workers()
    pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="annexsync-worker")
    barrier = threading.Barrier(n)  # n tasks waiting at once need n threads
    for f in [pool.submit(barrier.wait, START_TIMEOUT) for _ in range(n)]:
        f.result()
    asyncio.get_running_loop().set_default_executor(pool)
    return pool


async def run_blocking(
    fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs,
) -> T:
    """``fn(*args, **kwargs)`` in the default executor; see the module header."""
    return await run_blocking_cancellable(None, GRACE, fn, *args, **kwargs)


async def run_blocking_cancellable(
    on_cancel: Callable[[], None] | None, grace: float,
    fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs,
) -> T:
    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    call = functools.partial(ctx.run, fn, *args, **kwargs)
    fut = loop.run_in_executor(None, call)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        if on_cancel is not None:
            on_cancel()
        done, _ = await asyncio.wait({fut}, timeout=grace)
        if not done:
            logger.warning("a blocking job (%s) outlived its cancellation", getattr(fn, "__name__", fn))
        elif not fut.cancelled() and fut.exception() is not None:
            logger.debug("cancelled job ended with %r", fut.exception())
        raise
