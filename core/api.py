"""The facade: ``Core``, the one door between front ends and the sync core.

Contract: docs/facade.md.  Spec: assistant-behaviour.md (the daemon), style.md
3 and 5 (small facade, immutable status, structured concurrency).

Theory of operation
-------------------
``Core`` is the composition root (style 2).  ``run`` takes the instance lock
of the config directory, attaches the rotating log, and opens the root
TaskGroup, which owns:

* the transfer queue's scheduler (``core.daemon.transferqueue``), shared by
  all repositories (``transfer_slots`` slots, used to one remote too);
* the NetWatch (``core.daemon.netwatch``): online/offline, sleep/resume,
  re-probing waiting remotes;
* the instance socket (``core.instance``): ``annexsync status`` and hand-over
  of a second launch's arguments;
* the pause timer (``pause(until)`` resumes by itself);
* with the setting ``p2p_listen = HOST:PORT``, the TCP listener serving every
  synced repository to P2P peers (``core.p2p.listen``); it restarts when the
  repositories or the address change, and a failure to listen is an alert;
* the ``DeviceHub`` (``core.devices.hub``): this device's identity, the
  paired-device records and the XMPP link, kicked by the NetWatch when the
  network comes back or the machine wakes;
* one ``RepoWorker`` task per repository (``core.daemon.repoworker``), each
  with its own child group (watchers and loop).

``stop`` sets an event; ``run`` then cancels what it started, the TaskGroup
waits for every child, cleanup runs in ``finally`` blocks, and ``run``
returns: no task outlives it.

Status: every change anywhere calls ``changed``, which derives a new frozen
``Status`` from the parts and, when it differs from the last one, hands it to
each subscriber (on the event loop's thread; a failing subscriber is logged
and kept).  Commands are coroutines that return once accepted; they raise
``CoreError`` subclasses written for the user.  Blocking work (repository
checks, git) runs in threads (``core.daemon.threads``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import clusterview, gitlock, gitops
from core.activity import ActivityLog
from core.clusterview import FileCopies
from core.daemon import jobs
from core.daemon.alerts import AlertBook
from core.daemon.jobs import TransferMeter
from core.daemon.netwatch import NetEvents, NetWatch, route_probe
from core.daemon.repoworker import NETWORK_KINDS, RepoWorker
from core.daemon.threads import run_blocking
from core.daemon.timings import Timings
from core.daemon.transferqueue import Transfer, TransferQueue
from core.devices.hub import DeviceHub
from core.devices.paired import PairedDevice, SharedRepo
from core.devices.pushes import PushControl, sync_job
from core.devices.remote import use_config_dir
from core.errors import CoreError, GitCommandError
from core.instance import InstanceLock, serve
from core.scheduler.events import Direction, Wait
from core.scheduler.runner import JobResult
from core.settings import (
    Settings,
    close_logging,
    load_settings,
    save_settings,
    setup_logging,
)
from core.status import AlertLevel, Status, to_json
from core.xmpp import account
from core.xmpp.client import XmppConfig

if TYPE_CHECKING:  # pairing (zeroconf, spake2) is imported when first used: a fast start
    from core.pairing.service import OpenWindow, Pairing, PairOutcome

logger = logging.getLogger(__name__)

ACKS_FILE = "conflicts.json"
ACTIVITY_KEEP = 20
_REMOTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
REMOTE_NAME_RULE = ("use letters, digits, '.', '_' and '-', starting with a letter or digit "
                    "(no spaces)")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://|^[^/:]+:")  # scheme://, or scp-like host:path


def _check_location(repo: str, url: str) -> None:
    """A location that is a local path must exist (issue 19: a typo is refused at once).

    Raises:
        CoreError: nothing at that path.
    """
    if _URL.match(url):
        return
    path = Path(repo, os.path.expanduser(url))
    if not path.exists():
        raise CoreError(f"no folder at {path}: give an existing folder, or a URL such as "
                        "ssh://host/path or host:path")


class UnknownRepository(CoreError):
    def __init__(self, path: str) -> None:
        super().__init__(f"{path} is not one of the synced repositories")
        self.path = path


class Core:
    def __init__(
        self,
        config_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
        timings: Timings | None = None,
        net_probe: Callable[[], bool] | None = None,
    ) -> None:
        """Raises: SettingsError when the saved settings cannot be read."""
        self.config_dir = Path(config_dir)
        self.clock = clock
        self.timings = timings or Timings()
        self.settings = load_settings(self.config_dir)
        self.hub = DeviceHub(self.config_dir, lambda: self.settings, timings=self.timings,
                             on_change=self.changed, paused=self.paused,
                             on_received=self._received)  # fmt: skip
        self.hub.on_scan = self._device_scan
        self.hub.push_job = self._device_job
        self.on_handover: Callable[[list[str]], None] | None = None
        self._pairing: Pairing | None = None
        self._net_probe = net_probe or route_probe
        self._subscribers: list[Callable[[Status], None]] = []
        self._status = Status()
        self._workers: dict[str, RepoWorker] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._listener: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._done = asyncio.Event()
        self._pause_changed = asyncio.Event()
        self._paused_until = self._saved_pause()
        self.alerts = AlertBook(clock)
        self._activity = ActivityLog(self.config_dir, clock)
        self._acks = self._load_acks()
        self.queue = TransferQueue(
            self._run_transfer, slots=self.settings.transfer_slots, on_change=self.changed,
            unreachable=self._unreachable, paused=self.paused,
            bandwidth=lambda: self.settings.bandwidth_limit, retry_base=self.timings.retry_base,
        )
        self.netwatch = NetWatch(
            NetEvents(self._online_changed, self._resumed, self._reprobe),
            interval=self.timings.probe_interval, tolerance=self.timings.clock_tolerance,
            probe=self._probe, wall=clock,
        )

    # --- the Host protocol of RepoWorker ------------------------------------------------

    def now(self) -> float:
        return self.clock()

    def paused(self) -> bool:
        return self._paused_until is not None and self._paused_until > self.clock()

    def online(self) -> bool:
        return self.netwatch.online

    def activity(self, text: str) -> None:
        logger.info("%s", text)
        self._activity.add(text)
        self.changed()

    def alert(self, level: str, text: str, *, name: str | None = None,
              notify: bool = False, repo: str | None = None) -> None:
        """Record an alert; errors always become notifications (spec 8: Error class)."""
        lvl: AlertLevel = level if level in ("info", "success", "warning", "error") else "info"  # type: ignore[assignment]
        self.alerts.add(lvl, text, name=name, notify=notify or lvl == "error", repo=repo)
        self.changed()

    def clear_alert(self, name: str) -> None:
        """The cause of alert ``name`` is gone: it leaves the window and the menu."""
        if self.alerts.clear(name):
            self.changed()

    def acknowledged(self, repo: str, path: str, variants: tuple[str, ...]) -> bool:
        return [repo, path, list(variants)] in self._acks

    def branch_moved(self, repo: str) -> None:
        """A worker committed: paired devices sharing ``repo`` are told (xmpp-sync C.5)."""
        self.hub.branch_moved(repo)

    def scheduler_pushes(self, repo: str, device_id: str) -> bool:
        """Whether the push scheduler pushes ``repo`` to the device (the worker does not)."""
        return self.hub.scheduler_pushes(repo, device_id)

    async def _device_job(self, device: PairedDevice, shared: SharedRepo, direction: Direction,
                          control: PushControl) -> JobResult:  # fmt: skip
        """The scheduler's job (``pushes.sync_job``) under the repository worker's lock,
        as the worker's own jobs run (one writer per repository); a push that went
        through shows as the device's last sync, and a pull tells the scheduler our
        branches may have moved (it advertises again: devices already up to date
        answer so, nothing is pushed twice)."""
        w = self._workers.get(str(Path(shared.path).absolute()))
        if w is None:
            return await sync_job(device, shared, direction, control)
        control.waiting(Wait.IDLE)  # the worker may hold the lock a while: not an IQ's 30 s
        async with w.lock:
            result = await sync_job(device, shared, direction, control)
        if result.ok and direction is Direction.OUTGOING:
            w.device_pushed(device.device_id)
        elif result.ok:
            self.branch_moved(w.path)  # what we merged goes on to the other devices
        return result

    def _device_scan(self, repo: str, device_id: str) -> None:
        """A push from a desynced device, or one that changed the git-annex branch (C.7)."""
        w = self._workers.get(repo)
        if w is not None:
            w.need_receive = True
            w.scan_keys = None
            w.kick()

    # --- status ------------------------------------------------------------------------

    @property
    def status(self) -> Status:
        return self._status

    def subscribe(self, callback: Callable[[Status], None]) -> Callable[[], None]:
        """Call ``callback`` with every new Status (on the loop's thread); returns unsubscribe."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    def changed(self) -> None:
        """Derive a new Status; push it when it differs from the last one."""
        new = Status(
            repos=tuple(w.status() for w in self._workers.values()),
            online=self.netwatch.online if hasattr(self, "netwatch") else True,
            paused_until=self._paused_until,
            alerts=self.alerts.alerts(),
            activity=tuple(a.text for a in self._activity.entries()[:ACTIVITY_KEEP]),
            activity_log=self._activity.entries(),
            xmpp=self.hub.xmpp_status(),
            devices=self.hub.statuses(),
            sessions=self.hub.sessions(),
            pushes=self.hub.push_statuses(),
        )
        if new == self._status:
            return
        self._status = new
        for cb in list(self._subscribers):
            try:
                cb(new)
            except Exception:  # noqa: BLE001 - a front end's bug must not stop the core
                logger.exception("status subscriber failed")

    # --- lifetime ------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until ``stop``.

        Raises:
            AlreadyRunning: another instance uses this config directory.
        """
        lock = InstanceLock(self.config_dir)
        handler = setup_logging(self.config_dir)
        # The daemon recovers git locks left by dead processes (core.gitlock).
        stale = gitlock.LockPolicy(stale_after=self.timings.stale_lock)
        gitlock.set_policy(gitlock.policy_from_env(stale))
        self._stop.clear()
        self._done.clear()
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                services = [
                    tg.create_task(self.queue.run(), name="transfer-queue"),
                    tg.create_task(self.netwatch.run(), name="netwatch"),
                    tg.create_task(serve(self.config_dir, self._on_request), name="instance"),
                    tg.create_task(self._pause_timer(), name="pause-timer"),
                    tg.create_task(self.hub.run(), name="devices"),
                ]
                for path in self.settings.repositories:
                    self._start_worker(path)
                self._restart_listener()
                await self.netwatch.check()
                self.changed()
                await self._stop.wait()
                for task in [*services, *self._tasks.values(), self._listener]:
                    if task is not None:
                        task.cancel()
        finally:
            self._tg = None
            self._listener = None
            self._tasks.clear()
            self._workers.clear()
            close_logging(handler)
            lock.release()
            self._done.set()

    async def stop(self) -> None:
        """Ask ``run`` to finish and wait (bounded) until it has."""
        self._stop.set()
        if self._tg is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.timings.stop_grace + 5):
                await self._done.wait()

    def _start_worker(self, path: str, *, create: bool = False,
                      description: str | None = None) -> RepoWorker:
        assert self._tg is not None
        worker = RepoWorker(path, self, create=create, description=description,
                            largefiles=self.settings.largefiles)
        use_config_dir(worker.path, self.config_dir)  # its paired devices are ours
        self._workers[worker.path] = worker
        self._tasks[worker.path] = self._tg.create_task(self._guard(worker),
                                                        name=f"repo {worker.path}")
        self.changed()
        return worker

    def _restart_listener(self) -> None:
        """(Re)start the P2P listener for the current settings; the old one ends first."""
        if self._tg is None:
            return
        previous, self._listener = self._listener, None
        if previous is not None:
            previous.cancel()
        if self.settings.p2p_listen:
            self._listener = self._tg.create_task(
                self._listen(self.settings.p2p_listen, self.settings.repositories, previous),
                name="p2p-listener")  # fmt: skip

    async def _listen(self, bind: str, repos: tuple[str, ...],
                      previous: asyncio.Task[None] | None) -> None:  # fmt: skip
        from core.p2p.listen import serve_repositories

        if previous is not None:
            await asyncio.wait({previous})  # its socket is closed before we bind again
        try:
            await serve_repositories(repos, bind, on_started=self._serving,
                                     paired=self.hub.serve_lan)  # fmt: skip
        except (OSError, CoreError) as e:
            logger.warning("P2P listener on %s: %s", bind, e)
            self.alert("error", f"Cannot serve P2P peers on {bind}: {e}", name="p2p-listen")

    def _serving(self, lst: Any) -> None:
        self.clear_alert("p2p-listen")  # an earlier bind failure is over
        self.activity(f"Serving {len(lst.repos)} repositories to P2P peers on {lst.host}:{lst.port}")

    async def _guard(self, worker: RepoWorker) -> None:
        """A crashing worker shows its error instead of taking the core down."""
        try:
            await worker.run()
        except Exception as e:  # noqa: BLE001 - shown in status, restartable by sync_now
            logger.exception("worker for %s crashed", worker.path)
            worker.error = f"stopped after an internal error: {e}"
            self.changed()

    def device_online(self, device_id: str) -> bool:
        """Whether a paired device's daemon is online on XMPP now, or its LAN
        listener answered the last probe (the workers' probe for its remotes)."""
        return self.hub.lan_reachable(device_id) or any(
            d.device_id == device_id and d.presence == "online"  # not paused
            for d in self.hub.statuses())  # fmt: skip

    async def _received(self, path: Path) -> None:
        """A paired device pushed into ``path``: its worker merges now (xmpp-sync C.3)."""
        w = self._workers.get(str(Path(path).absolute()))
        if w is None:
            from core.devices.hub import merge_received

            await merge_received(path)
            return
        w.need_receive = True
        w.kick()

    def _worker(self, repo: str) -> RepoWorker:
        key = str(Path(repo).absolute())
        w = self._workers.get(key)
        if w is None:
            raise UnknownRepository(repo)
        return w

    async def _pause_timer(self) -> None:
        while True:
            self._pause_changed.clear()
            until = self._paused_until
            delay = None if until is None or math.isinf(until) else max(0.0, until - self.clock())
            try:
                async with asyncio.timeout(delay):
                    await self._pause_changed.wait()
            except TimeoutError:
                if self._paused_until is not None and self._paused_until <= self.clock():
                    await self.resume()

    # --- network events --------------------------------------------------------------------

    def _probe(self) -> bool:
        """Online when a route exists, or when no remote needs the network anyway."""
        needs_net = any(r.info.kind in NETWORK_KINDS
                        for w in self._workers.values() for r in w.remotes.values())
        return self._net_probe() or not needs_net

    async def _online_changed(self, online: bool) -> None:
        self.alert("info" if online else "warning",
                   "Network is back" if online else "Offline: waiting for the network",
                   name="network")
        if online:
            self.hub.kick()  # XMPP reconnects at once (xmpp-sync C.6)
            for w in self._workers.values():
                w.desync_all()
        self.queue.wake()
        self.changed()

    async def _resumed(self) -> None:
        self.activity("Resumed from sleep: reconnecting")
        self.hub.kick(restart=True)
        for w in self._workers.values():
            w.desync_all()

    async def _reprobe(self) -> None:
        for w in list(self._workers.values()):
            if w.ready.is_set() and w.error is None:
                try:
                    await w.reprobe()
                except CoreError as e:
                    logger.info("%s: probe failed: %s", w.path, e)

    def _unreachable(self, repo: str, remote: str) -> None:
        w = self._workers.get(repo)
        if w is not None:
            w.mark_unreachable(remote, f"{remote} is not reachable")
        self.netwatch.kick()

    async def _run_transfer(self, t: Transfer, meter: TransferMeter) -> None:
        w = self._workers.get(t.repo)
        if w is None:
            raise CoreError(f"{t.repo} is no longer synced")
        await w.run_transfer(t, meter)

    # --- the instance socket -------------------------------------------------------------------

    async def _on_request(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "status":
            return {"ok": True, "status": to_json(self._status)}
        if op == "handover":
            argv = [str(a) for a in request.get("argv", [])]
            cwd = Path(str(request.get("cwd") or "."))
            await self._handover(argv, cwd)
            # "window": whether a front end with a window took it (the tray app), or a
            # headless daemon did: a second GUI launch then says so (issue 19)
            return {"ok": True, "window": self.on_handover is not None}
        if op == "xmpp-login":
            await self.xmpp_login(str(request.get("jid") or ""), str(request.get("password") or ""),
                                  server=request.get("server") or None,
                                  ca_file=request.get("ca_file") or None)  # fmt: skip
            return {"ok": True, "status": to_json(self._status)}
        if op == "xmpp-logout":
            await self.xmpp_logout()
            return {"ok": True}
        if op == "devices-changed":  # `annexsync pair` paired or forgot a device (issue 14)
            await self.devices_changed()
            return {"ok": True}
        return {"ok": False, "error": f"unknown request {op!r}"}

    async def devices_changed(self) -> None:
        """The paired records and remotes changed outside this process: read them
        now, and reconnect every folder's remotes so a new device syncs at once."""
        await self.hub.reload()
        for w in list(self._workers.values()):
            with contextlib.suppress(CoreError):
                await w.refresh_facts()
            w.desync_all()

    async def _handover(self, argv: list[str], cwd: Path) -> None:
        """A second launch: its repository arguments are added; the rest goes to the front end."""
        self.activity("Another launch handed over " + (" ".join(argv) or "no arguments"))
        rest: list[str] = []
        for a in argv:
            if a.startswith("-"):
                rest.append(a)
                continue
            path = (cwd / a).absolute()
            if str(path) in self._workers:
                continue
            await self.add_repository(str(path), create=jobs.needs_creation(str(path)))
        if self.on_handover is not None:
            self.on_handover(rest)

    # --- commands ----------------------------------------------------------------------------------

    async def pause(self, until: float | None = None) -> None:
        """Pause syncing until the epoch time ``until`` (None: until ``resume``)."""
        self._paused_until = math.inf if until is None else until
        self._pause_changed.set()
        # a timed pause survives a restart too (issue 19), until its time has passed
        await self._save(self.settings.replace(paused=until is None, paused_until=until))
        if self.hub.link is not None:
            self.hub.link.announce()
        self.activity("Paused syncing")

    def _saved_pause(self) -> float | None:
        """The pause the settings remember: indefinite, or timed and not yet over."""
        if self.settings.paused:
            return math.inf
        until = self.settings.paused_until
        return until if until is not None and until > self.clock() else None

    async def resume(self) -> None:
        self._paused_until = None
        self._pause_changed.set()
        if self.settings.paused or self.settings.paused_until is not None:
            await self._save(self.settings.replace(paused=False, paused_until=None))
        for w in self._workers.values():
            w.kick()
        self.queue.wake()
        if self.hub.link is not None:
            self.hub.link.announce()
        self.activity("Resumed syncing")

    async def sync_now(self, repo: str | None = None) -> None:
        """Merge, reconnect every remote, push, rescan (a crashed worker restarts);
        nothing waits out a back-off: not a remote's, not a paired device's push."""
        workers = [self._worker(repo)] if repo else list(self._workers.values())
        self.hub.sync_now(workers[0].path if repo else None)
        for w in workers:
            task = self._tasks.get(w.path)
            if task is not None and task.done():
                self._start_worker(w.path)
                continue
            w.sync_now()
        self.netwatch.kick()

    async def add_repository(self, path: str, *, create: bool,
                             description: str | None = None) -> None:
        """Start syncing a repository (``create``: make it first, files unlocked).

        Raises:
            NotARepository: ``create`` is False and ``path`` is no git-annex repository.
            CoreError: it is synced already.
        """
        key = str(Path(path).absolute())
        if key in self._workers:
            raise CoreError(f"{key} is synced already")
        await run_blocking(jobs.prepare, key, create, description, self.settings.largefiles)
        await self._save(self.settings.replace(
            repositories=(*self.settings.repositories, key)))
        if self._tg is not None:
            self._start_worker(key)
        self.alert("info", f"Syncing {key}")

    async def remove_repository(self, path: str) -> None:
        """Stop syncing (the repository itself stays as it is)."""
        w = self._worker(path)
        task = self._tasks.pop(w.path, None)
        self.queue.drop_repo(w.path)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(self.timings.stop_grace):
                    await asyncio.wait({task})
        self._workers.pop(w.path, None)
        self.alerts.clear_repo(w.path)  # nothing about it is shown any more
        await self._save(self.settings.replace(
            repositories=tuple(p for p in self.settings.repositories if p != w.path)))
        self.changed()

    async def add_remote(self, repo: str, name: str, url: str) -> None:
        """``git remote add`` and sync with it.

        Raises:
            CoreError: a bad name, or git refused (the name exists, say).
        """
        w = self._worker(repo)
        if not _REMOTE_NAME.match(name):
            raise CoreError(f"{name!r} is not a usable remote name: {REMOTE_NAME_RULE}")
        _check_location(w.path, url)
        await self._git_remote(w, ["remote", "add", name, url], f"cannot add remote {name}")

    async def set_remote_url(self, repo: str, name: str, url: str) -> None:
        """Point remote ``name`` at a new location (checked as ``add_remote`` checks it).

        Raises:
            CoreError: the location does not exist, or git refused (no such remote).
        """
        w = self._worker(repo)
        _check_location(w.path, url)
        await self._git_remote(w, ["remote", "set-url", name, url], f"cannot change remote {name}")

    async def remove_remote(self, repo: str, name: str) -> None:
        """``git remote remove``: stop syncing with ``name`` (nothing there is touched).

        Raises:
            CoreError: git refused (no such remote).
        """
        await self._git_remote(self._worker(repo), ["remote", "remove", name],
                               f"cannot remove remote {name}")

    async def _git_remote(self, w: RepoWorker, args: list[str], what: str) -> None:
        try:
            async with w.lock:
                await run_blocking(gitops.run_git, Path(w.path), args)
        except GitCommandError as e:
            raise CoreError(f"{what}: {e}") from e
        await w.refresh_facts()
        w.desync_all()

    async def xmpp_login(self, jid: str, password: str, *, server: str | None = None,
                         ca_file: str | None = None) -> None:
        """Check the login, then keep the account (password in the keyring) and use it.

        ``server`` is ``HOST[:PORT]`` when DNS does not name it; ``ca_file`` a PEM file
        that signs a self-hosted server's certificate.  A new address removes the old
        address's password.

        Raises:
            XmppError: the login failed; SecretsUnavailable: no safe keyring.
            Nothing is stored in either case.
        """
        cfg = XmppConfig(jid.strip(), password, server or None, ca_file or None)
        self.settings = await account.login(self.config_dir, cfg)
        self.hub.kick(restart=True)
        self.activity(f"Signed in to XMPP as {cfg.jid}")

    # --- pairing (issue 15; core.pairing.service) ----------------------------------------

    @property
    def pairing(self) -> Pairing:
        if self._pairing is None:
            from core.pairing.service import Pairing

            self._pairing = Pairing(self.config_dir, lambda: self.settings, self.clock)
        return self._pairing

    async def pair_show(self, how: str, friend: str | None = None, *,
                        on_open: Callable[[OpenWindow], None],
                        timeout: float = 600.0) -> PairOutcome:  # fmt: skip
        """Show a code (``on_open``) and wait for a device: ``how`` is ``lan``, ``own``
        (this XMPP account's devices) or ``friend`` (``friend``'s account).

        Raises:
            PairingFailed: expired, too many wrong codes; CoreError: no account, bad address.
        """
        outcome = await self.pairing.show(how, friend, on_open, timeout)
        await self._paired(outcome)
        return outcome

    async def pair_join(self, code: str, *, on_progress: Callable[[str], None]) -> PairOutcome:
        """Join the device showing ``code``: on the LAN, then over XMPP.

        Raises:
            BadCode: not a code; PairingFailed: not paired, and why.
        """
        outcome = await self.pairing.join(code, on_progress)
        await self._paired(outcome)
        return outcome

    async def forget_device(self, device_id: str) -> None:
        """Forget a paired device: its key, record and remotes."""
        await self.pairing.forget(device_id)
        await self.devices_changed()
        self.hub.kick()
        self.changed()

    async def _paired(self, outcome: PairOutcome) -> None:
        """The new record and remote are used at once (not at the next records
        refresh): the Devices view shows the device, the first sync starts now."""
        self.activity(f"Paired with {outcome.name} over {outcome.transport}")
        await self.devices_changed()
        self.hub.kick()
        self.changed()

    async def xmpp_logout(self) -> None:
        """Stop using the XMPP account and remove its password from the keyring."""
        self.settings = await account.logout(self.config_dir)
        self.hub.kick(restart=True)
        self.activity("Signed out of XMPP")

    async def cancel_transfer(self, transfer_id: int) -> None:
        if not self.queue.cancel(transfer_id):
            raise CoreError(f"there is no queued or running transfer {transfer_id}")

    async def resolve_conflict(self, repo: str, path: str, keep: str | None) -> None:
        """``keep=None``: keep both variants (acknowledge); else that variant becomes ``path``.

        Raises:
            CoreError: no such conflict, or ``keep`` is not one of its variants.
        """
        w = self._worker(repo)
        found = await run_blocking(jobs.find_conflicts, w.path)
        variants = found.get(path)
        if variants is None:
            raise CoreError(f"there is no conflict on {path} in {w.path}")
        if keep is None:
            self._acks.append([w.path, path, list(variants)])
            await run_blocking(self._save_acks)
        else:
            async with w.lock:
                await run_blocking(jobs.keep_variant, w.path, path, keep, variants)
            w._schedule_push()
        w._conflicts_stale = True
        w.kick()
        self.activity(f"Resolved the conflict on {path}")

    async def file_copies(self, repo: str, path: str) -> FileCopies:
        """Where ``path``'s copies are and whether dropping it here is safe now
        (numcopies-aware, the drop's own check: ``core.clusterview``).

        Raises:
            CoreError: no such folder, or ``path`` is not an annexed file.
        """
        w = self._worker(repo)
        return await run_blocking(clusterview.file_copies, w.path, path)

    async def update_settings(self, settings: Settings) -> None:
        """Save and apply: slots at once, repositories added or removed."""
        old = self.settings
        await self._save(settings)
        self.queue.slots = settings.transfer_slots
        self.queue.wake()
        if self._tg is not None:
            for gone in set(old.repositories) - set(settings.repositories):
                if gone in self._workers:
                    await self.remove_repository(gone)
            for new in settings.repositories:
                if new not in self._workers:
                    self._start_worker(new)
        self.changed()

    async def dismiss_alert(self, alert_id: int) -> None:
        if self.alerts.dismiss(alert_id):
            self.changed()

    # --- persistence ---------------------------------------------------------------------------

    async def _save(self, settings: Settings) -> None:
        old = self.settings
        await run_blocking(save_settings, self.config_dir, settings)
        self.settings = settings
        if (old.p2p_listen, old.repositories) != (settings.p2p_listen, settings.repositories):
            self._restart_listener()

    def _load_acks(self) -> list[list[Any]]:
        try:
            data = json.loads((self.config_dir / ACKS_FILE).read_text())
        except (OSError, ValueError):
            return []
        return [a for a in data if isinstance(a, list) and len(a) == 3] if isinstance(data, list) else []

    def _save_acks(self) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.config_dir / (ACKS_FILE + ".tmp")
        tmp.write_text(json.dumps(self._acks))
        tmp.replace(self.config_dir / ACKS_FILE)
