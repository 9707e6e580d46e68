"""Bytestreams on the running XMPP link (xmpp-sync C.3): a device of our own
account and a paired friend's device may open one; a stranger's device, or a
resource that never proved to be one of ours, is refused with ``forbidden``."""

from __future__ import annotations

import asyncio

import pytest

from core.errors import RemoteUnavailable
from core.xmpp.bytestream import IbbService
from core.xmpp.client import XmppLink, _open
from tests.integration.xmpp_helpers import config, link, presence_of, until
from tests.xmpp_server import Prosody

pytestmark = [pytest.mark.timeout(60), pytest.mark.asyncio]


def jid_of(lnk: XmppLink, name: str) -> str:
    return next(d.jid for d in lnk.buddies.devices() if d.name == name)


async def exchange(opener: XmppLink, acceptor: XmppLink, to: str) -> None:
    assert opener.bytestreams is not None and acceptor.bytestreams is not None
    async with asyncio.timeout(10):
        mine = await opener.bytestreams.open(to)
        theirs = await acceptor.bytestreams.accept()
        mine.writer.write(b"ping")
        await mine.writer.drain()
        assert await theirs.reader.readexactly(4) == b"ping"
        mine.writer.close()
        await mine.writer.wait_closed()


async def test_ours_and_friends_may_open_strangers_may_not(xmpp_server: Prosody) -> None:
    alice = xmpp_server.register("alice", "pw")
    bob = xmpp_server.register("bob", "pw")
    carol = xmpp_server.register("carol", "pw")
    laptop = link(config(xmpp_server, alice), "laptop", {bob, carol})
    desktop = link(config(xmpp_server, alice), "desktop", {bob})
    friend = link(config(xmpp_server, bob), "friend", {alice})
    stranger = link(config(xmpp_server, carol), "stranger", {alice})
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(x.run()) for x in (laptop, desktop, friend, stranger)]
        await until(lambda: presence_of(desktop, "laptop") == "online"
                    and presence_of(friend, "laptop") == "online"
                    and presence_of(laptop, "desktop") == "online"
                    and presence_of(laptop, "friend") == "online"
                    and presence_of(stranger, "laptop") == "online", 20, "all see all")  # fmt: skip
        await exchange(laptop, desktop, jid_of(laptop, "desktop"))
        await exchange(friend, laptop, jid_of(friend, "laptop"))
        # carol's device is not a paired friend of the desktop: refused
        assert stranger.bytestreams is not None and stranger.jid and desktop.jid
        assert not desktop.may_stream(stranger.jid)
        with pytest.raises(RemoteUnavailable, match="forbidden"):
            async with asyncio.timeout(10):
                await stranger.bytestreams.open(desktop.jid)
        # a program on our own account that never proved to be one of ours: refused
        other = await _open(config(xmpp_server, alice), "annexsync-00000000", None)
        try:
            with pytest.raises(RemoteUnavailable, match="forbidden"):
                async with asyncio.timeout(10):
                    await IbbService(other, lambda _j: True).open(desktop.jid)
        finally:
            await other.shutdown()
        assert desktop.bytestreams is not None and desktop.bytestreams._incoming.empty()
        for t in tasks:
            t.cancel()
