"""Shared pieces of the XMPP tests: links on a real prosody, waiting, a TCP relay."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Callable

from core.xmpp.client import Backoff, XmppConfig, XmppLink
from core.xmpp.payloads import Hello
from tests.xmpp_server import Prosody

FAST = Backoff(first=0.05, most=0.4, healthy=5.0)


def config(server: Prosody, jid: str, password: str = "pw", *, via: str | None = None,
           ca: bool = True) -> XmppConfig:  # fmt: skip
    return XmppConfig(jid, password, via or server.server, str(server.cert) if ca else None)


def link(cfg: XmppConfig, name: str, contacts: set[str] | None = None,
         backoff: Backoff = FAST, paused: Callable[[], bool] = lambda: False,
         keepalive: tuple[float, float] = (60.0, 30.0)) -> XmppLink:  # fmt: skip
    async def current() -> XmppConfig:
        return cfg

    return XmppLink(current, hello=Hello(str(uuid.uuid4()), name),
                    contacts=lambda: set(contacts or ()), on_change=lambda: None,
                    backoff=backoff, paused=paused, keepalive=keepalive)  # fmt: skip


async def until(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> float:
    """Wait for ``cond`` (a bound, not a measurement); returns the seconds it took."""
    start = time.monotonic()
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)
    return time.monotonic() - start


def presence_of(lnk: XmppLink, name: str) -> str | None:
    return next((d.presence for d in lnk.buddies.devices() if d.name == name), None)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Relay:
    """A loopback TCP relay to prosody that a test can cut (all connections at once)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.stalled = False  # True: bytes are swallowed, sockets stay open (a silent hang-up)
        self._tg: asyncio.TaskGroup | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def __aenter__(self) -> Relay:
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self._server = await asyncio.start_server(self._accepted, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None and self._tg is not None
        self._server.close()
        self.cut()
        await self._server.wait_closed()
        await self._tg.__aexit__(None, None, None)

    def cut(self) -> None:
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    def _accepted(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        assert self._tg is not None
        self._tg.create_task(self._pipe(r, w))

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            w.transport.abort()
            return
        self._writers |= {w, uw}
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(_copy(r, uw, self))
                tg.create_task(_copy(ur, w, self))
        finally:
            for x in (w, uw):
                self._writers.discard(x)
                x.transport.abort()


async def _copy(r: asyncio.StreamReader, w: asyncio.StreamWriter, relay: Relay) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await r.read(65536):
            if relay.stalled:
                continue
            w.write(data)
            await w.drain()
    w.transport.abort()
