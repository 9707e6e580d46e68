"""NetWatch: clock-jump (sleep/resume) detection and online/offline, with fake clocks."""

from __future__ import annotations

import asyncio

import pytest

from core.daemon.netwatch import NetEvents, NetWatch, clock_jumped


def test_clock_jump_pure() -> None:
    assert not clock_jumped(100.0, 5.0, 130.0, 35.0, tolerance=30)  # both moved 30 s
    assert clock_jumped(100.0, 5.0, 3700.0, 35.0, tolerance=30)  # slept an hour
    assert clock_jumped(100.0, 5.0, 40.0, 35.0, tolerance=30)  # wall clock set back
    assert not clock_jumped(100.0, 5.0, 150.0, 30.0, tolerance=30)  # 25 s drift: within


class FakeClocks:
    def __init__(self) -> None:
        self.wall_t = 1000.0
        self.mono_t = 10.0

    def wall(self) -> float:
        return self.wall_t

    def mono(self) -> float:
        return self.mono_t


class Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def online_changed(self, online: bool) -> None:
        self.calls.append(f"online={online}")

    async def resumed(self) -> None:
        self.calls.append("resumed")

    async def reprobe(self) -> None:
        self.calls.append("reprobe")

    def events(self) -> NetEvents:
        return NetEvents(self.online_changed, self.resumed, self.reprobe)


@pytest.mark.asyncio
async def test_online_changes_are_reported_once() -> None:
    rec = Recorder()
    up = [True]
    nw = NetWatch(rec.events(), probe=lambda: up[0])
    await nw.check()
    assert rec.calls == ["reprobe"]
    up[0] = False
    await nw.check()
    await nw.check()
    assert rec.calls == ["reprobe", "online=False"]  # offline: no reprobes, one report
    up[0] = True
    await nw.check()
    assert rec.calls[-2:] == ["online=True", "reprobe"]
    assert nw.online


@pytest.mark.asyncio
async def test_sleep_is_detected_by_the_run_loop() -> None:
    rec = Recorder()
    clocks = FakeClocks()
    nw = NetWatch(rec.events(), interval=0.01, tolerance=30, probe=lambda: True,
                  wall=clocks.wall, mono=clocks.mono)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(nw.run())
        await asyncio.sleep(0.05)
        assert "resumed" not in rec.calls
        clocks.wall_t += 3600  # the machine slept an hour: monotonic time stood still
        await asyncio.sleep(0.05)
        task.cancel()
    assert rec.calls.count("resumed") == 1
    assert rec.calls.count("reprobe") >= 2


@pytest.mark.asyncio
async def test_kick_probes_at_once() -> None:
    rec = Recorder()
    nw = NetWatch(rec.events(), interval=3600, probe=lambda: True)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(nw.run())
        await asyncio.sleep(0.01)
        nw.kick()
        await asyncio.sleep(0.01)
        task.cancel()
    assert rec.calls == ["reprobe"]
