"""What keeps a long-running server up under slow, hostile and endless clients.

Pure: no sockets, no asyncio; the clock is passed in.  The TCP listener
(``core.p2p.listener``) and the P2P HTTP server (``core.p2phttp``) apply
these rules in their adapters.

Theory of operation
-------------------
- ``ConnectionTable``: connections are counted when they are *accepted*
  (a burst cannot overrun the cap, as counting in a task started later
  could).  Each is *pending* (not yet authenticated, or between two HTTP
  requests) or *busy*.  At the cap a new connection evicts the oldest
  pending one, so half-open and silent connections can never lock a real
  peer out; when every connection is busy the newcomer is refused.
- ``Pace``: a transfer must move ``min_bytes`` in every ``window`` seconds.
  A peer trickling one byte at a time (which a per-read timeout never
  catches) is cut after one window, so a slow peer holds what it holds for
  a bounded time.
- ``AuthThrottle``: after ``free`` failed AUTHs from one address, each
  further failure is answered no sooner than ``interval`` seconds after the
  previous one from that address, whatever the number of connections it
  uses.  Entries are forgotten after ``forget`` seconds and the table is
  bounded, so the throttle itself cannot grow without limit.
- ``one_line``: what a peer sent reaches the log on one line of bounded
  length.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

LOG_TEXT_LIMIT = 200


def one_line(text: object, limit: int = LOG_TEXT_LIMIT) -> str:
    """``text`` with control characters and runs of whitespace as one space, cut at ``limit``."""
    s = " ".join("".join(c if c.isprintable() else " " for c in str(text)).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


class ConnectionTable(Generic[T]):
    """Open connections, oldest first, each pending or busy (see the module docstring)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the connection limit must be at least 1")
        self.limit = limit
        self._pending: dict[T, None] = {}  # insertion order: oldest first
        self._busy: set[T] = set()

    def __len__(self) -> int:
        return len(self._pending) + len(self._busy)

    @property
    def busy_count(self) -> int:
        return len(self._busy)

    def __contains__(self, conn: object) -> bool:
        return conn in self._pending or conn in self._busy

    def admit(self, conn: T) -> tuple[bool, T | None]:
        """Count ``conn`` in as pending: (admitted, the connection to close for it)."""
        victim: T | None = None
        if len(self) >= self.limit:
            if not self._pending:
                return False, None
            victim = next(iter(self._pending))
            del self._pending[victim]
        self._pending[conn] = None
        return True, victim

    def busy(self, conn: T) -> None:
        """``conn`` authenticated, or started a request: it is not evicted."""
        if conn in self._pending:
            del self._pending[conn]
            self._busy.add(conn)

    def idle(self, conn: T) -> None:
        """``conn`` finished a request: evictable again, as the newest."""
        if conn in self._busy:
            self._busy.discard(conn)
            self._pending[conn] = None

    def remove(self, conn: T) -> None:
        self._pending.pop(conn, None)
        self._busy.discard(conn)


class Pace:
    """At least ``min_bytes`` every ``window`` seconds; ``deadline`` is when the window ends.

    Every network wait of the transfer ends at ``deadline()``; ``moved``
    reports progress and starts a new window once enough has moved.
    """

    def __init__(self, window: float, min_bytes: int, now: float) -> None:
        self.window = window
        self.min_bytes = max(min_bytes, 1)
        self._end = now + window
        self._moved = 0

    def deadline(self) -> float:
        return self._end

    def moved(self, n: int, now: float) -> None:
        self._moved += n
        if self._moved >= self.min_bytes:
            self._moved = 0
            self._end = now + self.window


@dataclass
class _Failures:
    count: int
    last: float
    next_answer: float


class AuthThrottle:
    """Failed AUTHs per peer address (see the module docstring)."""

    def __init__(self, *, free: int = 3, interval: float = 1.0, forget: float = 600.0,
                 max_peers: int = 4096, clock: Callable[[], float]) -> None:  # fmt: skip
        self.free = free
        self.interval = interval
        self.forget = forget
        self.max_peers = max_peers
        self.clock = clock
        self._peers: dict[str, _Failures] = {}

    def __len__(self) -> int:
        return len(self._peers)

    def failed(self, peer: str) -> float:
        """Record one failed AUTH from ``peer``; seconds to wait before answering it."""
        now = self.clock()
        f = self._peers.get(peer)
        if f is None or now - f.last > self.forget:
            self._prune(now)
            f = self._peers[peer] = _Failures(0, now, now)
        f.count += 1
        f.last = now
        if f.count <= self.free:
            return 0.0
        f.next_answer = max(f.next_answer, now) + self.interval
        return f.next_answer - now

    def _prune(self, now: float) -> None:
        if len(self._peers) < self.max_peers:
            return
        for peer in [p for p, f in self._peers.items() if now - f.last > self.forget]:
            del self._peers[peer]
        while len(self._peers) >= self.max_peers:  # all recent: forget the oldest
            del self._peers[min(self._peers, key=lambda p: self._peers[p].last)]


__all__ = ["LOG_TEXT_LIMIT", "AuthThrottle", "ConnectionTable", "Pace", "one_line"]
