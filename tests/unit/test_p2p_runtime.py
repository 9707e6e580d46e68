"""The asyncio pump, our client against our server on a socket pair, and helpers."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from core.errors import ContentMissing, RemoteRefused, RemoteUnavailable
from core.p2p import DONE, AuthSuccess, ConnectionClosed, client, server
from core.p2p.remote import P2PClient, parse_ssh_url, shell_command
from core.p2p.runtime import Channel, P2PTimeout
from core.p2p.serving import ServedRepo, Session, new_server_connection
from core.p2p.shell import _options_last, strip_fields
from core.p2p.state import Mode
from core.p2p.transport import Link, ssh_command
from core.repo.key import Key
from core.repo.repository import AnnexRepo

SERVER_UUID_PLACEHOLDER = "s"


async def _pair() -> tuple[Link, Link]:
    a, b = socket.socketpair()
    ra, wa = await asyncio.open_connection(sock=a)
    rb, wb = await asyncio.open_connection(sock=b)
    return Link(ra, wa, "a"), Link(rb, wb, "b")


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 20))


def test_timeout_and_eof() -> None:
    async def go() -> None:
        a, b = await _pair()
        ch = Channel(client(), a.reader, a.writer, read_timeout=0.05)
        with pytest.raises(P2PTimeout) as e:
            await ch.next_event()
        assert isinstance(e.value, TimeoutError) and isinstance(e.value, RemoteUnavailable)
        srv = Channel(server(), b.reader, b.writer)
        await srv.send(AuthSuccess("u1"))
        await srv.aclose()
        assert await ch.next_event() == AuthSuccess("u1")
        await ch.aclose()

    run(go)


def test_eof_is_connection_closed() -> None:
    async def go() -> None:
        a, b = await _pair()
        ch = Channel(client(), a.reader, a.writer, read_timeout=5)
        await b.aclose()
        assert await ch.next_event() == ConnectionClosed(cut_short=True)
        assert await ch.next_event() is DONE
        await ch.aclose()

    run(go)


def _key(data: bytes) -> Key:
    return Key("SHA256E", hashlib.sha256(data).hexdigest() + ".bin", size=len(data))


class Clock:
    now = 1000

    def __call__(self) -> int:
        return self.now


def _serve_and(repo: AnnexRepo, body: Callable[[P2PClient, ServedRepo], Awaitable[None]],
               mode: Mode = Mode.READ_WRITE) -> None:
    async def go() -> None:
        served = ServedRepo(repo, mode=mode, clock=Clock())
        a, b = await _pair()
        ch = Channel(new_server_connection(served), b.reader, b.writer, read_timeout=5)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(Session(served, ch).run(greet=True))
            c = await P2PClient.connect(a, our_uuid="c", expect_uuid=repo.uuid)
            try:
                await body(c, served)
            finally:
                await c.aclose()

    run(go)


def test_client_against_server(tmp_path: Path) -> None:
    repo = AnnexRepo.init(tmp_path / "r", "r")
    data = bytes(range(256)) * 1000
    key = _key(data)
    src = tmp_path / "src.bin"
    src.write_bytes(data)

    async def body(c: P2PClient, served: ServedRepo) -> None:
        assert c.version == 4
        assert not await c.check_present(key)
        sent: list[int] = []
        await c.put(key, src, sent.append)
        assert sum(sent) == len(data) and await c.check_present(key)
        assert repo.uuid in repo.state.locations(key)
        await c.put(key, src, sent.append)  # ALREADY-HAVE
        other = AnnexRepo.init(tmp_path / "o", "o")
        with other.objects.incoming(key) as inc:
            await c.get(key, inc, lambda n: None)
            inc.commit()
        assert other.objects.has(key)
        missing = _key(b"nope")
        with other.objects.incoming(missing) as inc, pytest.raises(ContentMissing):
            await c.get(missing, inc, lambda n: None)
        assert await c.lock(key)
        assert served.locked_here(key)
        await c.unlock()
        assert await c.timestamp() == 1000
        assert not await c.remove(key, before=1000)
        assert await c.check_present(key)
        assert await c.remove(key, before=1001)
        assert not await c.check_present(key)
        assert repo.uuid not in repo.state.locations(key)

    _serve_and(repo, body)


def test_corrupt_put_and_resume(tmp_path: Path) -> None:
    repo = AnnexRepo.init(tmp_path / "r", "r")
    data = b"a" * 100_000
    key = _key(data)
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"b" * 100_000)
    partial = repo.objects.tmp / key.file_name()
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(data[:40_000])
    src = tmp_path / "good.bin"
    src.write_bytes(data)

    async def body(c: P2PClient, served: ServedRepo) -> None:
        sent: list[int] = []
        await c.put(key, src, sent.append)  # resumes at 40000
        assert sum(sent) == 60_000
        assert repo.objects.has(key)
        k2 = _key(b"c" * 100_000)
        with pytest.raises(RemoteRefused):
            await c.put(k2, bad, lambda n: None)
        assert not repo.objects.has(k2)
        assert await c.check_present(key)  # session still usable

    _serve_and(repo, body)


def test_read_only_refusal_keeps_session(tmp_path: Path) -> None:
    repo = AnnexRepo.init(tmp_path / "r", "r")
    src = tmp_path / "x"
    src.write_bytes(b"x")

    async def body(c: P2PClient, served: ServedRepo) -> None:
        with pytest.raises(RemoteRefused, match="read-only"):
            await c.put(_key(b"x"), src, lambda n: None)
        assert not await c.check_present(_key(b"x"))

    _serve_and(repo, body, Mode.READ_ONLY)


def test_wrong_uuid_refused(tmp_path: Path) -> None:
    repo = AnnexRepo.init(tmp_path / "r", "r")

    async def go() -> None:
        served = ServedRepo(repo)
        a, b = await _pair()
        ch = Channel(new_server_connection(served), b.reader, b.writer, read_timeout=5)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(Session(served, ch).run(greet=True))
            with pytest.raises(RemoteUnavailable, match="expected repository"):
                await P2PClient.connect(a, our_uuid="c", expect_uuid="someone-else")

    run(go)


def test_ssh_helpers() -> None:
    assert parse_ssh_url("ssh://u@h:2222/~/r") == ("u@h", 2222, "/~/r")
    assert parse_ssh_url("h:dir/r") == ("h", None, "dir/r")
    with pytest.raises(RemoteUnavailable):
        parse_ssh_url("/local/path")
    cmd = shell_command("annexsync", "/it's", "cu", "su")
    assert cmd == "annexsync 'p2pstdio' '/it'\"'\"'s' 'cu' --uuid 'su'"
    assert ssh_command("h", "c", env={}) == ["ssh", "-T", "h", "c"]
    git_ssh = {"GIT_ANNEX_USE_GIT_SSH": "1", "GIT_SSH_COMMAND": "myssh -q"}
    assert ssh_command("h", "c", port=2, env=git_ssh) == [
        "sh", "-c", 'myssh -q "$@"', "ssh", "-p", "2", "h", "c",
    ]  # fmt: skip


def test_shell_argument_syntax() -> None:
    args = ["/r", "--debug", "cu", "--uuid", "su", "--", "a=b", "--"]
    assert _options_last(strip_fields(args)) == ["/r", "cu", "--debug", "--uuid", "su"]


def test_plus_lists_reach_the_caller(tmp_path: Path) -> None:
    """clusters.md 4.3: a gateway's -PLUS lists come back from put and remove; FAILURE-PLUS
    is a failed removal that still names what went."""
    data = b"fanout"
    key = _key(data)
    src = tmp_path / "src"
    src.write_bytes(data)

    async def gateway(link: Link) -> None:
        async def line() -> bytes:
            return await asyncio.wait_for(link.reader.readline(), 5)

        link.writer.write(b"AUTH-SUCCESS ac65f247-cf26-81e1-8d32-7ed136e64be1\n")
        assert (await line()).startswith(b"VERSION")
        link.writer.write(b"VERSION 4\n")
        assert (await line()).startswith(b"PUT ")
        link.writer.write(b"PUT-FROM 0\n")
        assert await line() == b"DATA 6\n"
        assert await asyncio.wait_for(link.reader.readexactly(6), 5) == data
        assert await line() == b"VALID\n"
        link.writer.write(b"SUCCESS-PLUS n1 n2 n3\n")
        assert await line() == f"REMOVE {key}\n".encode()
        link.writer.write(b"FAILURE-PLUS n2\n")
        assert await line() == f"PUT  {key}\n".encode()
        link.writer.write(b"ALREADY-HAVE-PLUS n1\n")
        await link.writer.drain()

    async def go() -> None:
        a, b = await _pair()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(gateway(b))
            c = await P2PClient.connect(a, our_uuid="me")
            assert await c.put(key, src, lambda n: None) == ("n1", "n2", "n3")
            assert await c.remove_plus(key) == (False, ("n2",))
            assert await c.put(key, src, lambda n: None) == ("n1",)
        await c.aclose()
        await b.aclose()

    run(go)


STDIO_WRITER = """
import asyncio
from core.p2p.transport import stdio_link

async def main():
    link = await stdio_link()
    for i in range({lines}):
        link.writer.write(b"%07d " % i + b"x" * 4088 + b"\\n")
        await link.writer.drain()
    await link.aclose()

asyncio.run(main())
"""


def test_stdio_is_flushed_before_exit() -> None:
    """The p2pstdio server's stdout: what it wrote before it closed reaches a
    slow reader, though the pipe and the writer's buffer were full when it
    closed and the process exits right after (a client would miss its last
    replies otherwise)."""
    import subprocess
    import sys
    import time

    lines = 768  # 3 MiB: more than the pipe (1 MiB) and the writer's buffer hold
    proc = subprocess.Popen([sys.executable, "-c", STDIO_WRITER.format(lines=lines)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    got = bytearray()
    try:
        while chunk := proc.stdout.read1(64 << 10):  # ~3 MB/s: the writer is always ahead
            got += chunk
            time.sleep(0.02)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
        proc.wait()
        proc.stdin.close()
    expected = b"".join(b"%07d " % i + b"x" * 4088 + b"\n" for i in range(lines))
    assert len(got) == len(expected)
    assert got == expected


def test_a_cancelled_close_still_ends_the_process() -> None:
    """Link.aclose cancelled while it waits for the process (a TaskGroup or a
    timeout ending around it): the process is killed all the same, not left
    running with nobody to wait for it."""
    import signal

    from core.p2p.transport import open_subprocess

    async def go() -> None:
        link = await open_subprocess(["sleep", "60"])  # ignores EOF on stdin
        assert link.process is not None
        try:
            closing = asyncio.create_task(link.aclose())
            await asyncio.sleep(0.3)  # waiting for it to exit
            closing.cancel()
            with pytest.raises(asyncio.CancelledError):
                await closing
            async with asyncio.timeout(10):
                assert await link.process.wait() == -signal.SIGKILL
        finally:
            if link.process.returncode is None:
                link.process.kill()
                await link.process.wait()

    run(go)


def test_reap_of_a_process_that_ended_unseen() -> None:
    """The process exits while the loop is busy, so asyncio has not seen it yet
    when reap gives up waiting and kills: nothing raises, no other process is
    signalled, and its own exit status is kept."""
    import time

    from core.p2p import transport

    async def go() -> None:
        proc = await asyncio.create_subprocess_exec("sh", "-c", "exit 3")
        time.sleep(0.5)  # it ends and is reaped by the child watcher; the loop does not look
        saved = transport.CLOSE_TIMEOUT
        transport.CLOSE_TIMEOUT = 0  # give up at once: kill something that already ended
        try:
            await transport.reap(proc)
        finally:
            transport.CLOSE_TIMEOUT = saved
        assert proc.returncode == 3

    run(go)
