"""The transfer queue with a scripted runner: dedup, slots, every slot used, retries,
unreachable remotes, cancel, bounded put."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from core.daemon.jobs import Cancelled, TransferMeter
from core.daemon.transferqueue import Transfer, TransferQueue, Unreachable, backoff
from core.repo.key import Key

pytestmark = pytest.mark.asyncio


def key(n: int) -> Key:
    return Key.parse(f"SHA256E-s{n}--{n:064x}.bin")


class Script:
    """A runner whose transfers wait until released, or fail as told."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str]] = []
        self.release: dict[str, asyncio.Event] = {}
        self.fail: dict[str, list[Exception]] = {}

    async def __call__(self, t: Transfer, meter: TransferMeter) -> None:
        self.started.append((t.path, t.remote))
        errors = self.fail.get(t.path)
        if errors:
            raise errors.pop(0)
        ev = self.release.setdefault(t.path, asyncio.Event())
        while not ev.is_set():
            meter.advance(0, 1)  # raises Cancelled when cancelled
            await asyncio.sleep(0.005)


@asynccontextmanager
async def queue(script: Script, **kw: object) -> AsyncIterator[TransferQueue]:
    q = TransferQueue(script, **kw)  # type: ignore[arg-type]
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(q.run())
        try:
            yield q
        finally:
            task.cancel()


async def until(pred: object, timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():  # type: ignore[operator]
            await asyncio.sleep(0.005)


async def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff(n) for n in (1, 2, 3)] == [2.0, 4.0, 8.0]
    assert backoff(20) == 300.0


async def test_dedup_and_every_slot_used_even_for_one_remote() -> None:
    s = Script()
    async with queue(s, slots=2) as q:
        assert await q.put("/r", "upload", key(1), "a", ["x"]) is not None
        assert await q.put("/r", "upload", key(1), "a", ["x"]) is None  # queued already
        await q.put("/r", "upload", key(2), "b", ["x"])  # same remote: the second slot (issue 19)
        await q.put("/r", "upload", key(3), "c", ["y"])
        await q.put("/r", "upload", key(4), "d", ["z"])
        await until(lambda: len(s.started) == 2)
        await asyncio.sleep(0.05)
        assert s.started == [("a", "x"), ("b", "x")]  # two slots, both to x; c waits for a slot
        s.release.setdefault("a", asyncio.Event()).set()
        await until(lambda: len(s.started) == 3)
        assert s.started[2] == ("c", "y")
        states = {t.path: t.state for t in q.transfers("/r")}
        assert states["a"] == "done" and states["d"] == "queued"
        for p in "bcd":
            s.release.setdefault(p, asyncio.Event()).set()
        await until(q.idle)


async def test_progress_reaches_status() -> None:
    s = Script()
    async with queue(s) as q:
        await q.put("/r", "download", key(100), "a", ["x"])
        await until(lambda: any(t.bytes_done > 0 for t in q.transfers("/r")))
        t = q.transfers("/r")[0]
        assert t.state == "running" and t.bytes_total == 100 and t.direction == "download"
        s.release.setdefault("a", asyncio.Event()).set()
        await until(q.idle)
        assert q.transfers("/r")[0].bytes_done == 100


async def test_failure_is_retried_with_backoff_then_succeeds() -> None:
    s = Script()
    s.fail["a"] = [RuntimeError("disk hiccup"), RuntimeError("again")]
    s.release["a"] = asyncio.Event()
    s.release["a"].set()
    async with queue(s, retry_base=0.01) as q:
        await q.put("/r", "upload", key(1), "a", ["x"])
        await until(q.idle)
        assert [p for p, _ in s.started] == ["a", "a", "a"]
        assert q.transfers("/r")[0].state == "done"


async def test_gives_up_after_max_attempts() -> None:
    s = Script()
    s.fail["a"] = [RuntimeError("no")] * 10
    async with queue(s, retry_base=0.001, max_attempts=3) as q:
        await q.put("/r", "upload", key(1), "a", ["x"])
        await until(q.idle)
        t = q.transfers("/r")[0]
        assert t.state == "failed" and t.error == "no" and len(s.started) == 3


async def test_unreachable_remote_tries_the_next_then_drops() -> None:
    s = Script()
    s.fail["a"] = [Unreachable("x gone"), Unreachable("y gone")]
    gone: list[tuple[str, str]] = []
    async with queue(s, unreachable=lambda r, n: gone.append((r, n))) as q:
        await q.put("/r", "download", key(1), "a", ["x", "y"])
        await until(q.idle)
    assert s.started == [("a", "x"), ("a", "y")]
    assert gone == [("/r", "x"), ("/r", "y")]
    assert q.transfers("/r") == ()  # dropped silently; the rescan on reconnect requeues


async def test_cancel_running_and_queued_holds_until_released() -> None:
    """Both are cancelled; a scan does not queue what the person cancelled
    again (their Cancel would be undone within a round), the status keeps
    showing it however many transfers follow, and "Sync now" (``release``)
    lets it be queued again."""
    s = Script()
    async with queue(s, slots=1) as q:
        a = await q.put("/r", "upload", key(1), "a", ["x"])
        b = await q.put("/r", "upload", key(2), "b", ["x"])
        assert a is not None and b is not None
        await until(lambda: s.started)
        assert q.cancel(a.id) and q.cancel(b.id)  # running, queued
        assert not q.cancel(999)
        await until(q.idle)
        assert {t.path: t.state for t in q.transfers("/r")} == {"a": "cancelled",
                                                               "b": "cancelled"}
        assert await q.put("/r", "upload", key(1), "a", ["x"]) is None  # the next scan
        assert await q.put("/r", "upload", key(2), "b", ["x"]) is None
        s.release.setdefault("elsewhere", asyncio.Event()).set()
        assert await q.put("/other", "upload", key(1), "elsewhere", ["x"]) is not None
        for n in range(3, 30):  # more than RECENT others after them
            s.release.setdefault(f"f{n}", asyncio.Event()).set()
            assert await q.put("/r", "upload", key(n), f"f{n}", ["x"]) is not None
        await until(lambda: all(t.state == "done" for t in q.transfers("/r")
                                if t.path.startswith("f")), 10)  # fmt: skip
        shown = {t.path: t.state for t in q.transfers("/r")}
        assert shown["a"] == shown["b"] == "cancelled"
        q.release("/r")
        s.release.setdefault("a", asyncio.Event()).set()
        assert await q.put("/r", "upload", key(1), "a", ["x"]) is not None
        await until(lambda: any(t.path == "a" and t.state == "done" for t in q.transfers("/r")))


async def test_a_moot_cancelled_transfer_is_forgotten() -> None:
    """``forget``: out of the status (no ATTENTION for content that got where
    it is wanted another way) and no longer held back from a later scan."""
    s = Script()
    async with queue(s, slots=1) as q:
        a = await q.put("/r", "upload", key(1), "a", ["x"])
        assert a is not None
        await until(lambda: s.started)
        assert q.cancel(a.id)
        await until(q.idle)
        assert [t.state for t in q.transfers("/r")] == ["cancelled"]
        q.forget(a.id)
        assert q.transfers("/r") == ()
        s.release.setdefault("a", asyncio.Event()).set()
        assert await q.put("/r", "upload", key(1), "a", ["x"]) is not None


async def test_paused_queue_starts_nothing() -> None:
    s = Script()
    paused = [True]
    async with queue(s, paused=lambda: paused[0]) as q:
        await q.put("/r", "upload", key(1), "a", ["x"])
        await asyncio.sleep(0.05)
        assert s.started == []
        paused[0] = False
        q.wake()
        await until(lambda: s.started)
        s.release.setdefault("a", asyncio.Event()).set()
        await until(q.idle)


async def test_put_waits_while_the_queue_is_full() -> None:
    s = Script()
    async with queue(s, slots=1, capacity=2, paused=lambda: True) as q:
        await q.put("/r", "upload", key(1), "a", ["x"])
        await q.put("/r", "upload", key(2), "b", ["x"])
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await q.put("/r", "upload", key(3), "c", ["x"])
        q.cancel(q.transfers("/r")[0].id)
        async with asyncio.timeout(2):
            assert await q.put("/r", "upload", key(3), "c", ["x"]) is not None


async def test_cancelled_is_not_a_core_error() -> None:
    # get_key catches CoreError per remote; cancellation must escape it.
    from core.errors import CoreError

    assert not issubclass(Cancelled, CoreError)


async def test_bandwidth_limit_holds_for_a_chunk_worth_seconds_and_a_cancel_ends_it() -> None:
    """A chunk worth more than a second at the limit (1 MiB at 150 kB/s: 7 s) is held
    back all that time, not one second; a cancel ends the wait and the transfer."""
    sent: dict[str, float] = {}

    async def runner(t: Transfer, meter: TransferMeter) -> None:
        def send() -> None:
            meter.advance(0, t.key.size or 0)  # one chunk
            sent[t.path] = time.monotonic()

        await asyncio.to_thread(send)

    async with queue(runner, bandwidth=lambda: 10_000) as q:  # type: ignore[arg-type]
        start = time.monotonic()
        await q.put("/r", "upload", key(25_000), "a", ["x"])
        await until(q.idle, timeout=10)
        assert sent["a"] - start >= 2.3  # 25 kB at 10 kB/s: 2.5 s
        slow = await q.put("/r", "upload", key(1_000_000), "b", ["x"])  # 100 s
        assert slow is not None
        await until(lambda: q.transfers("/r")[0].state == "running")
        await asyncio.sleep(0.2)
        q.cancel(slow.id)
        await until(q.idle, timeout=2)
        assert "b" not in sent and q.transfers("/r")[0].state == "cancelled"
