"""One repository under the daemon: watcher, committer, pusher, merger, scanner.

Spec: assistant-behaviour.md 2 (threads), 3 (the event flow), 6 (loss and
reconnect); section 8 keeps the batching numbers, the 2 s push delay,
single-writer fallback refs, deferred downloads, spread after download and
the re-check before transfers.

Theory of operation
-------------------
``RepoWorker.run`` owns a TaskGroup with three tasks:

* ``_watch_tree``: ``watchfiles.awatch`` on the work tree (``.git`` and our
  temp files filtered out) records changed paths in the ``Batcher``;
* ``_watch_refs``: ``awatch`` on ``.git/refs``: a change of ``synced/`` refs,
  single-writer ``refs/synced/`` refs or a foreign ``*/git-annex`` ref means a
  peer pushed here, so a *receive* is due (the Merger, 3.3 step 1);
* ``_loop``: the one place that acts.  Each round (``step``), in order:
  commit what the batching rules release (everything, before a merge); merge
  what was received; reconnect *desynced* remotes (fetch+merge, then a push
  and a full scan: 6.2 (3)); push to every remote when the push delay has
  passed; scan for transfers and queue them.  It then sleeps until the next
  timer (batcher, push) or until woken.

All repository work runs in threads (``core.daemon.jobs``) under
``self.lock``, an ``asyncio.Lock``: one writer per repository (style 5).  The
transfer queue is shared by all repositories; it calls ``run_transfer`` here,
which moves content outside the lock and finishes (fills unlocked files)
inside it.  Content is queued the assistant's way: uploads of new files at the
front after a commit, downloads (and uploads) found by scans at the back;
downloads no remote has yet are *deferred*: the scan after the next git-annex
merge finds them again.  After a download the same key is rescanned so it
spreads to the other remotes that want it.

Remote state: ``reachable`` (None until tried), ``waiting_since`` when a
remote could not be reached, ``pending`` while a push is owed, ``desynced``
after loss, resume or start (a reconnect is owed).  Failures are silent but
retried: a push refused twice falls back to single-writer refs, a failed one
is retried after ``push_retry``; an unreachable remote is re-probed by the
NetWatch and reconnected when it answers.

Stale git locks: ``step`` sweeps the repository's git lock files every
``idle_tick`` (``core.gitlock.sweep``); a lock a job runs into is recovered
there already, once it has been stale for ``Timings.stale_lock``.

Failures: a job that fails (commit, merge, push, a scan, anything ``step``
raises, say ``GitLockHeld`` while another process holds ``index.lock``) never
ends the worker.  It is recorded in ``failures`` (shown as the repository's
error in status, in words, so health is never "synced" meanwhile) and retried
after a back-off (``Timings.job_retry_base`` doubling to ``job_retry_max``):
commits by re-queueing their paths, everything else by marking a receive,
a full scan and the owed pushes due again.  The first success clears it.

Pause: watchers keep recording (the uncommitted count shows), nothing else
runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from watchfiles import Change, awatch

from core import clusterview, failures, gitlock
from core.daemon import jobs
from core.daemon.batching import Batcher
from core.daemon.jobs import TransferMeter
from core.daemon.threads import run_blocking, run_blocking_cancellable
from core.daemon.timings import Timings
from core.daemon.transferqueue import NotNeeded, Transfer, TransferQueue, Unreachable
from core.errors import CoreError, MergeConflict, MergeFailed, TransferBusy
from core.failures import Failure
from core.remotes import RemoteInfo, RemoteKind
from core.remotetypes import PAIRED_PREFIX
from core.repo.key import Key
from core.status import ClusterStatus, Conflict, RemoteStatus, RepoStatus

logger = logging.getLogger(__name__)

NETWORK_KINDS = (RemoteKind.P2P, RemoteKind.HTTP, RemoteKind.GIT, RemoteKind.XMPP,
                 RemoteKind.PAIRED)


def device_of(info: RemoteInfo) -> str:
    """The device id of a paired device's remote (``annexsync::paired:<id>``)."""
    return (info.url or "").removeprefix(PAIRED_PREFIX)


class Host(Protocol):
    """What a worker needs from the daemon (``core.api.Core``)."""

    queue: TransferQueue
    timings: Timings

    def now(self) -> float: ...
    def paused(self) -> bool: ...
    def online(self) -> bool: ...
    def changed(self) -> None: ...
    def activity(self, text: str) -> None: ...
    def alert(self, level: str, text: str, *, name: str | None = None,
              notify: bool = False, repo: str | None = None) -> None: ...
    def clear_alert(self, name: str) -> None: ...
    def acknowledged(self, repo: str, path: str, variants: tuple[str, ...]) -> bool: ...
    def device_online(self, device_id: str) -> bool: ...
    def branch_moved(self, repo: str) -> None: ...
    def scheduler_pushes(self, repo: str, device_id: str) -> bool: ...


@dataclass
class RemoteState:
    info: RemoteInfo
    reachable: bool | None = None
    last_sync: float | None = None
    waiting_since: float | None = None
    push_deadline: float | None = None
    error: str | None = None
    pending: bool = False
    wanted_note: str | None = None
    desynced: bool = True
    retry_at: float | None = None
    detail: str | None = None  # the raw text behind ``error`` (issue 18)

    def status(self) -> RemoteStatus:
        return RemoteStatus(
            name=self.info.name, uuid=self.info.uuid, kind=self.info.kind.value,
            reachable=self.reachable, last_sync=self.last_sync,
            waiting_since=self.waiting_since, push_deadline=self.push_deadline,
            error=self.error, pending=self.pending or self.desynced,
            wanted_note=self.wanted_note, detail=self.detail, transport=self.info.transport,
        )

    def proxied_status(self, info: RemoteInfo, nodes: tuple[str, ...],
                       wanted_note: str | None) -> RemoteStatus:  # fmt: skip
        """A remote this gateway proxies: reachable as the gateway is (clusters.md 4.1)."""
        return RemoteStatus(
            name=info.name, uuid=info.uuid, kind=info.kind.value, reachable=self.reachable,
            last_sync=self.last_sync, waiting_since=self.waiting_since,
            wanted_note=wanted_note, via=self.info.name, nodes=nodes, transport=info.transport,
        )

    def failed(self, raw: str | None) -> Failure | None:
        """Record why it failed: the short reason shown, the raw text for details."""
        f = failures.classify(raw) if raw else None
        self.error = f.words if f else None
        self.detail = raw
        return f

    def unknown(self) -> RemoteStatus:
        """Its status while our own folder is missing: nothing about it is known now."""
        return RemoteStatus(name=self.info.name, uuid=self.info.uuid, kind=self.info.kind.value,
                            last_sync=self.last_sync, wanted_note=self.wanted_note,
                            transport=self.info.transport)


class RepoWorker:
    def __init__(self, path: str, host: Host, *, create: bool = False,
                 description: str | None = None, largefiles: str | None = None) -> None:
        self.path = str(Path(path).absolute())
        self.host = host
        self.t = host.timings
        self.create = create
        self.description_arg = description
        self.largefiles = largefiles
        self.uuid = ""
        self.description = ""
        self.error: str | None = None
        self.wanted_notes: dict[str, str] = {}  # uuid -> preferred content treated as present
        self.scanning = False
        self.batcher = Batcher(self.t.batch)
        self.remotes: dict[str, RemoteState] = {}
        self.paired: list[RemoteInfo] = []  # paired devices' remotes, online or not
        self.proxied: tuple[RemoteInfo, ...] = ()  # through a gateway in ``remotes``
        self.cluster_nodes: dict[str, tuple[str, ...]] = {}
        self.clusters: tuple[ClusterStatus, ...] = ()  # issue 17: nodes probed each reprobe
        self.has_clusters = False  # uses a cluster or is a gateway of one (refresh_facts)
        self.conflicts: tuple[Conflict, ...] = ()
        self.lock = asyncio.Lock()
        self.wake = asyncio.Event()
        self.ready = asyncio.Event()
        self.need_receive = True
        self.scan_keys: set[str] | None = set()  # None = full scan due; empty = none
        self.front_keys: set[str] = set()
        self.push_at: float | None = None
        self.last_reconnect = 0.0
        self._conflicts_stale = True
        self.annex_tip: bytes | None = None
        # source ("" = refs pushed here, else a remote's name) -> why its merge failed
        self.merge_errors: dict[str, str] = {}
        self.failures: dict[str, str] = {}  # job -> what went wrong, in words
        self.fail_count = 0
        self.retry_at: float | None = None  # when failed jobs run again
        self.next_sweep = 0.0  # when git's lock files are looked at again
        self.missing = False  # the folder is gone (unplugged, moved): issue 18

    # --- the folder itself (issue 18) --------------------------------------------------

    def check_folder(self) -> bool:
        """Notice the folder vanishing or coming back; True while it is there.

        A drive unplugged or a folder moved must not leave "syncing enabled"
        and "last sync just now" on screen: the status says it is missing (an
        error) until it is back, and then a full round runs again.
        """
        there = (Path(self.path) / ".git").exists()
        if there == (not self.missing):
            return there
        self.missing = not there
        if there:
            self.host.clear_alert(f"missing {self.path}")
            self.host.activity(f"{Path(self.path).name} is back")
            self.need_receive, self.scan_keys = True, None
            self.desync_all()
        else:
            self.host.queue.drop_repo(self.path)  # nothing to copy from or into meanwhile
            self.host.alert("error", f"{Path(self.path).name}: folder not found "
                            f"(unplugged or moved?): {self.path}", name=f"missing {self.path}",
                            notify=True, repo=self.path)
        self.host.changed()
        return there

    # --- status ------------------------------------------------------------------

    def status(self) -> RepoStatus:
        q = self.host.queue
        rs = self.remotes.values()
        return RepoStatus(
            path=self.path, uuid=self.uuid, description=self.description,
            uncommitted=self.batcher.pending, queued=q.queued(self.path),
            transfers=q.transfers(self.path),
            remotes=tuple(r.unknown() if self.missing else r.status() for r in rs)
            + (() if self.missing else self._proxied_status()),
            missing=self.missing, clusters=() if self.missing else self.clusters,
            conflicts=self.conflicts, scanning=self.scanning,
            error=self.error or self._failure_text(),
            merge_error="; ".join(self.merge_errors.values()) or None,
            wanted_note=self.wanted_notes.get(self.uuid),
        )

    def _failure_text(self) -> str | None:
        if not self.failures:
            return None
        return "; ".join(self.failures.values()) + " (annexsync keeps trying)"

    # --- failed jobs ---------------------------------------------------------------------

    def _failed(self, job: str, verb: str, error: BaseException) -> float:
        """Record a failed job (module header, "Failures"); return when it runs again.

        A job that failed because the folder went away while it ran is not a
        failure of its own: the missing folder is the one error shown.
        """
        if not self.check_folder():
            return self.host.now()
        e = gitlock.explain(error)
        logger.warning("%s: %s failed, will retry: %s", self.path, job, e)
        text = f"could not {verb}: {e}"
        if self.failures.get(job) != text:  # once per new problem, not on every retry
            self.host.alert("error", f"{Path(self.path).name}: {text}", name=f"{job} {self.path}",
                            repo=self.path)
        self.failures[job] = text
        self.fail_count += 1
        delay = min(self.t.job_retry_max, self.t.job_retry_base * 2 ** (self.fail_count - 1))
        self.retry_at = self.host.now() + delay
        self.host.changed()
        return self.retry_at

    def _succeeded(self, job: str) -> None:
        if self.failures.pop(job, None) is not None:
            self.host.alert("success", f"{Path(self.path).name}: working again",
                            name=f"{job} {self.path}")
        if not self.failures:
            self.fail_count = 0
            self.retry_at = None

    def _retry_failed(self, now: float) -> None:
        """The back-off passed: mark the work of failed jobs due again."""
        if self.retry_at is None or now < self.retry_at:
            return
        self.retry_at = None
        self.need_receive = True
        self.scan_keys = None
        if any(r.pending for r in self.remotes.values()):
            self.push_at = now

    def kick(self) -> None:
        self.wake.set()

    def sync_now(self) -> None:
        """The person's "Sync now": merge, reconnect every remote, push and rescan at
        once; no back-off is waited out (a failed job's, a remote's push retry), an
        unreachable remote is tried again and what they cancelled is queued again."""
        self.need_receive, self.scan_keys, self.retry_at = True, None, None
        self.host.queue.release(self.path)  # what the person cancelled is wanted again
        for r in self.remotes.values():
            if r.reachable is False:
                r.reachable = None
            r.retry_at = None
        self.desync_all()

    # --- running ---------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await run_blocking(jobs.prepare, self.path, self.create, self.description_arg,
                               self.largefiles)
            await self.refresh_facts()
        except CoreError as e:
            self.error = str(e)
            self.host.changed()
            self.ready.set()
            return  # shown in status; remove_repository or a restart retries
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._watch_tree(), name=f"watch-tree {self.path}")
            tg.create_task(self._watch_refs(), name=f"watch-refs {self.path}")
            tg.create_task(self._loop(), name=f"worker {self.path}")
            tg.create_task(self.probe_clusters(), name=f"clusters {self.path}")

    async def refresh_facts(self) -> None:
        f = await run_blocking(jobs.facts, self.path)
        self.uuid, self.description = f.uuid, f.description
        self.wanted_notes = f.wanted_notes
        self.paired = [i for i in f.remotes if i.kind is RemoteKind.PAIRED]
        remotes = [i for i in f.remotes if i.kind is not RemoteKind.PAIRED]  # _follow_devices
        remotes += [i for i in self.paired if i.name in self.remotes]
        for info in remotes:
            state = self.remotes.get(info.name)
            if state is None:
                state = self.remotes[info.name] = RemoteState(info)
            state.info = info
            state.wanted_note = f.wanted_notes.get(info.uuid or "")
        for gone in set(self.remotes) - {i.name for i in remotes}:
            del self.remotes[gone]
            self.host.clear_alert(f"sync {self.path} {gone}")
        self.proxied, self.cluster_nodes = f.proxied, f.cluster_nodes
        self.has_clusters = bool(f.gateway_of) or any(
            i.kind is RemoteKind.CLUSTER for i in f.proxied)
        self.host.changed()

    def _proxied_status(self) -> tuple[RemoteStatus, ...]:
        out = []
        for info in self.proxied:
            gw = self.remotes.get(info.via or "")
            if gw is not None:
                out.append(gw.proxied_status(info, self.cluster_nodes.get(info.name, ()),
                                             self.wanted_notes.get(info.uuid or "")))  # fmt: skip
        return tuple(out)

    def _content_remotes(self) -> list[str]:
        """Remotes content moves with now: usable git remotes, and what their
        gateways proxy with annex-sync on -- a cluster, never its nodes (clusters.md 4.6)."""
        usable = [r.info.name for r in self.remotes.values() if self._usable(r)]
        return usable + [p.name for p in self.proxied if p.sync and p.via in usable]

    def _state_for(self, name: str) -> RemoteState | None:
        """The state a transfer with ``name`` depends on: a proxied remote's is its gateway's."""
        via = next((p.via for p in self.proxied if p.name == name), None)
        return self.remotes.get(via or name)

    async def _startup(self) -> None:
        """Startup scan (spec 2, Watcher): find changes made while we were not running."""
        self.scanning = True
        self.host.changed()
        try:
            paths = await run_blocking(jobs.scan_all, self.path)
            self.batcher.record(paths, self.host.now() - self.t.batch.quiet)
            self.scan_keys = None
        finally:
            self.scanning = False
            self.ready.set()
            self.host.changed()

    async def _loop(self) -> None:
        await self._startup()
        while True:
            await self._sleep()
            if self.host.paused() or not self.check_folder():
                continue
            try:
                await self.step()
            except Exception as e:  # noqa: BLE001 - shown in status and retried, never fatal
                if not isinstance(e, (CoreError, OSError)):
                    logger.exception("%s: unexpected error", self.path)
                self._failed("step", "sync", e)
            else:
                if not self._backing_off(self.host.now()):  # a whole round ran
                    self._succeeded("step")

    def _due(self, now: float) -> float | None:
        """Seconds until the next timer; 0 when work is waiting; None when idle (paused,
        or the folder is missing: the tree watcher or ``idle_tick`` looks again)."""
        if self.host.paused() or self.missing:
            return None
        if self._backing_off(now):
            pass  # failed jobs wait for retry_at (below)
        elif self.need_receive or self.scan_keys is None or self.scan_keys:
            return 0.0
        elif any(r.desynced and self._usable(r) for r in self.remotes.values()):
            return 0.0
        times = [t for t in (self.batcher.next_check(now), self.push_at, self.retry_at,
                             *(r.retry_at for r in self.remotes.values())) if t is not None]
        return max(0.0, min(times) - now) if times else None

    async def _sleep(self) -> None:
        due = self._due(self.host.now())
        if due == 0.0:
            await asyncio.sleep(0)
            return
        timeout = self.t.idle_tick if due is None else min(due, self.t.idle_tick)
        try:
            async with asyncio.timeout(timeout):
                await self.wake.wait()
        except TimeoutError:
            pass
        self.wake.clear()

    def _backing_off(self, now: float) -> bool:
        return self.retry_at is not None and now < self.retry_at

    def _follow_devices(self) -> None:
        """A paired device takes part while it is online (its XMPP presence, or
        its LAN listener answering the hub's probe, is the probe): it joins the remotes -- desynced, so it is pulled from, pushed to
        and scanned for at once -- and leaves them, with its queued transfers,
        when it goes offline; an offline device's debt shows as
        ``DeviceStatus.owed`` instead."""
        for info in self.paired:
            online = self.host.device_online(device_of(info))
            if online and info.name not in self.remotes:
                self.remotes[info.name] = RemoteState(info)
                self.host.changed()
            elif not online and info.name in self.remotes:
                del self.remotes[info.name]
                self.host.queue.drop_remote(self.path, info.name)
                self.host.changed()

    async def step(self) -> None:
        self._follow_devices()
        now = self.host.now()
        if now >= self.next_sweep:  # stale git locks, as the assistant's sanity checker
            self.next_sweep = now + self.t.idle_tick
            await run_blocking(jobs.sweep_locks, self.path)
        self._retry_failed(now)
        backing_off = self._backing_off(now)
        for r in self.remotes.values():  # PushRetrier (spec 2)
            if r.retry_at is not None and now >= r.retry_at:
                r.retry_at, r.pending = None, True
                self.push_at = now
        reconnect = [] if backing_off else \
            [r for r in self.remotes.values() if r.desynced and self._usable(r)]
        flush = (self.need_receive and not backing_off) or bool(reconnect)
        paths = self.batcher.flush() if flush else self.batcher.decide(now)
        if paths:
            await self._commit(paths)
        if self.need_receive and not self._backing_off(self.host.now()):
            await self._receive()
        for r in reconnect:
            await self._reconnect(r)
        if self._backing_off(self.host.now()):
            return
        if self.push_at is not None and self.host.now() >= self.push_at:
            await self._push_all()
        if self.scan_keys is None or self.scan_keys:
            await self._scan()
        if self._conflicts_stale:
            await self._refresh_conflicts()

    def _usable(self, r: RemoteState) -> bool:
        if r.info.kind in NETWORK_KINDS and not self.host.online():
            return False
        return r.reachable is not False

    # --- committer -------------------------------------------------------------------

    async def _commit(self, paths: list[str]) -> None:
        self.host.changed()
        try:
            async with self.lock:
                out = await run_blocking(jobs.commit_changes, self.path, paths, None)
        except MergeConflict as e:
            self.batcher.requeue(paths, self.host.now())
            self.error = None
            self._conflicts_stale = True
            logger.info("%s: commit waits for a conflict: %s", self.path, e)
            return
        except Exception as e:  # noqa: BLE001 - requeued and shown; the worker goes on
            self.batcher.requeue(paths, self._failed("commit", "commit", e))
            return
        self._succeeded("commit")
        if out.commit is not None:
            self.host.activity(f"Committed {len(paths)} change{'s' if len(paths) != 1 else ''} "
                               f"in {Path(self.path).name}")
            self._schedule_push()
            self._conflicts_stale = True
        if out.added:  # dotfiles and small files (into git) too, not only annexed ones
            self.host.alert("info", _files_text("Added", out.added), name=f"added {self.path}")
        if out.added_keys:
            if self.scan_keys is not None:
                keys = {str(k) for _, k in out.added_keys}
                self.scan_keys |= keys
                self.front_keys |= keys
        self.host.changed()

    def _schedule_push(self) -> None:
        for r in self.remotes.values():
            if r.info.push and not r.info.readonly and not self._handed_over(r):
                r.pending = True  # (the scheduler owes its own pushes: branch_moved below)
        at = self.host.now() + self.t.push_delay
        self.push_at = at if self.push_at is None else min(self.push_at, at)
        self.host.branch_moved(self.path)  # paired devices: advertise (core.devices.pushes)
        self.kick()

    # --- merger ----------------------------------------------------------------------

    async def _receive(self) -> None:
        self.need_receive = False
        try:
            async with self.lock:
                got = await run_blocking(jobs.receive, self.path)
        except MergeConflict as e:
            self._conflicts_stale = True
            logger.info("%s: merge left conflicts: %s", self.path, e)
            return
        except MergeFailed as e:
            self._merge_failed("", e)
            return
        except Exception as e:  # noqa: BLE001 - shown and retried
            self._failed("merge", "merge what was received", e)
            return
        self._merge_done("")
        self._succeeded("merge")
        logger.debug("%s: received %s", self.path, got)
        if got.merged or got.annex_tip != self.annex_tip:
            # New files, or new location information (a peer may also push our
            # git-annex branch directly, 8.2 step 6): downloads may be due.
            first_look = self.annex_tip is None
            self.annex_tip = got.annex_tip
            self.scan_keys = None  # new files or new location information
            self._conflicts_stale = True
            if got.merged or not first_look:  # the branch as we found it is no news
                self.host.activity(f"Merged changes into {Path(self.path).name}")
            self.host.branch_moved(self.path)  # paired devices learn the merge
        if got.resolved:
            self._schedule_push()
            self.host.alert("warning", f"Conflicting changes in {Path(self.path).name}",
                            name=f"conflict {self.path}", notify=True, repo=self.path)
        self.host.changed()

    def _merge_failed(self, source: str, e: MergeFailed) -> None:
        """A merge git refused is an error in the status until one from ``source``
        succeeds; "Sync now" and every reconnect retry it."""
        if not self.check_folder():
            return  # the folder went away meanwhile: that is the error shown
        logger.warning("%s: %s", self.path, e)
        text = str(e)
        if self.merge_errors.get(source) != text:
            self.merge_errors[source] = text
            self.host.alert("error", f"Could not merge changes into {Path(self.path).name}",
                            name=f"merge {self.path}", notify=True, repo=self.path)
        self.host.changed()

    def _merge_done(self, source: str) -> None:
        if self.merge_errors.pop(source, None) is not None:
            if not self.merge_errors:
                self.host.clear_alert(f"merge {self.path}")
            self.host.activity(f"Merged into {Path(self.path).name} again")
            self.host.changed()

    async def _refresh_conflicts(self) -> None:
        self._conflicts_stale = False
        found = await run_blocking(jobs.conflicts, self.path)
        shown = tuple(c for c in found if not self.host.acknowledged(self.path, c.path, c.variants))
        if not shown:
            self.host.clear_alert(f"conflict {self.path}")
        if shown != self.conflicts:
            self.conflicts = shown
            self.host.changed()

    # --- pusher and reconnects ------------------------------------------------------------

    async def _push_all(self) -> None:
        self.push_at = None
        for r in list(self.remotes.values()):
            if not r.pending or not self._usable(r):
                continue
            await self._push(r)

    def _handed_over(self, r: RemoteState) -> bool:
        """A paired device the push scheduler serves (online on XMPP) gets our git
        pushes from it alone (xmpp-sync C.5, ``core.devices.pushes``): it advertised
        when we committed (``branch_moved``) and pushes when the device wants it.
        The worker's round still pulls from it and moves content with it; a device
        reached over the LAN only is pushed to here, as any remote."""
        return r.info.kind is RemoteKind.PAIRED and \
            self.host.scheduler_pushes(self.path, device_of(r.info))

    def device_pushed(self, device_id: str) -> None:
        """The scheduler's push to ``device_id`` went through: its remote is in sync."""
        for r in self.remotes.values():
            if r.info.kind is RemoteKind.PAIRED and device_of(r.info) == device_id:
                r.pending, r.last_sync = False, self.host.now()
                self.mark_reachable(r)
                self.host.changed()

    async def _push(self, r: RemoteState) -> None:
        if self._handed_over(r):
            r.pending = False  # owed by the scheduler now, not by this worker
            return
        now = self.host.now()
        r.push_deadline = now + self.t.push_timeout
        self.host.changed()
        try:
            async with self.lock:
                out = await run_blocking(jobs.push_remote, self.path, r.info.name)
        except MergeFailed as e:  # the pull before a second push
            self._merge_failed(r.info.name, e)
            out = jobs.RemoteOutcome(False, False, str(e))
        except Exception as e:  # noqa: BLE001 - local failure: r stays pending, retried
            self._failed("push", f"push to {r.info.name}", e)
            return
        else:
            if out.ok:  # pushed: the remote's branch is in ours, so merged
                self._merge_done(r.info.name)
        finally:
            r.push_deadline = None
        self._succeeded("push")
        self._remote_outcome(r, out, pushed=True)

    async def _reconnect(self, r: RemoteState) -> None:
        """6.2 (3): fetch and merge, push, rescan.  A failure leaves it owed."""
        try:
            await self._reconnect_once(r)
        except BaseException:
            r.desynced = True
            raise

    async def _reconnect_once(self, r: RemoteState) -> None:
        r.desynced = False
        if r.info.pull:
            try:
                async with self.lock:
                    out = await run_blocking(jobs.pull_remote, self.path, r.info.name)
            except MergeConflict as e:
                logger.info("%s: merging %s left conflicts: %s", self.path, r.info.name, e)
                self._conflicts_stale = True
                out = jobs.RemoteOutcome(True, changed=True)
            except MergeFailed as e:
                self._merge_failed(r.info.name, e)
                out = jobs.RemoteOutcome(True)  # fetched: the remote is fine
            else:
                if out.ok:
                    self._merge_done(r.info.name)
            self._remote_outcome(r, out, pushed=False)
            if not out.ok:
                return
            if r.info.kind is RemoteKind.PAIRED:
                self.host.branch_moved(self.path)  # the scheduler takes what we merged on
            if out.changed:
                self._conflicts_stale = True
        if r.info.push and not r.info.readonly:
            r.pending = True
            await self._push(r)
        self.scan_keys = None

    def _remote_outcome(self, r: RemoteState, out: jobs.RemoteOutcome, pushed: bool) -> None:
        now = self.host.now()
        if out.ok:
            self.mark_reachable(r)
            self.host.clear_alert(f"sync {self.path} {r.info.name}")
            if pushed:
                r.pending = False
                r.last_sync = now
            r.failed(None)
        elif out.unreachable:
            self.mark_unreachable(r.info.name, out.error)
        else:
            before = r.error
            f = r.failed(out.error or f"could not sync with {r.info.name}")
            r.retry_at = now + self.t.push_retry  # PushRetrier (spec 2)
            if f is not None and r.error != before:  # errors notify, once per new reason
                self.host.alert("error", f"Failed to sync with {r.info.name}: {f.words}",
                                name=f"sync {self.path} {r.info.name}", notify=True,
                                repo=self.path)
        if out.changed:
            self.scan_keys = None
            self._conflicts_stale = True
        self.host.changed()

    def mark_reachable(self, r: RemoteState) -> None:
        if r.reachable is False:
            r.desynced = True
            self.host.activity(f"{r.info.name} is reachable again")
        r.reachable = True
        r.waiting_since = None
        r.failed(None)
        self.kick()

    def mark_unreachable(self, name: str, error: str | None) -> None:
        r = self.remotes.get(name)
        if r is None:
            return
        if r.reachable is not False:
            r.waiting_since = self.host.now()
            self.host.activity(f"Waiting for {name}")
        r.reachable = False
        r.failed(error)
        r.desynced = True
        self.host.queue.drop_remote(self.path, name)
        self.host.changed()

    async def reprobe(self) -> None:
        """NetWatch round: reload remotes, probe waiting ones, notice path remotes vanishing
        (and our own folder)."""
        if not self.check_folder():
            return
        with contextlib.suppress(CoreError):
            await self.refresh_facts()
        await self.probe_clusters()
        for r in list(self.remotes.values()):
            probe = await run_blocking(jobs.remote_reachable, self.path, r.info)
            if probe is True and r.reachable is False:
                self.mark_reachable(r)
            elif probe is False and r.reachable is not False:
                self.mark_unreachable(r.info.name, f"{r.info.name}: folder not found ({r.info.url})")
            elif probe is None and r.reachable is False:
                r.reachable, r.desynced = None, True  # network kinds: only a real try tells
                self.kick()
        now = self.host.now()
        if now - self.last_reconnect >= self.t.fallback_reconnect:
            self.desync_all()

    async def probe_clusters(self) -> None:
        """Cluster nodes: what the logs say each holds, and whether it answers
        (``core.clusterview``); health follows them as it follows remotes."""
        if not self.has_clusters:
            if self.clusters:
                self.clusters = ()
                self.host.changed()
            return
        try:
            clusters = await run_blocking(clusterview.cluster_statuses, self.path,
                                          probe_nodes=True)  # fmt: skip
        except CoreError as e:
            logger.info("%s: cluster status: %s", self.path, e)
            return
        before = {n.name: n.reachable for c in self.clusters for n in c.nodes}
        for n in (n for c in clusters for n in c.nodes):
            if n.reachable is False and before.get(n.name) is not False:
                self.host.activity(f"Waiting for cluster node {n.name}")
            elif n.reachable and before.get(n.name) is False:
                self.host.activity(f"cluster node {n.name} is reachable again")
        self.clusters = clusters
        self.host.changed()

    def desync_all(self) -> None:
        """Network up, resume from sleep, hourly fallback: reconnect every remote (6.2)."""
        self.last_reconnect = self.host.now()
        for r in self.remotes.values():
            r.desynced = True
        if self.merge_errors:
            self.need_receive = True  # retry a failed merge of what was pushed here
        self.kick()

    # --- scanner and transfers ---------------------------------------------------------------

    async def _scan(self) -> None:
        only, self.scan_keys = self.scan_keys, set()
        front, self.front_keys = self.front_keys, set()
        usable = self._content_remotes()
        self.scanning = only is None
        self.host.changed()
        try:
            if only is None:
                async with self.lock:
                    await run_blocking(jobs.populate_present, self.path)
            planned = await run_blocking(jobs.plan_transfers, self.path, usable, only)
        finally:
            self.scanning = False
            self.host.changed()
        for p in planned:
            if p.direction == "refused":
                self._refused(p.key, p.path)
                continue
            await self.host.queue.put(self.path, p.direction, p.key, p.path, list(p.remotes),
                                      front=str(p.key) in front)
        await self._forget_moot()

    async def _forget_moot(self) -> None:
        """Cancelled or failed transfers whose content got where it is wanted
        another way (a device pushed it, git-annex by hand): they would keep the
        status at ATTENTION, and a cancelled one held back, until "Sync now"."""
        unfinished = self.status().unfinished()
        if not unfinished:
            return
        try:
            moot = await run_blocking(jobs.moot, self.path, unfinished)
        except CoreError as e:  # not known to be moot: they stay shown
            logger.info("%s: are the unfinished transfers still needed? %s", self.path, e)
            return
        for transfer_id in moot:
            self.host.queue.forget(transfer_id)

    def _refused(self, key: Key, path: str) -> None:
        """A wanted file whose backend we cannot verify: said once per file, never fetched."""
        self.host.alert("warning", f"Not downloading {path}: {key.refusal()}",
                        name=f"unverifiable {self.path} {path}")

    async def run_transfer(self, t: Transfer, meter: TransferMeter) -> None:
        """The Runner for this repository's entries (see transferqueue)."""
        needed = await run_blocking(jobs.still_needed, self.path, t.direction, t.key, t.path,
                                    t.remote)
        if not needed:
            raise NotNeeded()
        r = self._state_for(t.remote)
        if r is None or not self._usable(r):
            raise Unreachable(f"{t.remote} is not usable now")
        try:
            await run_blocking_cancellable(meter.cancel.set, self.t.stop_grace,
                                           jobs.run_transfer, self.path, t.direction, t.key,
                                           t.remote, meter)
        except TransferBusy:
            raise
        except CoreError as e:
            probe = await run_blocking(jobs.remote_reachable, self.path, r.info)
            if probe is False or (probe is None and jobs.classify(e)):
                raise Unreachable(str(e)) from e
            raise
        if t.direction == "download":
            async with self.lock:
                await run_blocking(jobs.finish_download, self.path, t.key)
            if self.scan_keys is not None:
                self.scan_keys.add(str(t.key))  # spread after download (3.3 step 4)
        self.mark_reachable(r)
        verb = "Downloaded" if t.direction == "download" else "Uploaded"
        self.host.alert("success", f"{verb} {t.path}", name=f"{verb} {self.path}")
        self._schedule_push()  # the location log changed

    # --- watchers ------------------------------------------------------------------------

    def _tree_filter(self, change: Change, path: str) -> bool:
        if path == self.path:
            return True  # the folder itself moved or went: check_folder tells
        rel = _rel(self.path, path)
        return rel is not None and not jobs.ignored(rel)

    async def _watch_tree(self) -> None:
        """Watch until stopped; a batch watchfiles cannot report becomes a scan.

        watchfiles 1.x cannot hand over a path that is not UTF-8 (its Rust
        side raises ``WatchfilesRustInternalError``, a ``RuntimeError``, inside
        an exception group, and the watch ends).  Paths are bytes to git, so such a file is found by a scan
        of the tree (``jobs.scan_all``, undecodable bytes kept as surrogates)
        and the watch starts again.
        """
        while True:
            try:
                await self._watch_tree_once()
                return
            except* RuntimeError as e:  # awatch raises it inside an exception group
                logger.info("%s: the watcher lost a batch (%s); scanning", self.path,
                            e.exceptions[0])
            await asyncio.sleep(self.t.retry_base)
            paths = await run_blocking(jobs.scan_all, self.path)
            if paths:
                self.batcher.record(paths, self.host.now())
                self.host.changed()
                self.kick()

    async def _watch_tree_once(self) -> None:
        stop = asyncio.Event()
        try:
            async for changes in awatch(self.path, watch_filter=self._tree_filter,
                                        debounce=self.t.watch_debounce_ms,
                                        step=self.t.watch_step_ms, stop_event=stop):
                if any(p == self.path for _, p in changes):
                    self.check_folder()
                rels = {r for _, p in changes if (r := _rel(self.path, p))}
                if rels:
                    self.batcher.record(rels, self.host.now())
                    self.host.changed()
                    self.kick()
        finally:
            stop.set()

    def _refs_filter(self, change: Change, path: str) -> bool:
        rel = _rel(str(Path(self.path) / ".git"), path)
        return rel is not None and is_incoming_ref(rel)

    async def _watch_refs(self) -> None:
        refs = Path(self.path) / ".git" / "refs"
        if not refs.is_dir():
            return
        stop = asyncio.Event()
        try:
            async for _ in awatch(refs, watch_filter=self._refs_filter,
                                  debounce=self.t.watch_debounce_ms,
                                  step=self.t.watch_step_ms, stop_event=stop):
                logger.debug("%s: incoming refs changed", self.path)
                self.need_receive = True
                self.kick()
        finally:
            stop.set()


def is_incoming_ref(rel: str) -> bool:
    """Refs a peer's push writes here (``rel`` relative to the git dir)."""
    if rel.endswith(".lock") or rel.startswith("refs/remotes/"):
        return False
    if rel.startswith(("refs/heads/synced/", "refs/synced/")):
        return True
    return rel.endswith("/git-annex")  # ours too: a peer may push it directly


def _rel(top: str, path: str) -> str | None:
    try:
        rel = Path(path).relative_to(top).as_posix()
    except ValueError:
        return None
    return None if rel in ("", ".") else rel


def _files_text(verb: str, paths: list[str], limit: int = 10) -> str:
    """``Added a, b and N other files`` (spec 5.2: file lists keep the last 10 names).

    Each file once; by its name, or by its path inside the folder when two
    listed files share a name (``a/notes.txt, b/notes.txt``, not ``notes.txt,
    notes.txt``).
    """
    unique = list(dict.fromkeys(paths))
    shown = unique[-limit:]
    names = [Path(p).name for p in shown]
    names = [p if names.count(n) > 1 else n for p, n in zip(shown, names, strict=True)]
    more = len(unique) - len(shown)
    text = f"{verb} " + ", ".join(names)
    return text + (f" and {more} other file{'s' if more != 1 else ''}" if more else "")
