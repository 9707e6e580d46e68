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
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from core.devices.identity import DeviceIdentity
from core.devices.paired import PairedDevice, PairedStore
from core.errors import CoreError
from core.p2p.machine import server as server_machine
from core.p2p.messages import Service
from core.p2p.runtime import DEFAULT_READ_TIMEOUT, Channel
from core.p2p.serving import ServedRepo, Session
from core.repo.repository import annex_uuid_at
from core.session import PeerCredentials
from core.session.stream import Report, SecureStream, accept_session, connect_session
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


@dataclass(frozen=True)
class Served:
    """What one served session did (for logs, status and tests)."""

    device_id: str
    repo: Path | None
    pushed: bool  # a receive-pack ran and exited 0


async def serve_device(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                       store: PairedStore, identity: DeviceIdentity, served_for: ServedFor,
                       on_received: Received, account: str | None = None, name: str = "peer",
                       on_refused: Report | None = None,
                       idle_timeout: float = IDLE_TIMEOUT) -> Served | None:  # fmt: skip
    """Serve one paired device's session on ``reader``/``writer`` to its end.

    ``account``: the XMPP account the stream came from (checked against the
    record), None for transports without one.  ``served_for`` gives the
    process-wide ``ServedRepo`` of a path; ``on_received`` merges after a push.
    Returns None when the session was refused.  Never raises ``CoreError``
    (a broken or refused session is logged); cancellation propagates.
    """
    try:
        creds = await asyncio.to_thread(load_credentials, store, identity)
        records = {r.device_id: r for r in await asyncio.to_thread(store.records)}
    except CoreError as e:
        logger.warning("cannot serve %s: %s", name, e)
        writer.close()
        return None
    try:
        secure = await accept_session(reader, writer, creds.get, name=name, on_refused=on_refused)
    except CoreError as e:
        logger.info("session from %s not opened: %s", name, e)
        return None
    try:
        record = records[secure.peer_device_id]
        if account is not None and not _same_account(record, account):
            security.warning("refused %s: it came from %s, its record names %s", record.name,
                             account, record.transports.xmpp)  # fmt: skip
            return None
        return await _serve_p2p(secure, record, served_for, on_received, idle_timeout)
    except CoreError as e:
        logger.info("session with %s ended: %s", name, e)
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
    "IDLE_TIMEOUT", "Served", "credentials_for", "load_credentials", "open_device_session",
    "own_refs", "selector", "serve_device", "served_repos",
]  # fmt: skip
