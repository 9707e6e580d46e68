"""Two annexsync peers over the TCP listener with AUTH tokens (spec 4.2, 8).

The listener runs on its own event loop in a thread; the client side is the
synchronous ``P2PRemote`` behind ``core.ops.transfer``, or raw sockets for
peers that misbehave (garbage, a lying DATA length, silence).
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.ops.add import add
from core.ops.transfer import copy, drop, get
from core.p2p.listener import Listener
from core.p2p.remote import P2PRemote
from core.p2p.serving import ServedRepo
from core.remotes import find_remote, open_remote
from core.repo.key import Key
from core.repo.repository import AnnexRepo
from tests.conftest import git

TOKEN = "0123456789abcdef0123456789ABCDEF"
CLIENT = "c1c1c1c1-0000-4000-8000-000000000001"


class ListenerThread:
    def __init__(self, served: ServedRepo, **kw: float) -> None:
        self.listener = Listener(served, [TOKEN], **kw)  # type: ignore[arg-type]
        self.loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()
        assert self._started.wait(10)

    def _main(self) -> None:
        async def main() -> None:
            started = asyncio.Event()
            self._task = asyncio.current_task()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._signal(started))
                await self.listener.run(started)

        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(main())
        except asyncio.CancelledError:
            pass
        finally:
            self.loop.close()

    async def _signal(self, started: asyncio.Event) -> None:
        await started.wait()
        self._started.set()

    def stop(self) -> None:
        assert self._task is not None
        self.loop.call_soon_threadsafe(self._task.cancel)
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.fixture
def peers(tmp_path: Path) -> Iterator[tuple[AnnexRepo, AnnexRepo, ListenerThread]]:
    server = AnnexRepo.init(tmp_path / "server", "served")
    (server.path / "s.bin").write_bytes(os.urandom(250_000))
    os.chdir(server.path)
    add(server, ["s.bin"])
    git(server.path, "commit", "-q", "-m", "s")
    git(tmp_path, "clone", "-q", str(server.path), str(tmp_path / "client"))
    client = AnnexRepo.open(tmp_path / "client")
    lt = ListenerThread(ServedRepo(AnnexRepo.open(server.path)), read_timeout=1.0, idle_timeout=2.0)
    port = lt.listener.port
    git(client.path, "config", "remote.origin.url", f"p2p-annex::tcp:127.0.0.1:{port}")
    git(client.path, "config", "remote.origin.annexsync-p2p-authtoken", TOKEN)
    git(client.path, "config", "remote.origin.annex-uuid", server.uuid)
    client = AnnexRepo.open(client.path)
    os.chdir(client.path)
    yield server, client, lt
    lt.stop()


def _line(sock: socket.socket) -> bytes:
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        buf += chunk
    return buf


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s


def _auth(sock: socket.socket) -> bytes:
    sock.sendall(f"AUTH {CLIENT} {TOKEN}\n".encode())
    return _line(sock)


def test_get_copy_drop_between_annexsync_peers(peers: tuple[AnnexRepo, AnnexRepo, ListenerThread]) -> None:
    server, client, _ = peers
    remote = open_remote(client, find_remote(client, "origin"))
    assert isinstance(remote, P2PRemote)
    remote.close()
    outcomes = get(client, ["s.bin"], source="origin")
    assert all(o.ok for o in outcomes), outcomes
    assert (client.path / "s.bin").read_bytes() == (server.path / "s.bin").read_bytes()
    (client.path / "c.txt").write_bytes(b"client file\n")
    add(client, ["c.txt"])
    git(client.path, "commit", "-q", "-m", "c")
    assert all(o.ok for o in copy(client, ["c.txt"], to="origin"))
    key = Key.parse(os.readlink(client.path / "c.txt").rsplit("/", 1)[1])
    assert server.objects.has(key)
    assert server.uuid in AnnexRepo.open(server.path).state.locations(key)
    assert all(o.ok for o in drop(client, ["c.txt"], source="origin"))
    assert not server.objects.has(key)
    # local drop relying on the listener's lock
    assert all(o.ok for o in drop(client, ["s.bin"]))


def test_auth_rules(peers: tuple[AnnexRepo, AnnexRepo, ListenerThread]) -> None:
    server, _, lt = peers
    with _connect(lt.listener.port) as s:
        s.sendall(b"VERSION 4\n")
        assert _line(s) == b"ERROR unexpected command\n"
        s.sendall(f"AUTH {CLIENT} wrongtoken\n".encode())
        assert _line(s) == b"AUTH-FAILURE\n"
        s.sendall(f"AUTH {CLIENT} bad-token!\n".encode())
        assert _line(s) == b"ERROR unknown command\n"
        s.sendall(f"AUTH {CLIENT} {TOKEN.upper()}\n".encode())
        assert _line(s) == f"AUTH-SUCCESS {server.uuid}\n".encode()
        s.sendall(b"VERSION 4\nFROBNICATE\nGETTIMESTAMP\n")
        assert _line(s) == b"VERSION 4\n"
        assert _line(s) == b"ERROR unknown command\n"
        assert _line(s).startswith(b"TIMESTAMP ")


def test_creds_file_tokens(peers: tuple[AnnexRepo, AnnexRepo, ListenerThread]) -> None:
    server, _, lt = peers
    creds = server.gitdir / "annex" / "creds"
    creds.mkdir(parents=True, exist_ok=True)
    (creds / "p2pauth").write_text("feedbeef p2p-annex::tcp:somewhere\n")
    with _connect(lt.listener.port) as s:
        s.sendall(f"AUTH {CLIENT} FEEDBEEF\n".encode())
        assert _line(s) == f"AUTH-SUCCESS {server.uuid}\n".encode()


def test_bad_peers_do_not_stop_the_listener(peers: tuple[AnnexRepo, AnnexRepo, ListenerThread]) -> None:
    server, client, lt = peers
    port = lt.listener.port
    key = Key("SHA256E", "0" * 64 + ".bin", size=250_000)
    silent = _connect(port)  # says nothing at all
    garbage = _connect(port)
    garbage.sendall(b"G" + os.urandom(40_000).replace(b"\n", b"x"))  # an overlong line
    liar = _connect(port)
    assert _auth(liar).startswith(b"AUTH-SUCCESS")
    liar.sendall(f"VERSION 4\nPUT  {key}\n".encode())
    assert _line(liar) == b"VERSION 4\n"
    assert _line(liar) == b"PUT-FROM 0\n"
    liar.sendall(b"DATA 250000\n" + b"x" * 1000)  # then silence
    junk = _connect(port)
    assert _auth(junk).startswith(b"AUTH-SUCCESS")
    junk.sendall(b"\x00\xff garbage\nDATA -5\n")
    assert _line(junk) == b"ERROR unknown command\n"
    assert _line(junk) == b"ERROR unknown command\n"

    # Meanwhile a good client is served, while all of the above are open.
    t0 = time.monotonic()
    outcomes = get(client, ["s.bin"], source="origin")
    assert all(o.ok for o in outcomes), outcomes
    assert time.monotonic() - t0 < 1.0

    garbage.settimeout(10)
    assert garbage.recv(100) == b""  # dropped without an ERROR (spec 2.1)
    silent.settimeout(10)
    assert silent.recv(100) == b""  # idle timeout
    liar.settimeout(10)
    assert liar.recv(100) == b""  # read timeout inside DATA
    # The liar's 1000 bytes are kept for resume, nothing unverified is stored.
    assert not server.objects.has(key)
    assert (server.gitdir / "annex" / "tmp" / key.file_name()).stat().st_size == 1000
    for s in (silent, garbage, liar, junk):
        s.close()
    deadline = time.monotonic() + 10  # the sessions see the closes as they come
    while lt.listener.active > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lt.listener.active <= 1


def test_first_bytes_neither_auth_nor_a_session_are_refused(
        peers: tuple[AnnexRepo, AnnexRepo, ListenerThread]) -> None:  # fmt: skip
    """The listener tells git-annex peers from paired devices by the first bytes
    (core.p2p.sniff); anything else gets one ERROR line, is closed, nothing served."""
    from core.p2p.sniff import REFUSAL
    from core.session.frames import Frame, Kind, format_frame
    from core.session.machine import hello_body

    lt = peers[2]
    hello = format_frame(Frame(Kind.HELLO, hello_body("a" * 36, "b" * 36)))
    for first in (b"\x16\x03\x01\x02\x00", b"\x00\x05Xjunk", b"auth x y\n", hello):
        with _connect(lt.listener.port) as s:  # no paired handler here: a HELLO is refused too
            s.sendall(first + f"\nAUTH {CLIENT} {TOKEN}\n".encode())
            assert _line(s) == REFUSAL
            assert s.recv(100) == b""
    with _connect(lt.listener.port) as s:  # and AUTH still works after all that
        assert _auth(s).startswith(b"AUTH-SUCCESS")
