"""The git-annex P2P protocol, sans-IO (spec: the reference notes p2p-protocol.md).

Modules: ``messages`` (one frozen dataclass per message, spec 5), ``codec``
(lines <-> messages and the receive buffer, spec 2-3), ``state`` (the
conversation as a table, spec 4 and 6-8), ``events`` and ``machine`` (the
``Connection`` object).  Nothing here does I/O, keeps time or awaits.

Adapter contract
----------------
A runtime is a thin pump: it writes whatever ``send`` returns, feeds what it
reads to ``receive_data`` (``b""`` on EOF), and acts on ``next_event``:

- ``NEED_DATA``: read from the transport (with a timeout) and feed it;
- ``PAUSED``: our turn, answer the pending request (or send the next one);
- ``DONE``: close the transport;
- ``AutoReply`` (``VersionOffered``, ``Rejected``): write ``send(ev.reply)``;
- a request message on a server is a local effect to perform, answered with
  reply messages: ``CheckPresent`` -> ``Success``/``Failure``; ``Get`` ->
  ``Data(n)``, ``Payload`` chunks, ``Valid``/``Invalid``; ``Put`` ->
  ``AlreadyHave`` or ``PutFrom(offset)``, then the client's ``Data``,
  ``Payload`` chunks and ``PayloadEnd(valid)`` (or ``DataPresent``) are
  answered with ``Success``/``Failure``; ``Rejected(abandoned=True)``,
  ``Error`` or ``ConnectionClosed`` end the transaction.

A ``RemoteProtocolError`` from ``next_event`` is terminal: write its
``error_line`` if not None, then close.

Example: a server over asyncio streams::

    conn = server(mode=Mode.READ_WRITE)
    writer.write(conn.send(AuthSuccess(my_uuid)))      # p2pstdio greeting
    try:
        while True:
            ev = conn.next_event()
            if ev is NEED_DATA:
                async with asyncio.timeout(IDLE_TIMEOUT):
                    conn.receive_data(await reader.read(65536))
            elif ev is DONE:
                break
            elif isinstance(ev, AutoReply):
                writer.write(conn.send(ev.reply))
            elif ev is PAUSED:                  # handler left a request unanswered
                raise RuntimeError(conn.state)
            else:                               # local effects, off the loop
                for out in await handler(ev):   # replies: Message or Payload
                    writer.write(conn.send(out))
            await writer.drain()
    except RemoteProtocolError as e:
        if e.error_line:
            writer.write(e.error_line)
    finally:
        writer.close()

A client is the same loop with the roles swapped: ``send`` a request, pump
``next_event`` until the reply (or ``PayloadEnd``), then ``PAUSED`` says the
machine waits for the next request.
"""

from __future__ import annotations

from core.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from core.p2p.codec import MAX_LINE, ReceiveBuffer, format_message, parse_message
from core.p2p.events import (
    DONE,
    NEED_DATA,
    PAUSED,
    AutoReply,
    ConnectionClosed,
    Event,
    Payload,
    PayloadEnd,
    Rejected,
    Sentinel,
    VersionOffered,
)
from core.p2p.machine import Connection, client, server
from core.p2p.messages import *  # noqa: F403
from core.p2p.messages import ALL_MESSAGES, MAX_VERSION, Message, Service
from core.p2p.state import Mode, Role, State

__all__ = [
    "DONE", "NEED_DATA", "PAUSED", "MAX_LINE", "MAX_VERSION", "ALL_MESSAGES",
    "AutoReply", "Connection", "ConnectionClosed", "Event", "LocalProtocolError",
    "Message", "Mode", "Payload", "PayloadEnd", "ProtocolError", "ReceiveBuffer",
    "Rejected", "RemoteProtocolError", "Role", "Sentinel", "Service", "State",
    "VersionOffered", "client", "format_message", "parse_message", "server",
]  # fmt: skip
__all__ += [cls.__name__ for cls in ALL_MESSAGES]
