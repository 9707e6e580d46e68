"""A refresh asked while the records are being read is not lost (a lost wakeup
left a pairing unseen until the next ``devices_refresh``, 30 s by default)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from core.daemon.timings import Timings
from core.devices.hub import DeviceHub
from core.settings import Settings


class _SlowStore:
    """Records read in a worker thread that waits until the test lets it go."""

    def __init__(self) -> None:
        self.reads = 0
        self.reading = threading.Event()
        self.go_on = threading.Event()

    def records(self) -> list[Any]:
        self.reads += 1
        self.reading.set()
        self.go_on.wait(10)
        return []


@pytest.mark.asyncio
async def test_a_refresh_asked_during_a_reload_runs_another(tmp_path: Path) -> None:
    hub = DeviceHub(tmp_path, Settings, timings=Timings(devices_refresh=600),
                    on_change=lambda: None, paused=lambda: False)
    store = hub.store = _SlowStore()  # type: ignore[assignment]
    task = asyncio.create_task(hub._refresher())
    try:
        await asyncio.wait_for(asyncio.to_thread(store.reading.wait, 10), 10)
        hub.refresh()  # say, a pairing just stored its record
        store.go_on.set()
        async with asyncio.timeout(5):
            while store.reads < 2:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
