"""Pushes with paired devices: the scheduler runners, fed from XMPP, running push jobs.

Spec: xmpp-sync.md C.5-C.7 and part B; docs/xmpp-protocol.md (scheduling).

Theory of operation
-------------------
``PushHub.run`` is one task of the ``DeviceHub``'s TaskGroup.  It owns, in
its own TaskGroup, the signalling server (``core.xmpp.signalling``) and one
``SchedulerRunner`` per *shared repository* (one of our repositories that at
least one paired device shares).  A runner's devices are the paired records
sharing that repository, each known by its own device id, its repository
uuid there and its account (B.26): several devices behind one account stay
apart.  Lanes (one outgoing, one incoming push at a time) are therefore per
shared repository.

What becomes a scheduler event:

* ``link_changed`` (the XMPP link changed): the stream coming up is
  ``Connected``, going down or a new session ``Disconnected``; a paired
  device's resource becoming online (proved ours by disco + hello,
  ``core.xmpp.buddies``) on the device's own account, or leaving, is a
  ``PresenceChanged``.  Nothing reaches a runner before its device's presence.
  A device the machine took for unreachable (an IQ error or no answer) while
  XMPP still shows it online is announced again at the next records refresh
  (``set_records``, every ``devices_refresh`` = 30 s): so a transient refusal
  (records not loaded yet on the other side) delays, never stops, syncing.
* ``branch_moved(path)`` (the repository worker committed, merged a
  resolution or changed the location log) is ``LocalCommit``; ``sync_now``
  (the person's "Sync now") is ``SyncNow``.
* ``on_control`` (a received IQ): ``route`` finds the shared repository from
  ``dev`` and ``repo`` -- a device that is not paired, or a uuid that is not
  that device's, is refused ``not-authorized`` and logged, nothing changes --
  and the runner's machine checks the account and answers at once.  An
  advertise's ``want`` needs a ref lookup, done in a thread.

Actions: ``SendAdvertise``/``SendPushRequest`` become IQs to the device's
current full JID; ``StartJob`` runs ``_run_job``: an outgoing push first
sends ``push-open`` (busy -> refused, the peer asks us later), then the
injected ``PushJob`` runs with a ``PushControl``.  An incoming push runs the
same ``PushJob`` with the accepted session id.  The job is injected (the P2P
session over XEP-0047 of issue 12 plugs in there); the default,
``sync_job``, runs ``core.ops.sync`` against the device's
``annexsync::paired:`` remote, which plain git cannot reach yet, so it fails
with that reason in words.

Status: ``statuses`` turns every runner's ``JobView`` into ``PushStatus``
values with epoch times (the runner's clock is the loop's monotonic one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.daemon.threads import run_blocking
from core.devices.paired import PairedDevice, SharedRepo
from core.errors import CoreError
from core.repo.repository import annex_uuid_at
from core.scheduler import events as ev
from core.scheduler.events import Direction, Limits, Wait
from core.scheduler.machine import Scheduler
from core.scheduler.runner import Answer, JobControl, JobResult, SchedulerRunner
from core.status import PushStatus
from core.xmpp import signal
from core.xmpp.buddies import Device
from core.xmpp.client import State, XmppLink
from core.xmpp.payloads import bare, shorten
from core.xmpp.signal import Control
from core.xmpp.signalling import PeerBusy, Refusal, Signalling

logger = logging.getLogger(__name__)


@dataclass
class PushControl:
    """What a push job gets besides the device and repository.

    ``session``: the session id (outgoing: the one our push-open announced;
    incoming: the one the peer's push-open announced), by which the job finds
    its stream.  ``waiting`` says what the job waits for now (resets its
    deadline: C.5), ``progress`` how far it got.
    """

    job: JobControl
    session: str | None
    bytes_done: int = 0
    bytes_total: int | None = None
    on_progress: Callable[[], None] = lambda: None

    def waiting(self, wait: Wait) -> None:
        self.job.waiting(wait)

    def progress(self, done: int, total: int | None = None) -> None:
        self.bytes_done, self.bytes_total = done, total
        self.on_progress()


PushJob = Callable[[PairedDevice, SharedRepo, Direction, PushControl], Awaitable[JobResult]]


def route(records: list[PairedDevice], dev: str, repo: str) -> tuple[PairedDevice, SharedRepo] | str:
    """The paired device ``dev`` and the repository it shares as ``repo``, or why not."""
    record = next((r for r in records if r.device_id == dev), None)
    if record is None:
        return "message from a device that is not paired"
    shared = next((s for s in record.repos if s.peer_uuid == repo), None)
    if shared is None:
        return "repository uuid does not match the paired device"
    return record, shared


def scheduler_devices(records: list[PairedDevice], path: str) -> tuple[ev.PairedDevice, ...]:
    """The scheduler's view of the devices sharing ``path`` (pure)."""
    return tuple(
        ev.PairedDevice(r.device_id, s.peer_uuid, bare(r.transports.xmpp or ""))
        for r in records for s in r.repos if s.path == path
    )  # fmt: skip


# --- refs, off the loop ------------------------------------------------------------------


def our_refs(path: str) -> tuple[tuple[str, str], ...]:
    """The current branch and the git-annex branch, as advertised (C.2)."""
    from dulwich.refs import Ref
    from dulwich.repo import Repo

    out: list[tuple[str, str]] = []
    with Repo(path) as git:
        head = git.refs.read_ref(Ref(b"HEAD")) or b""
        names = [head.removeprefix(b"ref: refs/heads/")] if head.startswith(b"ref: ") else []
        for name in [*names, b"git-annex"]:
            sha = git.refs.as_dict().get(Ref(b"refs/heads/" + name))
            if sha is not None:
                out.append((name.decode(), bytes(sha).decode()))
    return tuple(dict(out).items())


def lacks_any(path: str, shas: tuple[str, ...]) -> bool:
    """Whether any of ``shas`` is missing from the repository's object store."""
    from dulwich.objects import ObjectID
    from dulwich.repo import Repo

    with Repo(path) as git:
        return any(ObjectID(sha.encode()) not in git.object_store for sha in shas)


# --- the default job ---------------------------------------------------------------------


async def sync_job(device: PairedDevice, shared: SharedRepo, direction: Direction,
                   control: PushControl) -> JobResult:  # fmt: skip
    """The default job: the P2P session of ``core.devices.jobs`` (issue 12).

    Outgoing: push our branches into the device's per-sender refs, which it
    merges at once.  Incoming: the device pushes to us through its own session
    (``sessions.serve_device`` merges it); our side fetches from it too, so the
    job ends when we hold what it has, without a push-done message.
    """
    from core.devices.jobs import pull_from_device, push_to_device

    control.waiting(Wait.IDLE)
    move = push_to_device if direction is Direction.OUTGOING else pull_from_device
    try:
        outcome = await move(shared.path, device.device_id)
    except CoreError as e:
        return JobResult(False, f"{device.name} is not reachable: {e}")
    if not outcome.ok:
        return JobResult(False, f"{device.name} is not reachable: {outcome.error or 'no answer'}")
    return JobResult(True, changed=outcome.changed)


# --- one shared repository ---------------------------------------------------------------


class _Runner(SchedulerRunner):
    """A runner that reports every event it took (the status may have changed)."""

    def __init__(self, *args: Any, on_event: Callable[[], None], **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.on_event = on_event

    def receive(self, event: ev.Event) -> list[Answer]:
        answers = super().receive(event)
        self.on_event()
        return answers


@dataclass
class _Repo:
    path: str
    uuid: str = ""
    runner: _Runner | None = None
    ready: bool = False
    error: str | None = None  # why this repository's pushes stopped, in words
    started: dict[int, float] = field(default_factory=dict)
    ended: dict[int, float] = field(default_factory=dict)
    controls: dict[int, PushControl] = field(default_factory=dict)


class PushHub:
    def __init__(self, own_id: str, job: PushJob, *, on_change: Callable[[], None],
                 on_scan: Callable[[str, str], None] = lambda _p, _d: None,
                 limits: Limits | None = None, wall: Callable[[], float] = time.time,
                 ) -> None:  # fmt: skip
        self.own_id = own_id
        self.job = job
        self.on_change = on_change
        self.on_scan = on_scan
        self.limits = limits or Limits()
        self.wall = wall
        self.signals = Signalling(self)
        self._records: list[PairedDevice] = []
        self._repos: dict[str, _Repo] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._online = False
        self._session = 0
        self._present: dict[str, str] = {}  # device id -> full JID of its online resource

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                self._sync_repos()
                await self.signals.serve()
        finally:
            self._tg = None
            self._tasks.clear()

    # --- inputs ---------------------------------------------------------------------

    def set_records(self, records: list[PairedDevice]) -> None:
        """The paired devices now (pairing, forgetting, a record's repositories)."""
        self._records = list(records)
        self._sync_repos()
        self._revive()

    def _revive(self) -> None:
        """A device the machine took for unreachable (an IQ error or timeout, B.6) that XMPP
        still shows online is tried again: at each records refresh (every 30 s), and at
        once when a message from it arrives (it may have refused us only because it had
        not loaded our new pairing record yet)."""
        for r in list(self._repos.values()):
            for dev in sorted(self._present):
                self._revive_one(r, dev)

    def _revive_one(self, r: _Repo, dev: str) -> None:
        jid = self._present.get(dev)
        if (jid and r.ready and r.runner is not None and self._shares(r, dev)
                and not r.runner.machine.present(dev)):
            self._feed(r, ev.PresenceChanged(jid, dev, True))

    def link_news(self, link: XmppLink) -> None:
        """``XmppLink.on_change``: pass on what the link knows now."""
        self.link_changed(link.state is State.ONLINE, link.sessions, link.buddies.devices())

    def link_changed(self, online: bool, session: int, devices: tuple[Device, ...]) -> None:
        """What the XMPP link knows now: stream up or down, which devices are online."""
        if self._online and (not online or session != self._session):
            self._online, self._present = False, {}
            self._broadcast([ev.Disconnected()])
        if online and not self._online:
            self._online, self._session = True, session
            self._broadcast([ev.Connected()])
        present = {d.device_id: d.jid for d in devices if online and d.presence == "online"}
        old, self._present = self._present, present
        for dev in sorted(set(old) | set(present)):
            if old.get(dev) == present.get(dev):
                continue
            changes: list[ev.Event] = [ev.PresenceChanged(jid, dev, up) for jid, up in
                                       ((old.get(dev), False), (present.get(dev), True)) if jid]
            self._to_sharing(dev, changes)

    def serves(self, path: str, device_id: str) -> bool:
        """Whether this hub pushes ``path`` to ``device_id`` now: its runner runs and the
        device is online on XMPP (the repository worker then leaves git pushes to it)."""
        r = self._repos.get(str(path))
        return (r is not None and r.ready and r.runner is not None
                and device_id in self._present and self._shares(r, device_id))  # fmt: skip

    def branch_moved(self, path: str) -> None:
        """Our branch or git-annex branch in ``path`` moved: every device sharing it is behind."""
        r = self._repos.get(str(path))
        if r is not None:
            self._feed(r, ev.LocalCommit())

    def sync_now(self, path: str | None = None) -> None:
        """The person's "Sync now" (``Core.sync_now``) for ``path`` (None: every
        repository): a device in back-off after a failed push, or taken for
        unreachable while XMPP shows it online, is tried at once (``ev.SyncNow``)."""
        self._revive()
        for r in list(self._repos.values()):
            if path is None or r.path == str(path):
                self._feed(r, ev.SyncNow())

    async def on_control(self, jid: str, control: Control) -> str:
        """The signalling receiver: route, let the machine decide, answer (module header)."""
        found = route(self._records, control.dev, control.repo)
        if isinstance(found, str):
            logger.info("signalling: refused %s from %s: %s", control.action, shorten(jid), found)
            raise Refusal("not-authorized", found)
        _record, shared = found
        r = self._repos.get(shared.path)
        if r is None or not r.ready or r.runner is None:
            raise Refusal("service-unavailable")
        self._revive_one(r, control.dev)
        sender = ev.Sender(jid, control.dev, control.repo)
        event: ev.Event
        if control.action == signal.ADVERTISE:
            event = ev.AdvertiseReceived(sender)
        elif control.action == signal.REQUEST:
            event = ev.PushRequestReceived(sender)
        else:
            event = ev.PushOfferReceived(sender, control.sid)
        for answer in self._feed(r, event):
            return await self._answer(r, answer, control)
        raise Refusal("service-unavailable")

    async def _answer(self, r: _Repo, answer: Answer, control: Control) -> str:
        if isinstance(answer, ev.Reject):
            raise Refusal("not-authorized", answer.reason)
        if isinstance(answer, ev.AnswerAdvertise):
            return "want" if await run_blocking(lacks_any, r.path, control.shas) else "uptodate"
        if isinstance(answer, ev.AnswerRequest):
            return "queued"
        if not answer.accepted:
            raise Refusal("resource-constraint", retry_after=answer.retry_after)
        return "accepted"

    # --- runners --------------------------------------------------------------------

    def _shares(self, r: _Repo, device_id: str) -> bool:
        return any(d.device_id == device_id for d in scheduler_devices(self._records, r.path))

    def _feed(self, r: _Repo, *events: ev.Event) -> list[Answer]:
        """Give ``events`` to the repository's runner if it runs; the answers of the last.

        An error in the runner (a bug: the machine refusing a move) stops this
        repository's pushes, says so in the status (``statuses``) and never
        reaches the caller -- a commit, the XMPP link, the signalling receiver.
        """
        answers: list[Answer] = []
        if not r.ready or r.runner is None:
            return answers
        try:
            for e in events:
                answers = r.runner.receive(e)
        except Exception as exc:  # noqa: BLE001 - shown in the status, logged with its trace
            self._broke(r, exc)
            return []
        return answers

    def _broke(self, r: _Repo, exc: BaseException) -> None:
        logger.error("pushes for %s stopped", r.path, exc_info=exc)
        while isinstance(exc, BaseExceptionGroup):  # the runner's TaskGroup wraps it
            exc = exc.exceptions[0]
        r.error = f"pushes stopped after an internal error ({type(exc).__name__}: {exc})"
        r.ready = False
        task = self._tasks.get(r.path)
        if task is not None and task is not asyncio.current_task():
            task.cancel()  # its jobs end and clean up (runner.run's finally)
        self.on_change()

    def _broadcast(self, events: list[ev.Event]) -> None:
        for r in list(self._repos.values()):
            self._feed(r, *events)

    def _to_sharing(self, device_id: str, events: list[ev.Event]) -> None:
        """Feed ``events`` to the runners of the repositories ``device_id`` shares."""
        for r in list(self._repos.values()):
            if self._shares(r, device_id):
                self._feed(r, *events)

    def _sync_repos(self) -> None:
        if self._tg is None:
            return
        wanted = {s.path for rec in self._records for s in rec.repos}
        for path in set(self._repos) - wanted:
            self._repos.pop(path)
            task = self._tasks.pop(path, None)
            if task is not None:
                task.cancel()
        for path in sorted(wanted):
            r = self._repos.get(path)
            if r is None:
                self._repos[path] = _Repo(path)
                self._tasks[path] = self._tg.create_task(self._run_repo(path), name=f"pushes {path}")
            else:
                self._feed(r, ev.DevicesChanged(scheduler_devices(self._records, path)))

    async def _run_repo(self, path: str) -> None:
        r = self._repos[path]
        try:
            r.uuid = await run_blocking(_uuid_of, path)
            if not r.uuid:
                logger.warning("pushes: %s has no annex uuid; no pushes with paired devices", path)
                return
            runner = r.runner = _Runner(
                Scheduler(scheduler_devices(self._records, path), self.limits),
                lambda a: self._send(r, a), lambda s, c: self._run_job(r, s, c),
                lambda dev: self.on_scan(path, dev), on_event=self.on_change)  # fmt: skip
            async with asyncio.TaskGroup() as tg:
                tg.create_task(runner.run())
                await asyncio.sleep(0)  # the runner owns its group now
                r.ready = True
                self._replay(r)
        except Exception as exc:  # noqa: BLE001 - a bug here stops this repository's pushes, not the daemon
            self._broke(r, exc)
        finally:
            r.ready = False
            self.on_change()

    def _replay(self, r: _Repo) -> None:
        """A runner that starts late learns the state the others got event by event."""
        events: list[ev.Event] = [ev.DevicesChanged(scheduler_devices(self._records, r.path))]
        if self._online:
            events.append(ev.Connected())
            events += [ev.PresenceChanged(jid, dev, True) for dev, jid in sorted(self._present.items())
                       if self._shares(r, dev)]  # fmt: skip
        assert r.runner is not None
        for e in events:  # an error here ends _run_repo, which says so (_broke)
            r.runner.receive(e)

    # --- actions --------------------------------------------------------------------

    def _jid(self, device_id: str) -> str:
        jid = self._present.get(device_id)
        if jid is None:
            raise CoreError("the device is not online")
        return jid

    async def _send(self, r: _Repo, action: ev.SendAdvertise | ev.SendPushRequest) -> bool:
        jid = self._jid(action.device_id)
        if isinstance(action, ev.SendPushRequest):
            await self.signals.send(jid, Control(signal.REQUEST, self.own_id, r.uuid))
            return True
        refs = await run_blocking(our_refs, r.path)
        if not refs:
            return False  # nothing committed yet: nothing to push
        nonce = secrets.token_hex(16)
        answer = await self.signals.send(jid, Control(signal.ADVERTISE, self.own_id, r.uuid, refs, nonce))
        return answer == "want"

    async def _run_job(self, r: _Repo, start: ev.StartJob, job: JobControl) -> JobResult:
        r.started[start.job_id] = self.wall()
        control = PushControl(job, start.session, on_progress=self.on_change)
        r.controls[start.job_id] = control
        try:
            record, shared = self._shared(r, start.device_id)
            if start.direction is Direction.OUTGOING:
                control.session = secrets.token_hex(16)
                try:
                    await self.signals.send(self._jid(start.device_id), Control(
                        signal.PUSH_OPEN, self.own_id, r.uuid, sid=control.session))  # fmt: skip
                except PeerBusy:
                    return JobResult(False, "the device is busy", refused=True)
            return await self.job(record, shared, start.direction, control)
        finally:
            r.ended[start.job_id] = self.wall()
            r.controls.pop(start.job_id, None)

    def _shared(self, r: _Repo, device_id: str) -> tuple[PairedDevice, SharedRepo]:
        record = next(x for x in self._records if x.device_id == device_id)
        return record, next(s for s in record.repos if s.path == r.path)

    # --- status ---------------------------------------------------------------------

    def statuses(self) -> tuple[PushStatus, ...]:
        """Every runner's jobs as status values (module header)."""
        names = {rec.device_id: rec.name for rec in self._records}
        offset = self.wall() - _loop_time()
        out: list[PushStatus] = []
        for r in self._repos.values():
            if r.runner is None:
                continue
            for v in r.runner.machine.jobs():
                c = r.controls.get(v.job_id)
                out.append(PushStatus(
                    job_id=v.job_id, peer=names.get(v.device_id, v.device_id[:8]),
                    device_id=v.device_id, repo=r.path, direction=v.direction.value,
                    phase=v.phase.value, waiting_for=v.waiting_for.value if v.waiting_for else None,
                    deadline=None if v.deadline is None else v.deadline + offset,
                    started=r.started.get(v.job_id), ended=r.ended.get(v.job_id),
                    bytes_done=c.bytes_done if c else 0, bytes_total=c.bytes_total if c else None,
                    ready=v.ready, outcome=v.outcome.value if v.outcome else None, reason=v.reason,
                ))  # fmt: skip
        self._forget_old(out)
        return tuple(out) + self._stopped(names)

    def _stopped(self, names: dict[str, str]) -> tuple[PushStatus, ...]:
        """One failed line per device of a repository whose pushes stopped (``_broke``)."""
        return tuple(
            PushStatus(job_id=0, peer=names.get(d.device_id, d.device_id[:8]), device_id=d.device_id,
                       repo=r.path, direction="outgoing", phase="ended", outcome="failed",
                       reason=r.error, stopped=True)
            for r in self._repos.values() if r.error
            for d in scheduler_devices(self._records, r.path)
        )  # fmt: skip

    def _forget_old(self, shown: list[PushStatus]) -> None:
        """Keep start and end times only for jobs the status still shows (bounded memory)."""
        keep = {(p.repo, p.job_id) for p in shown}
        for r in self._repos.values():
            for times in (r.started, r.ended):
                for job_id in [j for j in times if (r.path, j) not in keep]:
                    del times[job_id]


def _uuid_of(path: str) -> str:
    return annex_uuid_at(Path(path)) or ""


def _loop_time() -> float:
    with contextlib.suppress(RuntimeError):
        return asyncio.get_running_loop().time()
    return time.monotonic()
