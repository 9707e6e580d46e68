"""Values the push scheduler takes in and gives out (spec xmpp-sync.md C.5-C.7).

Everything here is a frozen dataclass or an enum: events are what the adapter
learnt (a presence, a message, a job's news), actions are what it must do
(send, answer, start or end a job, scan, wake up later).  Devices are named by
their device id; one XMPP account may carry several (B.26).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Direction(Enum):
    OUTGOING = "outgoing"  # we push to the peer
    INCOMING = "incoming"  # the peer pushes to us


class Wait(Enum):
    """What a running job waits for; each has its own limit (C.5)."""

    IQ = "answer"  # an IQ reply (push-open, request): 30 s
    ACK = "block acknowledgement"  # an IBB block ack: 60 s
    IDLE = "data"  # the next data block: 120 s


class Outcome(Enum):
    DONE = "done"
    FAILED = "failed"
    TIMED_OUT = "timed out"
    ABORTED = "aborted"
    REFUSED = "refused"  # the peer was busy; it will ask us again


class Phase(Enum):
    PENDING = "pending"  # queued, waits for a lane slot, presence or back-off
    INVITED = "invited"  # incoming: we asked the peer to push, a slot is kept
    RUNNING = "running"
    ENDED = "ended"


@dataclass(frozen=True)
class Limits:
    """Time limits in seconds (C.5) and lane sizes; defaults are the spec's."""

    iq: float = 30.0
    ack: float = 60.0
    idle: float = 120.0
    job: float = 30 * 60.0
    backoff_first: float = 30.0
    backoff_max: float = 30 * 60.0
    outgoing_slots: int = 1
    incoming_slots: int = 1

    def wait(self, wait: Wait) -> float:
        return {Wait.IQ: self.iq, Wait.ACK: self.ack, Wait.IDLE: self.idle}[wait]


@dataclass(frozen=True)
class PairedDevice:
    """One paired device: its own id and repository uuid, its account (B.26)."""

    device_id: str
    repo_uuid: str
    account: str  # bare JID


@dataclass(frozen=True)
class Sender:
    """Who a received control message claims to come from."""

    jid: str  # full JID the stanza came from
    device_id: str
    repo_uuid: str


# ---------------------------------------------------------------- events in


@dataclass(frozen=True)
class Connected:
    """The stream is up (start or reconnect): ask every peer what we missed."""


@dataclass(frozen=True)
class Disconnected:
    """The stream is lost: abort everything, forget presence (C.6, B.22)."""


@dataclass(frozen=True)
class DevicesChanged:
    """The paired devices now are these (pairing, forgetting a device)."""

    devices: tuple[PairedDevice, ...]


@dataclass(frozen=True)
class PresenceChanged:
    """A device's presence; ``capable`` = its caps list our feature (C.1)."""

    jid: str
    device_id: str
    available: bool
    capable: bool = True


@dataclass(frozen=True)
class PeerUnreachable:
    """An IQ to the device errored or timed out (B.2, B.6)."""

    device_id: str


@dataclass(frozen=True)
class LocalCommit:
    """We committed: every paired device is now behind."""


@dataclass(frozen=True)
class AdvertiseReceived:
    sender: Sender


@dataclass(frozen=True)
class AdvertiseAnswered:
    """The peer's answer to our advertise: ``want`` or up to date (B.15)."""

    device_id: str
    want: bool


@dataclass(frozen=True)
class PushRequestReceived:
    sender: Sender


@dataclass(frozen=True)
class PushOfferReceived:
    """A push-open: the peer wants to push to us in session ``session``."""

    sender: Sender
    session: str


@dataclass(frozen=True)
class OfferRefused:
    """Our push-open was answered busy: the peer will ask us again."""

    job_id: int


@dataclass(frozen=True)
class JobWaiting:
    """A running job now waits for ``wait`` (resets that job's deadline)."""

    job_id: int
    wait: Wait


@dataclass(frozen=True)
class JobFinished:
    """A running job ended by itself; ``changed`` = its merge changed the git-annex branch."""

    job_id: int
    ok: bool
    reason: str = ""
    changed: bool = False


@dataclass(frozen=True)
class Tick:
    """Time passed (the adapter's timer from ``WakeAt`` fired)."""


@dataclass(frozen=True)
class SyncNow:
    """The person asked to sync now: nothing waits out a back-off; ask what we missed."""


Event = (
    Connected
    | Disconnected
    | DevicesChanged
    | PresenceChanged
    | PeerUnreachable
    | LocalCommit
    | AdvertiseReceived
    | AdvertiseAnswered
    | PushRequestReceived
    | PushOfferReceived
    | OfferRefused
    | JobWaiting
    | JobFinished
    | Tick
    | SyncNow
)

# --------------------------------------------------------------- actions out


@dataclass(frozen=True)
class SendAdvertise:
    """Tell the device our refs (IQ ``advertise``, 30 s)."""

    device_id: str


@dataclass(frozen=True)
class SendPushRequest:
    """Ask the device to push to us (IQ ``request``, 30 s)."""

    device_id: str


@dataclass(frozen=True)
class AnswerAdvertise:
    """Answer this advertise now, from the receive path (B.8): want or up to date."""

    device_id: str


@dataclass(frozen=True)
class AnswerRequest:
    """Answer a push request with ``queued``."""

    device_id: str


@dataclass(frozen=True)
class AnswerOffer:
    """Answer a push-open: ``accepted`` or ``resource-constraint`` (busy)."""

    device_id: str
    session: str
    accepted: bool
    retry_after: float = 0.0


@dataclass(frozen=True)
class Reject:
    """Answer ``not-authorized`` and log ``reason``; nothing else changes (B.25)."""

    jid: str
    reason: str


@dataclass(frozen=True)
class StartJob:
    """Run this push (outgoing: send push-open first; incoming: receive ``session``)."""

    job_id: int
    device_id: str
    direction: Direction
    session: str | None


@dataclass(frozen=True)
class EndJob:
    """The job is over: cancel its task if still running and clean up.

    Exactly one follows every ``StartJob``, whatever path ended it.
    """

    job_id: int
    outcome: Outcome
    reason: str


@dataclass(frozen=True)
class RequestScan:
    """Queue a full content scan for the data remotes shared with the device (C.7)."""

    device_id: str


@dataclass(frozen=True)
class WakeAt:
    """Send ``Tick`` at this time (the earliest deadline or retry)."""

    when: float


Action = (
    SendAdvertise
    | SendPushRequest
    | AnswerAdvertise
    | AnswerRequest
    | AnswerOffer
    | Reject
    | StartJob
    | EndJob
    | RequestScan
    | WakeAt
)


@dataclass(frozen=True)
class JobView:
    """One job for the status: its state and the deadline it waits for."""

    job_id: int
    device_id: str
    direction: Direction
    phase: Phase
    waiting_for: Wait | None
    deadline: float | None  # the GUI counts down to it
    ready: bool  # pending and would start were a slot free
    outcome: Outcome | None = None
    reason: str = ""
