"""slixmpp glue for XEP-0047: bytestreams to one full JID as asyncio streams.

Spec: xmpp-sync.md C.3 (the session's IBB stream), C.5 (IBB ack 60 s).
The rules live in the pure ``core.xmpp.ibb``; this module only moves IQs.

Theory of operation
-------------------
``IbbService`` hangs three handlers (``<open/>``, ``<data/>``, ``<close/>``
IQ sets) on one slixmpp client.  slixmpp's own ``xep_0047`` plugin is not
used (slixmpp 1.17): it acknowledges every block at once into an unbounded
queue (no flow control on the receiving side), accepts an open from anyone
unless its ``authorized`` hook is replaced, and forgets a closed sid, so the
same sid could be opened again; here the
table of live streams is keyed by (peer full JID, sid), and a sid once
closed or aborted is remembered and refused (``item-not-found``), so no
block of an old session is ever read into another.

- ``open(peer)`` sends ``<open/>`` (block-size 4096 unless asked otherwise)
  and returns an ``IbbPair``; ``accept()`` hands out the streams peers opened.
  An open is accepted only from a full JID that ``allowed`` names (a known
  resource of our account or of a paired friend); others get ``forbidden``.
- Reading: each in-order block is fed to an ``IbbReader`` (an
  ``asyncio.StreamReader``) and acknowledged -- but while the reader holds
  more than twice its limit unread (StreamReader's own ``pause_reading``
  hook), the ack waits until the owner read it down (``resume_reading``):
  the sender, waiting for that ack, stops too.  A broken block aborts the
  stream (the reader raises the ``IbbError``).  A reader that waits longer
  than ``stall`` seconds for the next block ends the stream (``IbbStalled``).
- Writing: ``IbbWriter`` (an ``asyncio.StreamWriter``) buffers in ``write``;
  ``drain`` sends one IQ per block, at most ``window`` (16) unacknowledged,
  waiting for the oldest ack (at most ``stall`` seconds) before the next:
  flow control by acknowledgement.  An error reply or a missing ack aborts
  the stream.
- ``wait_closed`` flushes and sends ``<close/>``; a peer's close is EOF.
- When the client's connection drops (slixmpp's ``disconnected``) or
  ``shutdown`` is called, every live stream breaks at once, and when a
  peer's resource goes unavailable, its streams do: a waiting reader or
  writer fails at once with ``RemoteUnavailable``.
No task is created here: slixmpp calls the handlers, and every wait belongs
to the caller's read or drain.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream import ElementBase, register_stanza_plugin
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from core.errors import RemoteUnavailable
from core.xmpp.ibb import (
    DEFAULT_BLOCK_SIZE,
    NAMESPACE,
    IbbError,
    IbbStream,
    StreamState,
    check_sid,
    parse_open,
)

logger = logging.getLogger(__name__)

STALL_TIMEOUT = 60.0  # C.3/C.5: no ack or no block within 60 s ends the stream
OPEN_TIMEOUT = 30.0  # C.2: every request is answered within 30 s
ACCEPT_MOST = 8192  # C.3: 4096 by default, up to 8192 if offered
# Blocks sent before the oldest one's ack is waited for.  Acks still come in
# order and pace the sender (a reader that does not read holds them), but one
# block in flight meets Nagle's algorithm on the server (prosody's default):
# each block's tail waits for a delayed TCP ACK, ~40 ms -- 0.16 MB/s measured
# on loopback; 4 in flight: 0.57, 8: 1.0, 16: 1.6 MB/s (bench/xmpp.py).
WINDOW = 16
MAX_HELD = 4 * WINDOW  # unacknowledged blocks a full reader takes before it gives up
READ_LIMIT = 1 << 17


class IbbStalled(RemoteUnavailable, TimeoutError):
    """No block or no ack for ``STALL_TIMEOUT`` seconds."""


class _Open(ElementBase):
    name = "open"
    namespace = NAMESPACE
    plugin_attrib = "annexsync_ibb_open"
    interfaces = {"sid", "block-size", "stanza"}


class _Data(ElementBase):
    name = "data"
    namespace = NAMESPACE
    plugin_attrib = "annexsync_ibb_data"
    interfaces = {"sid", "seq"}


class _Close(ElementBase):
    name = "close"
    namespace = NAMESPACE
    plugin_attrib = "annexsync_ibb_close"
    interfaces = {"sid"}


for _stanza in (_Open, _Data, _Close):
    register_stanza_plugin(slixmpp.Iq, _stanza)


def _attr(el: ElementBase, name: str) -> str | None:
    value = el.xml.get(name)
    return None if value is None else str(value)


def _reply_error(iq: slixmpp.Iq, condition: str, text: str = "") -> None:
    err = iq.reply(clear=True)  # type: ignore[no-untyped-call]
    err["type"] = "error"
    err["error"]["type"] = "cancel"
    err["error"]["condition"] = condition
    if text:
        err["error"]["text"] = text
    err.send()


class IbbReader(asyncio.StreamReader):
    """Blocks in order; waiting longer than ``stall`` for one ends the stream."""

    def __init__(self, channel: _Channel) -> None:
        super().__init__(limit=READ_LIMIT)
        self._channel = channel

    async def _wait_for_data(self, func_name: str) -> None:
        stall = self._channel.service.stall
        try:
            async with asyncio.timeout(stall):
                await super()._wait_for_data(func_name)  # type: ignore[misc]
        except TimeoutError:
            err = IbbStalled(f"no block from {self._channel.stream.peer} within {stall:g} s")
            self._channel.fail(err, tell_peer=True)
            raise err from None


class _ReadSide(asyncio.ReadTransport):
    """StreamReader's flow-control hooks: hold the ack while the reader is full."""

    def __init__(self, channel: _Channel) -> None:
        super().__init__()
        self.channel = channel
        self.paused = False
        self.held: list[slixmpp.Iq] = []  # acks not sent yet (up to the sender's window)

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False
        held, self.held = self.held, []
        for iq in held if self.channel.error is None else ():
            iq.reply(clear=True).send()  # type: ignore[no-untyped-call]

    def is_reading(self) -> bool:
        return not self.paused

    def close(self) -> None:
        self.held = []


class _Transport(asyncio.WriteTransport):
    """Collects what ``StreamWriter.write`` hands it until ``drain`` sends it."""

    def __init__(self, channel: _Channel) -> None:
        super().__init__()
        self.channel = channel
        self.buffer = bytearray()
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.channel.error is not None:
            raise self.channel.error
        if self.closing:
            raise ConnectionResetError("the bytestream is closed")
        self.buffer += data

    def is_closing(self) -> bool:
        return self.closing or self.channel.error is not None

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True
        self.channel.fail(RemoteUnavailable("the bytestream was aborted"), tell_peer=True)

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return len(self.buffer)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": self.channel.stream.peer}.get(name, default)


class IbbWriter(asyncio.StreamWriter):
    """Bytes out as acknowledged blocks (see the module docstring)."""

    def __init__(self, channel: _Channel, reader: IbbReader) -> None:
        self._ibb = _Transport(channel)
        super().__init__(self._ibb, asyncio.Protocol(), reader, asyncio.get_running_loop())
        self._lock = asyncio.Lock()

    async def drain(self) -> None:
        async with self._lock:
            await self._ibb.channel.send_buffer(self._ibb.buffer)

    async def wait_closed(self) -> None:
        self._ibb.closing = True
        async with self._lock:
            await self._ibb.channel.finish(self._ibb.buffer)


@dataclass
class IbbPair:
    """One open bytestream: its reader, writer, peer full JID, sid and block size;
    ``stream`` counts the bytes (``bytes_in``, ``bytes_out``) for the status."""

    reader: IbbReader
    writer: IbbWriter
    peer: str
    sid: str
    block_size: int
    stream: IbbStream | None = None


class _Channel:
    """One stream's machine, its reader, and how it ends."""

    def __init__(self, service: IbbService, stream: IbbStream) -> None:
        self.service = service
        self.stream = stream
        self.error: Exception | None = None
        self.broken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.reader = IbbReader(self)
        self.read_side = _ReadSide(self)
        self.reader.set_transport(self.read_side)
        self.writer = IbbWriter(self, self.reader)

    @property
    def key(self) -> tuple[str, str]:
        return self.stream.peer, self.stream.sid

    def fail(self, error: Exception, *, tell_peer: bool = False) -> None:
        """End the stream as broken: every later read and write raises ``error``."""
        if self.error is not None:
            return
        self.error = error
        if self.stream.state is StreamState.OPEN:
            self.stream.abort(str(error))
            if tell_peer:
                self.service.send_close(self.stream, wait=False)
        self.service.forget(self)
        self.reader.set_exception(error)
        if not self.broken.done():
            self.broken.set_result(None)

    def got_block(self, iq: slixmpp.Iq) -> None:
        el = iq["annexsync_ibb_data"]
        try:
            data = self.stream.receive_block(str(iq["from"]), _attr(el, "sid"),
                                             _attr(el, "seq"), el.xml.text)  # fmt: skip
        except IbbError as e:
            _reply_error(iq, e.condition, str(e))
            logger.warning("xmpp: bytestream %s broken: %s", self.stream.sid, e)
            self.fail(e)
            return
        if self.read_side.paused and len(self.read_side.held) >= MAX_HELD:
            err = IbbError("the peer sends far past its unacknowledged blocks", "policy-violation")
            _reply_error(iq, err.condition, str(err))
            self.fail(err, tell_peer=True)
            return
        self.reader.feed_data(data)  # may pause the read side
        if self.read_side.paused:
            self.read_side.held.append(iq)
        else:
            iq.reply(clear=True).send()  # type: ignore[no-untyped-call]

    def got_close(self, iq: slixmpp.Iq) -> None:
        self.stream.receive_close(str(iq["from"]), self.stream.sid)
        iq.reply(clear=True).send()  # type: ignore[no-untyped-call]
        self.service.forget(self)
        self.reader.feed_eof()

    async def send_buffer(self, buffer: bytearray) -> None:
        if self.error is not None:
            raise self.error
        if self.stream.state is not StreamState.OPEN:
            raise RemoteUnavailable(f"the bytestream with {self.stream.peer} is closed")
        data, buffer[:] = bytes(buffer), b""
        in_flight: collections.deque[tuple[asyncio.Future[Any], str]] = collections.deque()
        try:
            for block in self.stream.blocks(data):
                iq = self.service.client.make_iq_set(ito=self.stream.peer)
                el = iq["annexsync_ibb_data"]
                el.xml.set("sid", self.stream.sid)
                el.xml.set("seq", str(block.seq))
                el.xml.text = block.encoded()
                in_flight.append((self._send(iq), f"block {block.seq}"))
                if len(in_flight) >= self.service.window:
                    await self._ack(*in_flight.popleft())
            while in_flight:
                await self._ack(*in_flight.popleft())
        finally:
            for fut, _ in in_flight:
                fut.cancel()

    def _send(self, iq: slixmpp.Iq) -> asyncio.Future[Any]:
        return iq.send(timeout=self.service.stall + 1)  # type: ignore[no-untyped-call,no-any-return]

    async def _ack(self, fut: asyncio.Future[Any], what: str) -> None:
        stall = self.service.stall
        try:
            done, _ = await asyncio.wait([fut, self.broken], timeout=stall,
                                         return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            if fut in done:
                fut.result()
                return
        except IqError as e:
            self.fail(RemoteUnavailable(f"{self.stream.peer} refused {what}: "
                                        f"{e.iq['error']['condition']}"))  # fmt: skip
        except IqTimeout:
            self.fail(IbbStalled(f"no ack for {what} within {stall:g} s"), tell_peer=True)
        finally:
            fut.cancel()
        if self.error is None:
            self.fail(IbbStalled(f"no ack for {what} within {stall:g} s"), tell_peer=True)
        assert self.error is not None
        raise self.error

    async def finish(self, buffer: bytearray) -> None:
        """Flush, then close politely (bounded by the stall timeout)."""
        if self.error is not None or self.stream.state is not StreamState.OPEN:
            return
        with contextlib.suppress(RemoteUnavailable):
            await self.send_buffer(buffer)
            self.stream.close()
            self.service.forget(self)
            await self._ack(self._send(self.service.send_close(self.stream)), "close")
        self.reader.feed_eof()


class IbbService:
    """XEP-0047 on one slixmpp client (see the module docstring)."""

    def __init__(self, client: slixmpp.ClientXMPP, allowed: Callable[[str], bool], *,
                 stall: float = STALL_TIMEOUT, most: int = ACCEPT_MOST,
                 backlog: int = 16, window: int = WINDOW) -> None:  # fmt: skip
        self.client = client
        self.allowed = allowed
        self.stall = stall
        self.most = most
        self.window = window
        self._live: dict[tuple[str, str], _Channel] = {}
        self._ended: set[tuple[str, str]] = set()
        self._incoming: asyncio.Queue[IbbPair] = asyncio.Queue(backlog)
        for kind, fn in (("open", self._got_open), ("data", self._got_data),
                         ("close", self._got_close)):  # fmt: skip
            client.register_handler(Callback(
                f"annexsync ibb {kind}", StanzaPath(f"iq@type=set/annexsync_ibb_{kind}"),
                fn))  # type: ignore[arg-type]
        client.add_event_handler("disconnected", self._lost)
        client.add_event_handler("presence_unavailable", self._peer_gone)

    def _add(self, stream: IbbStream) -> IbbPair:
        ch = _Channel(self, stream)
        self._live[ch.key] = ch
        return IbbPair(ch.reader, ch.writer, stream.peer, stream.sid, stream.block_size, stream)

    def forget(self, ch: _Channel) -> None:
        if self._live.get(ch.key) is ch:
            del self._live[ch.key]
        self._ended.add(ch.key)

    def send_close(self, stream: IbbStream, *, wait: bool = True) -> slixmpp.Iq:
        iq = self.client.make_iq_set(ito=stream.peer)
        iq["annexsync_ibb_close"].xml.set("sid", stream.sid)
        if not wait:  # best effort, nobody waits for the answer
            iq.send(callback=lambda _r: None, timeout=self.stall)  # type: ignore[no-untyped-call]
        return iq

    async def open(self, peer: str, *, block_size: int = DEFAULT_BLOCK_SIZE) -> IbbPair:
        """Open a stream to ``peer`` (a full JID); a peer that finds
        ``block_size`` too large (``resource-constraint``, XEP-0047 2.2) is
        asked once more with the default 4096.

        Raises:
            RemoteUnavailable: refused, or no answer within ``OPEN_TIMEOUT``.
        """
        sid = check_sid(secrets.token_hex(16))
        pair = self._add(IbbStream(peer, sid, block_size))
        iq = self.client.make_iq_set(ito=peer)
        el = iq["annexsync_ibb_open"]
        for k, v in (("sid", sid), ("block-size", str(block_size)), ("stanza", "iq")):
            el.xml.set(k, v)
        try:
            await iq.send(timeout=OPEN_TIMEOUT)  # type: ignore[no-untyped-call]
        except (IqError, IqTimeout) as e:
            why = e.iq["error"]["condition"] if isinstance(e, IqError) else "no answer"
            self._live[(peer, sid)].fail(RemoteUnavailable(f"{peer} refused the bytestream: {why}"))
            if why == "resource-constraint" and block_size > DEFAULT_BLOCK_SIZE:
                return await self.open(peer)
            raise RemoteUnavailable(f"{peer} refused the bytestream: {why}") from None
        return pair

    async def accept(self) -> IbbPair:
        """The next stream a peer opened (the caller bounds the wait)."""
        return await self._incoming.get()

    def _got_open(self, iq: slixmpp.Iq) -> None:
        peer = str(iq["from"])
        el = iq["annexsync_ibb_open"]
        if not self.allowed(peer):
            logger.warning("xmpp: refused a bytestream from %s (not ours, not paired)", peer)
            _reply_error(iq, "forbidden")
            return
        try:
            sid, size = parse_open(_attr(el, "sid"), _attr(el, "block-size"),
                                   _attr(el, "stanza"), self.most)  # fmt: skip
            if (peer, sid) in self._live or (peer, sid) in self._ended:
                raise IbbError(f"stream {sid!r} was used before", "not-acceptable")
            if self._incoming.full():
                raise IbbError("too many streams waiting", "resource-constraint")
        except IbbError as e:
            _reply_error(iq, e.condition, str(e))
            return
        self._incoming.put_nowait(self._add(IbbStream(peer, sid, size)))
        iq.reply(clear=True).send()  # type: ignore[no-untyped-call]

    def _channel(self, iq: slixmpp.Iq, kind: str) -> _Channel | None:
        key = (str(iq["from"]), str(_attr(iq[f"annexsync_ibb_{kind}"], "sid")))
        ch = self._live.get(key)
        if ch is None:
            _reply_error(iq, "item-not-found", "closed stream" if key in self._ended else "")
        return ch

    def _got_data(self, iq: slixmpp.Iq) -> None:
        if (ch := self._channel(iq, "data")) is not None:
            ch.got_block(iq)

    def _got_close(self, iq: slixmpp.Iq) -> None:
        if (ch := self._channel(iq, "close")) is not None:
            ch.got_close(iq)

    def _lost(self, reason: Any) -> None:
        self._break(f"the connection to the XMPP server was lost ({reason or 'closed'})")

    def _peer_gone(self, presence: slixmpp.Presence) -> None:
        """The peer's resource went offline: its streams cannot go on."""
        peer = str(presence["from"])
        for ch in [c for c in self._live.values() if c.stream.peer == peer]:
            ch.fail(RemoteUnavailable(f"{peer} went offline"))

    def _break(self, why: str) -> None:
        for ch in list(self._live.values()):
            ch.fail(RemoteUnavailable(why))

    def shutdown(self, why: str = "the XMPP connection ended") -> None:
        """Break every live stream (the session under them is gone), unhook."""
        self._break(why)
        for kind in ("open", "data", "close"):
            self.client.remove_handler(f"annexsync ibb {kind}")
        self.client.del_event_handler("disconnected", self._lost)
        self.client.del_event_handler("presence_unavailable", self._peer_gone)


__all__ = ["STALL_TIMEOUT", "IbbPair", "IbbReader", "IbbService", "IbbStalled", "IbbWriter"]
