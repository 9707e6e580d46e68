"""The XMPP push scheduler as a pure state machine (spec xmpp-sync.md C.5-C.7, part B).

Theory of operation
-------------------
``Scheduler.handle(event, now)`` takes one event (frozen values in
``core.scheduler.events``) and the current time, and returns the actions the
adapter must carry out, in order.  There is no clock, no I/O and no asyncio
here: time is an input, timers are ``WakeAt`` outputs, sending and running a
push are actions.  Rules:

1. **Signalling (C.5, B.17, B.18).**  Per paired device we keep a *dirty*
   state (a commit generation it has not confirmed, not a list of messages)
   and a *wants_pull* flag.  They become ``SendAdvertise`` / ``SendPushRequest``
   only while connected and while the device's available presence with our
   capability is known: nothing is sent into the void.  A commit advertises at
   once to the devices present; ``Connected`` sets wants_pull for every device
   (ask for what we missed).  ``advertise`` is answered by the peer with want
   or up-to-date, so we push only when wanted (B.15).
2. **Who may push (B.25, B.26, B.50).**  A control message counts only if its
   device id is paired, its repository uuid is that device's and its JID is on
   that device's account.  Several devices may share one account, each known
   by its own id.  Anything else yields a single ``Reject`` (answer
   not-authorized, log the reason) and changes nothing.
3. **Lanes (C.5, B.5, B.9, B.10, B.12, B.13).**  Outgoing and incoming lanes
   are independent, each with ``Limits.*_slots`` running jobs (default 1), so
   two devices pushing to each other never deadlock: each one's incoming lane
   accepts while its outgoing lane runs.  Per (device, direction) at most one
   job runs and one waits; further requests coalesce into the waiting one.
   Slots go round-robin over device ids, starting after the device that last
   started in that lane.  Incoming: a push-open is accepted when a slot is
   free, otherwise answered busy at once and the device's wants_pull set;
   when a slot frees, the next such device (round-robin) is *invited* with a
   push request and the slot is kept for it for ``2 * iq`` seconds.
4. **Answers never wait (B.8, B.35).**  Advertise, request and push-open are
   answered in the same ``handle`` call, whatever runs: every action list is
   computed at once, so a message for one device never waits behind another's
   push.
5. **Time (C.5, B.6, B.11, B.14).**  Every running job has a deadline: the
   limit of what it waits for (IQ 30 s, block ack 60 s, data 120 s), reset by
   ``JobWaiting``, never past the whole-job limit (30 min).  Each ``handle``
   first expires what is due, so no job outlives its deadline.  A failed or
   timed-out outgoing push keeps the device dirty and backs off (30 s doubling
   to 30 min) before advertising again (B.51: a failure is a failure).
   ``SyncNow`` (the person's "Sync now") ends every back-off and refusal wait
   at once and asks every device for what we missed, as ``Connected`` does.
6. **Pairing of start and end.**  ``_TRANSITIONS`` is the only place a job's
   phase changes.  Entering RUNNING emits ``StartJob``; leaving it emits
   exactly one ``EndJob`` (finish, failure, timeout, refusal, presence lost,
   disconnect, device forgotten).  News about a job no longer running is
   ignored, so a late ``JobFinished`` cannot end a job twice.
7. **Connection loss (C.6, C.7, B.22).**  ``Disconnected`` ends every running
   job (ABORTED), drops waiting ones (the dirty state stays), forgets every
   presence and marks every device desynced.  An incoming push that completes
   from a desynced device, or whose merge changed the git-annex branch, asks
   for a content scan and clears the flag.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from core.errors import LocalProtocolError
from core.scheduler.events import (
    Action,
    AdvertiseAnswered,
    AdvertiseReceived,
    AnswerAdvertise,
    AnswerOffer,
    AnswerRequest,
    Connected,
    DevicesChanged,
    Direction,
    Disconnected,
    EndJob,
    Event,
    JobFinished,
    JobView,
    JobWaiting,
    Limits,
    LocalCommit,
    OfferRefused,
    Outcome,
    PairedDevice,
    PeerUnreachable,
    Phase,
    PresenceChanged,
    PushOfferReceived,
    PushRequestReceived,
    Reject,
    RequestScan,
    SendAdvertise,
    Sender,
    SendPushRequest,
    StartJob,
    SyncNow,
    Tick,
    Wait,
    WakeAt,
)

logger = logging.getLogger(__name__)

# (phase, trigger) -> next phase: the only legal moves of a job.
_TRANSITIONS: dict[tuple[Phase, str], Phase] = {
    (Phase.PENDING, "start"): Phase.RUNNING,
    (Phase.PENDING, "drop"): Phase.ENDED,
    (Phase.INVITED, "offer"): Phase.RUNNING,
    (Phase.INVITED, "drop"): Phase.ENDED,
    (Phase.RUNNING, "end"): Phase.ENDED,
}


@dataclass
class _Job:
    job_id: int
    device_id: str
    direction: Direction
    phase: Phase
    session: str | None = None
    wait: Wait | None = None
    deadline: float | None = None
    job_deadline: float | None = None
    generation: int = 0  # outgoing: the commit generation it pushes


@dataclass
class _Peer:
    device: PairedDevice
    present: bool = False
    confirmed: int = -1  # commit generation the device has confirmed
    advertised: int = 0
    advertise_deadline: float | None = None
    wants_pull: bool = True
    desynced: bool = True
    failures: int = 0
    retry_at: float = 0.0
    jobs: dict[Direction, list[_Job]] = field(default_factory=dict)


def bare(jid: str) -> str:
    """The bare JID, lower-cased (B.52: JIDs are compared normalised)."""
    return jid.split("/", 1)[0].lower()


class Scheduler:
    """Signalling and push jobs for every paired device; see the module docstring."""

    def __init__(self, devices: tuple[PairedDevice, ...] = (), limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.connected = False
        self._now = 0.0
        self._generation = 0
        self._next_id = 1
        self._peers: dict[str, _Peer] = {}
        self._jobs: dict[int, _Job] = {}
        self._ended: dict[tuple[str, Direction], JobView] = {}
        self._last_started: dict[Direction, str | None] = {d: None for d in Direction}
        self._set_devices(devices, [])

    # ------------------------------------------------------------ public

    def handle(self, event: Event, now: float) -> list[Action]:
        """Apply ``event`` at time ``now``; return the actions to carry out.

        Raises:
            LocalProtocolError: a job moved outside ``_TRANSITIONS`` (a bug here).
        """
        self._now = max(self._now, now)
        actions: list[Action] = []
        self._expire(actions)
        self._HANDLERS[type(event)](self, event, actions)
        self._flush(actions)
        wake = self.next_wake()
        if wake is not None:
            actions.append(WakeAt(wake))
        return actions

    def jobs(self) -> tuple[JobView, ...]:
        """Live jobs, then the last ended job per (device, direction), for the status."""
        live = tuple(self._view(job) for job in sorted(self._jobs.values(), key=lambda j: j.job_id))
        return live + tuple(self._ended.values())

    def dirty(self, device_id: str) -> bool:
        return self._peers[device_id].confirmed < self._generation

    def wants_pull(self, device_id: str) -> bool:
        return self._peers[device_id].wants_pull

    def desynced(self, device_id: str) -> bool:
        return self._peers[device_id].desynced

    def present(self, device_id: str) -> bool:
        return self._peers[device_id].present

    def next_wake(self) -> float | None:
        """The earliest time something is due: a deadline or a back-off end."""
        times = [j.deadline for j in self._jobs.values() if j.deadline is not None]
        for peer in self._peers.values():
            if peer.advertise_deadline is not None:
                times.append(peer.advertise_deadline)
            if peer.present and peer.retry_at > self._now and self.dirty(peer.device.device_id):
                times.append(peer.retry_at)
        return min(times, default=None)

    # ------------------------------------------------------------ jobs

    def _move(self, job: _Job, trigger: str) -> None:
        nxt = _TRANSITIONS.get((job.phase, trigger))
        if nxt is None:
            raise LocalProtocolError(f"job {job.job_id}: no move {trigger!r} from {job.phase.name}")
        job.phase = nxt

    def _new_job(self, device_id: str, direction: Direction, phase: Phase) -> _Job:
        job = _Job(self._next_id, device_id, direction, phase)
        self._next_id += 1
        self._jobs[job.job_id] = job
        self._peers[device_id].jobs.setdefault(direction, []).append(job)
        return job

    def _jobs_of(self, device_id: str, direction: Direction) -> list[_Job]:
        return self._peers[device_id].jobs.get(direction, [])

    def _running(self, device_id: str, direction: Direction) -> _Job | None:
        return next((j for j in self._jobs_of(device_id, direction) if j.phase is not Phase.PENDING), None)

    def _pending(self, device_id: str, direction: Direction) -> _Job | None:
        return next((j for j in self._jobs_of(device_id, direction) if j.phase is Phase.PENDING), None)

    def _run(self, job: _Job, trigger: str, wait: Wait, actions: list[Action]) -> None:
        self._move(job, trigger)
        job.job_deadline = self._now + self.limits.job
        self._set_wait(job, wait)
        self._last_started[job.direction] = job.device_id
        if job.direction is Direction.OUTGOING:
            job.generation = self._generation
        actions.append(StartJob(job.job_id, job.device_id, job.direction, job.session))

    def _set_wait(self, job: _Job, wait: Wait) -> None:
        job.wait = wait
        assert job.job_deadline is not None
        job.deadline = min(self._now + self.limits.wait(wait), job.job_deadline)

    def _end(self, job: _Job, outcome: Outcome, reason: str, actions: list[Action], changed: bool = False) -> None:
        """Take ``job`` out; a running one gets its ``EndJob`` and its consequences."""
        was_running = job.phase is Phase.RUNNING
        self._move(job, "end" if was_running else "drop")
        del self._jobs[job.job_id]
        peer = self._peers[job.device_id]
        peer.jobs[job.direction].remove(job)
        if not was_running:
            return
        actions.append(EndJob(job.job_id, outcome, reason))
        self._ended[(job.device_id, job.direction)] = self._view(job, outcome, reason)
        if job.direction is Direction.OUTGOING:
            self._after_push(peer, job, outcome)
        elif outcome is Outcome.DONE and (changed or peer.desynced):
            peer.desynced = False
            actions.append(RequestScan(job.device_id))

    def _after_push(self, peer: _Peer, job: _Job, outcome: Outcome) -> None:
        if outcome is Outcome.DONE:
            peer.confirmed = max(peer.confirmed, job.generation)
            self._healthy(peer)
        elif outcome is Outcome.REFUSED:
            peer.retry_at = self._now + self.limits.backoff_first  # it will ask us; in case it does not
        elif outcome in (Outcome.FAILED, Outcome.TIMED_OUT):
            self._back_off(peer)

    def _healthy(self, peer: _Peer) -> None:
        """A push or an up-to-date answer went through: no back-off or refusal retry
        holds the next commit (a leftover 30 s wait would stall it, B.14)."""
        peer.failures = 0
        peer.retry_at = 0.0

    def _back_off(self, peer: _Peer) -> None:
        """B.51: a failure keeps the device dirty; wait 30 s, doubling to 30 min, before advertising."""
        peer.failures += 1
        delay = self.limits.backoff_first * 2 ** (peer.failures - 1)
        peer.retry_at = self._now + min(delay, self.limits.backoff_max)

    def _end_all(self, jobs: Iterator[_Job] | list[_Job], outcome: Outcome, reason: str, actions: list[Action]) -> None:
        for job in sorted(jobs, key=lambda j: j.job_id):
            self._end(job, outcome, reason, actions)

    def _view(self, job: _Job, outcome: Outcome | None = None, reason: str = "") -> JobView:
        if outcome is not None:
            return JobView(job.job_id, job.device_id, job.direction, Phase.ENDED, None, None, False, outcome, reason)
        ready = job.phase is Phase.PENDING and self._ready(job)
        return JobView(job.job_id, job.device_id, job.direction, job.phase, job.wait, job.deadline, ready)

    # ------------------------------------------------------------ time

    def _expire(self, actions: list[Action]) -> None:
        now = self._now
        due = [j for j in self._jobs.values() if j.deadline is not None and j.deadline <= now]
        for job in sorted(due, key=lambda j: j.job_id):
            self._end(job, Outcome.TIMED_OUT, self._timeout_reason(job), actions)
        for peer in self._peers.values():
            if peer.advertise_deadline is not None and peer.advertise_deadline <= now:
                peer.advertise_deadline = None
                self._back_off(peer)

    def _timeout_reason(self, job: _Job) -> str:
        if job.phase is Phase.INVITED:
            return "the device did not start its push"
        if job.job_deadline is not None and job.deadline is not None and job.deadline >= job.job_deadline:
            return f"the push took longer than {self.limits.job / 60:g} min"
        assert job.wait is not None
        return f"no {job.wait.value} within {self.limits.wait(job.wait):g} s"

    # ------------------------------------------------------------ scheduling

    def _ready(self, job: _Job) -> bool:
        peer = self._peers[job.device_id]
        return self.connected and peer.present and self._running(job.device_id, job.direction) is None

    def _round_robin(self, direction: Direction, candidates: list[str]) -> list[str]:
        """``candidates`` in turn order: those after the device that started last first."""
        order = sorted(candidates)
        last = self._last_started[direction]
        if last is None:
            return order
        return [d for d in order if d > last] + [d for d in order if d <= last]

    def _busy_slots(self, direction: Direction) -> int:
        return sum(1 for j in self._jobs.values() if j.direction is direction and j.phase is not Phase.PENDING)

    def _flush(self, actions: list[Action]) -> None:
        if not self.connected:
            return
        for peer in sorted(self._peers.values(), key=lambda p: p.device.device_id):
            self._signal(peer, actions)
        self._fill_outgoing(actions)
        self._fill_incoming(actions)

    def _signal(self, peer: _Peer, actions: list[Action]) -> None:
        """Rule 1: turn a present device's dirty state into an advertise."""
        device_id = peer.device.device_id
        if not peer.present or not self.dirty(device_id) or peer.advertise_deadline is not None:
            return
        if self._jobs_of(device_id, Direction.OUTGOING) or peer.retry_at > self._now:
            return
        peer.advertised = self._generation
        peer.advertise_deadline = self._now + self.limits.iq
        actions.append(SendAdvertise(device_id))

    def _fill_outgoing(self, actions: list[Action]) -> None:
        waiting = [j for j in self._jobs.values() if j.direction is Direction.OUTGOING and j.phase is Phase.PENDING]
        ready = {j.device_id: j for j in waiting if self._ready(j)}
        for device_id in self._round_robin(Direction.OUTGOING, list(ready)):
            if self._busy_slots(Direction.OUTGOING) >= self.limits.outgoing_slots:
                return
            self._run(ready[device_id], "start", Wait.IQ, actions)

    def _fill_incoming(self, actions: list[Action]) -> None:
        """Rule 3: invite the next device that wants to push to us, round-robin."""
        wanting = [
            d for d, p in self._peers.items()
            if p.wants_pull and p.present and not self._jobs_of(d, Direction.INCOMING)
        ]
        for device_id in self._round_robin(Direction.INCOMING, wanting):
            if self._busy_slots(Direction.INCOMING) >= self.limits.incoming_slots:
                return
            self._peers[device_id].wants_pull = False
            job = self._new_job(device_id, Direction.INCOMING, Phase.INVITED)
            job.deadline = self._now + 2 * self.limits.iq
            self._last_started[Direction.INCOMING] = device_id
            actions.append(SendPushRequest(device_id))

    # ------------------------------------------------------------ events

    def _authorize(self, sender: Sender, actions: list[Action]) -> _Peer | None:
        """Rule 2: the paired device this message is from, or None after a ``Reject``."""
        peer = self._peers.get(sender.device_id)
        if peer is None:
            reason = "message from a device that is not paired"
        elif peer.device.repo_uuid != sender.repo_uuid:
            reason = "repository uuid does not match the paired device"
        elif bare(sender.jid) != bare(peer.device.account):
            reason = "account is not the one paired with that device"
        else:
            return peer
        actions.append(Reject(sender.jid, reason))
        return None

    def _set_devices(self, devices: tuple[PairedDevice, ...], actions: list[Action]) -> None:
        wanted = {d.device_id: d for d in devices}
        for device_id in [d for d in self._peers if d not in wanted]:
            self._drop_peer_jobs(device_id, "the device was unpaired", actions)
            self._ended = {k: v for k, v in self._ended.items() if k[0] != device_id}
            del self._peers[device_id]
        for device_id, device in wanted.items():
            if device_id in self._peers:
                self._peers[device_id].device = device
            else:
                self._peers[device_id] = _Peer(device)  # new: dirty, wants pull, desynced (C.7)

    def _drop_peer_jobs(self, device_id: str, reason: str, actions: list[Action]) -> None:
        jobs = [j for lane in self._peers[device_id].jobs.values() for j in lane]
        self._end_all(jobs, Outcome.ABORTED, reason, actions)

    def _on_connected(self, event: Connected, actions: list[Action]) -> None:
        self.connected = True
        for peer in self._peers.values():
            peer.wants_pull = True
            peer.desynced = True

    def _on_disconnected(self, event: Disconnected, actions: list[Action]) -> None:
        self.connected = False
        self._end_all(list(self._jobs.values()), Outcome.ABORTED, "connection to the server lost", actions)
        for peer in self._peers.values():
            peer.present = False
            peer.advertise_deadline = None
            peer.desynced = True

    def _on_devices(self, event: DevicesChanged, actions: list[Action]) -> None:
        self._set_devices(event.devices, actions)

    def _on_presence(self, event: PresenceChanged, actions: list[Action]) -> None:
        peer = self._peers.get(event.device_id)
        if peer is None or bare(event.jid) != bare(peer.device.account):
            actions.append(Reject(event.jid, "presence from a device that is not paired"))
            return
        if event.available and event.capable:
            peer.present = True
        else:
            self._gone(peer, "the device went offline", actions)

    def _gone(self, peer: _Peer, reason: str, actions: list[Action]) -> None:
        """B.6: a vanished device's jobs end now, not at their timeout."""
        peer.present = False
        peer.advertise_deadline = None
        self._drop_peer_jobs(peer.device.device_id, reason, actions)

    def _on_unreachable(self, event: PeerUnreachable, actions: list[Action]) -> None:
        peer = self._peers.get(event.device_id)
        if peer is not None:
            self._gone(peer, "the device did not answer", actions)

    def _on_commit(self, event: LocalCommit, actions: list[Action]) -> None:
        self._generation += 1

    def _on_advertise(self, event: AdvertiseReceived, actions: list[Action]) -> None:
        if self._authorize(event.sender, actions) is not None:
            actions.append(AnswerAdvertise(event.sender.device_id))

    def _on_answered(self, event: AdvertiseAnswered, actions: list[Action]) -> None:
        peer = self._peers.get(event.device_id)
        if peer is None or peer.advertise_deadline is None:
            return  # a late answer: the advertise already timed out
        peer.advertise_deadline = None
        if event.want:
            self._want_push(event.device_id)
        else:
            peer.confirmed = max(peer.confirmed, peer.advertised)
            self._healthy(peer)

    def _want_push(self, device_id: str) -> None:
        """Rule 3: one waiting outgoing job per device; more requests coalesce into it."""
        if self._pending(device_id, Direction.OUTGOING) is None:
            self._new_job(device_id, Direction.OUTGOING, Phase.PENDING)

    def _on_request(self, event: PushRequestReceived, actions: list[Action]) -> None:
        if self._authorize(event.sender, actions) is not None:
            actions.append(AnswerRequest(event.sender.device_id))
            self._want_push(event.sender.device_id)

    def _on_offer(self, event: PushOfferReceived, actions: list[Action]) -> None:
        peer = self._authorize(event.sender, actions)
        if peer is None:
            return
        device_id = peer.device.device_id
        current = self._running(device_id, Direction.INCOMING)
        free = self._busy_slots(Direction.INCOMING) < self.limits.incoming_slots
        if current is not None and current.phase is Phase.INVITED:
            job = current
        elif current is None and free:
            job = self._new_job(device_id, Direction.INCOMING, Phase.INVITED)
        else:
            peer.wants_pull = True
            actions.append(AnswerOffer(device_id, event.session, False, self.limits.iq))
            return
        job.session = event.session
        actions.append(AnswerOffer(device_id, event.session, True))
        self._run(job, "offer", Wait.IDLE, actions)

    def _live(self, job_id: int) -> _Job | None:
        job = self._jobs.get(job_id)
        return job if job is not None and job.phase is Phase.RUNNING else None

    def _on_refused(self, event: OfferRefused, actions: list[Action]) -> None:
        job = self._live(event.job_id)
        if job is not None and job.direction is Direction.OUTGOING:
            self._end(job, Outcome.REFUSED, "the device is busy; it will ask again", actions)

    def _on_waiting(self, event: JobWaiting, actions: list[Action]) -> None:
        job = self._live(event.job_id)
        if job is not None:
            self._set_wait(job, event.wait)

    def _on_finished(self, event: JobFinished, actions: list[Action]) -> None:
        job = self._live(event.job_id)
        if job is None:
            return  # already ended (timeout, abort): its EndJob went out then
        outcome = Outcome.DONE if event.ok else Outcome.FAILED
        self._end(job, outcome, event.reason or outcome.value, actions, changed=event.changed)

    def _on_tick(self, event: Tick, actions: list[Action]) -> None:
        pass

    def _on_sync_now(self, event: SyncNow, actions: list[Action]) -> None:
        """Rule 5: the person asked; a device in back-off is tried at once (``_flush``)."""
        for peer in self._peers.values():
            self._healthy(peer)
            peer.wants_pull = True

    _HANDLERS: dict[type, Callable[[Any, Any, list[Action]], None]] = {
        Connected: _on_connected,
        Disconnected: _on_disconnected,
        DevicesChanged: _on_devices,
        PresenceChanged: _on_presence,
        PeerUnreachable: _on_unreachable,
        LocalCommit: _on_commit,
        AdvertiseReceived: _on_advertise,
        AdvertiseAnswered: _on_answered,
        PushRequestReceived: _on_request,
        PushOfferReceived: _on_offer,
        OfferRefused: _on_refused,
        JobWaiting: _on_waiting,
        JobFinished: _on_finished,
        Tick: _on_tick,
        SyncNow: _on_sync_now,
    }
