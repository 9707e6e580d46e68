"""The devices side of the daemon: identity, paired records, the XMPP link.

Theory of operation
-------------------
``DeviceHub.run`` is one task of the facade's TaskGroup (``core.api``).  It
loads (or makes) this device's identity -- off the loop, since the keyring
blocks -- then runs, in its own TaskGroup, the ``XmppLink`` and a refresher
that recomputes every ``devices_refresh`` seconds (or when kicked) which
paired devices are owed something (``paired.owed``: our refs differ from
what the last sync left).  A keyring that cannot be used stops only this
part: the error shows in ``XmppStatus`` and the rest of the daemon runs.

A third task serves paired devices (``_serve``): each bytestream a peer
opens through the link (``XmppLink.bytestreams``, renewed with every XMPP
session) becomes one task running ``sessions.serve_device``; what a push
brought is merged at once through ``on_received`` (the facade hands it to the
repository's worker, the one place merges run).  Served repositories are
shared by all sessions (``sessions.served_repos``) and flushed at the end.

Pushes (issue 13): a ``PushHub`` (``core.devices.pushes``) runs beside the
link; the lines marked "pushes" below start it and forward the link's
changes, the records and our commits to it.  ``push_job`` is the injected
job (default ``pushes.sync_job``); ``on_scan`` asks for a content scan.

``statuses`` merges what XMPP saw (``Buddies``) with the paired records into
``DeviceStatus`` values (``device_statuses``, pure).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from core.daemon.threads import run_blocking
from core.daemon.timings import Timings
from core.devices import paired, pushes
from core.devices.identity import DeviceIdentity, load_or_create
from core.devices.paired import PairedDevice, PairedStore
from core.devices.remote import lan_answers
from core.devices.sessions import (
    ServedFor,
    SessionRecord,
    outgoing,
    serve_device,
    served_repos,
)
from core.errors import CoreError
from core.session.stream import RefusedSession
from core.settings import Settings
from core.status import DeviceStatus, PeerSession, PushStatus, XmppStatus
from core.xmpp import account
from core.xmpp.buddies import Device
from core.xmpp.bytestream import IbbPair
from core.xmpp.client import Backoff, XmppConfig, XmppLink
from core.xmpp.payloads import Hello, bare

logger = logging.getLogger(__name__)

ACCEPT_POLL = 1.0  # how often the server loop looks for a renewed XMPP session
MAX_REFUSED = 5
MAX_SESSIONS = 10  # sessions kept for the status
SESSION_TICK = 1.0  # how often a running session refreshes the status


async def merge_received(path: Path) -> None:
    """Merge what a paired device pushed (no daemon worker to hand it to)."""
    from core.daemon import jobs

    try:
        await run_blocking(jobs.receive, str(path))
    except CoreError as e:
        logger.warning("merging what arrived in %s: %s", path, e)


def device_statuses(seen: tuple[Device, ...], records: list[PairedDevice],
                    owed: dict[str, bool]) -> tuple[DeviceStatus, ...]:  # fmt: skip
    """Seen devices and paired ones, one entry per device id (pure)."""
    by_id = {r.device_id: r for r in records}
    out: dict[str, DeviceStatus] = {}
    for d in seen:
        rec = by_id.get(d.device_id)
        out[d.device_id] = DeviceStatus(
            name=rec.name if rec else d.name, device_id=d.device_id, account=d.account,
            presence=d.presence, last_seen=d.last_seen, paired=rec is not None,
            owed=owed.get(d.device_id, False), transport=_transport(rec, d.presence),
        )  # fmt: skip
    for r in records:
        if r.device_id not in out:
            account_jid = bare(r.transports.xmpp) if r.transports.xmpp else None
            out[r.device_id] = DeviceStatus(
                name=r.name, device_id=r.device_id, account=account_jid, presence="offline",
                last_seen=r.last_seen, paired=True, owed=owed.get(r.device_id, False),
                transport=_transport(r, "offline"),
            )  # fmt: skip
    return tuple(sorted(out.values(), key=lambda s: (not s.paired, s.name, s.device_id)))


def _transport(record: PairedDevice | None, presence: str) -> str | None:
    """How a paired device is reached (issue 15): XMPP while it is online there,
    else the LAN when it gave an address, else XMPP."""
    if record is None:
        return None
    if presence == "online" or not record.transports.lan:
        return "XMPP" if record.transports.xmpp or presence == "online" else None
    return "LAN"


def _owed(records: list[PairedDevice]) -> dict[str, bool]:
    result: dict[str, bool] = {}
    for r in records:
        owed_any = False
        for repo in r.repos:
            top = Path(repo.path)
            with contextlib.suppress(CoreError, OSError):
                name = paired.remote_of(top, r.device_id)
                owed_any = owed_any or (name is not None and paired.owed(top, name))
        result[r.device_id] = owed_any
    return result


class DeviceHub:
    def __init__(self, config_dir: Path, settings: Callable[[], Settings], *,
                 timings: Timings, on_change: Callable[[], None],
                 paused: Callable[[], bool],
                 on_received: Callable[[Path], Awaitable[None]] | None = None) -> None:  # fmt: skip
        self.config_dir = Path(config_dir)
        self.settings = settings
        self.timings = timings
        self.on_change = on_change
        self.paused = paused
        self.on_received = on_received or merge_received
        self.refused: list[RefusedSession] = []  # the last few, for the status
        self._sessions: collections.deque[SessionRecord] = collections.deque(maxlen=MAX_SESSIONS)
        self.identity: DeviceIdentity | None = None
        self.store: PairedStore | None = None
        self.link: XmppLink | None = None
        self.error: str | None = None
        self._records: list[PairedDevice] = []
        self._owed: dict[str, bool] = {}
        self._lan_up: set[str] = set()  # devices whose listener answered the last probe
        self._refresh = asyncio.Event()
        # pushes (issue 13)
        self.push_job: pushes.PushJob = pushes.sync_job
        self.on_scan: Callable[[str, str], None] = lambda _path, _device: None
        self.pushes: pushes.PushHub | None = None

    async def run(self) -> None:
        try:
            ident = self.identity = await run_blocking(load_or_create, self.config_dir)
        except CoreError as e:
            self.error = f"this device has no identity yet: {e}"
            self.on_change()
            await asyncio.Event().wait()  # nothing more to do until restarted
            return
        self.store = PairedStore(self.config_dir, ident.device_id)
        self.link = XmppLink(
            self._config, hello=Hello(ident.device_id, ident.name),
            contacts=self._contacts, on_change=self._link_changed, paused=self.paused,
            backoff=Backoff(self.timings.xmpp_backoff_first, self.timings.xmpp_backoff_most),
        )  # fmt: skip
        self.pushes = pushes.PushHub(ident.device_id, self.push_job, on_change=self.on_change,
                                     on_scan=self.on_scan)  # fmt: skip
        self.link.on_session = self.pushes.signals.attach
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.link.run(), name="xmpp-link")
            tg.create_task(self.pushes.run(), name="pushes")
            tg.create_task(self._refresher(), name="devices-refresh")
            tg.create_task(self._serve(), name="devices-serve")

    async def _serve(self) -> None:
        """Serve every bytestream a paired device opens (module header)."""
        served_for, close = served_repos()
        try:
            async with asyncio.TaskGroup() as tg:
                while True:
                    service = self.link.bytestreams if self.link is not None else None
                    if service is None:
                        await asyncio.sleep(ACCEPT_POLL)
                        continue
                    try:  # the service ends with its XMPP session: look again now and then
                        async with asyncio.timeout(ACCEPT_POLL):
                            pair = await service.accept()
                    except TimeoutError:
                        continue
                    tg.create_task(self._serve_one(pair, served_for), name=f"serve {pair.sid}")
        finally:
            await close()

    async def _serve_one(self, pair: IbbPair, served_for: ServedFor) -> None:
        """One session over XMPP, shown in the status while it runs (bytes every second)."""
        stream = pair.stream
        track = SessionRecord(pair.peer, "incoming",
                              (lambda: (stream.bytes_in, stream.bytes_out)) if stream else
                              (lambda: (0, 0)), transport="xmpp")  # fmt: skip
        await self._serve_stream(pair.reader, pair.writer, served_for, track, account=pair.peer)

    async def serve_lan(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        served_for: ServedFor) -> None:  # fmt: skip
        """One session a paired device opened on the TCP listener (``core.p2p.sniff``):
        no account to check, the Noise handshake alone says who it is."""
        peer = writer.get_extra_info("peername")
        name = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "a LAN peer"
        await self._serve_stream(reader, writer, served_for,
                                 SessionRecord(name, "incoming", transport="lan"))  # fmt: skip

    async def _serve_stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            served_for: ServedFor, track: SessionRecord,
                            account: str | None = None) -> None:  # fmt: skip
        if self.store is None or self.identity is None:
            logger.info("session from %s refused: this device has no identity yet", track.device)
            writer.close()
            return
        self._sessions.append(track)
        self.on_change()
        try:
            async with asyncio.TaskGroup() as tg:
                ticker = tg.create_task(self._tick())
                try:
                    await serve_device(reader, writer, store=self.store,
                                       identity=self.identity, served_for=served_for,
                                       on_received=self.on_received, account=account,
                                       name=track.device, on_refused=self._refused, track=track)
                finally:
                    ticker.cancel()
        except Exception as e:  # noqa: BLE001 - one bad session must not stop the others
            logger.warning("session with %s ended: %s", track.device, e)
            track.end("failed", str(e))
        finally:
            self.on_change()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(SESSION_TICK)
            self.on_change()

    def sessions(self) -> tuple[PeerSession, ...]:
        """Recent sessions with paired devices (live ones and the last few ended)."""
        mine = outgoing(self.identity.device_id) if self.identity is not None else []
        both = sorted([*self._sessions, *mine], key=lambda t: t.started)
        return tuple(t.snapshot() for t in both[-MAX_SESSIONS:])

    def _refused(self, r: RefusedSession) -> None:
        self.refused = [*self.refused[-(MAX_REFUSED - 1):], r]
        self.on_change()

    async def _config(self) -> XmppConfig | None:
        return await run_blocking(account.load_config, self.settings())

    def _contacts(self) -> set[str]:
        return {bare(r.transports.xmpp) for r in self._records if r.transports.xmpp}

    def refresh(self) -> None:
        self._refresh.set()

    async def reload(self) -> None:
        """Read the paired records again and probe their LAN listeners, now (the
        refresher does it every ``devices_refresh``; a pairing or forget made by
        the command line asks for it through the instance socket)."""
        if self.store is None:
            return
        try:
            self._records = await run_blocking(self.store.records)
            self._owed = await run_blocking(_owed, self._records)
            if self.pushes is not None:  # pushes
                self.pushes.set_records(self._records)
            async with asyncio.TaskGroup() as tg:  # each probe waits up to 2 s: at once
                probes = {r.device_id: tg.create_task(lan_answers(r.transports.lan))
                          for r in self._records if r.transports.lan}
            self._lan_up = {device for device, probe in probes.items() if probe.result()}
        except CoreError as e:
            logger.warning("paired devices: %s", e)
        self.on_change()

    async def _refresher(self) -> None:
        while True:
            self._refresh.clear()  # before: a refresh asked during the reload is kept
            await self.reload()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.timings.devices_refresh):
                    await self._refresh.wait()

    def _link_changed(self) -> None:
        """pushes: the link's news goes to the scheduler, then to the status."""
        if self.link is not None and self.pushes is not None:
            self.pushes.link_news(self.link)
        self.on_change()

    def branch_moved(self, path: str) -> None:
        """pushes: we committed in ``path``; paired devices sharing it are behind."""
        if self.pushes is not None:
            self.pushes.branch_moved(path)

    def sync_now(self, path: str | None = None) -> None:
        """pushes: the person asked to sync ``path`` (None: all) now; no back-off waits."""
        if self.pushes is not None:
            self.pushes.sync_now(path)

    def scheduler_pushes(self, path: str, device_id: str) -> bool:
        """pushes: whether the push scheduler pushes ``path`` to the device now."""
        return self.pushes is not None and self.pushes.serves(path, device_id)

    def push_statuses(self) -> tuple[PushStatus, ...]:
        return self.pushes.statuses() if self.pushes is not None else ()

    def kick(self, *, restart: bool = False) -> None:
        """The network is back (``restart``: after sleep, drop the old stream too)."""
        if self.link is not None:
            self.link.kick(restart=restart)

    def lan_reachable(self, device_id: str) -> bool:
        """Whether the device's LAN listener answered the last probe (every
        ``devices_refresh``): the workers' probe for devices without XMPP."""
        return device_id in self._lan_up

    def statuses(self) -> tuple[DeviceStatus, ...]:
        seen = self.link.buddies.devices() if self.link else ()
        return device_statuses(seen, self._records, self._owed)

    def xmpp_status(self) -> XmppStatus:
        jid = self.settings().xmpp_account
        if not jid:
            return XmppStatus()
        if self.error:
            return XmppStatus(jid, "error", self.error)
        if self.link is None:
            return XmppStatus(jid, "off" if not jid else "connecting")
        return XmppStatus(jid, self.link.state.value, self.link.error)
