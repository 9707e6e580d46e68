"""Hypothesis over random interleavings of everything the scheduler hears.

Commits, presence changes, unreachable peers, advertisements, requests and
push-opens (from paired devices and from strangers), answers, job news for
live and stale jobs, time passing, disconnects and reconnects.  After every
step the invariants below must hold; at the end a disconnect must have ended
every job that started.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given
from hypothesis import strategies as st

from core.scheduler.events import (
    Action,
    AdvertiseAnswered,
    AdvertiseReceived,
    Connected,
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
    PeerUnreachable,
    Phase,
    PresenceChanged,
    PushOfferReceived,
    PushRequestReceived,
    SendAdvertise,
    Sender,
    SendPushRequest,
    StartJob,
    SyncNow,
    Tick,
    Wait,
    WakeAt,
)
from core.scheduler.machine import Scheduler
from tests.unit.scheduler_helpers import DEVICES, jid, sender

IDS = [d.device_id for d in DEVICES]
STRANGER = Sender("eve@example.org/x", "dev-e", "uuid-e")

device = st.integers(0, len(DEVICES) - 1)
job_pick = st.integers(0, 7)  # index into the live jobs, or a stale id beyond them
ops = st.one_of(
    st.tuples(st.just("commit")),
    st.tuples(st.just("presence"), device, st.booleans(), st.booleans()),
    st.tuples(st.just("unreachable"), device),
    st.tuples(st.just("advertise"), device),
    st.tuples(st.just("answered"), device, st.booleans()),
    st.tuples(st.just("request"), device),
    st.tuples(st.just("offer"), device),
    st.tuples(st.just("stranger"), st.sampled_from(["advertise", "request", "offer"])),
    st.tuples(st.just("refused"), job_pick),
    st.tuples(st.just("waiting"), job_pick, st.sampled_from(list(Wait))),
    st.tuples(st.just("finished"), job_pick, st.booleans(), st.booleans()),
    st.tuples(st.just("time"), st.sampled_from([0.5, 10, 29, 30, 61, 125, 700, 2000])),
    st.tuples(st.just("disconnect")),
    st.tuples(st.just("connect")),
    st.tuples(st.just("sync now")),
)


@dataclass
class World:
    """The scheduler plus what the test knows independently of it."""

    s: Scheduler
    now: float = 0.0
    connected: bool = False
    present: set[str] = field(default_factory=set)
    live: dict[int, StartJob] = field(default_factory=dict)  # started, not yet ended
    ended: set[int] = field(default_factory=set)
    waited: dict[int, int] = field(default_factory=dict)  # ready pending job -> starts of others

    def event(self, op: tuple[object, ...]) -> Event:
        kind = op[0]
        live = sorted(self.live)
        if kind in ("refused", "waiting", "finished"):
            i = int(op[1])  # type: ignore[call-overload]
            job_id = live[i] if i < len(live) else 1000 + i
            if kind == "refused":
                return OfferRefused(job_id)
            if kind == "waiting":
                return JobWaiting(job_id, op[2])  # type: ignore[arg-type]
            return JobFinished(job_id, bool(op[2]), "", bool(op[3]))
        if kind == "stranger":
            return {"advertise": AdvertiseReceived, "request": PushRequestReceived}.get(
                str(op[1]), lambda s: PushOfferReceived(s, "x")
            )(STRANGER)
        return self.device_event(op)

    def device_event(self, op: tuple[object, ...]) -> Event:
        kind = op[0]
        if kind == "commit":
            return LocalCommit()
        if kind == "time":
            self.now += float(op[1])  # type: ignore[arg-type]
            return Tick()
        if kind == "disconnect":
            return Disconnected()
        if kind == "connect":
            return Connected()
        if kind == "sync now":
            return SyncNow()
        dev = DEVICES[int(op[1])]  # type: ignore[call-overload]
        if kind == "presence":
            return PresenceChanged(jid(dev), dev.device_id, bool(op[2]), bool(op[3]))
        if kind == "answered":
            return AdvertiseAnswered(dev.device_id, bool(op[2]))
        table: dict[object, Event] = {
            "unreachable": PeerUnreachable(dev.device_id),
            "advertise": AdvertiseReceived(sender(dev)),
            "request": PushRequestReceived(sender(dev)),
            "offer": PushOfferReceived(sender(dev), f"s{self.now}"),
        }
        return table[kind]

    def track(self, event: Event) -> None:
        """What the test itself knows of connection and presence."""
        if isinstance(event, Connected):
            self.connected = True
        elif isinstance(event, Disconnected):
            self.connected = False
            self.present.clear()
        elif isinstance(event, PeerUnreachable):
            self.present.discard(event.device_id)
        elif isinstance(event, PresenceChanged):
            if event.available and event.capable:
                self.present.add(event.device_id)
            else:
                self.present.discard(event.device_id)

    def step(self, op: tuple[object, ...]) -> list[Action]:
        event = self.event(op)
        before = {v.job_id: v for v in self.s.jobs() if v.phase is Phase.PENDING and v.ready}
        actions = self.s.handle(event, self.now)
        self.track(event)
        self.check_actions(actions)
        views = self.s.jobs()
        self.check_views(views, actions)
        self.check_fairness(before, views, actions)
        return actions

    def check_actions(self, actions: list[Action]) -> None:
        for a in actions:
            if isinstance(a, StartJob):
                assert a.job_id not in self.live and a.job_id not in self.ended, "a job started twice"
                self.live[a.job_id] = a
            elif isinstance(a, EndJob):
                assert a.job_id in self.live, "an end without its start, or a second end"
                del self.live[a.job_id]
                self.ended.add(a.job_id)
            if isinstance(a, (SendAdvertise, SendPushRequest)) or (
                isinstance(a, StartJob) and a.direction is Direction.OUTGOING
            ):
                assert self.connected and a.device_id in self.present, f"sent into the void: {a}"

    def check_views(self, views: tuple[JobView, ...], actions: list[Action]) -> None:
        live = [v for v in views if v.phase is not Phase.ENDED]
        running = {v.job_id for v in live if v.phase is Phase.RUNNING}
        assert running == set(self.live), "status and start/end actions disagree"
        deadlines = [v.deadline for v in live if v.deadline is not None]
        for v in live:
            if v.phase is not Phase.PENDING:
                assert v.deadline is not None and v.deadline > self.now, "a job outlived its deadline"
        wakes = [a.when for a in actions if isinstance(a, WakeAt)]
        if deadlines:
            assert wakes and wakes[-1] <= min(deadlines), "no timer for a deadline"
        for dev in IDS:
            for d in Direction:
                mine = [v for v in live if v.device_id == dev and v.direction is d]
                assert sum(v.phase is Phase.PENDING for v in mine) <= 1
                assert sum(v.phase is not Phase.PENDING for v in mine) <= 1
        for d in Direction:
            slots = self.s.limits.outgoing_slots if d is Direction.OUTGOING else self.s.limits.incoming_slots
            busy = sum(1 for v in live if v.direction is d and v.phase is not Phase.PENDING)
            assert busy <= slots
            if any(v.ready for v in live if v.direction is d):
                assert busy == slots, "deadlock: a job could run, a slot is free, nothing starts"
        incoming = {v.device_id for v in live if v.direction is Direction.INCOMING}
        waiting_in = [x for x in IDS if self.s.wants_pull(x) and x in self.present and x not in incoming]
        if waiting_in and self.connected:
            busy_in = sum(1 for v in live if v.direction is Direction.INCOMING)
            assert busy_in == self.s.limits.incoming_slots, "a device waits to push to us, a slot is free"

    def check_fairness(self, before: dict[int, JobView], views: tuple[JobView, ...], actions: list[Action]) -> None:
        """A job ready all along waits at most one turn of the other devices."""
        ready_now = {v.job_id for v in views if v.phase is Phase.PENDING and v.ready}
        started = [a for a in actions if isinstance(a, StartJob) and a.direction is Direction.OUTGOING]
        waited: dict[int, int] = {}
        for job_id, view in before.items():
            if view.direction is not Direction.OUTGOING or job_id not in ready_now:
                continue
            others = sum(1 for a in started if a.device_id != view.device_id)
            waited[job_id] = self.waited.get(job_id, 0) + others
            assert waited[job_id] <= len(IDS) - 1, f"device {view.device_id} starved"
        self.waited = waited


@given(
    st.lists(ops, max_size=80),
    st.integers(1, 2),
    st.integers(1, 2),
)
def test_random_interleavings_keep_every_invariant(steps: list[tuple[object, ...]], out: int, inc: int) -> None:
    world = World(Scheduler(DEVICES, Limits(outgoing_slots=out, incoming_slots=inc)))
    world.step(("connect",))
    for op in steps:
        world.step(op)
    world.step(("disconnect",))
    assert world.live == {}, "a started job never ended"
    assert all(v.phase is Phase.ENDED for v in world.s.jobs())


busy_ops = st.one_of(
    st.tuples(st.just("request"), device),
    st.tuples(st.just("finished"), st.integers(0, 1), st.booleans(), st.just(False)),
    st.tuples(st.just("presence"), device, st.just(True), st.just(True)),
)


@given(st.lists(busy_ops, max_size=120), st.integers(1, 2))
def test_fairness_when_every_device_keeps_asking(steps: list[tuple[object, ...]], out: int) -> None:
    """All devices online and asking again and again: none waits more than one round (B.13)."""
    world = World(Scheduler(DEVICES, Limits(outgoing_slots=out)))
    world.step(("connect",))
    for i in range(len(DEVICES)):
        world.step(("presence", i, True, True))
    for op in steps:
        world.step(op)
