"""``annexsync::paired:<device id>`` remotes: a paired device reached over the LAN or XMPP.

Spec: xmpp-sync.md C.3-C.4 and the issue's decision (the P2P protocol over
the encrypted session carries content and git).

Theory of operation
-------------------
``paired_remote`` builds a ``PairedRemote`` from what this process can read
(blocking): this device's identity and key, the device's record and pair
secret (``PairedStore``), the XMPP account (``account.load_config``: JID from
the settings, password from the keyring).  Anything missing is a
``RemoteUnavailable`` that says what, in words.

A ``PairedRemote`` is a ``P2PRemote`` (GET/PUT with resume and verification,
LOCKCONTENT, REMOVE: unchanged) whose coroutines run on a loop in a thread of
its own (``LoopThread``), because that loop also holds what must outlive one
call: the ``Visitor`` XMPP connection (logged in on first use, then the
device's presence is waited for, bounded) and, while git runs, the git gate.

Decision (the brief left it open): a command *and the daemon's jobs* reach
the device through a visitor connection of their own, never through the
daemon's ``XmppLink``.  The transfer and sync jobs run in worker threads
with blocking code; borrowing the link would move every byte between two
event loops.  A visitor costs one login (~0.3 s on loopback) per operation.

Every session picks its carrier (issue 14): when the device's record has LAN
addresses (``Transports.lan``, from pairing), a TCP connection to the
first that answers within ``LAN_CONNECT_TIMEOUT`` (the device's listener,
which tells our session from git-annex peers by its first bytes,
``core.p2p.sniff``); else, or when none answers, an IBB stream to the
device's full JID (from its record).  A LAN that did not answer is not tried
again for this remote's life (one operation).  The session's status says
which carrier it used (``PeerSession.transport``).  Then the Noise
handshake as initiator (``sessions.open_device_session``), then
P2P ``AUTH <our repository uuid> <its repository uuid>``: the device serves
that repository only if it is shared with us (``sessions.serve_device``).

git (fetch, push) goes through CONNECT: ``git_gate`` serves a unix socket
(``gate_path``: one per device and repository) for as long as the caller
runs git; ``git-remote-annexsync`` (``core.p2p.tunnel``), started by git for
the ``annexsync::paired:`` URL, connects to it and asks for a service, and
the gate relays it over a fresh session (``P2PClient.connect_service``).
The socket lives in a directory only this user can enter, named by
``$ANNEXSYNC_PAIRED_GATES``, set once per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Awaitable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from core.devices.identity import load_identity
from core.devices.paired import PairedDevice, PairedStore
from core.devices.sessions import (
    SessionRecord,
    credentials_for,
    open_device_session,
    own_refs,
    selector,
    track_outgoing,
)
from core.errors import CoreError, RemoteRefused, RemoteUnavailable, SessionRefused
from core.p2p.messages import Service
from core.p2p.remote import P2PClient, P2PRemote
from core.p2p.transport import Link
from core.remotetypes import PAIRED_PREFIX, RemoteInfo
from core.repo.repository import AnnexRepo
from core.session import PeerCredentials
from core.settings import load_settings, resolve_config_dir
from core.xmpp import account
from core.xmpp.bytestream import IbbPair
from core.xmpp.client import XmppConfig
from core.xmpp.visitor import PRESENCE_TIMEOUT, Visitor

logger = logging.getLogger(__name__)

T = TypeVar("T")
GATES_ENV = "ANNEXSYNC_PAIRED_GATES"
GATE_HELLO_TIMEOUT = 10.0
LAN_CONNECT_TIMEOUT = 2.0  # a listener on the LAN answers at once, or is not there
STOP_TIMEOUT = 30.0


class LoopThread:
    """An event loop running in a daemon thread, stopped by ``stop``."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        async def wrapped() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(timeout)

    def stop(self) -> None:
        """Cancel what is left on the loop (slixmpp's own tasks), then end it."""
        if self.loop.is_closed():
            return
        with contextlib.suppress(Exception):
            self.run(_cancel_rest(), STOP_TIMEOUT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(STOP_TIMEOUT)
        if not self._thread.is_alive():
            self.loop.close()


async def _cancel_rest() -> None:
    me = asyncio.current_task()
    rest = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
    for t in rest:
        t.cancel()
    if rest:
        await asyncio.wait(rest, timeout=STOP_TIMEOUT / 6)


# --- the gate git's helper reaches ---------------------------------------------------


def gates_dir() -> Path:
    """This process's directory of gate sockets (mode 0700), named in the environment."""
    d = Path(tempfile.gettempdir()) / f"annexsync-gates-{os.getuid()}-{os.getpid()}"
    d.mkdir(mode=0o700, exist_ok=True)
    os.environ[GATES_ENV] = str(d)
    return d


def gate_path(gates: Path, device_id: str, gitdir: str | Path) -> Path:
    """The socket for one device and one repository (short: sockets have ~100 bytes)."""
    name = hashlib.sha256(f"{device_id}\0{os.path.realpath(gitdir)}".encode()).hexdigest()
    return gates / f"{name[:24]}.sock"


_gate_locks: dict[Path, threading.Lock] = {}
_gate_locks_lock = threading.Lock()


def _gate_lock(path: Path) -> threading.Lock:
    with _gate_locks_lock:
        return _gate_locks.setdefault(path, threading.Lock())


# --- the remote ------------------------------------------------------------------------


class PairedRemote(P2PRemote):
    """A paired device's repository (see the module docstring)."""

    def __init__(self, info: RemoteInfo, repo: AnnexRepo, device: PairedDevice,
                 creds: PeerCredentials, cfg: XmppConfig | None, *,
                 presence_timeout: float = PRESENCE_TIMEOUT) -> None:  # fmt: skip
        if not info.uuid:
            raise RemoteUnavailable(f"{info.name}: the device's repository uuid is unknown")
        if not device.transports.xmpp and not device.transports.lan:
            raise RemoteUnavailable(f"{info.name}: {device.name} has no LAN or XMPP address "
                                    "to reach")  # fmt: skip
        self.thread = LoopThread(f"paired {device.name}")
        super().__init__(info, repo.uuid, self._open_link, token=selector(info.uuid),
                         run_on=self.thread.loop)  # fmt: skip
        self.device = device
        self.creds = creds
        self.cfg = cfg
        self.gitdir = repo.gitdir
        self.peer_jid = device.transports.xmpp
        self.presence_timeout = presence_timeout
        self._visitor: Visitor | None = None
        self._unreachable: RemoteUnavailable | None = None
        self._lan_down: str | None = None  # why the LAN did not answer (not tried again)
        self.gate_error: CoreError | None = None  # why the last git relay failed
        self.repo_path = repo.path
        self._tracks: list[SessionRecord] = []  # this remote's sessions, for the status

    @property
    def own_device_id(self) -> str:
        return self.creds.own_device_id

    def refspecs(self, branch: str | None, annex_branch: str) -> list[str]:
        """What a push to the device writes (C.3): our refs under our own prefix
        there, the branch fast-forward only, the git-annex branch forced."""
        prefix = own_refs(self.our_uuid, self.own_device_id)
        specs = [f"+{annex_branch}:{prefix}git-annex"]
        if branch:
            specs.insert(0, f"refs/heads/{branch}:{prefix}{branch}")
        return specs

    async def _visit(self) -> Visitor:
        """The visitor connection, logged in once; a device found offline stays
        offline for this remote's life (one operation), so no file waits again."""
        if self._unreachable is not None:
            raise self._unreachable
        if self.cfg is None or not self.peer_jid:
            self._unreachable = RemoteUnavailable(self._no_xmpp())
            raise self._unreachable
        if self._visitor is not None and self._visitor.client.lost.done():
            await self._visitor.aclose()  # the connection dropped: log in again
            self._visitor = None
        if self._visitor is None:
            visitor = await Visitor.open(self.cfg, self.own_device_id)
            try:
                if not await visitor.wait_online(self.peer_jid, self.presence_timeout):
                    self._unreachable = RemoteUnavailable(
                        f"{self.device.name} is offline: not seen on XMPP within "
                        f"{self.presence_timeout:g} s")  # fmt: skip
                    raise self._unreachable
            except BaseException:
                await visitor.aclose()
                raise
            self._visitor = visitor
        return self._visitor

    def _no_xmpp(self) -> str:
        lan = f"its LAN address did not answer ({self._lan_down})" if self._lan_down else (
            "it has no LAN address")
        how = ("no XMPP account is set up (annexsync xmpp login)" if self.peer_jid else
               "it has no XMPP address")  # fmt: skip
        return f"{self.device.name} is unreachable: {lan}, and {how}"

    async def _lan(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """A TCP connection to the device's listener, or None (the LAN is down)."""
        if self._lan_down is not None or not self.device.transports.lan:
            return None
        stream, why = await open_lan(self.device.transports.lan)
        if stream is None:
            self._lan_down = why
            logger.info("%s: not reachable on the LAN (%s)", self.device.name, why)
        return stream

    async def _carrier(self, track: SessionRecord
                       ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:  # fmt: skip
        """The stream a session runs over: the LAN when it answers, else XMPP."""
        lan = await self._lan()
        if lan is not None:
            track.transport = "lan"
            return lan
        try:
            visitor = await self._visit()
        except CoreError as e:
            if isinstance(e, RemoteUnavailable):
                raise
            raise RemoteUnavailable(f"{self.device.name}: {e}") from e
        track.transport = "xmpp"
        pair = await self._stream(visitor)
        stream = pair.stream
        if stream is not None:
            track.counts = lambda: (stream.bytes_in, stream.bytes_out)
        return pair.reader, pair.writer

    async def _open_link(self) -> Link:
        track = SessionRecord(self.device.name, "outgoing")
        track.device_id, track.repo = self.device.device_id, str(self.repo_path)
        try:
            reader, writer = await self._carrier(track)
        except BaseException as e:
            track.end("failed", str(e) or type(e).__name__)
            raise
        track_outgoing(self.own_device_id, track)
        self._tracks.append(track)
        try:
            secure = await open_device_session(reader, writer, self.creds,
                                               name=self.device.name)  # fmt: skip
        except SessionRefused as e:
            track.end("refused", e.reason)
            raise SessionRefused(e.peer_device_id, e.reason, by_peer=e.by_peer,
                                 name=self.device.name) from e  # fmt: skip
        except BaseException as e:
            track.end("failed", str(e) or type(e).__name__)
            raise
        track.state = "open"
        return Link(secure.reader, secure.writer, self.device.name)

    async def _stream(self, visitor: Visitor) -> IbbPair:
        """The bytestream a session runs over (tests put a hostile server here)."""
        assert self.peer_jid is not None  # _visit checked it
        return await visitor.open_stream(self.peer_jid)

    async def _connect(self) -> P2PClient:
        try:
            return await super()._connect()
        except RemoteRefused as e:
            raise RemoteRefused(f"{self.device.name} does not share repository {self.info.uuid} "
                                f"with this one ({self.our_uuid})") from e  # fmt: skip

    # --- git through CONNECT ----------------------------------------------------------

    @contextlib.contextmanager
    def git_gate(self) -> Iterator[None]:
        """Serve the gate for ``git-remote-annexsync`` while the caller runs git."""
        path = gate_path(gates_dir(), self.device.device_id, self.gitdir)
        with _gate_lock(path):
            stop = asyncio.Event()
            ready: asyncio.Future[None] = self.thread.loop.create_future()
            done = asyncio.run_coroutine_threadsafe(self._gate(path, ready, stop),
                                                    self.thread.loop)  # fmt: skip
            try:
                asyncio.run_coroutine_threadsafe(_wait(ready), self.thread.loop).result(
                    STOP_TIMEOUT)
                yield
            finally:
                self.thread.loop.call_soon_threadsafe(stop.set)
                with contextlib.suppress(Exception):
                    done.result(STOP_TIMEOUT)

    async def _gate(self, path: Path, ready: asyncio.Future[None], stop: asyncio.Event) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        async with asyncio.TaskGroup() as tg:

            def accepted(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                tg.create_task(self._serve_git(r, w))

            server = await asyncio.start_unix_server(accepted, str(path))
            try:
                ready.set_result(None)
                await stop.wait()
            finally:
                server.close()
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    async def _serve_git(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One helper: ``connect <service>``, then ``ok`` and the relay, or ``error <text>``."""
        client: P2PClient | None = None
        try:
            async with asyncio.timeout(GATE_HELLO_TIMEOUT):
                line = (await reader.readline()).decode("utf-8", "replace").strip()
            service = Service(line.removeprefix("connect "))
            client = await self._connect()
            writer.write(b"ok\n")
            await writer.drain()
            code = await client.connect_service(service, reader, writer)
            logger.info("%s: %s exited %d", self.device.name, service.value, code)
        except Exception as e:  # noqa: BLE001 - one helper's failure ends only its relay
            logger.info("git to %s: %s", self.device.name, e)
            self.gate_error = e if isinstance(e, CoreError) else RemoteUnavailable(
                f"{self.device.name}: {e}")  # git prints only "rejected": keep why
            with contextlib.suppress(Exception):
                writer.write(f"error {' '.join(str(e).split())}\n".encode())
                await writer.drain()
        finally:
            if client is not None:
                await client.aclose()
            writer.close()

    def close(self) -> None:
        super().close()
        for track in self._tracks:
            track.end("done")
        if not self.thread.loop.is_closed():
            visitor, self._visitor = self._visitor, None
            if visitor is not None:
                with contextlib.suppress(Exception):
                    self.thread.run(visitor.aclose(), STOP_TIMEOUT)
        self.thread.stop()


async def open_lan(addresses: Iterable[str]
                   ) -> tuple[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None, str]:
    """A TCP connection to the first of ``addresses`` (HOST:PORT) that accepts one
    within ``LAN_CONNECT_TIMEOUT``, or None and why none did, in words."""
    why: list[str] = []
    for where in addresses:
        host, _, port = where.rpartition(":")
        try:
            async with asyncio.timeout(LAN_CONNECT_TIMEOUT):
                return await asyncio.open_connection(host.strip("[]"), int(port)), ""
        except TimeoutError:
            why.append(f"{where}: no answer within {LAN_CONNECT_TIMEOUT:g} s")
        except (OSError, ValueError) as e:
            why.append(f"{where}: {getattr(e, 'strerror', None) or e}")
    return None, "; ".join(why) or "no address"


async def lan_answers(addresses: Iterable[str]) -> bool:
    """Whether a listener answers at one of ``addresses`` (the daemon's probe);
    the connection is closed at once, which the listener takes as a silent peer."""
    stream, _ = await open_lan(addresses)
    if stream is None:
        return False
    stream[1].close()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(LAN_CONNECT_TIMEOUT):
            await stream[1].wait_closed()
    return True


async def _wait(fut: asyncio.Future[None]) -> None:
    await fut


_config_dirs: dict[str, Path] = {}


def use_config_dir(repo_path: str | Path, config_dir: Path) -> None:
    """The daemon serving ``repo_path`` has ``config_dir``: its paired devices'
    remotes use that identity (a process may hold several instances, as tests
    do); elsewhere ``resolve_config_dir`` decides, as for every command."""
    _config_dirs[os.path.realpath(repo_path)] = Path(config_dir)


def paired_remote(repo: AnnexRepo, info: RemoteInfo) -> PairedRemote:
    """The ``Remote`` of a paired device (blocking: keyring, files).

    Raises:
        RemoteUnavailable: something it needs is missing, said in words.
    """
    assert info.url is not None and info.url.startswith(PAIRED_PREFIX)
    device_id = info.url.removeprefix(PAIRED_PREFIX)
    config_dir = _config_dirs.get(os.path.realpath(repo.path)) or resolve_config_dir()
    try:
        identity = load_identity(config_dir)
        if identity is None:
            raise RemoteUnavailable(f"{info.name}: this device has no identity in {config_dir}; "
                                    "pair it first")  # fmt: skip
        store = PairedStore(config_dir, identity.device_id)
        device = store.get(device_id)
        if device is None:
            raise RemoteUnavailable(f"{info.name}: device {device_id} is not paired with this "
                                    "device")  # fmt: skip
        creds = credentials_for(store, identity, device_id)
        if creds is None:
            raise RemoteUnavailable(f"{info.name}: the pair secret of {device.name} is not in the "
                                    "keyring; pair again")  # fmt: skip
        cfg = account.load_config(load_settings(config_dir))
    except RemoteUnavailable:
        raise
    except CoreError as e:
        raise RemoteUnavailable(f"{info.name}: {e}") from e
    if cfg is None and not device.transports.lan:
        raise RemoteUnavailable(f"{info.name}: {device.name} is reached through XMPP, and no "
                                "XMPP account is set up (annexsync xmpp login)")  # fmt: skip
    return PairedRemote(info, repo, device, creds, cfg)


__all__ = ["GATES_ENV", "LAN_CONNECT_TIMEOUT", "LoopThread", "PairedRemote", "gate_path",
           "gates_dir", "lan_answers", "open_lan", "paired_remote", "use_config_dir"]  # fmt: skip
