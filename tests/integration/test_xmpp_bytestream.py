"""XEP-0047 bytestreams through a real prosody with TLS on loopback (xmpp-sync C.3).

Two clients on one account open a stream and move 1 MB each way byte-exact;
a stranger's open is refused; a closed sid is refused; the stream cut
(prosody stopped) gives a clean error on both ends and leaves no task.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from slixmpp.exceptions import IqError

from core.errors import RemoteUnavailable
from core.xmpp.bytestream import READ_LIMIT, WINDOW, IbbPair, IbbService, IbbStalled
from core.xmpp.client import _Client, _open
from core.xmpp.ibb import DEFAULT_BLOCK_SIZE, IbbError
from core.xmpp.payloads import bare
from tests.integration.xmpp_helpers import Relay, config, until
from tests.xmpp_server import Prosody

pytestmark = [pytest.mark.timeout(60), pytest.mark.asyncio]

MB = os.urandom(1 << 20)


@asynccontextmanager
async def online(server: Prosody, jid: str, resource: str) -> AsyncIterator[tuple[_Client, IbbService]]:
    client = await _open(config(server, jid), resource, None)
    own = bare(str(client.boundjid))
    service = IbbService(client, lambda peer: bare(peer) == own)
    try:
        yield client, service
    finally:
        service.shutdown()
        await client.shutdown()


async def opened(a: IbbService, b: IbbService, peer: str) -> tuple[IbbPair, IbbPair]:
    async with asyncio.timeout(10):
        mine = await a.open(peer)
        theirs = await b.accept()
    assert (theirs.sid, mine.sid) == (mine.sid, theirs.sid)
    return mine, theirs


async def _send(pair: IbbPair, data: bytes) -> None:
    for i in range(0, len(data), 50_000):
        pair.writer.write(data[i : i + 50_000])
        await pair.writer.drain()


async def test_one_megabyte_each_way_byte_exact(xmpp_server: Prosody) -> None:
    jid = xmpp_server.register("alice", "pw")
    async with online(xmpp_server, jid, "annexsync-aaaa0001") as (_, a), \
            online(xmpp_server, jid, "annexsync-bbbb0002") as (cb, b):  # fmt: skip
        mine, theirs = await opened(a, b, str(cb.boundjid))
        back = MB[::-1]
        async with asyncio.timeout(45), asyncio.TaskGroup() as tg:
            tg.create_task(_send(mine, MB))
            tg.create_task(_send(theirs, back))
            got_b = tg.create_task(theirs.reader.readexactly(len(MB)))
            got_a = tg.create_task(mine.reader.readexactly(len(back)))
        assert hashlib.sha256(got_b.result()).digest() == hashlib.sha256(MB).digest()
        assert got_a.result() == back
        async with asyncio.timeout(10):
            mine.writer.close()
            await mine.writer.wait_closed()
            assert await theirs.reader.read() == b""  # the close is EOF
        # the closed sid is refused: nothing more is read on either side
        with pytest.raises(ConnectionResetError):
            mine.writer.write(b"late")


async def test_a_stranger_is_refused(xmpp_server: Prosody) -> None:
    alice = xmpp_server.register("alice", "pw")
    mallory = xmpp_server.register("mallory", "pw")
    async with online(xmpp_server, alice, "annexsync-aaaa0001") as (ca, a), \
            online(xmpp_server, mallory, "annexsync-eeee0003") as (_, m):  # fmt: skip
        with pytest.raises(RemoteUnavailable, match="forbidden"):
            async with asyncio.timeout(10):
                await m.open(str(ca.boundjid))
        assert a._incoming.empty()


async def test_the_cut_gives_a_clean_error_on_both_ends(xmpp_server: Prosody) -> None:
    jid = xmpp_server.register("alice", "pw")
    before = {t for t in asyncio.all_tasks()}
    async with online(xmpp_server, jid, "annexsync-aaaa0001") as (ca, a), \
            online(xmpp_server, jid, "annexsync-bbbb0002") as (cb, b):  # fmt: skip
        mine, theirs = await opened(a, b, str(cb.boundjid))
        sending = asyncio.ensure_future(_send(mine, MB * 4))
        await theirs.reader.readexactly(100_000)  # blocks are flowing
        xmpp_server.stop()
        async with asyncio.timeout(15):
            with pytest.raises(RemoteUnavailable, match="lost"):
                await sending  # the writer waiting for an ack
            with pytest.raises(RemoteUnavailable, match="lost"):
                await theirs.reader.read(1 << 23)  # the reader waiting for a block
    await asyncio.sleep(0.1)
    assert {t for t in asyncio.all_tasks() if not t.done()} - before <= {asyncio.current_task()}


async def _raw_block(client: _Client, to: str, sid: str, seq: str, data: bytes) -> None:
    """A ``<data/>`` IQ written by hand (as a confused or hostile peer would)."""
    iq = client.make_iq_set(ito=to)
    el = iq["annexsync_ibb_data"]
    el.xml.set("sid", sid)
    el.xml.set("seq", seq)
    el.xml.text = base64.b64encode(data).decode()
    await iq.send(timeout=10)


async def test_no_block_of_another_or_a_closed_sid_is_read(xmpp_server: Prosody) -> None:
    jid = xmpp_server.register("alice", "pw")
    async with online(xmpp_server, jid, "annexsync-aaaa0001") as (ca, a), \
            online(xmpp_server, jid, "annexsync-bbbb0002") as (cb, b):  # fmt: skip
        peer = str(cb.boundjid)
        old, old_theirs = await opened(a, b, peer)
        async with asyncio.timeout(10):
            old.writer.close()
            await old.writer.wait_closed()
        mine, theirs = await opened(a, b, peer)
        for sid, seq in ((old.sid, "0"), (old.sid, "1"), ("never-opened", "0")):
            with pytest.raises(IqError) as e:
                await _raw_block(ca, peer, sid, seq, b"from another session")
            assert e.value.iq["error"]["condition"] == "item-not-found"
        await _raw_block(ca, peer, mine.sid, "0", b"in order")
        with pytest.raises(IqError) as e:  # seq 1 skipped: a lost block
            await _raw_block(ca, peer, mine.sid, "2", b"after a gap")
        assert e.value.iq["error"]["condition"] == "unexpected-request"
        async with asyncio.timeout(10):
            with pytest.raises(IbbError, match="lost"):  # the whole stream is gone
                await theirs.reader.read(100)
            assert await old_theirs.reader.read() == b""


async def test_a_stalled_stream_ends_on_both_sides(xmpp_server: Prosody) -> None:
    jid = xmpp_server.register("alice", "pw")
    async with online(xmpp_server, jid, "annexsync-aaaa0001") as (_, a), \
            online(xmpp_server, jid, "annexsync-bbbb0002") as (cb, b):  # fmt: skip
        b.stall = 0.5
        mine, theirs = await opened(a, b, str(cb.boundjid))
        async with asyncio.timeout(10):
            with pytest.raises(IbbStalled):
                await theirs.reader.read(10)
            assert await mine.reader.read() == b""  # told with <close/>


async def test_a_reader_that_does_not_read_stops_the_sender(xmpp_server: Prosody) -> None:
    """Flow control: the ack of a block waits while the reader is full."""
    jid = xmpp_server.register("alice", "pw")
    async with online(xmpp_server, jid, "annexsync-aaaa0001") as (_, a), \
            online(xmpp_server, jid, "annexsync-bbbb0002") as (cb, b):  # fmt: skip
        mine, theirs = await opened(a, b, str(cb.boundjid))
        full = 2 * READ_LIMIT
        async with asyncio.timeout(30), asyncio.TaskGroup() as tg:
            sending = tg.create_task(_send(mine, MB))
            await until(lambda: len(theirs.reader._buffer) > full, 20, "the reader is full")
            await asyncio.sleep(0.5)  # anything the sender could still push would arrive now
            assert len(theirs.reader._buffer) <= full + WINDOW * DEFAULT_BLOCK_SIZE
            assert not sending.done()
            assert await theirs.reader.readexactly(len(MB)) == MB


async def test_block_size_is_what_the_acceptor_allows(xmpp_server: Prosody) -> None:
    jid = xmpp_server.register("alice", "pw")
    async with online(xmpp_server, jid, "annexsync-aaaa0001") as (_, a), \
            online(xmpp_server, jid, "annexsync-bbbb0002") as (cb, b):  # fmt: skip
        for asked, got in ((8192, 8192), (16384, 4096), (65535, 4096)):
            async with asyncio.timeout(10):
                mine = await a.open(str(cb.boundjid), block_size=asked)
                theirs = await b.accept()
                assert (mine.block_size, theirs.block_size) == (got, got)
                await _send(mine, MB[:100_000])
                assert await theirs.reader.readexactly(100_000) == MB[:100_000]


async def test_one_end_cut_off_gives_a_clean_error_on_both_ends(xmpp_server: Prosody) -> None:
    """A's connection to prosody is cut (a relay closes); B hears A went
    offline.  Both ends fail at once, nothing hangs until the stall timeout."""
    jid = xmpp_server.register("alice", "pw")
    before = set(asyncio.all_tasks())
    async with Relay(xmpp_server.port) as relay:
        cfg_a = config(xmpp_server, jid, via=relay.address)
        client_a = await _open(cfg_a, "annexsync-aaaa0001", None)
        a = IbbService(client_a, lambda peer: True)
        try:
            async with online(xmpp_server, jid, "annexsync-bbbb0002") as (cb, b):
                cb.send_presence(ppriority=-1)  # B hears A's presence, and its end
                client_a.send_presence(ppriority=-1)
                mine, theirs = await opened(a, b, str(cb.boundjid))
                await _send(theirs, b"x" * 10_000)
                assert await mine.reader.readexactly(10_000) == b"x" * 10_000
                sending = asyncio.ensure_future(_send(mine, MB * 4))
                relay.cut()
                async with asyncio.timeout(15):  # well under the 60 s stall timeout
                    with pytest.raises(RemoteUnavailable, match="lost"):
                        await sending
                    with pytest.raises(RemoteUnavailable, match="went offline"):
                        await theirs.reader.read(1 << 23)
                    with pytest.raises(RemoteUnavailable, match="went offline"):
                        theirs.writer.write(b"too late")
        finally:
            a.shutdown()
            await client_a.shutdown()
    await asyncio.sleep(0.1)
    assert {t for t in asyncio.all_tasks() if not t.done()} - before <= {asyncio.current_task()}


async def test_writing_after_the_peer_closed_is_a_clear_error(xmpp_server: Prosody) -> None:
    jid = xmpp_server.register("alice", "pw")
    async with online(xmpp_server, jid, "annexsync-aaaa0001") as (_, a), \
            online(xmpp_server, jid, "annexsync-bbbb0002") as (cb, b):  # fmt: skip
        mine, theirs = await opened(a, b, str(cb.boundjid))
        async with asyncio.timeout(10):
            theirs.writer.close()
            await theirs.writer.wait_closed()
            assert await mine.reader.read() == b""
            mine.writer.write(b"after the end")
            with pytest.raises(RemoteUnavailable, match="closed"):
                await mine.writer.drain()
