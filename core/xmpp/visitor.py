"""A short-lived XMPP connection of its own, for a command that reaches a paired device.

Spec: xmpp-sync.md C.1 (resources, presence), C.3 (the bytestream).

Theory of operation
-------------------
``annexsync get/copy/drop/sync`` and the daemon's transfer and sync jobs
open ``Visitor``s: the same account as the daemon (``account.load_config``:
JID from the settings, password from the keyring), but resource
``payloads.visitor_resource`` -- never the daemon's ``annexsync-<id>``,
which a second login would kick off the server.  A visitor's resource is not
a candidate (``payloads.is_candidate``), so peers never probe it and it never
replaces the device in their buddy lists; a peer accepts its bytestream
because it is a visitor on our account or a paired friend's
(``XmppLink.may_stream``) and then the session handshake proves which device
it is (C.4).

It sends one presence (priority -1, as every presence of ours) so the server
tells it who is online, and ``wait_online`` waits, bounded, for the paired
device's full JID to be available.  Nobody may open a stream *to* a visitor.
``aclose`` breaks its streams and logs out; the owner calls it in ``finally``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

import slixmpp

from core.xmpp import payloads
from core.xmpp.bytestream import ACCEPT_MOST, IbbPair, IbbService
from core.xmpp.client import XmppConfig, _Client, _open, _presence_kwargs

logger = logging.getLogger(__name__)

PRESENCE_TIMEOUT = 5.0  # the server sends who is online right after our presence


class Visitor:
    """One logged-in visitor connection (use ``Visitor.open``)."""

    def __init__(self, client: _Client) -> None:
        self.client = client
        self.bytestreams = IbbService(client, lambda _jid: False)
        self._online: set[str] = set()
        self._changed = asyncio.Event()
        client.add_event_handler("presence", self._presence)

    @classmethod
    async def open(cls, cfg: XmppConfig, device_id: str) -> Visitor:
        """Log in as a visitor of ``device_id`` and announce ourselves.

        Raises:
            XmppError: the account cannot be used, in words.
        """
        resource = payloads.visitor_resource(device_id, secrets.token_hex(3))
        client = await _open(cfg, resource, None)
        visitor = cls(client)
        client.send_presence(**_presence_kwargs(False))
        logger.info("xmpp: visiting as %s", payloads.shorten(str(client.boundjid)))
        return visitor

    @property
    def jid(self) -> str:
        return str(self.client.boundjid)

    def _presence(self, p: slixmpp.Presence) -> None:
        who = str(p["from"])
        key = f"{payloads.bare(who)}/{payloads.resource_of(who)}"
        if p["type"] == "unavailable":
            self._online.discard(key)
        elif p["type"] in ("available", "away", "chat", "dnd", "xa"):
            self._online.add(key)
        self._changed.set()

    def online(self, jid: str) -> bool:
        return f"{payloads.bare(jid)}/{payloads.resource_of(jid)}" in self._online

    async def wait_online(self, jid: str, timeout: float = PRESENCE_TIMEOUT) -> bool:
        """Whether ``jid`` (a full JID) is available, waiting up to ``timeout``."""
        try:
            async with asyncio.timeout(timeout):
                while not self.online(jid):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            return False
        return True

    async def open_stream(self, jid: str) -> IbbPair:
        """A bytestream to ``jid``.

        Raises:
            RemoteUnavailable: refused or unanswered.
        """
        return await self.bytestreams.open(jid, block_size=ACCEPT_MOST)  # C.3: 8192 if taken

    async def aclose(self) -> None:
        """Break every stream and log out (bounded, never raises)."""
        self.bytestreams.shutdown("the command ended its XMPP connection")
        await self.client.shutdown()


__all__ = ["PRESENCE_TIMEOUT", "Visitor"]
