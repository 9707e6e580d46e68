"""Presence and buddies against a real prosody with TLS on loopback (xmpp-sync C.1).

Two instances on one account and a third on another see each other's devices;
the person's chat client on the same account (carbons on) sees our presence
but never a message or IQ of ours (B.48); a resource is asked nothing before
its presence arrived (B.18).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import slixmpp

from core.xmpp.client import XmppLink
from core.xmpp.payloads import PRIORITY, RESOURCE_PREFIX
from tests.integration.xmpp_helpers import config, link, presence_of, until
from tests.xmpp_server import Prosody

pytestmark = pytest.mark.timeout(60)


class ChatClient(slixmpp.ClientXMPP):  # type: ignore[misc]
    """The person's own chat client: positive priority, carbons on, records what arrives."""

    def __init__(self, server: Prosody, jid: str, resource: str, *, priority: int = 5,
                 announce: bool = True) -> None:  # fmt: skip
        super().__init__(f"{jid}/{resource}", "pw")
        self.enable_direct_tls = False
        self.ca_certs = server.cert
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0280")
        self.seen: list[tuple[str, str, str]] = []  # (tag, type, from)
        self.ready = asyncio.Event()
        self.priority = priority
        self.announce = announce
        self.add_filter("in", self._record)
        self.add_event_handler("session_start", self._start)

    def _record(self, stanza: Any) -> Any:
        self.seen.append((stanza.name, stanza["type"], str(stanza["from"])))
        return stanza

    async def _start(self, _: Any) -> None:
        await self.plugin["xep_0280"].enable()
        if self.announce:
            self.send_presence(ppriority=self.priority)
        self.ready.set()

    def from_ours(self, *tags: str) -> list[tuple[str, str, str]]:
        return [s for s in self.seen if s[0] in tags and f"/{RESOURCE_PREFIX}" in s[2]]


async def _start(client: ChatClient, server: Prosody) -> None:
    client.connect("127.0.0.1", server.port)
    async with asyncio.timeout(10):
        await client.ready.wait()


async def _stop(client: ChatClient) -> None:
    client.disconnect(0.5)
    with __import__("contextlib").suppress(TimeoutError):
        async with asyncio.timeout(2):
            await client.disconnected


@pytest.mark.asyncio
async def test_devices_see_each_other_and_the_chat_client_gets_nothing(xmpp_server: Prosody) -> None:
    alice = xmpp_server.register("alice", "pw")
    bob = xmpp_server.register("bob", "pw")
    chat = ChatClient(xmpp_server, alice, "phone")
    await _start(chat, xmpp_server)
    paused = [False]
    laptop = link(config(xmpp_server, alice), "laptop", {bob}, paused=lambda: paused[0])
    desktop = link(config(xmpp_server, alice), "desktop", {bob})
    friend = link(config(xmpp_server, bob), "friend", {alice})
    links: list[XmppLink] = [laptop, desktop, friend]
    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(x.run()) for x in links]
            await until(lambda: presence_of(laptop, "desktop") == "online"
                        and presence_of(laptop, "friend") == "online"
                        and presence_of(desktop, "laptop") == "online"
                        and presence_of(friend, "laptop") == "online"
                        and presence_of(friend, "desktop") == "online", 15, "all see all")
            # the chat client is not one of ours and never shows up as a device
            assert {d.name for d in laptop.buddies.devices()} == {"desktop", "friend"}
            assert {d.account for d in friend.buddies.devices()} == {alice}
            # paused: it says so (away), and back
            paused[0] = True
            laptop.announce()
            await until(lambda: presence_of(desktop, "laptop") == "away"
                        and presence_of(friend, "laptop") == "away", 10)
            paused[0] = False
            laptop.announce()
            await until(lambda: presence_of(desktop, "laptop") == "online", 10)
            # one device goes away: the others see it offline, with a last-seen time
            tasks[1].cancel()
            await until(lambda: presence_of(laptop, "desktop") == "offline"
                        and presence_of(friend, "desktop") == "offline", 10)
            gone = next(d for d in laptop.buddies.devices() if d.name == "desktop")
            assert gone.last_seen is not None
            await asyncio.sleep(0.5)  # anything late would arrive now
            ours_presence = chat.from_ours("presence")
            assert ours_presence, "the chat client sees our presence"
            assert chat.from_ours("message", "iq") == [], chat.from_ours("message", "iq")
            for t in tasks:
                t.cancel()
    finally:
        await _stop(chat)


@pytest.mark.asyncio
async def test_nothing_is_sent_to_a_resource_before_its_presence(xmpp_server: Prosody) -> None:
    """B.18: no message into the void; a resource of our shape is asked only once it is there."""
    alice = xmpp_server.register("alice", "pw")
    lurker = ChatClient(xmpp_server, alice, RESOURCE_PREFIX + "0badc0de", priority=PRIORITY,
                        announce=False)  # fmt: skip
    await _start(lurker, xmpp_server)
    laptop = link(config(xmpp_server, alice), "laptop")
    try:
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(laptop.run())
            await until(lambda: laptop.state.value == "online", 10)
            await asyncio.sleep(0.5)
            assert lurker.from_ours("iq", "message") == []
            lurker.send_presence(ppriority=PRIORITY)  # now it is there: it gets asked, by IQ
            await until(lambda: bool(lurker.from_ours("iq")), 10)
            assert lurker.from_ours("message") == []
            assert laptop.buddies.devices() == ()  # it does not list FEATURE: not one of ours
            task.cancel()
    finally:
        await _stop(lurker)


@pytest.mark.asyncio
async def test_a_stranger_does_not_learn_which_device_we_are(xmpp_server: Prosody) -> None:
    """hello is answered for the own account and paired friends' accounts only."""
    from core.xmpp.client import SyncElement  # noqa: F401 - registers the payload

    alice = xmpp_server.register("alice", "pw")
    mallory = xmpp_server.register("mallory", "pw")
    stranger = ChatClient(xmpp_server, mallory, "probe")
    await _start(stranger, xmpp_server)
    laptop = link(config(xmpp_server, alice), "laptop")
    try:
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(laptop.run())
            await until(lambda: laptop.jid is not None, 10)
            iq = stranger.make_iq_get(ito=laptop.jid)
            iq["annexsync"]["action"] = "hello"
            with pytest.raises(slixmpp.exceptions.IqError) as e:
                await iq.send(timeout=10)
            assert e.value.condition == "service-unavailable"
            task.cancel()
    finally:
        await _stop(stranger)
