"""Shared fixtures for the scheduler tests: three devices, two on one account."""

from __future__ import annotations

from core.scheduler.events import (
    Action,
    AdvertiseAnswered,
    Connected,
    EndJob,
    Event,
    JobFinished,
    Limits,
    PairedDevice,
    PresenceChanged,
    PushOfferReceived,
    SendAdvertise,
    Sender,
    SendPushRequest,
    StartJob,
    WakeAt,
)
from core.scheduler.machine import Scheduler

A = PairedDevice("dev-a", "uuid-a", "alice@example.org")
B = PairedDevice("dev-b", "uuid-b", "Alice@Example.org")  # same account as A (B.26)
C = PairedDevice("dev-c", "uuid-c", "carol@example.org")
DEVICES = (A, B, C)


def jid(device: PairedDevice) -> str:
    return f"{device.account.lower()}/annexsync-{device.device_id}"


def sender(device: PairedDevice) -> Sender:
    return Sender(jid(device), device.device_id, device.repo_uuid)


def available(device: PairedDevice, up: bool = True) -> PresenceChanged:
    return PresenceChanged(jid(device), device.device_id, up, True)


class Driver:
    """A scheduler, a clock and the actions so far (WakeAt left out)."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.s = Scheduler(DEVICES, limits)
        self.now = 0.0

    def __call__(self, event: Event, at: float | None = None) -> list[Action]:
        if at is not None:
            self.now = at
        return [a for a in self.s.handle(event, self.now) if not isinstance(a, WakeAt)]

    def online(self, *devices: PairedDevice, settle: bool = True) -> list[Action]:
        """Connect and see ``devices`` arrive; with ``settle``, finish the start-up exchange.

        Settling answers our advertisements "up to date" and lets each invited
        device push once (an empty push), so a test starts from a quiet state.
        """
        acts = self(Connected())
        for d in devices:
            acts += self(available(d))
        while settle:
            acts = self._settle_step(acts)
            settle = bool(acts)
        return acts

    def _settle_step(self, acts: list[Action]) -> list[Action]:
        out: list[Action] = []
        for a in acts:
            if isinstance(a, SendAdvertise):
                out += self(AdvertiseAnswered(a.device_id, False))
            elif isinstance(a, SendPushRequest):
                dev = next(d for d in DEVICES if d.device_id == a.device_id)
                for start in starts(self(PushOfferReceived(sender(dev), "settle"))):
                    out += self(JobFinished(start.job_id, True))
        return out


def starts(actions: list[Action]) -> list[StartJob]:
    return [a for a in actions if isinstance(a, StartJob)]


def ends(actions: list[Action]) -> list[EndJob]:
    return [a for a in actions if isinstance(a, EndJob)]
