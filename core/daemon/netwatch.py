"""Online/offline, remote reachability, and sleep/resume detection.

Spec: assistant-behaviour.md 6 (network loss and reconnect), 8 (same
reactions, from our own probes).

Theory of operation
-------------------
``NetWatch`` is one task.  Every ``interval`` seconds it

* compares wall-clock and monotonic time since the last round
  (``clock_jumped``): on Linux the monotonic clock stops during suspend, the
  wall clock does not, so a wall-clock lead larger than ``tolerance`` means
  the machine slept.  Network connections made before are suspect, so the
  watch reports a *resume* (the daemon reconnects every remote: 6.2 (3));
* asks ``route_probe`` whether a default route exists (a UDP ``connect``
  sends no packet; it fails with ENETUNREACH without a route) and reports
  online/offline changes;
* asks each repository worker to re-probe its remotes that are waiting
  (unreachable).  Workers also report reachability failures as they meet
  them, so loss is noticed on first use, and recovery within one interval.

The clocks and the probe are injected (style 5) so unit tests drive them.
The reactions live in the daemon (``core.api``): pause network work while
offline, reconnect and rescan desynced remotes when back.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

PROBE_ADDRESS = ("192.0.2.1", 9)  # TEST-NET-1: routed like any public address, never contacted


def route_probe() -> bool:
    """True when the kernel has a route towards the internet (no packet is sent)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(PROBE_ADDRESS)
        return True
    except OSError:
        return False
    finally:
        s.close()


def clock_jumped(wall_before: float, mono_before: float, wall_now: float, mono_now: float,
                 tolerance: float) -> bool:
    """Wall time moved more than ``tolerance`` away from monotonic time (sleep, or a clock set)."""
    return abs((wall_now - wall_before) - (mono_now - mono_before)) > tolerance


@dataclass
class NetEvents:
    """What the watch tells the daemon."""

    online_changed: Callable[[bool], Awaitable[None]]
    resumed: Callable[[], Awaitable[None]]
    reprobe: Callable[[], Awaitable[None]]


class NetWatch:
    def __init__(
        self,
        events: NetEvents,
        *,
        interval: float = 30.0,
        tolerance: float = 30.0,
        probe: Callable[[], bool] = route_probe,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.events = events
        self.interval = interval
        self.tolerance = tolerance
        self.probe = probe
        self.wall = wall
        self.mono = mono
        self.online = True
        self._kick = asyncio.Event()

    def kick(self) -> None:
        """Probe now instead of at the next interval (e.g. a remote just failed)."""
        self._kick.set()

    async def check(self, online: bool | None = None) -> None:
        """One round; ``online`` overrides the probe (for callers who know)."""
        now_online = self.probe() if online is None else online
        if now_online != self.online:
            self.online = now_online
            logger.info("network is %s", "up" if now_online else "down")
            await self.events.online_changed(now_online)
        if self.online:
            await self.events.reprobe()

    async def run(self) -> None:
        wall, mono = self.wall(), self.mono()
        while True:
            try:
                async with asyncio.timeout(self.interval):
                    await self._kick.wait()
            except TimeoutError:
                pass
            self._kick.clear()
            w, m = self.wall(), self.mono()
            if clock_jumped(wall, mono, w, m, self.tolerance):
                logger.info("clock jumped by %.0f s: resumed from sleep?", (w - wall) - (m - mono))
                await self.events.resumed()
            wall, mono = w, m
            await self.check()
