"""slixmpp glue for the scheduling IQs (advertise, request, push-open).

Spec: docs/xmpp-protocol.md (scheduling), xmpp-sync.md C.2, B.8, B.35, B.48.

Theory of operation
-------------------
``Signalling.attach`` is called with each session's client (``XmppLink.on_session``)
and registers one handler for ``iq@type=set/annexsync``.  The handler only
puts the stanza into a bounded queue (slixmpp calls handlers on its own; style
5: no unowned task).  ``serve`` -- a task of the push hub's TaskGroup -- takes
each IQ, parses it (``core.xmpp.signal``; a malformed one is answered
``bad-request``) and answers it in a task of its own group, bounded by
``IQ_LIMIT``: the ``Receiver`` decides the answer at once (the scheduler's
receive path never waits behind a push); only an advertise's answer waits
for a ref lookup in a thread.  So a message for one device never waits behind
another's, nor behind a running push.

``send`` sends one control IQ to a full JID and returns the answer; an IQ
error or no answer within ``IQ_LIMIT`` raises (``PeerBusy`` for
``resource-constraint``, ``PeerRefused`` for any other error,
``TimeoutError``), which the scheduler treats as "unreachable" or "refused".
When the session ends, ``detach`` drops queued IQs (their stanzas belong to a
dead stream, B.49).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from core.errors import RemoteProtocolError
from core.xmpp import signal
from core.xmpp.client import XmppError
from core.xmpp.payloads import shorten
from core.xmpp.signal import Control

logger = logging.getLogger(__name__)

IQ_LIMIT = 30.0  # C.2: the sender waits at most 30 s
QUEUE = 256
HANDLER = "annexsync signalling"


class Refusal(Exception):
    """The receiver's answer is an IQ error: ``condition`` (and for busy, ``retry_after``)."""

    def __init__(self, condition: str, text: str = "", retry_after: float | None = None) -> None:
        super().__init__(text or condition)
        self.condition = condition
        self.retry_after = retry_after


class PeerBusy(XmppError):
    """The peer answered push-open with ``resource-constraint``."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"the device is busy (retry after {retry_after:g} s)")
        self.retry_after = retry_after


class PeerRefused(XmppError):
    """The peer answered with an IQ error other than busy (or an answer we cannot read)."""


class NotConnected(XmppError):
    """No XMPP session: nothing can be sent."""


class Receiver(Protocol):
    async def on_control(self, jid: str, control: Control) -> str:
        """The answer to ``control`` from ``jid``; raises ``Refusal`` for an IQ error."""
        ...


class Signalling:
    def __init__(self, receiver: Receiver, limit: float = IQ_LIMIT) -> None:
        self.receiver = receiver
        self.limit = limit
        self._client: slixmpp.ClientXMPP | None = None
        self._queue: asyncio.Queue[slixmpp.Iq] = asyncio.Queue(QUEUE)

    # --- the session ---------------------------------------------------------------

    def attach(self, client: slixmpp.ClientXMPP | None) -> None:
        """A session started (``client``) or ended (None)."""
        if self._client is not None:
            self._client.remove_handler(HANDLER)
        self._client = client
        while not self._queue.empty():
            self._queue.get_nowait()
        if client is not None:
            client.register_handler(Callback(HANDLER, StanzaPath("iq@type=set/annexsync"),
                                             self._got))  # type: ignore[arg-type]  # fmt: skip

    def _got(self, iq: slixmpp.Iq) -> None:
        try:
            self._queue.put_nowait(iq)
        except asyncio.QueueFull:
            _error(iq, "resource-constraint")

    # --- receiving -------------------------------------------------------------------

    async def serve(self) -> None:
        """Answer every received control IQ, each in its own bounded task."""
        async with asyncio.TaskGroup() as tg:
            while True:
                iq = await self._queue.get()
                tg.create_task(self._answer(iq))

    async def _answer(self, iq: slixmpp.Iq) -> None:
        jid = str(iq["from"])
        el = iq["annexsync"]
        try:
            control = signal.parse_control({k: el[k] for k in signal.ATTRIBUTES if el[k]})
        except RemoteProtocolError as e:
            logger.info("signalling: bad request from %s: %s", shorten(jid), e)
            _error(iq, "bad-request")
            return
        try:
            async with asyncio.timeout(self.limit):
                answer = await self.receiver.on_control(jid, control)
        except Refusal as r:
            _error(iq, r.condition, control.action, r.retry_after)
            return
        except TimeoutError:
            _error(iq, "internal-server-error")
            return
        except Exception:  # noqa: BLE001 - one bad answer must not end the receive path
            logger.exception("signalling: cannot answer %s from %s", control.action, shorten(jid))
            _error(iq, "internal-server-error")
            return
        reply = iq.reply(clear=True)  # type: ignore[no-untyped-call]
        for k, v in signal.format_answer(control.action, answer).items():
            reply["annexsync"][k] = v
        with contextlib.suppress(Exception):  # the stream may be gone meanwhile
            reply.send()

    # --- sending ---------------------------------------------------------------------

    async def send(self, jid: str, control: Control) -> str:
        """Send ``control`` to the full JID ``jid``; its answer.

        Raises:
            NotConnected, PeerBusy, PeerRefused, TimeoutError.
        """
        client = self._client
        if client is None:
            raise NotConnected("not connected to the XMPP server")
        iq = client.make_iq_set(ito=jid)
        for k, v in signal.format_control(control).items():
            iq["annexsync"][k] = v
        try:
            reply = await iq.send(timeout=self.limit)  # type: ignore[no-untyped-call]
        except IqTimeout:
            raise TimeoutError(f"no answer within {self.limit:g} s") from None
        except IqError as e:
            raise _refusal(e) from None
        try:
            return signal.parse_answer(control.action, {k: reply["annexsync"][k]
                                                        for k in ("action", "answer")})  # fmt: skip
        except RemoteProtocolError as e:
            raise PeerRefused(str(e)) from None


def _refusal(e: IqError) -> XmppError:
    condition = e.iq["error"]["condition"]
    if condition == "resource-constraint":
        retry = str(e.iq["annexsync"]["retry-after"] or "")
        return PeerBusy(signal.parse_retry_after(retry, IQ_LIMIT))
    return PeerRefused(f"the device answered {condition}")


def _error(iq: slixmpp.Iq, condition: str, action: str = "", retry_after: float | None = None) -> None:
    err: Any = iq.reply(clear=True)  # type: ignore[no-untyped-call]
    err["type"] = "error"
    err["error"]["condition"] = condition
    err["error"]["type"] = "wait" if condition == "resource-constraint" else "cancel"
    if retry_after is not None:
        err["annexsync"]["action"] = action
        err["annexsync"]["retry-after"] = str(max(1, round(retry_after)))
    with contextlib.suppress(Exception):
        err.send()
