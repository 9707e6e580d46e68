"""Reconnect after a cut connection and a restarted server (xmpp-sync C.6, B.21, B.22).

A loopback TCP relay sits between one link and prosody; the test cuts it
(both sockets aborted, as a modem hang-up or a network change looks) and
restarts prosody.  Each time the link must come back and re-announce (the
other device sees its presence anew), the peers must be marked unknown
meanwhile, and no asyncio task or file descriptor may be left behind
(B.11: setup without cleanup).  The long soak (50 cuts) is ``bench/xmpp_reconnect.py``.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from core.xmpp.client import Backoff, State, XmppLink
from tests.integration.xmpp_helpers import Relay, config, link, open_fds, presence_of, until
from tests.xmpp_server import Prosody

pytestmark = pytest.mark.timeout(90)
CUTS = 8


def _seen_since(observer: XmppLink, name: str, since: float) -> bool:
    d = next((d for d in observer.buddies.devices() if d.name == name), None)
    return d is not None and d.presence == "online" and (d.last_seen or 0) >= since


async def _settled(baseline: tuple[int, int]) -> tuple[int, int]:
    """Tasks and fds once slixmpp's fire-and-forget handlers ran out (bounded)."""
    counts = (len(asyncio.all_tasks()), open_fds())
    deadline = time.monotonic() + 5
    while counts != baseline and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        counts = (len(asyncio.all_tasks()), open_fds())
    return counts


async def cut_and_restart(server: Prosody, cuts: int) -> dict[str, object]:
    """Run the cuts and one restart; the figures (also used by the bench)."""
    alice = server.register("alice", "pw")
    async with Relay(server.port) as relay:
        laptop = link(config(server, alice, via=relay.address), "laptop")
        desktop = link(config(server, alice), "desktop")
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(x.run()) for x in (laptop, desktop)]
            await until(lambda: presence_of(desktop, "laptop") == "online"
                        and presence_of(laptop, "desktop") == "online", 15)
            baseline = (len(asyncio.all_tasks()), open_fds())
            start_tasks = set(asyncio.all_tasks())
            back: list[float] = []
            unknown_seen = 0
            for _ in range(cuts):
                sessions, t0 = laptop.sessions, time.time()
                relay.cut()
                await until(lambda n=sessions: laptop.state is not State.ONLINE  # type: ignore[misc]
                            or laptop.sessions > n, 10)
                unknown_seen += presence_of(laptop, "desktop") in ("unknown", None)
                back.append(await until(lambda n=sessions, t=t0: laptop.state is State.ONLINE  # type: ignore[misc]
                                        and laptop.sessions > n
                                        and _seen_since(desktop, "laptop", t), 15))
            before_tasks = start_tasks
            after_cuts = await _settled(baseline)
            left = [repr(t.get_coro()) for t in asyncio.all_tasks() - before_tasks]
            t0 = time.time()
            server.restart()
            restart = await until(lambda: _seen_since(desktop, "laptop", t0)
                                  and _seen_since(laptop, "desktop", t0), 30)
            for t in tasks:
                t.cancel()
    return {"cuts": cuts, "baseline": baseline, "after_cuts": after_cuts,
            "back_max": max(back), "back_median": sorted(back)[len(back) // 2],
            "unknown_after_cut": unknown_seen, "restart": restart,
            "sessions": laptop.sessions, "left": left}  # fmt: skip


@pytest.mark.asyncio
async def test_cut_connection_and_restarted_server(xmpp_server: Prosody) -> None:
    figures = await cut_and_restart(xmpp_server, CUTS)
    print(f"\nxmpp reconnect: {figures}")
    assert figures["after_cuts"] == figures["baseline"], f"left behind: {figures['left']}"
    assert figures["unknown_after_cut"] == CUTS, "peers must be unknown once the stream is lost"
    assert figures["sessions"] == CUTS + 2  # the first, one per cut, one after the restart


@pytest.mark.asyncio
async def test_a_link_cancelled_while_connecting_leaves_nothing(xmpp_server: Prosody) -> None:
    alice = xmpp_server.register("alice", "pw")
    before = (len(asyncio.all_tasks()), open_fds())
    for _ in range(5):
        lnk = link(config(xmpp_server, alice), "laptop")
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(lnk.run())
            await until(lambda x=lnk: x.sessions > 0, 5)  # type: ignore[misc]
            await asyncio.sleep(0.01)  # somewhere inside TLS or SASL
            task.cancel()
    assert await _settled(before) == before


@pytest.mark.asyncio
async def test_the_network_coming_back_reconnects_at_once(xmpp_server: Prosody) -> None:
    """C.6: the daemon's network watch kicks the link; it does not wait out its back-off."""
    alice = xmpp_server.register("alice", "pw")
    xmpp_server.stop()
    slow = link(config(xmpp_server, alice), "laptop", backoff=Backoff(first=600, most=600))
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(slow.run())
        await until(lambda: slow.state is State.OFFLINE and slow.error is not None, 10)
        assert "cannot reach" in (slow.error or "")
        xmpp_server.start()
        await asyncio.sleep(0.3)
        assert slow.state is State.OFFLINE  # still in its 10-minute back-off
        slow.kick()
        await until(lambda: slow.state is State.ONLINE, 10)
        task.cancel()


@pytest.mark.asyncio
async def test_a_silent_hang_up_is_noticed_by_the_keepalive(xmpp_server: Prosody) -> None:
    """B.21, B.46: no RST, no FIN, just silence -- the XEP-0199 ping notices and we reconnect."""
    alice = xmpp_server.register("alice", "pw")
    async with Relay(xmpp_server.port) as relay:
        laptop = link(config(xmpp_server, alice, via=relay.address), "laptop",
                      keepalive=(0.5, 1.0))  # fmt: skip
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(laptop.run())
            await until(lambda: laptop.state is State.ONLINE, 10)
            relay.stalled = True
            await until(lambda: laptop.state is not State.ONLINE, 10)
            assert "connection to the server was lost" in (laptop.error or ""), laptop.error
            relay.stalled = False
            relay.cut()  # the stalled sockets go; the new connection passes
            await until(lambda: laptop.state is State.ONLINE and laptop.sessions >= 2, 10)
            task.cancel()
