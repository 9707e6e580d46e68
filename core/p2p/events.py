"""Events a P2P connection emits besides the messages themselves.

Theory of operation
-------------------
``Connection.next_event()`` returns either a received message (the request
or reply, already checked against the state table), one of the events
below, or a sentinel:

- ``NEED_DATA``: feed more bytes with ``receive_data``;
- ``PAUSED``: it is our turn to ``send``; nothing more is read until then
  (a server that got ``CheckPresent`` answers before it reads the next
  request: spec 6.2 depends on that for LOCKCONTENT);
- ``DONE``: the session is over (EOF, a CONNECT finished, the client sent
  ``ERROR`` while idle); close the transport.

Payload bytes after ``DATA n`` arrive as ``Payload`` chunks, then one
``PayloadEnd`` whose ``valid`` carries VALID (True) or INVALID (False) in
version 1 and up, or None where no such line exists (version 0, CONNECT
relays).  ``Payload`` is also what the runtime passes to ``send`` for
outgoing payload bytes.

``AutoReply`` events need an answer that involves no local state; the
runtime sends ``event.reply`` unchanged.  That keeps every byte we write
visible to the runtime (no hidden outbox) while the answer itself stays
protocol knowledge.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

from core.p2p.messages import Error, Message, Version

logger = logging.getLogger(__name__)


class Sentinel(Enum):
    NEED_DATA = "need data"
    PAUSED = "paused"
    DONE = "done"


NEED_DATA = Sentinel.NEED_DATA
PAUSED = Sentinel.PAUSED
DONE = Sentinel.DONE


@dataclass(frozen=True, slots=True)
class Payload:
    """Raw payload bytes following a DATA line (spec 2.3)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class PayloadEnd:
    """The payload is complete; ``valid`` is VALID/INVALID or None (spec 6.5, 6.7)."""

    valid: bool | None


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed.  ``cut_short``: a request, line or payload was pending
    (spec 8: EOF instead of a reply means the request failed; a PUT receiver
    keeps the partial payload for resume, spec 2.3)."""

    cut_short: bool


@dataclass(frozen=True, kw_only=True)
class AutoReply:
    """An event whose answer is fixed by the protocol: send ``reply`` next."""

    reply: Message


@dataclass(frozen=True, kw_only=True)
class VersionOffered(AutoReply):
    """Server: the client offered a version; ``reply`` agrees min(offer, ours)."""

    offered: int
    reply: Version


@dataclass(frozen=True, kw_only=True)
class Rejected(AutoReply):
    """Server: a line refused without executing it (spec sections 6 and 8).

    ``abandoned`` means the transaction in progress is over: a held lock is
    to be released, a PUT's partial data kept for resume, a GET forgotten.
    """

    line: bytes
    reply: Error
    abandoned: bool


Event = Message | Payload | PayloadEnd | ConnectionClosed | VersionOffered | Rejected
