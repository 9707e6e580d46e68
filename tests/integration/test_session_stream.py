"""The asyncio adapter on loopback TCP: the reader/writer shape, the
handshake deadline, the refusal value for the status, no task left behind."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from core.errors import SessionRefused
from core.session import PeerCredentials
from core.session.stream import (
    RefusedSession,
    SecureStream,
    SessionTimeout,
    accept_session,
    connect_session,
)

KEY_A, KEY_B = X25519PrivateKey.generate(), X25519PrivateKey.generate()
PSK = os.urandom(32)
A = PeerCredentials("dev-a", KEY_A, "dev-b", KEY_B.public_key(), PSK)
B = PeerCredentials("dev-b", KEY_B, "dev-a", KEY_A.public_key(), PSK)
Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def with_server(serve: Serve, client: Callable[[int], Awaitable[None]]) -> None:
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        await client(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


def run(coro: Awaitable[None]) -> None:
    async def checked() -> None:
        async with asyncio.timeout(15):
            await coro
        await asyncio.sleep(0.05)  # let closed handlers finish
        assert asyncio.all_tasks() == {asyncio.current_task()}  # no orphan task

    asyncio.run(checked())


def test_reader_writer_shape() -> None:
    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        s = await accept_session(r, w, {"dev-a": B}.get)
        try:
            line = await s.reader.readline()
            body = await s.reader.readexactly(100_000)
            s.writer.write(line.upper() + str(len(body)).encode() + b"\n")
            await s.writer.drain()
            assert await s.reader.read(10) == b""  # the client's close
        finally:
            await s.aclose()

    async def client(port: int) -> None:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        s: SecureStream = await connect_session(r, w, A)
        assert s.peer_device_id == "dev-b" and len(s.handshake_hash) == 32
        s.writer.write(b"hello\n" + os.urandom(100_000))
        await s.writer.drain()
        assert await s.reader.readline() == b"HELLO\n"
        assert await s.reader.readline() == b"100000\n"
        assert isinstance(s.reader, asyncio.StreamReader)
        assert isinstance(s.writer, asyncio.StreamWriter)
        await s.aclose()

    run(with_server(serve, client))


def test_silent_peer_hits_the_handshake_deadline() -> None:
    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.read()  # never answers; returns when the client gives up
        w.close()

    async def client(port: int) -> None:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        with pytest.raises(SessionTimeout):
            await connect_session(r, w, A, handshake_timeout=0.3)
        assert w.is_closing()

    run(with_server(serve, client))


def test_refusal_reported_for_the_status() -> None:
    seen: list[RefusedSession] = []

    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with pytest.raises(SessionRefused):
            await accept_session(r, w, {}.get, on_refused=seen.append)

    async def client(port: int) -> None:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        with pytest.raises(SessionRefused) as info:
            await connect_session(r, w, A, on_refused=seen.append)
        assert info.value.by_peer

    run(with_server(serve, client))
    texts = sorted(s.text for s in seen)
    assert texts == ["dev-b no longer trusts this device: the device is not paired with this one",
                     "refused a session from dev-a: the device is not paired with this one"]
    assert all(PSK.hex() not in repr(s) for s in seen)


def test_a_listener_that_is_another_device_says_so() -> None:
    """An address that now reaches another device (dev-c) is told apart from a
    device that forgot us: both ends' words say the session was meant for
    another device."""
    seen: list[RefusedSession] = []

    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with pytest.raises(SessionRefused):
            await accept_session(r, w, {}.get, own_device_id="dev-c", on_refused=seen.append)

    async def client(port: int) -> None:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        with pytest.raises(SessionRefused):
            await connect_session(r, w, A, name="desk", on_refused=seen.append)

    run(with_server(serve, client))
    assert sorted(s.text for s in seen) == [
        "dev-b's address answered as another device (its address may have changed)",
        "refused a session from dev-a: the session was meant for another device"]
