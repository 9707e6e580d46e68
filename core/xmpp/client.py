"""slixmpp glue: one account, the connection loop, presence and the buddy list.

Spec: xmpp-sync.md C.1 (presence), C.6 (connection management), B.18-B.22,
B.31, B.38, B.46, B.48, B.55.

Theory of operation
-------------------
``XmppLink.run`` is one task owned by the facade's TaskGroup.  It loops:
take the account (``XmppConfig``: JID from the settings, password from the
keyring), open one *session* (``_session``), and when the session ends wait
out a back-off (1 s doubling to 5 min, reset after 5 min of a healthy
session) -- or less, when ``kick`` says the network came back.

A session is one fresh ``_Client`` (a ``slixmpp.ClientXMPP``) that lives
inside one ``TaskGroup``: connect (bounded by ``CONNECT_TIMEOUT``), STARTTLS
with the certificate verified against the system store or the named CA file
(there is no switch to turn that off; a server without TLS gets no password,
because slixmpp's ``unencrypted_*`` SASL flags stay off), SASL, bind, then
presence from ``payloads.presence_fields`` -- immediately after every
(re)connect, which is the re-announcement.  XEP-0199 keepalive (60 s, 30 s
timeout) and XEP-0198 acks run where the server offers them; slixmpp's own
reconnect is replaced by an abort, so our loop alone decides when to try
again.  Resumption (XEP-0198) is off: a resumed session would let the server
show us available while we are gone.

slixmpp calls handlers on its own; they only put facts into a bounded queue
(or complete futures).  The session's ``_prober`` task reads the queue and
asks a candidate resource (``payloads.is_candidate``) for disco#info and
then ``hello`` -- IQs to that one full JID, each bounded by ``IQ_TIMEOUT``.
So no task is unowned, and the person's chat client (positive priority, no
``annexsync-`` resource) never receives anything of ours.

Failures are errors a person can read (``XmppError`` and subclasses):
wrong password, untrusted certificate, no TLS, unreachable server.  When the
session ends, every slixmpp task is cancelled and the socket closed in
``finally``; the buddy list marks everyone unknown (B.22).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream import ElementBase, register_stanza_plugin
from slixmpp.xmlstream.handler import Callback, Waiter
from slixmpp.xmlstream.matcher import StanzaPath

from core.errors import CoreError, RemoteProtocolError
from core.xmpp import payloads, signal
from core.xmpp.buddies import Buddies
from core.xmpp.bytestream import IbbService
from core.xmpp.payloads import FEATURE, Hello

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 20.0  # per attempt (B.31)
IQ_TIMEOUT = 15.0
CLOSE_TIMEOUT = 2.0
KEEPALIVE_INTERVAL = 60.0
KEEPALIVE_TIMEOUT = 30.0
PROBE_QUEUE = 256


class XmppError(CoreError):
    """The XMPP account could not be used; the text is for the person."""


class XmppAuthFailed(XmppError):
    pass


class XmppTlsFailed(XmppError):
    pass


class XmppUnreachable(XmppError):
    pass


@dataclass(frozen=True)
class XmppConfig:
    jid: str  # bare, as the person typed it
    password: str
    server: str | None = None  # HOST[:PORT], else the JID's domain (SRV)
    ca_file: str | None = None

    def check(self) -> None:
        """Refuse what cannot work before any byte goes out.

        Raises:
            XmppError: not a JID, a bad server, a CA file that is not there.
        """
        node, at, domain = self.jid.partition("@")
        if not node or not at or not domain or "/" in self.jid or " " in self.jid:
            raise XmppError(f"{self.jid!r} is not an XMPP address (name@server)")
        if not self.password:
            raise XmppError("the password is empty")
        if self.server:
            try:
                payloads.parse_server(self.server)
            except ValueError as e:
                raise XmppError(f"server: {e}") from None
        if self.ca_file and not Path(self.ca_file).is_file():
            raise XmppError(f"the CA file {self.ca_file} does not exist")


class State(Enum):
    OFF = "off"  # no account configured
    CONNECTING = "connecting"
    ONLINE = "online"
    OFFLINE = "offline"  # lost, waiting to reconnect
    ERROR = "error"  # refused (password, certificate): waits for a change


class SyncElement(ElementBase):
    """``<sync xmlns="urn:x-annexsync:sync:1" action=".." dev=".." name=".."/>``
    (hello) and the scheduling IQs' attributes (``core.xmpp.signal``)."""

    name = "sync"
    namespace = payloads.NAMESPACE
    plugin_attrib = "annexsync"
    interfaces = {"action", "dev", "name", *signal.ATTRIBUTES}


register_stanza_plugin(slixmpp.Iq, SyncElement)


class _Client(slixmpp.ClientXMPP):
    """One connection attempt and its session; never reconnects by itself."""

    def __init__(self, cfg: XmppConfig, resource: str, hello: Hello | None,
                 allowed: Callable[[str], bool] = lambda _jid: False,
                 keepalive: tuple[float, float] = (KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT),
                 ) -> None:  # fmt: skip
        super().__init__(f"{cfg.jid}/{resource}", cfg.password)
        self.allowed = allowed  # who may learn which device we are (own account, contacts)
        self.enable_direct_tls = False  # STARTTLS on 5222 (or the given port)
        self.enable_plaintext = False
        if cfg.ca_file:
            self.ca_certs = Path(cfg.ca_file)
        self.hello = hello
        self.outcome: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0199", {"keepalive": True, "interval": keepalive[0],
                                          "timeout": keepalive[1]})  # fmt: skip
        self.register_plugin("xep_0198", {"allow_resume": False})
        self.plugin["xep_0030"].add_feature(FEATURE)
        self.auto_authorize = None  # subscriptions: only those we approve
        self.auto_subscribe = False
        for event, fn in (("session_start", self._started), ("failed_auth", self._auth_failed),
                          ("no_auth", self._no_tls), ("ssl_invalid_chain", self._bad_cert),
                          ("connection_failed", self._unreachable),
                          ("disconnected", self._disconnected)):  # fmt: skip
            self.add_event_handler(event, fn)
        self.register_handler(Callback("annexsync hello", StanzaPath("iq@type=get/annexsync"),
                                       self._answer_hello))  # type: ignore[arg-type]

    def _fail(self, error: XmppError) -> None:
        if not self.outcome.done():
            self.outcome.set_exception(error)
        self.abort()

    def _started(self, _: Any) -> None:
        if self.transport is None or self.transport.get_extra_info("ssl_object") is None:
            self._fail(XmppTlsFailed("the server did not encrypt the connection"))
            return
        _no_delay(self.transport)
        if not self.outcome.done():
            self.outcome.set_result(None)

    def _auth_failed(self, _: Any) -> None:
        self._fail(XmppAuthFailed(f"the server refused the password for {self.boundjid.bare}"))

    def _no_tls(self, _: Any) -> None:
        self._fail(XmppTlsFailed("the server offers no encrypted login; annexsync never sends "
                                 "a password unencrypted"))

    def _bad_cert(self, e: Any) -> None:
        self._fail(XmppTlsFailed(f"the server's certificate is not trusted ({_reason(e)}); "
                                 "for a self-hosted server, name its CA file"))

    def _unreachable(self, e: Any) -> None:
        self._fail(XmppUnreachable(f"cannot reach the XMPP server: {_reason(e)}"))

    def _disconnected(self, reason: Any) -> None:
        if isinstance(reason, ssl.SSLCertVerificationError):  # the socket went before the event
            self._bad_cert(reason)
        if not self.outcome.done():
            self.outcome.set_exception(XmppUnreachable(
                f"the XMPP server closed the connection{_suffix(reason)}"))
        if not self.lost.done():
            self.lost.set_result(str(reason or "connection closed"))

    def reconnect(self, wait: float = 2.0, reason: str = "Reconnecting") -> None:
        """slixmpp's keepalive calls this on a ping timeout: end the session instead."""
        logger.info("xmpp: %s", reason)
        self.abort()
        self._disconnected(reason)

    def _answer_hello(self, iq: slixmpp.Iq) -> None:
        asker = str(iq["from"])
        if (self.hello is None or iq["annexsync"]["action"] != "hello"
                or not (payloads.bare(asker) == payloads.bare(str(self.boundjid))
                        or self.allowed(asker))):  # fmt: skip
            err = iq.reply()  # type: ignore[no-untyped-call]
            err["error"]["condition"] = "service-unavailable"
            err["type"] = "error"
            err.send()
            return
        reply = iq.reply(clear=True)  # type: ignore[no-untyped-call]
        for k, v in payloads.format_hello(self.hello).items():
            reply["annexsync"][k] = v
        reply.send()

    async def shutdown(self) -> None:
        """Close politely if we can, then make sure nothing of slixmpp is left."""
        with contextlib.suppress(Exception):
            if self.transport is not None:
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await self.disconnect(wait=CLOSE_TIMEOUT / 2)
        self.cancel_connection_attempt()
        self.abort()
        if self.transport is None and not self.lost.done():
            self.lost.set_result("closed")
        self._release_waiters()
        task = self._run_out_filters
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=CLOSE_TIMEOUT)  # our own cancel still propagates
        await asyncio.sleep(0)  # let slixmpp's fire-and-forget handlers finish

    def _release_waiters(self) -> None:
        """End slixmpp's stanza waiters of this stream (e.g. XEP-0198's wait for
        ``<enabled/>`` when the cut came mid-negotiation): otherwise their unowned
        tasks outlive the session by slixmpp's 30 s response timeout."""
        for handler in list(getattr(self, "_XMLStream__handlers", ())):
            if isinstance(handler, Waiter) and not handler._event.is_set():
                handler._payload = None
                handler._event.set()


def _no_delay(transport: Any) -> None:
    """TCP_NODELAY: an IBB block is an IQ of a few segments answered by a small
    ack; with Nagle's algorithm the last segment waits for the peer's delayed
    ACK (~40 ms), one block in flight, so a bytestream would crawl at
    ~20 blocks a second (measured: 0.16 MB/s on loopback)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _reason(e: Any) -> str:
    if isinstance(e, ssl.SSLCertVerificationError):
        return str(e.verify_message or e.reason)
    return str(e) or type(e).__name__


def _suffix(reason: Any) -> str:
    return f" ({reason})" if reason else ""


def _address(cfg: XmppConfig) -> tuple[str | None, int | None]:
    if cfg.server:
        return payloads.parse_server(cfg.server)
    return None, None


async def _open(cfg: XmppConfig, resource: str, hello: Hello | None,
                allowed: Callable[[str], bool] = lambda _jid: False,
                keepalive: tuple[float, float] = (KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT),
                ) -> _Client:  # fmt: skip
    """Connect and log in; the caller must ``shutdown`` the client.

    Raises:
        XmppError: refused, untrusted, unreachable, or no answer in time.
    """
    cfg.check()
    client = _Client(cfg, resource, hello, allowed, keepalive)
    host, port = _address(cfg)
    try:
        client.connect(host, port)
        async with asyncio.timeout(CONNECT_TIMEOUT):
            await client.outcome
    except TimeoutError:
        await client.shutdown()
        raise XmppUnreachable(f"no answer from the XMPP server within {CONNECT_TIMEOUT:g} s") from None
    except BaseException:
        await client.shutdown()
        raise
    return client


async def check_login(cfg: XmppConfig, resource: str) -> None:
    """Log in once and out again: does this account work?

    Raises:
        XmppError: it does not, in words for the person.
    """
    client = await _open(cfg, resource, None)
    await client.shutdown()


# --- the link: one account, reconnecting --------------------------------------------


@dataclass
class Backoff:
    first: float = 1.0
    most: float = 300.0
    healthy: float = 300.0  # a session this long resets the delay


class XmppLink:
    """The XMPP side of one instance (see the module header)."""

    def __init__(self, config: Callable[[], Awaitable[XmppConfig | None]], *, hello: Hello,
                 contacts: Callable[[], set[str]], on_change: Callable[[], None],
                 backoff: Backoff | None = None, clock: Callable[[], float] = time.time,
                 paused: Callable[[], bool] = lambda: False,
                 keepalive: tuple[float, float] = (KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT),
                 ) -> None:  # fmt: skip
        self.config = config
        self.keepalive = keepalive  # XEP-0199 ping interval and timeout (C.6: 60 s, 30 s)
        self.hello = hello
        self.contacts = contacts
        self.on_change = on_change
        self.backoff = backoff or Backoff()
        self.clock = clock
        self.paused = paused
        self.buddies = Buddies()
        self.state = State.OFF
        self.error: str | None = None
        self.jid: str | None = None  # our full JID while online
        self.sessions = 0  # sessions started (tests and bench count reconnects)
        self._wake = asyncio.Event()
        self._restart = asyncio.Event()
        self._client: _Client | None = None
        self.bytestreams: IbbService | None = None  # XEP-0047 while online (C.3)
        # called with the client when a session starts and with None when it ends
        # (core.xmpp.signalling attaches its IQ handler there)
        self.on_session: Callable[[_Client | None], None] | None = None
        self._refused = False  # the last session was refused (password, certificate)

    def _set(self, state: State, error: str | None = None) -> None:
        if (state, error) != (self.state, self.error):
            self.state, self.error = state, error
            self.on_change()

    def kick(self, *, restart: bool = False) -> None:
        """Reconnect now: the network came back (``restart``: also drop a live session)."""
        if restart:
            self._restart.set()
        self._wake.set()

    def announce(self) -> None:
        """Send our presence again (e.g. paused or resumed)."""
        if self._client is not None and self.state is State.ONLINE:
            self._client.send_presence(**_presence_kwargs(self.paused()))

    async def run(self) -> None:
        delay = self.backoff.first
        while True:
            try:
                cfg = await self.config()
            except CoreError as e:  # the keyring is locked or missing
                self._set(State.ERROR, str(e))
                await self._wait(None)
                continue
            if cfg is None:
                self._set(State.OFF)
                await self._wait(None)
                continue
            self._set(State.CONNECTING if self.state is not State.OFFLINE else State.OFFLINE,
                      self.error)  # fmt: skip
            started = self.clock()
            try:
                error: str | None = await self._session(cfg)
            except XmppError as e:
                error = str(e)
            finally:
                self._client, self.jid = None, None
                self.buddies.lost_stream()
            if self.clock() - started >= self.backoff.healthy:
                delay = self.backoff.first
            refused = isinstance(error, str) and self._refused
            self._set(State.ERROR if refused else State.OFFLINE, error)
            await self._wait(None if refused else delay)
            delay = min(delay * 2, self.backoff.most)

    async def _wait(self, delay: float | None) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wake.wait()
        self._wake.clear()

    async def _session(self, cfg: XmppConfig) -> str | None:
        """One session; returns why it ended (None: we ended it)."""
        self._refused = False
        self._restart.clear()
        self.sessions += 1
        try:
            client = await _open(cfg, payloads.resource_name(self.hello.device_id), self.hello,
                                 self._is_contact, self.keepalive)  # fmt: skip
        except (XmppAuthFailed, XmppTlsFailed):
            self._refused = True
            raise
        queue: asyncio.Queue[str] = asyncio.Queue(PROBE_QUEUE)
        try:
            self._client = client
            self.jid = str(client.boundjid)
            self.bytestreams = IbbService(client, self.may_stream)
            if self.on_session is not None:
                self.on_session(client)
            self._watch(client, queue)
            client.send_presence(**_presence_kwargs(self.paused()))
            self._subscribe(client)
            self._set(State.ONLINE)
            logger.info("xmpp: online as %s", payloads.shorten(self.jid))
            async with asyncio.TaskGroup() as tg:
                prober = tg.create_task(self._prober(client, queue))
                restart = tg.create_task(self._restart.wait())
                lost: asyncio.Future[Any] = client.lost
                await asyncio.wait([lost, restart], return_when=asyncio.FIRST_COMPLETED)
                prober.cancel()
                restart.cancel()
            if lost.done():
                return f"the connection to the server was lost ({lost.result()})"
            return None
        finally:
            if self.on_session is not None:
                self.on_session(None)
            if self.bytestreams is not None:
                self.bytestreams.shutdown()
                self.bytestreams = None
            await client.shutdown()
            self.on_change()

    def _watch(self, client: _Client, queue: asyncio.Queue[str]) -> None:
        own = str(client.boundjid)

        def presence(p: slixmpp.Presence) -> None:
            who = str(p["from"])
            kind = p["type"]  # slixmpp gives the show value for an available presence
            if who == own or (kind != "unavailable" and kind not in _AVAILABLE):
                return
            available = kind != "unavailable"
            if self.buddies.got_presence(who, available, p["show"], self.clock()):
                self.on_change()
            if available and not self.buddies.known(who) and payloads.is_candidate(
                    payloads.resource_of(who), int(p["priority"] or 0)):  # fmt: skip
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(who)

        def subscribe(p: slixmpp.Presence) -> None:
            account = payloads.bare(str(p["from"]))
            if account in {payloads.bare(c) for c in self.contacts()}:
                client.send_presence(pto=account, ptype="subscribed")
            else:
                logger.info("xmpp: ignored a subscription request from %s",
                            payloads.shorten(account))  # fmt: skip

        client.add_event_handler("presence", presence)
        client.add_event_handler("presence_subscribe", subscribe)

    def may_stream(self, jid: str) -> bool:
        """May ``jid`` open a bytestream to us?  Only a full JID on our account
        or a paired friend's that proved to be one of ours (``Buddies.known``)
        or is a command's short-lived visitor resource
        (``payloads.is_visitor``); either must then prove the pairing in the
        session handshake (C.4) before anything is read or served."""
        own = self.jid
        resource = payloads.resource_of(jid)
        ours = self.buddies.known(jid) or payloads.is_visitor(resource)
        return (own is not None and resource != "" and ours
                and (payloads.bare(jid) == payloads.bare(own) or self._is_contact(jid)))  # fmt: skip

    def _is_contact(self, jid: str) -> bool:
        return payloads.bare(jid) in {payloads.bare(c) for c in self.contacts()}

    def _subscribe(self, client: _Client) -> None:
        """Ask the accounts of paired friends for their presence (C.1: mutual subscription)."""
        own = payloads.bare(str(client.boundjid))
        for account in {payloads.bare(c) for c in self.contacts()} - {own}:
            sub = client.client_roster[account]["subscription"] if account in client.client_roster else "none"
            if sub not in ("to", "both"):
                client.send_presence(pto=account, ptype="subscribe")

    async def _prober(self, client: _Client, queue: asyncio.Queue[str]) -> None:
        while True:
            jid = await queue.get()
            if self.buddies.known(jid):
                continue
            try:
                hello = await self._ask(client, jid)
            except (IqError, IqTimeout, RemoteProtocolError, TimeoutError) as e:
                logger.info("xmpp: %s is not one of ours: %s", payloads.shorten(jid), _reason(e))
                continue
            if hello is not None and self.buddies.got_device(jid, hello, self.clock()):
                self.on_change()

    async def _ask(self, client: _Client, jid: str) -> Hello | None:
        """disco#info, then hello: is ``jid`` one of ours, and which device?"""
        info = await client.plugin["xep_0030"].get_info(jid=slixmpp.JID(jid), timeout=IQ_TIMEOUT)
        if FEATURE not in info["disco_info"]["features"]:
            return None
        iq = client.make_iq_get(ito=jid)
        iq["annexsync"]["action"] = "hello"
        reply = await iq.send(timeout=IQ_TIMEOUT)  # type: ignore[no-untyped-call]
        el = reply["annexsync"]
        return payloads.parse_hello({k: el[k] for k in ("action", "dev", "name")})


_AVAILABLE = frozenset({"available", "away", "chat", "dnd", "xa"})


def _presence_kwargs(paused: bool) -> dict[str, Any]:
    f = payloads.presence_fields(paused)
    return {"pshow": f["show"], "ppriority": f["priority"], "pstatus": f["status"]}


__all__ = [
    "Backoff", "State", "XmppAuthFailed", "XmppConfig", "XmppError", "XmppLink", "XmppTlsFailed",
    "XmppUnreachable", "check_login",
]  # fmt: skip
