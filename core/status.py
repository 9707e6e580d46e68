"""Status values: what the daemon shows to front ends (tray, window, ``annexsync status``).

Spec: assistant-behaviour.md 5 (what the user sees), 8 (tray states);
docs/facade.md (the contract).

Theory of operation
-------------------
Every value here is a frozen dataclass built fresh by ``core.api.Core`` on each
change and pushed to subscribers (style 3: one immutable snapshot per change,
as magic-wormhole's ``_status.py``).  Nothing here is stored or mutated, and
nothing secret goes in: these values are shown to users and written as JSON
by ``annexsync status --json``.

``Health`` is *derived* (``Status.health``), never stored.  The rules, first
match wins:

1. ERROR      a repository reports an error (cannot open, refused to write ...,
              or a job that failed and is being retried, e.g. a held git lock)
              or a merge that failed (``RepoStatus.problem``);
2. ATTENTION  a conflict waits for the user;
3. PAUSED     ``paused_until`` lies in the future (``math.inf``: indefinitely);
4. OFFLINE    the network is down;
5. SYNCING    anything pending: an uncommitted change, a queued or running
              transfer, a scan, or a *reachable* remote that still needs a
              push or merge (``RemoteStatus.pending``);
   SYNCING also covers a push to or from a paired device that waits for
              a slot or runs (``PushStatus.active``);
6. WAITING    some remote is unreachable (its work waits for it), or a paired
              device that is not online is owed something (``DeviceStatus.owed``);
              an offline paired device owed nothing is not pending work; or the
              last push with a device failed or timed out (``PushStatus.failed``:
              the scheduler keeps the device dirty and retries after a back-off);
7. SYNCED     nothing of the above -- so SYNCED never shows while work is pending.

``to_json``/``status_from_json`` carry a ``Status`` over the instance socket.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

Direction = Literal["download", "upload"]
TransferState = Literal["queued", "running", "done", "failed", "cancelled"]
AlertLevel = Literal["info", "success", "warning", "error"]
DevicePresence = Literal["online", "away", "offline", "unknown"]
XmppState = Literal["off", "connecting", "online", "offline", "error"]
PushDirection = Literal["outgoing", "incoming"]
PushPhase = Literal["pending", "invited", "running", "ended"]
PushOutcome = Literal["done", "failed", "timed out", "aborted", "refused"]


class Health(Enum):
    """The tray icon state."""

    SYNCED = "synced"
    SYNCING = "syncing"
    WAITING = "waiting"
    OFFLINE = "offline"
    PAUSED = "paused"
    ATTENTION = "attention"
    ERROR = "error"


@dataclass(frozen=True)
class TransferStatus:
    id: int
    repo: str
    path: str
    key: str
    direction: Direction
    remote: str
    bytes_done: int = 0
    bytes_total: int | None = None
    speed: float = 0.0
    state: TransferState = "queued"
    error: str | None = None


@dataclass(frozen=True)
class RemoteStatus:
    name: str
    uuid: str | None
    kind: str
    reachable: bool | None = None  # None: not tried yet
    last_sync: float | None = None  # epoch seconds of the last complete push+pull
    waiting_since: float | None = None  # unreachable since
    push_deadline: float | None = None  # a push in flight and when its timeout fires
    error: str | None = None
    pending: bool = False  # (addition) commits or git-annex changes not yet pushed/merged
    wanted_note: str | None = None  # its preferred content acts as "present" (spec 10.2)


@dataclass(frozen=True)
class Conflict:
    repo: str
    path: str  # the original name
    variants: tuple[str, ...]  # the .variant- paths, relative to the repository


@dataclass(frozen=True)
class Alert:
    id: int
    level: AlertLevel
    text: str
    time: float
    notify: bool = False


@dataclass(frozen=True)
class RepoStatus:
    path: str
    uuid: str
    description: str
    uncommitted: int = 0
    queued: int = 0
    transfers: tuple[TransferStatus, ...] = ()
    remotes: tuple[RemoteStatus, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    scanning: bool = False
    error: str | None = None
    # A merge git refused (merge.ff=only, local changes in the way ...): the
    # folders differ until a later merge from the same place succeeds.
    merge_error: str | None = None

    @property
    def problem(self) -> str | None:
        """What is wrong, in words, or None: the repository's error, else a failed merge."""
        return self.error or self.merge_error
    wanted_note: str | None = None  # its preferred content acts as "present" (spec 10.2)

    def busy(self) -> bool:
        """Local work pending: changes to commit, transfers, a scan, or a push/merge
        owed to a reachable remote."""
        return bool(
            self.uncommitted
            or self.queued
            or self.scanning
            or any(t.state in ("queued", "running") for t in self.transfers)
            or any(r.pending and r.reachable is not False for r in self.remotes)
        )


@dataclass(frozen=True)
class DeviceStatus:
    """Another annexsync device: seen over XMPP, paired, or both."""

    name: str
    device_id: str
    account: str | None = None  # its XMPP account (bare JID), when seen there
    presence: DevicePresence = "unknown"
    last_seen: float | None = None
    paired: bool = False
    owed: bool = False  # a paired device that has not got our latest commits

    @property
    def waiting(self) -> bool:
        return self.paired and self.owed and self.presence != "online"


@dataclass(frozen=True)
class PushStatus:
    """One push job with a paired device (core.devices.pushes; xmpp-sync C.5).

    Live jobs, then the last ended job per (device, repository, direction).
    Times are epoch seconds: ``deadline`` is when the current wait times out
    (a view counts down to it), ``started``/``ended`` give the elapsed time.
    """

    job_id: int
    peer: str  # the device's name
    device_id: str
    repo: str  # our repository
    direction: PushDirection
    phase: PushPhase
    waiting_for: str | None = None  # "answer", "block acknowledgement", "data"
    deadline: float | None = None
    started: float | None = None
    ended: float | None = None
    bytes_done: int = 0
    bytes_total: int | None = None
    ready: bool = False  # pending and would start were a slot free
    outcome: PushOutcome | None = None
    reason: str = ""  # in words, for a job that did not end "done"

    @property
    def active(self) -> bool:
        """Running, invited, or pending with nothing but a free slot missing."""
        return self.phase in ("running", "invited") or (self.phase == "pending" and self.ready)

    @property
    def failed(self) -> bool:
        return self.outcome in ("failed", "timed out")

    def elapsed(self, now: float) -> float | None:
        if self.started is None:
            return None
        return max(0.0, (self.ended if self.ended is not None else now) - self.started)

    def line(self, now: float) -> str:
        """One line in words (status text, tooltip)."""
        way = "to" if self.direction == "outgoing" else "from"
        head = f"push {way} {self.peer}"
        if self.outcome is not None:
            return f"{head}: {self.outcome}" + (f" ({self.reason})" if self.outcome != "done" else "")
        if self.phase == "running":
            left = "" if self.deadline is None else f", times out in {max(0, round(self.deadline - now))} s"
            waits = f", waiting for {self.waiting_for}" if self.waiting_for else ""
            return f"{head}: running{waits}{left}"
        if self.phase == "invited":
            return f"{head}: asked it to push"
        return f"{head}: waiting for a free slot" if self.ready else f"{head}: waiting for {self.peer}"


@dataclass(frozen=True)
class XmppStatus:
    account: str | None = None  # our JID
    state: XmppState = "off"
    error: str | None = None  # in words, when the account cannot be used


@dataclass(frozen=True)
class Status:
    repos: tuple[RepoStatus, ...] = ()
    online: bool = True
    paused_until: float | None = None  # None = running, math.inf = paused indefinitely
    alerts: tuple[Alert, ...] = ()
    activity: tuple[str, ...] = ()  # recent, newest first
    xmpp: XmppStatus = XmppStatus()
    devices: tuple[DeviceStatus, ...] = ()
    pushes: tuple[PushStatus, ...] = ()

    def failed_pushes(self) -> tuple[PushStatus, ...]:
        return tuple(p for p in self.pushes if p.failed)

    def online_devices(self) -> tuple[DeviceStatus, ...]:
        return tuple(d for d in self.devices if d.presence in ("online", "away"))

    def paused(self, now: float) -> bool:
        return self.paused_until is not None and self.paused_until > now

    def health(self, now: float) -> Health:
        """The derived tray state (rules in the module header)."""
        if any(r.problem for r in self.repos):
            return Health.ERROR
        if any(r.conflicts for r in self.repos):
            return Health.ATTENTION
        if self.paused(now):
            return Health.PAUSED
        if not self.online:
            return Health.OFFLINE
        if any(r.busy() for r in self.repos) or any(p.active for p in self.pushes):
            return Health.SYNCING
        if any(rm.reachable is False for r in self.repos for rm in r.remotes):
            return Health.WAITING
        if any(d.waiting for d in self.devices) or self.failed_pushes():
            return Health.WAITING
        return Health.SYNCED

    def running(self) -> tuple[TransferStatus, ...]:
        return tuple(t for r in self.repos for t in r.transfers if t.state == "running")

    def progress(self) -> float | None:
        """0..1 over running transfers with a known size; None when there are none."""
        sized = [t for t in self.running() if t.bytes_total]
        if not sized:
            return None
        total = sum(t.bytes_total or 0 for t in sized)
        done = sum(min(t.bytes_done, t.bytes_total or 0) for t in sized)
        return done / total if total else None

    def tooltip(self, now: float) -> str:
        """One or a few lines for the tray icon's tooltip."""
        lines = [f"annexsync: {_headline(self, self.health(now), now)}"]
        running = self.running()
        if running:
            pct = self.progress()
            shown = f" ({pct * 100:.0f}%)" if pct is not None else ""
            lines.append(f"{len(running)} transfer{_s(len(running))} running{shown}")
        queued = sum(r.queued for r in self.repos)
        if queued:
            lines.append(f"{queued} transfer{_s(queued)} queued")
        lines += [p.line(now) for p in self.pushes if p.active or p.failed]
        return "\n".join(lines)


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _clock(t: float) -> str:
    return time.strftime("%H:%M", time.localtime(t))


def _headline(status: Status, health: Health, now: float) -> str:
    repos = status.repos
    if health is Health.ERROR:
        first = next(r for r in repos if r.problem)
        return f"error in {first.path}: {first.problem}"
    if health is Health.ATTENTION:
        n = sum(len(r.conflicts) for r in repos)
        return f"{n} conflict{_s(n)} to resolve"
    if health is Health.PAUSED:
        until = status.paused_until
        return "paused" if until is None or math.isinf(until) else f"paused until {_clock(until)}"
    if health is Health.OFFLINE:
        return "offline, waiting for the network"
    if health is Health.SYNCING:
        changes = sum(r.uncommitted for r in repos)
        return f"syncing ({changes} change{_s(changes)} to commit)" if changes else "syncing"
    if health is Health.WAITING:
        names = sorted({rm.name for r in repos for rm in r.remotes if rm.reachable is False}
                       | {d.name for d in status.devices if d.waiting}
                       | {p.peer for p in status.failed_pushes()})
        return "waiting for " + ", ".join(names)
    return "everything synced" if repos else "no repositories"


# --- JSON ---------------------------------------------------------------------


def to_json(status: Status) -> dict[str, Any]:
    """A plain dict (``math.inf`` becomes the string ``"inf"``)."""
    data = dataclasses.asdict(status)
    if status.paused_until is not None and math.isinf(status.paused_until):
        data["paused_until"] = "inf"
    return data


def status_from_json(data: dict[str, Any]) -> Status:
    """The inverse of ``to_json``.

    Raises:
        KeyError, TypeError, ValueError: ``data`` is not a serialized Status.
    """
    repos = tuple(
        RepoStatus(
            **{
                **r,
                "transfers": tuple(TransferStatus(**t) for t in r["transfers"]),
                "remotes": tuple(RemoteStatus(**x) for x in r["remotes"]),
                "conflicts": tuple(
                    Conflict(**{**c, "variants": tuple(c["variants"])}) for c in r["conflicts"]
                ),
            }
        )
        for r in data["repos"]
    )
    paused = data.get("paused_until")
    return Status(
        repos=repos,
        online=bool(data["online"]),
        paused_until=math.inf if paused == "inf" else paused,
        alerts=tuple(Alert(**a) for a in data["alerts"]),
        activity=tuple(data["activity"]),
        xmpp=XmppStatus(**data.get("xmpp", {})),
        devices=tuple(DeviceStatus(**d) for d in data.get("devices", ())),
        pushes=tuple(PushStatus(**p) for p in data.get("pushes", ())),
    )
