"""The asyncio adapter: an encrypted reader/writer pair over any byte stream.

Theory of operation
-------------------
``connect_session`` (initiator) and ``accept_session`` (responder) run the
handshake of a ``SessionMachine`` over an ``asyncio.StreamReader``/
``StreamWriter`` pair (TCP, a pipe, later the XMPP bytestream) within one
deadline, then hand back a ``SecureStream``: a ``SecureReader`` and a
``SecureWriter`` that *are* ``asyncio.StreamReader``/``StreamWriter``, so
``core.p2p`` (``runtime.Channel``, ``serving``, ``remote.P2PClient``) runs
over them unchanged.

- Reading pulls: when the caller needs bytes, ``SecureReader`` reads
  ciphertext from the inner stream (bounded by ``idle_timeout``), feeds the
  machine and puts only authenticated plaintext in its buffer.  No pump task
  exists, so none can be orphaned, and nothing is buffered ahead of the
  caller.  (The hook is ``StreamReader._wait_for_data``, the one place every
  CPython read method -- ``read``, ``readexactly``, ``readline`` -- waits.)
- A frame that fails (tampered, lost, reordered, replayed) fails the read
  with the machine's ``RemoteProtocolError``, logged on
  ``annexsync.security``; the reader keeps that error for every later read.
- Writing encrypts in ``write`` and hands the frames to the inner writer;
  ``drain`` drains the inner writer (bounded by ``write_timeout``).
- A refused handshake raises ``SessionRefused`` after a best-effort REFUSE
  frame; it is logged on ``annexsync.security``, and the error carries the
  device and reason; ``on_refused`` receives the same as a frozen
  ``RefusedSession`` for the status.  Any failure closes the inner stream
  (in ``finally``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.errors import (
    LocalProtocolError,
    ProtocolError,
    RemoteUnavailable,
    SessionRefused,
    refusal_text,
)
from core.session.machine import (
    NEED_DATA,
    Closed,
    Data,
    Established,
    PeerCredentials,
    PeerHello,
    Refusal,
    SessionMachine,
)

logger = logging.getLogger(__name__)
security = logging.getLogger("annexsync.security")

READ_SIZE = 1 << 16
STREAM_LIMIT = 1 << 17
HANDSHAKE_TIMEOUT = 30.0  # xmpp-sync.md C.2: every exchange answers within 30 s
IDLE_TIMEOUT = 900.0  # longer than a LOCKCONTENT proof (600 s), still finite
WRITE_TIMEOUT = 120.0
CLOSE_TIMEOUT = 5.0

Lookup = Callable[[str], PeerCredentials | None]


@dataclass(frozen=True)
class RefusedSession:
    """A refused handshake as the status shows it; no secret in it."""

    peer_device_id: str
    reason: str
    by_peer: bool
    at: float  # wall-clock seconds

    @classmethod
    def from_error(cls, e: SessionRefused) -> RefusedSession:
        return cls(e.peer_device_id, e.reason, e.by_peer, time.time())

    @property
    def text(self) -> str:
        return refusal_text(self.peer_device_id, self.reason, by_peer=self.by_peer)


Report = Callable[[RefusedSession], None]


class SessionTimeout(RemoteUnavailable, TimeoutError):
    """The peer did not answer (or read) in time."""

    def __init__(self, what: str, seconds: float) -> None:
        super().__init__(f"peer silent for {seconds:g}s while {what}")
        self.what = what
        self.seconds = seconds


class SecureReader(asyncio.StreamReader):
    """Plaintext out of an encrypted stream (see the module docstring)."""

    def __init__(self, machine: SessionMachine, inner: asyncio.StreamReader, *,
                 idle_timeout: float, name: str) -> None:
        super().__init__(limit=STREAM_LIMIT)
        self._machine = machine
        self._inner = inner
        self._idle = idle_timeout
        self._name = name

    async def _wait_for_data(self, func_name: str) -> None:
        """Pull until the machine yields plaintext or the end."""
        try:
            while True:
                ev = self._machine.next_event()
                if isinstance(ev, Data):
                    self.feed_data(ev.data)
                    return
                if isinstance(ev, Closed):
                    self.feed_eof()
                    return
                if ev is not NEED_DATA:
                    raise LocalProtocolError(f"unexpected {ev!r} after the handshake")
                self._machine.receive_data(await _read(self._inner, self._idle, self._name))
        except ProtocolError as e:
            security.warning("session with %s broken: %s", self._name, e)
            self.set_exception(e)
            raise


class _Transport(asyncio.WriteTransport):
    """Encrypts what ``StreamWriter.write`` hands it into the inner writer."""

    def __init__(self, machine: SessionMachine, inner: asyncio.StreamWriter) -> None:
        super().__init__()
        self._machine = machine
        self._inner = inner
        self._closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing:
            raise ConnectionResetError("the session is closed")
        self._machine.send(bytes(data))
        self._inner.write(self._machine.data_to_send())

    def is_closing(self) -> bool:
        return self._closing or self._inner.is_closing()

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            with contextlib.suppress(ProtocolError):
                self._machine.close()
            self._inner.close()

    def abort(self) -> None:
        self._closing = True
        self._inner.transport.abort()

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self._inner.transport.get_write_buffer_size()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._inner.get_extra_info(name, default)


class SecureWriter(asyncio.StreamWriter):
    """A ``StreamWriter`` whose bytes leave encrypted; drains the inner writer."""

    def __init__(self, machine: SessionMachine, inner: asyncio.StreamWriter,
                 reader: SecureReader, *, write_timeout: float, name: str) -> None:
        super().__init__(_Transport(machine, inner), asyncio.Protocol(), reader,
                         asyncio.get_running_loop())
        self._inner = inner
        self._write_timeout = write_timeout
        self._name = name

    async def drain(self) -> None:
        await _drain(self._inner, self._write_timeout, self._name)

    async def wait_closed(self) -> None:
        await self._inner.wait_closed()


@dataclass
class SecureStream:
    """An open session: plaintext reader and writer, and who is at the other end."""

    reader: SecureReader
    writer: SecureWriter
    peer_device_id: str
    handshake_hash: bytes

    async def aclose(self) -> None:
        """Close the session and the stream under it; bounded, never raises."""
        with contextlib.suppress(Exception):
            self.writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.writer.wait_closed()


async def connect_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          creds: PeerCredentials, **options: Any) -> SecureStream:
    """Open a session to ``creds.peer_device_id`` as the initiator.

    Raises:
        SessionRefused: either side refused the handshake (logged).
        SessionTimeout: no handshake within ``handshake_timeout``.
        RemoteProtocolError: the peer broke the protocol.
        RemoteUnavailable: the stream broke.
    """
    return await _open(reader, writer, SessionMachine.initiator(creds), None, **options)


async def accept_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         lookup: Lookup, *, own_device_id: str | None = None,
                         **options: Any) -> SecureStream:
    """Answer a session as the responder; ``lookup`` maps the device id the
    initiator names to its credentials (None: not paired, refused).  With
    ``own_device_id``, a session meant for another device is refused as such
    first, whoever sent it.

    Raises:
        the same as ``connect_session``.
    """
    machine = SessionMachine.responder(own_device_id=own_device_id)
    return await _open(reader, writer, machine, lookup, **options)


async def _open(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    machine: SessionMachine,
    lookup: Lookup | None,
    *,
    name: str = "peer",
    handshake_timeout: float = HANDSHAKE_TIMEOUT,
    idle_timeout: float = IDLE_TIMEOUT,
    write_timeout: float = WRITE_TIMEOUT,
    on_refused: Report | None = None,
) -> SecureStream:
    """Handshake within ``handshake_timeout``; options: ``name`` (for logs),
    ``idle_timeout`` (longest wait for the peer's next frame afterwards),
    ``write_timeout``, ``on_refused`` (gets a ``RefusedSession`` for the
    status before ``SessionRefused`` is raised)."""
    ok = False
    try:
        async with asyncio.timeout(handshake_timeout):
            done = await _handshake(reader, writer, machine, lookup, name)
        secure_reader = SecureReader(machine, reader, idle_timeout=idle_timeout, name=name)
        secure_writer = SecureWriter(machine, writer, secure_reader,
                                     write_timeout=write_timeout, name=name)
        ok = True
        return SecureStream(secure_reader, secure_writer, done.peer_device_id,
                            done.handshake_hash)
    except TimeoutError as e:
        if isinstance(e, SessionTimeout):
            raise
        raise SessionTimeout(f"the handshake with {name}", handshake_timeout) from None
    except SessionRefused as e:
        security.warning("session %s %s: %s", "refused by" if e.by_peer else "refused for",
                         e.peer_device_id, e.reason)
        if on_refused is not None:
            on_refused(RefusedSession.from_error(e))
        with contextlib.suppress(Exception):
            await _flush(machine, writer, CLOSE_TIMEOUT, name)  # the REFUSE frame
        raise
    except ProtocolError as e:
        security.warning("session handshake with %s failed: %s", name, e)
        raise
    finally:
        if not ok:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await writer.wait_closed()


async def _handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     machine: SessionMachine, lookup: Lookup | None, name: str) -> Established:
    if lookup is None:
        machine.start()
    while True:
        ev = machine.next_event()
        if isinstance(ev, Established):
            await _flush(machine, writer, WRITE_TIMEOUT, name)
            return ev
        if isinstance(ev, PeerHello):
            assert lookup is not None
            creds = lookup(ev.peer_device_id)
            if creds is None or creds.own_device_id != ev.own_device_id:
                why = Refusal.UNKNOWN_PEER if creds is None else Refusal.WRONG_DEVICE
                raise machine.refuse(why)
            machine.accept(creds)
        elif ev is NEED_DATA:
            await _flush(machine, writer, WRITE_TIMEOUT, name)  # what the step queued
            machine.receive_data(await _read(reader, None, name))
        else:
            raise LocalProtocolError(f"unexpected {ev!r} during the handshake")


async def _flush(machine: SessionMachine, writer: asyncio.StreamWriter,
                 timeout: float, name: str) -> None:
    data = machine.data_to_send()
    if data:
        writer.write(data)
        await _drain(writer, timeout, name)


async def _read(reader: asyncio.StreamReader, timeout: float | None, name: str) -> bytes:
    """Whatever arrives next (``b""`` at the end), bounded by ``timeout``
    (None: the caller's deadline bounds it, as in the handshake)."""
    try:
        async with asyncio.timeout(timeout):
            return await reader.read(READ_SIZE)
    except TimeoutError:
        assert timeout is not None
        raise SessionTimeout(f"waiting for {name}", timeout) from None
    except (ConnectionError, OSError) as e:
        logger.debug("%s: read failed: %s", name, e)
        return b""


async def _drain(writer: asyncio.StreamWriter, timeout: float, name: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            await writer.drain()
    except TimeoutError:
        raise SessionTimeout(f"writing to {name}", timeout) from None
    except (ConnectionError, OSError) as e:
        raise RemoteUnavailable(f"connection to {name} broke: {e}") from e


__all__ = [
    "HANDSHAKE_TIMEOUT", "IDLE_TIMEOUT", "Lookup", "RefusedSession", "Report", "SecureReader",
    "SecureStream",
    "SecureWriter", "SessionTimeout", "accept_session", "connect_session",
]  # fmt: skip
