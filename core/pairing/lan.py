"""The LAN carrier of pairing: a TCP listener and DNS-SD, only while a window is open.

Theory of operation
-------------------
The shower (``show``) opens a TCP listener on an ephemeral port of one
interface address (the ``pairing_interface`` setting; tests pin 127.0.0.1)
and announces it with DNS-SD (``zeroconf``, pairing.md 6.4): type
``_annexsync-pair._tcp.local.``, a random 8-hex instance name, TXT ``v=1``
and ``np=<nameplate>``.  Nothing else is published: no user, host, path or
key, and the nameplate is not secret.  Both exist only while the window is
open and are removed in ``finally``.

Connections are taken one at a time, in the order they come: the accept
callback only queues a connection (a queue of one; a second caller at once
gets ``refused busy``), and ``show`` itself runs each attempt, so no task is
left behind.  A wrong code costs one of the window's attempts; three close
it; so does its expiry or one success.

The joiner (``join``) finds the listener by browsing for the service whose
``np`` matches the typed code (``discover``), or goes straight to
``--host HOST:PORT``; the code protects the exchange either way.

``run_attempt`` pumps one ``PairingMachine`` over a stream: every read is
bounded (``step_timeout``, and the window's end), storing runs off the loop,
and a store the peer never confirmed is undone in ``finally`` (the
two-phase finish, see ``machine``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from zeroconf import InterfaceChoice, IPVersion
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from core.errors import ProtocolError, RemoteProtocolError
from core.pairing.machine import (
    NEED_DATA,
    Paired,
    PairingFailed,
    PairingMachine,
    PairingResult,
    PairingWindow,
    Reason,
    State,
    StoreNow,
)
from core.pairing.messages import Hello, format_frame

logger = logging.getLogger(__name__)

SERVICE_TYPE = "_annexsync-pair._tcp.local."
STEP_TIMEOUT = 30.0  # pairing.md 6.9: 30 s without progress closes the attempt
CONNECT_TIMEOUT = 10.0
DISCOVER_TIMEOUT = 5.0  # pairing.md 6.9: browse the LAN for 5 s
ZEROCONF_TIMEOUT = 5.0
CLOSE_TIMEOUT = 2.0
READ_SIZE = 4096

Store = Callable[[PairingResult], Any]
Undo = Callable[[Any], None]
Report = Callable[[str], None]


class PairReader(Protocol):
    """What ``run_attempt`` reads from: an ``asyncio.StreamReader``, or the XMPP carrier's pipe."""

    async def read(self, n: int = -1) -> bytes: ...


class PairWriter(Protocol):
    """What ``run_attempt`` writes to: an ``asyncio.StreamWriter``, or the XMPP carrier's pipe."""

    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...
    def close(self) -> None: ...
    async def wait_closed(self) -> None: ...


@dataclass(frozen=True)
class Storage:
    """Blocking callbacks: ``store`` records a result and returns what ``undo`` needs."""

    store: Store
    undo: Undo


# --- one attempt over one stream ------------------------------------------------


async def run_attempt(machine: PairingMachine, reader: PairReader,
                      writer: PairWriter, storage: Storage, *,
                      step_timeout: float = STEP_TIMEOUT,
                      deadline: float | None = None) -> PairingResult:  # fmt: skip
    """Run ``machine`` to the end over ``reader``/``writer``; always closes the stream.

    Raises:
        PairingFailed: wrong code, peer gone or silent, window over, the peer refused.
        RemoteProtocolError: the peer broke the protocol (tampered, out of turn).
    """
    stored: Any = None
    paired = False
    try:
        if machine.state is State.NEW:
            machine.start()
        while True:
            ev = machine.next_event()
            await _flush(machine, writer, step_timeout)  # what the step queued
            if ev is NEED_DATA:
                machine.receive_data(await _read(reader, step_timeout, deadline))
            elif isinstance(ev, StoreNow):
                try:
                    stored = await asyncio.to_thread(storage.store, ev.result)
                except Exception as e:
                    logger.error("pairing: cannot store the pairing: %s", e)
                    raise machine.abort(Reason.STORE_FAILED, str(e)) from e
                machine.stored()
            elif isinstance(ev, Paired):
                paired = True
                return ev.result
    except (PairingFailed, ProtocolError) as e:
        # say why before hanging up (unless the machine already did); after a
        # store this is what tells a waiting shower to undo (two-phase finish)
        machine.abort(e.reason if isinstance(e, PairingFailed) else Reason.INVALID)
        with contextlib.suppress(Exception):
            await _flush(machine, writer, CLOSE_TIMEOUT)
        raise
    finally:
        if stored is not None and not paired:
            await asyncio.shield(asyncio.to_thread(storage.undo, stored))
        await _close(writer)


async def _read(reader: PairReader, step_timeout: float, deadline: float | None) -> bytes:
    wait = step_timeout if deadline is None else min(step_timeout, deadline - time.monotonic())
    if wait <= 0:
        raise PairingFailed(Reason.EXPIRED)
    try:
        async with asyncio.timeout(wait):
            return await reader.read(READ_SIZE)
    except TimeoutError:
        if deadline is not None and time.monotonic() >= deadline:
            raise PairingFailed(Reason.EXPIRED) from None
        raise PairingFailed(Reason.PEER_GONE, f"no answer within {step_timeout:g} s") from None
    except OSError as e:
        raise PairingFailed(Reason.PEER_GONE, str(e)) from None


async def _flush(machine: PairingMachine, writer: PairWriter, timeout: float) -> None:
    data = machine.data_to_send()
    if not data:
        return
    try:
        writer.write(data)
        async with asyncio.timeout(timeout):
            await writer.drain()
    except (OSError, TimeoutError) as e:
        raise PairingFailed(Reason.PEER_GONE, str(e) or "the connection stalled") from None


async def _close(writer: PairWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await writer.wait_closed()


# --- the shower -------------------------------------------------------------------


Conn = tuple[PairReader, PairWriter]


async def show(window: PairingWindow, own: Hello, storage: Storage, *, host: str,
               on_listening: Callable[[str, int], None] = lambda h, p: None,
               report: Report = lambda s: None, announce: bool = True,
               step_timeout: float = STEP_TIMEOUT) -> PairingResult:  # fmt: skip
    """Hold the window open on ``host`` until a device pairs, or it closes.

    Raises:
        PairingFailed: EXPIRED or TOO_MANY_ATTEMPTS (the listener is gone).
    """
    pending: asyncio.Queue[Conn] = asyncio.Queue(maxsize=1)
    deadline = time.monotonic() + window.remaining(time.monotonic())
    async with listening(window, pending, host=host, on_listening=on_listening, announce=announce):
        return await attempts(window, own, storage, pending, deadline, report, step_timeout)


@contextlib.asynccontextmanager
async def listening(window: PairingWindow, pending: asyncio.Queue[Conn], *, host: str,
                    on_listening: Callable[[str, int], None] = lambda h, p: None,
                    announce: bool = True) -> AsyncIterator[None]:  # fmt: skip
    """The window's listener (and its DNS-SD announcement) while the block runs:
    callers go to ``pending`` (a full queue tells them ``busy``), for ``attempts``."""
    server = await asyncio.start_server(lambda r, w: _queue(pending, r, w), host, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with contextlib.AsyncExitStack() as stack:
            if announce:
                await stack.enter_async_context(announced(window.code.nameplate, host, port))
            on_listening(host, port)
            yield
    finally:
        server.close()
        while not pending.empty():
            await _close(pending.get_nowait()[1])
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await server.wait_closed()


def _queue(pending: asyncio.Queue[Conn], reader: asyncio.StreamReader,
           writer: asyncio.StreamWriter) -> None:  # fmt: skip
    """The accept callback: queue the caller, or tell it we are busy (no task made)."""
    try:
        pending.put_nowait((reader, writer))
    except asyncio.QueueFull:
        writer.write(format_frame({"t": "refused", "why": Reason.BUSY.value}))
        writer.close()


async def attempts(window: PairingWindow, own: Hello, storage: Storage,
                    pending: asyncio.Queue[Conn], deadline: float, report: Report,
                    step_timeout: float) -> PairingResult:  # fmt: skip
    """Run the callers queued in ``pending`` one at a time until one pairs or the
    window closes (any carrier: LAN connections, XMPP pipes)."""
    while True:
        window.check(time.monotonic())
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                reader, writer = await pending.get()
        except TimeoutError:
            raise PairingFailed(Reason.EXPIRED) from None
        report("a device connected")
        machine = PairingMachine.shower(window.code, own)
        try:
            result = await run_attempt(machine, reader, writer, storage,
                                       step_timeout=step_timeout, deadline=deadline)
        except (PairingFailed, RemoteProtocolError) as e:
            window.attempt_failed(e)
            left = window.max_attempts - window.failures
            report(f"attempt failed: {e}" + (f" ({left} left)" if left else ""))
            logger.info("pairing attempt failed: %s", e)
            continue
        window.succeeded()
        return result


def _zeroconf(host: str) -> AsyncZeroconf:
    """Zeroconf on the pairing interface only (all interfaces for a wildcard)."""
    if host in ("", "0.0.0.0", "::"):
        return AsyncZeroconf(interfaces=InterfaceChoice.All, ip_version=IPVersion.V4Only)
    version = IPVersion.V6Only if ipaddress.ip_address(host).version == 6 else IPVersion.V4Only
    return AsyncZeroconf(interfaces=[host], ip_version=version)


def _addresses(host: str) -> list[bytes]:
    if host in ("", "0.0.0.0", "::"):
        import ifaddr  # zeroconf's own dependency for listing interfaces

        return [socket.inet_aton(str(ip.ip)) for a in ifaddr.get_adapters() for ip in a.ips
                if ip.is_IPv4 and not str(ip.ip).startswith("127.")]
    ip = ipaddress.ip_address(host)
    return [ip.packed]


@contextlib.asynccontextmanager
async def announced(nameplate: int, host: str, port: int) -> AsyncIterator[None]:
    """The DNS-SD service of an open window (pairing.md 6.4); removed on exit."""
    instance = secrets.token_hex(4)
    info = AsyncServiceInfo(SERVICE_TYPE, f"{instance}.{SERVICE_TYPE}", port=port,
                            addresses=_addresses(host), server=f"annexsync-{instance}.local.",
                            properties={"v": "1", "np": str(nameplate)})  # fmt: skip
    zc = _zeroconf(host)
    try:
        async with asyncio.timeout(ZEROCONF_TIMEOUT):
            await (await zc.async_register_service(info))
        logger.info("pairing: announced %s on %s:%d", instance, host, port)
        yield
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(ZEROCONF_TIMEOUT):
                await (await zc.async_unregister_service(info))
        with contextlib.suppress(Exception):
            async with asyncio.timeout(ZEROCONF_TIMEOUT):
                await zc.async_close()


# --- the joiner --------------------------------------------------------------------


async def discover(nameplate: int, interface: str = "",
                   timeout: float = DISCOVER_TIMEOUT) -> list[tuple[str, int]]:  # fmt: skip
    """Addresses of the window announcing ``nameplate`` on the LAN; [] when none
    answers within ``timeout``."""
    names: asyncio.Queue[str] = asyncio.Queue(maxsize=64)

    def seen(zeroconf: object, service_type: str, name: str, state_change: object) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            names.put_nowait(name)

    zc = _zeroconf(interface)
    browser = AsyncServiceBrowser(zc.zeroconf, SERVICE_TYPE, handlers=[seen])
    try:
        async with asyncio.timeout(timeout):
            while True:
                found = await _resolve(zc, await names.get(), nameplate)
                if found:
                    return found
    except TimeoutError:
        return []
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(ZEROCONF_TIMEOUT):
                await browser.async_cancel()
                await zc.async_close()


async def _resolve(zc: AsyncZeroconf, name: str, nameplate: int) -> list[tuple[str, int]]:
    info = AsyncServiceInfo(SERVICE_TYPE, name)
    if not await info.async_request(zc.zeroconf, 3000):
        return []
    props = info.properties
    if props.get(b"v") != b"1" or props.get(b"np") != str(nameplate).encode() or not info.port:
        return []
    return [(a, info.port) for a in info.parsed_addresses()]


def parse_hostport(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) for ``--host``.

    Raises:
        ValueError: not of that shape.
    """
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not HOST:PORT: {text!r}")
    return host, int(port)


async def join(code_machine: PairingMachine, storage: Storage, *,
               targets: list[tuple[str, int]], report: Report = lambda s: None,
               step_timeout: float = STEP_TIMEOUT) -> PairingResult:  # fmt: skip
    """Connect to the first target that answers and run the attempt there.

    Raises:
        PairingFailed: NO_WINDOW when nothing listens; else as ``run_attempt``.
    """
    errors = []
    for host, port in targets:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                reader, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError) as e:
            errors.append(f"{host}:{port}: {e or 'no answer'}")
            continue
        report(f"connected to {host}:{port}")
        return await run_attempt(code_machine, reader, writer, storage, step_timeout=step_timeout)
    raise PairingFailed(Reason.NO_WINDOW, "; ".join(errors) or "no device found")
