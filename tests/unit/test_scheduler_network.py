"""Three schedulers back to back (h11's ConnectionPair idea): commits converge.

Devices A and B share one account, C has its own.  Each runs a ``Scheduler``
that knows the other two.  Messages are delivered in an order hypothesis
chooses; a push moves the sender's commits to the receiver when both sides
have started it.  Whatever the order, every device ends with every commit,
no job is left running and nobody is left dirty: no deadlock, nothing lost,
and no stall: it gets there without ever waiting for a timer (B.5, B.14).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import given
from hypothesis import strategies as st

from core.scheduler.events import (
    Action,
    AdvertiseAnswered,
    AdvertiseReceived,
    AnswerOffer,
    Connected,
    Direction,
    EndJob,
    Event,
    JobFinished,
    LocalCommit,
    OfferRefused,
    Outcome,
    Phase,
    PushOfferReceived,
    PushRequestReceived,
    SendAdvertise,
    SendPushRequest,
    StartJob,
    Tick,
)
from core.scheduler.machine import Scheduler
from tests.unit.scheduler_helpers import DEVICES, available, sender


@dataclass
class Node:
    name: str
    s: Scheduler
    commits: set[str] = field(default_factory=set)
    sessions: dict[str, int] = field(default_factory=dict)  # incoming session -> job id


class Net:
    def __init__(self) -> None:
        self.nodes = {d.device_id: Node(d.device_id, Scheduler(tuple(x for x in DEVICES if x != d))) for d in DEVICES}
        self.queue: list[Callable[[], None]] = []
        self.now = 0.0
        self.timeouts: list[EndJob] = []
        self.waited = 0.0  # time spent with nothing to deliver

    def feed(self, node: Node, event: Event) -> list[Action]:
        actions = node.s.handle(event, self.now)
        self.timeouts += [a for a in actions if isinstance(a, EndJob) and a.outcome is Outcome.TIMED_OUT]
        for a in actions:
            self.route(node, a)
        return actions

    def route(self, node: Node, a: Action) -> None:
        me = next(d for d in DEVICES if d.device_id == node.name)
        if isinstance(a, SendAdvertise):
            self.queue.append(lambda: self.advertise(node, self.nodes[a.device_id]))
        elif isinstance(a, SendPushRequest):
            self.queue.append(lambda: None if self.feed(self.nodes[a.device_id], PushRequestReceived(sender(me))) else None)
        elif isinstance(a, StartJob) and a.direction is Direction.OUTGOING:
            self.queue.append(lambda: self.open(node, self.nodes[a.device_id], a.job_id))
        elif isinstance(a, StartJob):
            assert a.session is not None
            node.sessions[a.session] = a.job_id

    def advertise(self, src: Node, dst: Node) -> None:
        me = next(d for d in DEVICES if d.device_id == src.name)
        self.feed(dst, AdvertiseReceived(sender(me)))
        want = not src.commits <= dst.commits
        self.queue.append(lambda: None if self.feed(src, AdvertiseAnswered(dst.name, want)) else None)

    def open(self, src: Node, dst: Node, job_id: int) -> None:
        me = next(d for d in DEVICES if d.device_id == src.name)
        session = f"{src.name}-{job_id}"
        answers = [a for a in self.feed(dst, PushOfferReceived(sender(me), session)) if isinstance(a, AnswerOffer)]
        if not answers[0].accepted:
            self.queue.append(lambda: None if self.feed(src, OfferRefused(job_id)) else None)
            return
        carried = set(src.commits)

        def done() -> None:
            dst.commits |= carried
            self.feed(dst, JobFinished(dst.sessions.pop(session), True))
            self.feed(src, JobFinished(job_id, True))

        self.queue.append(done)

    def idle(self) -> bool:
        return all(
            all(v.phase is Phase.ENDED for v in n.s.jobs()) and not any(n.s.dirty(o) for o in n.s._peers)
            for n in self.nodes.values()
        )


@given(st.data())
def test_three_devices_committing_at_once_converge(data: st.DataObject) -> None:
    net = Net()
    for node in net.nodes.values():
        net.feed(node, Connected())
        for d in DEVICES:
            if d.device_id != node.name:
                net.feed(node, available(d))
    for node in net.nodes.values():
        node.commits.add(node.name + "-1")
        net.feed(node, LocalCommit())
    for _ in range(2000):
        if net.queue:
            i = data.draw(st.integers(0, len(net.queue) - 1), label="deliver")
            net.queue.pop(i)()
            net.now += 0.01
            continue
        if net.idle():
            break
        wakes = [w for n in net.nodes.values() if (w := n.s.next_wake()) is not None]
        assert wakes, "deadlock: nothing queued, nothing due, not converged"
        net.waited += max(0.0, min(wakes) - net.now)
        net.now = max(net.now, min(wakes))
        for node in net.nodes.values():
            net.feed(node, Tick())
    everything = {d.device_id + "-1" for d in DEVICES}
    assert all(n.commits == everything for n in net.nodes.values())
    assert net.idle()
    assert net.timeouts == [], "a push stalled until its timeout"
    assert net.waited == 0, f"stalled {net.waited:g} s waiting for a timer (B.5, B.14)"
