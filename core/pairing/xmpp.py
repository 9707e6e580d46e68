"""The XMPP carrier of pairing: the same handshake, its bytes relayed as IQs (pairing.md 6.4).

Theory of operation
-------------------
The handshake (``machine.PairingMachine``) is unchanged; only the pipe
differs.  Each end logs into the configured account with a resource of its
own (``annexsync-pair-<6 hex>``, priority -1, so neither the person's chat
client nor the instance's sync resource is disturbed) for the length of one
window or one join, and logs out in ``finally``.

Wire (namespace ``urn:x-annexsync:pair:1``, docs/pairing.md §2b)::

    <iq type="get"><pair xmlns=NS np="7"/></iq>          probe: is window 7 open for me?
    <iq type="set"><pair xmlns=NS sid=S seq=N>BASE64</pair></iq>   bytes of frames
    <iq type="set"><pair xmlns=NS sid=S seq=N end="1"/></iq>       clean end of the stream

Each set is acknowledged by an empty result before the next goes out, so
bytes arrive in order; the sender's ``seq`` counts from 0 per direction.

Rules (``Gate``, pure, decides every IQ a window receives):

- Only the chosen account speaks: the own account's other resources (own
  devices; they still need the code) or the one friend the person named.
  Anyone else: ``not-authorized``, and nothing reaches a machine.
- The joiner opens an attempt with a fresh random ``sid`` at ``seq`` 0; the
  window binds it to that full JID.  Later IQs must carry the same sid, from
  the same JID, with the next seq: a replayed or reordered IQ, or one of
  another (finished) run, gets ``unexpected-request``/``item-not-found`` and
  is never fed to the machine.  A second caller while one attempt runs and
  another waits is ``resource-constraint`` (busy).
- The server sees only what the LAN sees: PAKE messages, MACs and sealed
  boxes (machine.py: nothing in them allows an offline test of a code).

Friends: the shower offers a presence subscription to the friend's account
and approves that account's subscription (only that one, only while the
window is open); the joiner, while it looks, approves subscription offers
and offers its own back, so each learns the other's full JID from presence.
Approvals the joiner gave to accounts it did not pair with are withdrawn in
``finally`` (roster item removed), as is the shower's offer when nothing
paired.  After pairing, the mutual subscription stays: it is how the two
instances see each other for syncing (xmpp-sync.md C.1).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream import ElementBase, register_stanza_plugin
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from core.pairing.lan import Conn, Report, Storage, attempts, run_attempt
from core.pairing.machine import PairingFailed, PairingMachine, PairingResult, PairingWindow, Reason
from core.pairing.messages import Hello
from core.xmpp import payloads
from core.xmpp.client import _AVAILABLE, XmppConfig, XmppError, _Client, _open, _presence_kwargs

logger = logging.getLogger(__name__)

NAMESPACE = "urn:x-annexsync:pair:1"
RESOURCE_PREFIX = payloads.RESOURCE_PREFIX + "pair-"
IQ_TIMEOUT = 15.0
CLOSE_TIMEOUT = 2.0
FIND_TIMEOUT = 15.0  # the joiner looks this long for a window among the account's devices
STEP_TIMEOUT = 30.0
RX_QUEUE = 8  # frames waiting for the machine; turns alternate, so one is the norm
MAX_CHUNK = 12000  # bytes per IQ (a frame is at most 16 KiB; base64 grows it by a third)

# IQ error conditions (RFC 6120 8.3.3)
STRANGER = "not-authorized"
UNKNOWN = "item-not-found"
OUT_OF_ORDER = "unexpected-request"
BUSY = "resource-constraint"
BAD = "bad-request"


class PairElement(ElementBase):
    name = "pair"
    namespace = NAMESPACE
    plugin_attrib = "annexsync_pair"
    interfaces = {"sid", "seq", "np", "end"}


register_stanza_plugin(slixmpp.Iq, PairElement)


def pair_resource() -> str:
    return RESOURCE_PREFIX + secrets.token_hex(3)


# --- the gate: who may say what (pure) -------------------------------------------------


@dataclass
class _Route:
    jid: str
    next_seq: int = 0


@dataclass
class Gate:
    """Decides each IQ of one side (see the module header); None means accepted."""

    allowed: Callable[[str], bool]
    nameplate: int | None = None  # the shower's window; None on the joiner
    routes: dict[str, _Route] = field(default_factory=dict)
    spent: set[str] = field(default_factory=set)

    def probe(self, sender: str, np: str) -> str | None:
        if not self.allowed(sender):
            return STRANGER
        return None if self.nameplate is not None and np == str(self.nameplate) else UNKNOWN

    def frame(self, sender: str, sid: str, seq: str) -> str | None:
        """May this frame go to the attempt ``sid``?  ``opens`` tells a new one."""
        if not self.allowed(sender) or not payloads.resource_of(sender):
            return STRANGER
        route = self.routes.get(sid)
        if route is None:
            return UNKNOWN if sid in self.spent or seq != "0" or not sid else None
        if route.jid != sender:
            return STRANGER
        if seq != str(route.next_seq):
            return OUT_OF_ORDER
        route.next_seq += 1
        return None

    def opens(self, sid: str) -> bool:
        return sid not in self.routes

    def open(self, sender: str, sid: str, next_seq: int) -> None:
        self.routes[sid] = _Route(sender, next_seq)

    def close(self, sid: str) -> None:
        if self.routes.pop(sid, None) is not None:
            self.spent.add(sid)


# --- the pipe: bytes over IQs ------------------------------------------------------------


class IqPipe:
    """One attempt's byte stream to one full JID (``lan.PairReader``/``PairWriter``)."""

    def __init__(self, client: slixmpp.ClientXMPP, peer: str, sid: str,
                 on_close: Callable[[], None] = lambda: None) -> None:  # fmt: skip
        self.client, self.peer, self.sid = client, peer, sid
        self._rx: asyncio.Queue[bytes] = asyncio.Queue(RX_QUEUE)
        self._out = bytearray()
        self._seq = 0
        self._eof = False
        self._closed = False
        self._on_close: Callable[[], None] | None = on_close

    def got(self, data: bytes) -> bool:
        """Bytes (``b""``: the end) from the peer; False if too many wait."""
        try:
            self._rx.put_nowait(data)
        except asyncio.QueueFull:
            return False
        return True

    async def read(self, n: int = -1) -> bytes:
        if self._eof:
            return b""
        data = await self._rx.get()
        self._eof = not data
        return data

    def write(self, data: bytes) -> None:
        self._out += data

    async def drain(self) -> None:
        while self._out:
            chunk, self._out = bytes(self._out[:MAX_CHUNK]), self._out[MAX_CHUNK:]
            await self._send(chunk, end=False, timeout=IQ_TIMEOUT)

    async def _send(self, data: bytes, *, end: bool, timeout: float) -> None:
        iq = self.client.make_iq_set(ito=self.peer)
        el = iq["annexsync_pair"]
        el["sid"], el["seq"] = self.sid, str(self._seq)
        if end:
            el["end"] = "1"
        else:
            el.xml.text = base64.b64encode(data).decode("ascii")
        self._seq += 1
        try:
            await iq.send(timeout=timeout)  # type: ignore[no-untyped-call]
        except IqError as e:
            raise ConnectionError(f"the other device refused the message "
                                  f"({e.iq['error']['condition']})") from None  # fmt: skip
        except IqTimeout:
            raise ConnectionError("the other device did not acknowledge a message") from None

    def close(self) -> None:
        self._closed = True

    async def wait_closed(self) -> None:
        """Send the clean end (bounded), once; the caller bounds and suppresses errors."""
        if self._on_close is None:
            return
        on_close, self._on_close = self._on_close, None
        try:
            await self._send(b"", end=True, timeout=CLOSE_TIMEOUT)
        finally:
            on_close()


# --- one side's connection: handlers, subscriptions -------------------------------------


class _Side:
    """The logged-in resource of one side, its IQ handlers and its roster changes."""

    def __init__(self, client: _Client, gate: Gate,
                 incoming: asyncio.Queue[Conn] | None = None) -> None:  # fmt: skip
        self.client = client
        self.gate = gate
        self.own = payloads.bare(str(client.boundjid))
        self.pipes: dict[str, IqPipe] = {}
        self.incoming = incoming or asyncio.Queue(1)  # shower: callers in turn
        self.candidates: asyncio.Queue[str] = asyncio.Queue(64)  # joiner: resources to ask
        self.approved: set[str] = set()  # accounts whose subscription we approved here
        self.before: set[str] = set()  # the roster's accounts when we logged in
        self.accept_offers: Callable[[str], bool] = lambda _account: False
        client.plugin["xep_0030"].add_feature(NAMESPACE)
        client.register_handler(Callback("annexsync pair set", StanzaPath("iq@type=set/annexsync_pair"),
                                         self._on_set))  # type: ignore[arg-type]
        client.register_handler(Callback("annexsync pair get", StanzaPath("iq@type=get/annexsync_pair"),
                                         self._on_probe))  # type: ignore[arg-type]
        client.add_event_handler("presence", self._on_presence)
        client.add_event_handler("presence_subscribe", self._on_subscribe)

    def announce(self) -> None:
        self.client.send_presence(**_presence_kwargs(False))

    @staticmethod
    def _answer(iq: slixmpp.Iq, condition: str | None) -> None:
        if condition is None:
            iq.reply(clear=True).send()  # type: ignore[no-untyped-call]
            return
        err = iq.reply()  # type: ignore[no-untyped-call]
        err["error"]["condition"] = condition
        err["type"] = "error"
        err.send()

    def _on_probe(self, iq: slixmpp.Iq) -> None:
        self._answer(iq, self.gate.probe(str(iq["from"]), iq["annexsync_pair"]["np"]))

    def _on_set(self, iq: slixmpp.Iq) -> None:
        sender, el = str(iq["from"]), iq["annexsync_pair"]
        sid, seq = el["sid"], el["seq"]
        opens = self.gate.opens(sid)
        why = self.gate.frame(sender, sid, seq)
        if why is None:
            why = self._deliver(sender, sid, opens, el)
        if why is not None:
            logger.info("pairing over xmpp: refused an IQ from %s (%s)", payloads.shorten(sender), why)
        self._answer(iq, why)

    def _deliver(self, sender: str, sid: str, opens: bool, el: Any) -> str | None:
        try:
            data = b"" if el["end"] == "1" else base64.b64decode(el.xml.text or "", validate=True)
        except (binascii.Error, ValueError):
            return BAD
        if opens:
            pipe = IqPipe(self.client, sender, sid, lambda: self._closed(sid))
            try:
                self.incoming.put_nowait((pipe, pipe))
            except asyncio.QueueFull:
                return BUSY
            self.gate.open(sender, sid, 1)  # its seq 0 is this one
            self.pipes[sid] = pipe
        pipe = self.pipes[sid]
        return None if pipe.got(data) else BUSY

    def _closed(self, sid: str) -> None:
        self.gate.close(sid)
        self.pipes.pop(sid, None)

    def _on_presence(self, p: slixmpp.Presence) -> None:
        who = str(p["from"])
        if who == str(self.client.boundjid) or not self.gate.allowed(who) \
                or p["type"] not in _AVAILABLE:
            return
        if payloads.is_candidate(payloads.resource_of(who), int(p["priority"] or 0)):
            with contextlib.suppress(asyncio.QueueFull):
                self.candidates.put_nowait(who)

    def _on_subscribe(self, p: slixmpp.Presence) -> None:
        account = payloads.bare(str(p["from"]))
        if not self.accept_offers(account):
            logger.info("pairing over xmpp: ignored a subscription offer from %s",
                        payloads.shorten(account))  # fmt: skip
            return
        self.approved.add(account)
        self.client.send_presence(pto=account, ptype="subscribed")
        self.client.send_presence(pto=account, ptype="subscribe")

    async def withdraw(self, accounts: set[str]) -> None:
        """Remove ``accounts`` that were not contacts before from the roster
        (bounded; cleanup, never raises)."""
        for account in accounts - {self.own} - self.before:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await self.client.del_roster_item(account)  # type: ignore[no-untyped-call]

    def remove_handlers(self) -> None:
        for name in ("annexsync pair set", "annexsync pair get"):
            self.client.remove_handler(name)
        self.client.del_event_handler("presence", self._on_presence)
        self.client.del_event_handler("presence_subscribe", self._on_subscribe)


@contextlib.asynccontextmanager
async def _side(cfg: XmppConfig, gate: Gate,
                incoming: asyncio.Queue[Conn] | None = None) -> AsyncIterator[_Side]:  # fmt: skip
    """Log in with a pairing resource; log out (handlers gone, socket closed) on exit."""
    client = await _open(cfg, pair_resource(), None)
    side = _Side(client, gate, incoming)
    try:
        with contextlib.suppress(IqError, IqTimeout):
            await client.get_roster(timeout=IQ_TIMEOUT)
        side.before = {payloads.bare(str(j)) for j in client.client_roster}
        yield side
    finally:
        side.remove_handlers()
        await client.shutdown()


def check_friend(friend: str) -> str:
    """The friend's account as typed (``name@server``).

    Raises:
        XmppError: not an XMPP address.
    """
    node, at, domain = friend.partition("@")
    if not node or not at or not domain or "/" in friend or any(c.isspace() for c in friend):
        raise XmppError(f"{friend!r} is not an XMPP address (name@server)")
    return payloads.bare(friend)


def _chosen(own: str, friend: str | None) -> Callable[[str], bool]:
    """The accounts allowed to talk to us: the friend named, else our own account."""
    account = payloads.bare(friend) if friend else payloads.bare(own)
    return lambda jid: payloads.bare(jid) == account


# --- the shower -----------------------------------------------------------------------------


async def show(window: PairingWindow, own: Hello, storage: Storage, cfg: XmppConfig, *,
               friend: str | None = None, report: Report = lambda s: None,
               on_listening: Callable[[str], None] = lambda jid: None,
               step_timeout: float = STEP_TIMEOUT) -> PairingResult:  # fmt: skip
    """Hold the window open on the account (own devices) or for ``friend``.

    Raises:
        PairingFailed: EXPIRED or TOO_MANY_ATTEMPTS; XmppError: the account failed.
    """
    pending: asyncio.Queue[Conn] = asyncio.Queue(1)
    deadline = time.monotonic() + window.remaining(time.monotonic())
    async with holding(window, pending, cfg, friend=friend, report=report,
                       on_listening=on_listening):  # fmt: skip
        return await attempts(window, own, storage, pending, deadline, report, step_timeout)


@contextlib.asynccontextmanager
async def holding(window: PairingWindow, pending: asyncio.Queue[Conn], cfg: XmppConfig, *,
                  friend: str | None = None, report: Report = lambda s: None,
                  on_listening: Callable[[str], None] = lambda jid: None,
                  ) -> AsyncIterator[None]:  # fmt: skip
    """The window held on the account while the block runs: callers' pipes go to
    ``pending`` (for ``attempts``).  A friend offered contact for a window that
    closed unused is taken off the roster again.

    Raises:
        XmppError: not an address, or the account failed.
    """
    friend = check_friend(friend) if friend else None
    gate = Gate(_chosen(cfg.jid, friend), window.code.nameplate)
    async with _side(cfg, gate, pending) as side:
        try:
            side.accept_offers = gate.allowed if friend else (lambda _a: False)
            side.announce()
            if friend:
                side.client.send_presence(pto=payloads.bare(friend), ptype="subscribe")
                report(f"offered {friend} to become contacts")
            on_listening(str(side.client.boundjid))
            yield
        finally:
            if friend and not window.used:
                await side.withdraw({payloads.bare(friend)})


# --- the joiner ------------------------------------------------------------------------------


async def join(machine: PairingMachine, storage: Storage, cfg: XmppConfig, *,
               friend: str | None = None, report: Report = lambda s: None,
               find_timeout: float = FIND_TIMEOUT,
               step_timeout: float = STEP_TIMEOUT) -> PairingResult:  # fmt: skip
    """Find the window with the code's number among the account's devices (or the
    friend's; without ``friend``, also among accounts offering contact now) and pair.

    Raises:
        PairingFailed: NO_WINDOW when none is found in time; else as ``run_attempt``.
    """
    friend = check_friend(friend) if friend else None
    offers: set[str] = set()
    own_account = payloads.bare(cfg.jid)
    contacts: set[str] = set()
    allowed = _chosen(cfg.jid, friend) if friend else (
        lambda jid: payloads.bare(jid) in offers | contacts | {own_account})
    gate = Gate(allowed)
    async with _side(cfg, gate) as side:
        peer: str | None = None
        paired = False
        contacts |= side.before  # friends met before may hold the window too
        try:
            side.accept_offers = allowed if friend else _offer_taker(offers)
            side.announce()
            if friend:
                side.client.send_presence(pto=payloads.bare(friend), ptype="subscribe")
            peer = await _find(side, machine.code.nameplate, find_timeout, report)
            report(f"found the window on {payloads.shorten(peer)}")
            sid = secrets.token_hex(8)
            gate.open(peer, sid, 0)
            pipe = IqPipe(side.client, peer, sid, lambda: gate.close(sid))
            side.pipes[sid] = pipe
            result = await run_attempt(machine, pipe, pipe, storage, step_timeout=step_timeout)
            paired = True
            return result
        finally:
            keep = {payloads.bare(peer)} if peer and paired else set()
            asked = {friend} if friend else set()
            await side.withdraw((side.approved | asked) - keep)


def _offer_taker(offers: set[str]) -> Callable[[str], bool]:
    def take(account: str) -> bool:
        offers.add(account)
        return True

    return take


async def _find(side: _Side, nameplate: int, timeout: float, report: Report) -> str:
    """The first candidate resource that advertises pairing and has window ``nameplate``."""
    report("asking your devices and contacts over XMPP...")
    try:
        async with asyncio.timeout(timeout):
            while True:
                jid = await side.candidates.get()
                if await _has_window(side.client, jid, nameplate):
                    return jid
    except TimeoutError:
        raise PairingFailed(Reason.NO_WINDOW, f"no device of the account or its contacts "
                            f"holds window {nameplate} (looked {timeout:g} s)") from None  # fmt: skip


async def _has_window(client: slixmpp.ClientXMPP, jid: str, nameplate: int) -> bool:
    try:
        info = await client.plugin["xep_0030"].get_info(jid=slixmpp.JID(jid), timeout=IQ_TIMEOUT)
        if NAMESPACE not in info["disco_info"]["features"]:
            return False
        iq = client.make_iq_get(ito=jid)
        iq["annexsync_pair"]["np"] = str(nameplate)
        await iq.send(timeout=IQ_TIMEOUT)  # type: ignore[no-untyped-call]
        return True
    except (IqError, IqTimeout) as e:
        logger.info("pairing over xmpp: %s has no window %d (%s)", payloads.shorten(jid),
                    nameplate, type(e).__name__)  # fmt: skip
        return False
