"""One paired device's session, served or opened, whatever stream carries it.

Spec: xmpp-sync.md C.3 (per-sender refs, merge at once), C.4 (the Noise
session), the issue's decision (the P2P protocol over the session replaces
C.2's push-open/push-done and C.3's send-pack).

Theory of operation
-------------------
Serving (``serve_device``): a byte stream arrived (an IBB stream through
XMPP today, a LAN connection later).  This device's credentials for every
paired device are loaded off the loop (keyring) once per stream, so the
handshake's lookup is a dictionary: a device that is not paired, or whose
pair secret is gone, is refused by ``accept_session`` (logged on
``annexsync.security``, reported through ``on_refused``).  When the stream's
transport names an account (XMPP), it must be the account in the device's
record.  Then the P2P protocol runs in networked mode: the client's ``AUTH
<its repository uuid> <the repository it wants>`` picks the repository --
only one shared with *that* device in its record, with the uuid its record
names for the client side; anything else is ``AUTH-FAILURE``, logged in
words.  Authentication is the session's; the AUTH token only selects.
CONNECT is served (git fetch and push, spec 6.8) with receive-pack limited to
``refs/synced/<client uuid>/<device id>/`` (``own_refs``), and after a
receive-pack that exited 0 ``on_received`` merges what arrived.

Opening (``open_device_session``): the client half over any reader/writer
pair; ``PairedRemote`` (core.devices.remote) uses it over XMPP.

Everything a session does happens in the caller's task; the secure stream is
closed in ``finally``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from core.devices.identity import DeviceIdentity
from core.devices.paired import PairedDevice, PairedStore
from core.errors import CoreError, SessionRefused
from core.p2p.machine import server as server_machine
from core.p2p.messages import Service
from core.p2p.runtime import DEFAULT_READ_TIMEOUT, Channel
from core.p2p.serving import ServedRepo, Session
from core.repo.repository import annex_uuid_at
from core.session import PeerCredentials
from core.session.stream import Report, SecureStream, accept_session, connect_session
from core.status import PeerSession, SessionDirection, SessionState, SessionTransport
from core.xmpp.payloads import bare

logger = logging.getLogger(__name__)
security = logging.getLogger("annexsync.security")

IDLE_TIMEOUT = 600.0  # between requests of one session (a scheduler job opens a new one)

ServedFor = Callable[[Path], Awaitable[ServedRepo]]
Received = Callable[[Path], Awaitable[None]]


def own_refs(client_uuid: str, device_id: str) -> str:
    """The refs a device's push may write here (C.3: one writer per ref)."""
    return f"refs/synced/{client_uuid}/{device_id}/"


def selector(repo_uuid: str) -> str:
    """The AUTH token that names a repository: its uuid without dashes (a P2P
    token is ``[A-Za-z0-9]+``); the session, not the token, authenticates."""
    return repo_uuid.replace("-", "").lower()


def load_credentials(store: PairedStore, identity: DeviceIdentity) -> dict[str, PeerCredentials]:
    """Credentials for every paired device whose secret is in the keyring (blocking).

    Raises:
        IdentityError, SecretsUnavailable: our key cannot be read.
        PairingStoreError: the records are unreadable.
    """
    private = identity.private_key()
    out: dict[str, PeerCredentials] = {}
    for rec in store.records():
        secret = store.secret(rec.device_id)
        if secret is None:
            logger.warning("paired device %s has no pair secret in the keyring", rec.name)
            continue
        out[rec.device_id] = PeerCredentials(identity.device_id, private, rec.device_id,
                                             secret.peer_static_pub, secret.pair_secret)
    return out


def credentials_for(store: PairedStore, identity: DeviceIdentity,
                    device_id: str) -> PeerCredentials | None:  # fmt: skip
    """One device's credentials (blocking), None when it is not paired."""
    return load_credentials(store, identity).get(device_id)


class SessionRecord:
    """One session's facts as they change; ``snapshot`` is its status value.

    ``counts`` reads the bytes the stream under the session moved (IBB's
    counters), so the status shows a transfer progressing.
    """

    def __init__(self, peer: str, direction: SessionDirection,
                 counts: Callable[[], tuple[int, int]] = lambda: (0, 0), *,
                 transport: SessionTransport | None = None) -> None:  # fmt: skip
        self.device = peer
        self.transport = transport
        self.direction: SessionDirection = direction
        self.counts = counts
        self.device_id: str | None = None
        self.state: SessionState = "handshake"
        self.repo: str | None = None
        self.reason: str | None = None
        self.started = time.time()

    @property
    def live(self) -> bool:
        return self.state in ("handshake", "open")

    def end(self, state: SessionState, reason: str | None = None) -> None:
        if self.live:
            self.state, self.reason = state, reason

    def snapshot(self) -> PeerSession:
        got, sent = self.counts()
        return PeerSession(self.device, self.direction, self.state, self.device_id, self.repo,
                           got, sent, self.started, self.reason, self.transport)  # fmt: skip


_outgoing: collections.deque[tuple[str, SessionRecord]] = collections.deque(maxlen=20)
_outgoing_lock = threading.Lock()


def track_outgoing(own_device_id: str, record: SessionRecord) -> None:
    """A session this process opened as ``own_device_id`` (``PairedRemote``),
    for the status of the daemon of that device (which may run its jobs in
    threads with loops of their own)."""
    with _outgoing_lock:
        _outgoing.append((own_device_id, record))


def outgoing(own_device_id: str) -> list[SessionRecord]:
    with _outgoing_lock:
        return [r for own, r in _outgoing if own == own_device_id]


@dataclass(frozen=True)
class Served:
    """What one served session did (for logs, status and tests)."""

    device_id: str
    repo: Path | None
    pushed: bool  # a receive-pack ran and exited 0


async def serve_device(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                       store: PairedStore, identity: DeviceIdentity, served_for: ServedFor,
                       on_received: Received, account: str | None = None, name: str = "peer",
                       on_refused: Report | None = None, idle_timeout: float = IDLE_TIMEOUT,
                       track: SessionRecord | None = None) -> Served | None:  # fmt: skip
    """Serve one paired device's session on ``reader``/``writer`` to its end.

    ``account``: the XMPP account the stream came from (checked against the
    record), None for transports without one.  ``served_for`` gives the
    process-wide ``ServedRepo`` of a path; ``on_received`` merges after a push.
    ``track`` follows the session for the status.  Returns None when the
    session was refused or broke.  Never raises ``CoreError`` (a broken or
    refused session is logged); cancellation propagates.
    """
    track = track or SessionRecord(name, "incoming")
    try:
        try:
            creds = await asyncio.to_thread(load_credentials, store, identity)
            records = {r.device_id: r for r in await asyncio.to_thread(store.records)}
        except CoreError as e:
            logger.warning("cannot serve %s: %s", name, e)
            writer.close()
            track.end("failed", str(e))
            return None
        try:
            secure = await accept_session(reader, writer, creds.get, name=name,
                                          own_device_id=identity.device_id,
                                          on_refused=on_refused)  # fmt: skip
        except SessionRefused as e:
            track.end("refused", e.reason)
            return None
        except CoreError as e:
            logger.info("session from %s not opened: %s", name, e)
            track.end("failed", str(e))
            return None
        return await _serve_secure(secure, records, account, served_for, on_received,
                                   idle_timeout, track)  # fmt: skip
    finally:
        track.end("failed", "the session ended unexpectedly")


async def _serve_secure(secure: SecureStream, records: dict[str, PairedDevice],
                        account: str | None, served_for: ServedFor, on_received: Received,
                        idle_timeout: float, track: SessionRecord) -> Served | None:  # fmt: skip
    try:
        record = records[secure.peer_device_id]
        track.device, track.device_id, track.state = record.name, record.device_id, "open"
        if account is not None and not _same_account(record, account):
            why = f"it came from {bare(account)}, its record names another account"
            security.warning("refused %s: %s", record.name, why)
            track.end("refused", why)
            return None
        served = await _serve_p2p(secure, record, served_for, on_received, idle_timeout)
        track.repo = str(served.repo) if served and served.repo else None
        if served is None or served.repo is None:
            track.end("refused", "it asked for a repository it does not share with this device")
        track.end("done")
        return served
    except CoreError as e:
        logger.info("session with %s ended: %s", track.device, e)
        track.end("failed", str(e))
        return None
    finally:
        await secure.aclose()


def _same_account(record: PairedDevice, account: str) -> bool:
    return record.transports.xmpp is not None and bare(record.transports.xmpp) == bare(account)


async def _serve_p2p(secure: SecureStream, record: PairedDevice, served_for: ServedFor,
                     on_received: Received, idle_timeout: float) -> Served | None:  # fmt: skip
    shared = await asyncio.to_thread(_shared_repos, record)
    if not shared:
        security.warning("%s opened a session but shares no repository with this device",
                         record.name)  # fmt: skip
        return None
    chosen: list[tuple[Path, str]] = []
    pushed: list[bool] = []

    async def authenticate(client_uuid: str, wanted: str) -> ServedRepo | None:
        found = shared.get(wanted.lower())
        if found is None or found[1] != client_uuid:
            security.warning("%s asked for repository %s as %s: not shared with it",
                             record.name, wanted, client_uuid)  # fmt: skip
            return None
        chosen.append((found[0], client_uuid))
        return await served_for(found[0])

    async def after_connect(service: Service, code: int) -> None:
        if service is Service.RECEIVE_PACK and code == 0 and chosen:
            pushed.append(True)
            await on_received(chosen[-1][0])

    first = await served_for(next(iter(shared.values()))[0])
    channel = Channel(server_machine(networked=True, mode=first.mode), secure.reader,
                      secure.writer, read_timeout=DEFAULT_READ_TIMEOUT, peer=record.name)
    session = Session(first, channel, authenticate=authenticate, idle_timeout=idle_timeout,
                      auth_timeout=DEFAULT_READ_TIMEOUT, networked_extras=True,
                      own_refs=lambda client: own_refs(client, record.device_id),
                      after_connect=after_connect)  # fmt: skip
    await session.run(greet=False)
    return Served(record.device_id, chosen[-1][0] if chosen else None, bool(pushed))


def _shared_repos(record: PairedDevice) -> dict[str, tuple[Path, str]]:
    """Our repository uuid -> (path, the device's repository uuid) for this device."""
    out: dict[str, tuple[Path, str]] = {}
    for repo in record.repos:
        uuid = annex_uuid_at(Path(repo.path))
        if uuid:
            out[selector(uuid)] = (Path(repo.path), repo.peer_uuid)
    return out


async def open_device_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                              creds: PeerCredentials, *, name: str,
                              on_refused: Report | None = None) -> SecureStream:  # fmt: skip
    """The client half: the handshake as initiator over any stream.

    Raises:
        SessionRefused, SessionTimeout, RemoteUnavailable: see ``connect_session``.
    """
    return await connect_session(reader, writer, creds, name=name, on_refused=on_refused)


def served_repos() -> tuple[ServedFor, Callable[[], Awaitable[None]]]:
    """A per-process cache of ``ServedRepo`` by path, and its closer (flushes)."""
    from core.repo.repository import AnnexRepo

    cache: dict[Path, ServedRepo] = {}
    lock = asyncio.Lock()

    async def served_for(path: Path) -> ServedRepo:
        async with lock:
            key = Path(path).resolve()
            if key not in cache:
                repo = await asyncio.to_thread(AnnexRepo.open, key)
                cache[key] = ServedRepo(repo)
            return cache[key]

    async def close() -> None:
        for served in cache.values():
            with contextlib.suppress(Exception):
                await asyncio.to_thread(served.flush)
            with contextlib.suppress(Exception):
                served.repo.close()
        cache.clear()

    return served_for, close


__all__ = [
    "IDLE_TIMEOUT", "Served", "SessionRecord", "credentials_for", "outgoing", "track_outgoing", "load_credentials", "open_device_session",
    "own_refs", "selector", "serve_device", "served_repos",
]  # fmt: skip
