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

``Health`` is *derived* (``Status.health``), never stored: this is the one
definition of "synced" (issue 18).  The rules, first match wins:

0. STOPPED    no daemon made this snapshot (``annexsync status`` read the
              repositories itself): nothing syncs, so nothing is "synced";
1. ERROR      a repository reports an error (cannot open, refused to write ...,
              a job that failed and is being retried, e.g. a held git lock),
              a merge that failed, or its folder is gone (``RepoStatus.problem``);
              or a *peer* fails in a way waiting will not cure (``Peer.failure``:
              host not found, authentication failed, not a git-annex repository,
              our pushes refused -- ``core.failures``);
2. SETUP      no folder is synced yet (first run: not a green check);
3. ATTENTION  a conflict waits for the user, or a transfer was cancelled or
              failed and the content is still not where it is wanted
              (``RepoStatus.unfinished``; its remote is not merely waiting);
4. PAUSED     ``paused_until`` lies in the future (``math.inf``: indefinitely);
5. OFFLINE    the network is down;
6. SYNCING    anything pending: an uncommitted change, a queued or running
              transfer, a scan, or a *reachable, not failing* remote that still
              needs a push or merge (``RemoteStatus.pending``);
              or a push with a paired device that runs or waits only for a
              free slot (``PushStatus.active``, issue 13);
7. WAITING    some peer waits (``Peer.waiting``): an unreachable remote (its
              work waits for it), a paired device that is not online and is
              owed something (``DeviceStatus.owed``);  a push with a paired device that failed or
              timed out (``PushStatus.failed``: the scheduler retries it after a
              back-off);
8. SYNCED     nothing of the above -- so SYNCED never shows while work is
              pending, a peer fails or a folder is missing.

*Peers* are everything health follows besides the local folders: the
remotes of every repository, the nodes of its clusters (``NodeStatus``, issue
17), the paired devices and their pushes; each gives its status value the
``Peer`` shape (``peer_name``, ``failure``, ``waiting``) and is listed in
``Status.peers``.

``to_json``/``status_from_json`` carry a ``Status`` over the instance socket.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, Protocol

from core.activity import Activity

Direction = Literal["download", "upload"]
TransferState = Literal["queued", "running", "done", "failed", "cancelled"]
AlertLevel = Literal["info", "success", "warning", "error"]
DevicePresence = Literal["online", "away", "offline", "unknown"]
XmppState = Literal["off", "connecting", "online", "offline", "error"]
SessionDirection = Literal["incoming", "outgoing"]
SessionState = Literal["handshake", "open", "done", "failed", "refused"]
SessionTransport = Literal["lan", "xmpp"]
_TRANSPORT_WORDS: dict[str, str] = {"lan": "the LAN", "xmpp": "XMPP"}
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
    SETUP = "setup"  # no folder yet
    STOPPED = "stopped"  # no daemon running (``annexsync status`` read the folders itself)


class Peer(Protocol):
    """What health needs from a remote, a device, an XMPP peer, a cluster node."""

    @property
    def peer_name(self) -> str: ...
    @property
    def failure(self) -> str | None: ...  # short words, when waiting will not cure it
    @property
    def waiting(self) -> bool: ...


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


class _Reached:
    """A remote's or a cluster node's peer rule: unreachable (``reachable`` False)
    waits; an error while reachable or not yet tried fails."""

    name: str
    reachable: bool | None
    error: str | None

    @property
    def peer_name(self) -> str:
        return self.name

    @property
    def failure(self) -> str | None:
        return self.error if self.reachable is not False else None

    @property
    def waiting(self) -> bool:
        return self.reachable is False


@dataclass(frozen=True)
class RemoteStatus(_Reached):
    name: str
    uuid: str | None
    kind: str
    reachable: bool | None = None  # None: not tried yet
    last_sync: float | None = None  # epoch seconds of the last complete push+pull
    waiting_since: float | None = None  # unreachable since
    push_deadline: float | None = None  # a push in flight and when its timeout fires
    error: str | None = None  # a short reason (core.failures), one line
    pending: bool = False  # (addition) commits or git-annex changes not yet pushed/merged
    wanted_note: str | None = None  # its preferred content acts as "present" (spec 10.2)
    # --- issue 18: the raw text behind ``error``, for a details view ---
    detail: str | None = None
    # a remote reached through a gateway (clusters.md 4.1): the gateway remote's name;
    # a cluster also names its node remotes, which are not synced one by one
    via: str | None = None
    nodes: tuple[str, ...] = ()
    transport: str = ""  # how it is reached: ssh, p2p, folder, http... (RemoteInfo.transport)

    def state_words(self) -> str:
        """Its state in the words ``annexsync status`` and the GUI share."""
        if self.failure:
            return f"failing: {self.failure}"
        if self.waiting:
            return "waiting" + (f": {self.error}" if self.error else "")
        return {True: "reachable", None: "not tried"}[self.reachable]


@dataclass(frozen=True)
class NodeStatus(_Reached):
    """One node of a cluster (issue 17): what the location logs say it holds,
    and whether it answered the last probe (through the gateway, or directly
    when this repository is the gateway)."""

    name: str  # the remote's name here: ``origin-node1`` through a gateway, ``node1`` at it
    uuid: str
    reachable: bool | None = None  # None: not probed (no daemon, or not yet)
    keys: int = 0
    bytes: int = 0
    error: str | None = None  # why the last probe failed, in words


@dataclass(frozen=True)
class ClusterStatus:
    """A cluster this repository uses through a gateway, or is the gateway of."""

    name: str  # its remote's name (``origin-mycluster``), or its name at the gateway
    uuid: str
    via: str | None = None  # the gateway remote; None: this repository is the gateway
    nodes: tuple[NodeStatus, ...] = ()
    keys: int = 0  # keys on at least one node
    bytes: int = 0

    @property
    def reachable_nodes(self) -> int:
        return sum(1 for n in self.nodes if n.reachable is not False)


@dataclass(frozen=True)
class Conflict:
    repo: str
    path: str  # the original name
    variants: tuple[str, ...]  # the .variant- paths, relative to the repository
    origins: tuple[str, ...] = ()  # for each variant, the device it came from ("" unknown)

    def origin(self, variant: str) -> str:
        """The device ``variant`` came from, "" when unknown."""
        pairs = dict(zip(self.variants, self.origins, strict=False))
        return pairs.get(variant, "")

    def describe_versions(self) -> list[str]:
        """Each variant with its device, as ``annexsync status`` lists them."""
        return [f"{v} (from {self.origin(v)})" if self.origin(v) else v for v in self.variants]


@dataclass(frozen=True)
class Alert:
    id: int
    level: AlertLevel
    text: str
    time: float
    notify: bool = False
    repo: str | None = None  # the folder it is about: a click on its notification opens it


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

    wanted_note: str | None = None  # its preferred content acts as "present" (spec 10.2)
    # --- issue 18: the folder itself is gone (unplugged drive, moved) ---
    missing: bool = False
    clusters: tuple[ClusterStatus, ...] = ()  # issue 17

    @property
    def problem(self) -> str | None:
        """What is wrong, in words, or None: a missing folder, the repository's error,
        else a failed merge."""
        if self.missing:
            return "folder not found (unplugged or moved?)"
        return self.error or self.merge_error

    def busy(self) -> bool:
        """Local work pending: changes to commit, transfers, a scan, or a push/merge
        owed to a reachable remote that is not failing."""
        return bool(
            self.uncommitted
            or self.queued
            or self.scanning
            or any(t.state in ("queued", "running") for t in self.transfers)
            or any(r.pending and r.reachable is not False and not r.error for r in self.remotes)
        )

    def unfinished(self) -> tuple[TransferStatus, ...]:
        """Cancelled or failed transfers whose content is still not where it is wanted:
        no later transfer of the same key in the same direction is done, queued or
        running, and the remote is not merely waiting (then WAITING says so; the rescan
        on its return queues the content again)."""
        waiting = {r.name for r in self.remotes if r.reachable is False}
        settled: set[tuple[str, str]] = set()
        left = []
        for t in self.transfers:  # running, queued, then finished newest first
            ident = (t.direction, t.key)
            if ident in settled:
                continue
            settled.add(ident)
            # remote "": dropped because every remote it could use became unreachable
            if t.state in ("cancelled", "failed") and t.remote and t.remote not in waiting:
                left.append(t)
        return tuple(left)


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
    transport: str | None = None  # a paired device: "XMPP" when seen there, else "LAN"/"XMPP" as paired

    @property
    def waiting(self) -> bool:
        return self.paired and self.owed and self.presence != "online"

    @property
    def peer_name(self) -> str:
        return self.name

    @property
    def failure(self) -> str | None:
        return None


@dataclass(frozen=True)
class PeerSession:
    """One encrypted session with a paired device, over XMPP or the LAN listener
    (xmpp-sync C.3, C.4; issue 14): ``transport`` says which.

    ``bytes_in``/``bytes_out`` count what crossed the bytestream (encrypted
    frames), so they move while a transfer runs; ``reason`` says in words why
    a session failed or was refused (a refusal is a security event).
    """

    device: str  # its name, or its address before it proved who it is
    direction: SessionDirection
    state: SessionState
    device_id: str | None = None
    repo: str | None = None  # the repository it served or used
    bytes_in: int = 0
    bytes_out: int = 0
    started: float = 0.0
    reason: str | None = None
    transport: SessionTransport | None = None  # what carried it

    @property
    def text(self) -> str:
        way = "from" if self.direction == "incoming" else "to"
        moved = f"{self.bytes_in + self.bytes_out:,} bytes"
        where = f" ({self.repo})" if self.repo else ""
        over = f" over {_TRANSPORT_WORDS[self.transport]}" if self.transport else ""
        why = f": {self.reason}" if self.reason else ""
        return f"session {way} {self.device}{where}{over}: {self.state}, {moved}{why}"


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
    stopped: bool = False  # no job: this repository's pushes stopped (an internal error)

    @property
    def active(self) -> bool:
        """Running, invited, or pending with nothing but a free slot missing."""
        return self.phase in ("running", "invited") or (self.phase == "pending" and self.ready)

    @property
    def failed(self) -> bool:
        return self.outcome in ("failed", "timed out")

    # the Peer shape (health): a failed push waits for its retry, it is no failure
    @property
    def peer_name(self) -> str:
        return self.peer

    @property
    def failure(self) -> str | None:
        return self.reason if self.stopped else None  # nothing retries it: an error

    @property
    def waiting(self) -> bool:
        return self.failed and not self.stopped

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
    sessions: tuple[PeerSession, ...] = ()  # recent sessions with paired devices, newest last
    daemon: bool = True  # issue 18: False when no daemon made it (``annexsync status``)
    # issue 19: the same lines with their time, repeats folded (core.activity), newest first
    activity_log: tuple[Activity, ...] = ()
    pushes: tuple[PushStatus, ...] = ()  # issue 13: pushes with paired devices

    def peers(self) -> tuple[Peer, ...]:
        """Every peer health follows (module header): remotes, cluster nodes,
        paired devices, pushes."""
        return (*(rm for r in self.repos for rm in r.remotes),
                *(n for r in self.repos for c in r.clusters for n in c.nodes),
                *self.devices, *self.pushes)  # fmt: skip

    def failed_pushes(self) -> tuple[PushStatus, ...]:
        return tuple(p for p in self.pushes if p.failed)

    def online_devices(self) -> tuple[DeviceStatus, ...]:
        return tuple(d for d in self.devices if d.presence in ("online", "away"))

    def paused(self, now: float) -> bool:
        return self.paused_until is not None and self.paused_until > now

    def health(self, now: float) -> Health:
        """The derived tray state (rules in the module header)."""
        if not self.daemon:
            return Health.STOPPED
        if any(r.problem for r in self.repos) or any(p.failure for p in self.peers()):
            return Health.ERROR
        if not self.repos:
            return Health.SETUP
        if any(r.conflicts or r.unfinished() for r in self.repos):
            return Health.ATTENTION
        if self.paused(now):
            return Health.PAUSED
        if not self.online:
            return Health.OFFLINE
        if any(r.busy() for r in self.repos) or any(p.active for p in self.pushes):
            return Health.SYNCING
        if any(p.waiting for p in self.peers()):
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

    def headline(self, now: float) -> str:
        """The state in a few words (the tooltip's first line, ``status``'s, its JSON's)."""
        return _headline(self, self.health(now), now)

    def tooltip(self, now: float) -> str:
        """One or a few lines for the tray icon's tooltip."""
        lines = [f"annexsync: {self.headline(now)}"]
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
    if health is Health.STOPPED:
        return "not running" + (f"; last known: {_known(status, now)}" if repos else "")
    if health is Health.ERROR:
        return error_words(status)
    if health is Health.SETUP:
        return "no folder synced yet"
    if health is Health.ATTENTION:
        n = sum(len(r.conflicts) for r in repos)
        if n:
            return f"{n} conflict{_s(n)} to resolve"
        u = sum(len(r.unfinished()) for r in repos)
        return f"{u} file{_s(u)} not copied (transfer cancelled or failed)"
    if health is Health.PAUSED:
        until = status.paused_until
        return "paused" if until is None or math.isinf(until) else f"paused until {_clock(until)}"
    if health is Health.OFFLINE:
        return "offline, waiting for the network"
    if health is Health.SYNCING:
        changes = sum(r.uncommitted for r in repos)
        return f"syncing ({changes} change{_s(changes)} to commit)" if changes else "syncing"
    if health is Health.WAITING:
        return "waiting for " + ", ".join(sorted({p.peer_name for p in status.peers()
                                                   if p.waiting}))
    return "everything synced"


def error_words(status: Status) -> str:
    """The first error in words: a folder's problem, else a failing peer's reason."""
    first = next((r for r in status.repos if r.problem), None)
    if first is not None:
        return f"error in {first.path}: {first.problem}"
    peer = next(p for p in status.peers() if p.failure)
    return f"{peer.peer_name}: {peer.failure}"


def _known(status: Status, now: float) -> str:
    """What the folders tell without a daemon: problems, conflicts, changes not committed."""
    facts = [error_words(status)] if any(r.problem for r in status.repos) else []
    n = sum(len(r.conflicts) for r in status.repos)
    if n:
        facts.append(f"{n} conflict{_s(n)} to resolve")
    u = sum(r.uncommitted for r in status.repos)
    if u:
        facts.append(f"{u} change{_s(u)} not committed")
    return "; ".join(facts) or "no changes waiting"


# --- JSON ---------------------------------------------------------------------


def to_json(status: Status) -> dict[str, Any]:
    """A plain dict (``math.inf`` becomes the string ``"inf"``)."""
    data = dataclasses.asdict(status)
    if status.paused_until is not None and math.isinf(status.paused_until):
        data["paused_until"] = "inf"
    return data


def _cluster_from_json(c: dict[str, Any]) -> ClusterStatus:
    return ClusterStatus(**{**c, "nodes": tuple(NodeStatus(**n) for n in c["nodes"])})


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
                "remotes": tuple(RemoteStatus(**{**x, "nodes": tuple(x.get("nodes", ()))})
                                 for x in r["remotes"]),
                "conflicts": tuple(
                    Conflict(**{**c, "variants": tuple(c["variants"]),
                                "origins": tuple(c.get("origins", ()))})
                    for c in r["conflicts"]
                ),
                "clusters": tuple(_cluster_from_json(c) for c in r.get("clusters", ())),
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
        sessions=tuple(PeerSession(**x) for x in data.get("sessions", ())),
        daemon=bool(data.get("daemon", True)),
        activity_log=tuple(Activity(**a) for a in data.get("activity_log", ())),
        pushes=tuple(PushStatus(**p) for p in data.get("pushes", ())),
    )
