"""Devices for the push scheduler tests: a real XmppLink and PushHub each, a real git
repository each, and a push job that moves git data between the repositories.

The job (``GitJob``) does what the P2P session of issue 12 will do, with plain
git on disk: an outgoing push runs ``git push`` into the peer's repository
(single-writer ref ``refs/synced/<our device>/main``), an incoming push
merges what peers pushed (fast-forward, or a merge commit; nothing when we
have it or the trees are equal -- so rounds of merges end), and ``watch``
merges it as well every half second, as the daemon's repository worker
does when refs arrive (so a push whose receiving job was cut still lands).
A merge that moved our branch is a commit: ``branch_moved``.  Merges and the
test's own commits take the device's ``lock`` (the daemon's repository lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.devices.paired import PairedDevice, SharedRepo, Transports
from core.devices.pushes import PushControl, PushHub
from core.scheduler.events import Direction, Limits, Wait
from core.scheduler.runner import JobResult
from core.xmpp.client import XmppLink
from tests.integration.xmpp_helpers import config, link
from tests.xmpp_server import Prosody

GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}  # fmt: skip


async def git(path: Path | str, *args: str, check: bool = True) -> str:
    proc = await _spawn("git", "-C", str(path), *args,
                        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)  # fmt: skip
    try:
        out, err = await proc.communicate()
    finally:
        await _end(proc)
    if check and proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {err.decode().strip()}")
    return out.decode().strip()


# Cancelled git processes (a kill in bench/xmpp_soak.py cuts a push: its job task is
# cancelled) must be reaped by asyncio's child watcher alone (Python 3.11: a thread in
# ``waitpid(pid)`` per child).  Anything that polls the ``Popen`` first -- its
# ``send_signal``/``kill``, or the transport's ``close`` (run when a process is left
# unawaited, and by ``create_subprocess_exec`` itself when it is cancelled while the
# process starts) -- may reap a child that has just exited before that thread does,
# which then warns "Unknown child process pid N, will report returncode 255".


async def _spawn(*argv: str, **kw: Any) -> asyncio.subprocess.Process:
    """``create_subprocess_exec`` that a cancellation cannot cut mid-start (see above):
    the start finishes, then the process is ended and reaped as ``_end`` does."""
    start = asyncio.ensure_future(asyncio.create_subprocess_exec(*argv, env=GIT_ENV, **kw))
    try:
        return await asyncio.shield(start)
    except asyncio.CancelledError:
        await _end(await start)
        raise


async def _end(proc: asyncio.subprocess.Process) -> None:
    """Kill ``proc`` if it still runs and wait for the child watcher to reap it.

    Not ``proc.kill()``, which polls (see above): until the watcher reaps it, an
    exited child is a zombie that keeps its pid, so ``os.kill`` reaches no other
    process.
    """
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()


async def make_repos(root: Path, names: list[str]) -> dict[str, tuple[Path, str]]:
    """One first commit, cloned: each name gets (path, annex uuid)."""
    first = root / names[0]
    await git(root, "init", "-q", "-b", "main", str(first))
    (first / "README").write_text("shared\n")
    await git(first, "add", "README")
    await git(first, "commit", "-q", "-m", "first")
    out = {}
    for name in names:
        path = root / name
        if name != names[0]:
            await git(root, "clone", "-q", str(first), str(path))
        u = str(uuid.uuid4())
        await git(path, "config", "annex.uuid", u)
        await git(path, "config", "receive.denyCurrentBranch", "refuse")
        out[name] = (path, u)
    return out


async def merge_received(path: Path) -> bool:
    """Merge every ``refs/synced/*/main`` a peer pushed here into main; True when main moved.

    Nothing when we have it already; with equal trees the agreed merge commit core
    makes (``gitops.make_agreed_merge``), so devices end at one commit and rounds of
    merges end (skipping them instead left the tips apart for good: every later
    merge then had more criss-cross bases, and git's recursive merge of them grew
    to minutes -- the soak's stall at round 17).
    """
    # each ref read once: a peer's push may move it meanwhile (no lock of ours covers it),
    # and a merge built from one sha's tree and another sha's id would drop its changes
    shas = (await git(path, "for-each-ref", "--format=%(objectname)", "refs/synced/")).split()
    moved = False
    for theirs in shas:
        if await _ancestor(path, theirs, "HEAD"):
            continue
        head = await git(path, "rev-parse", "HEAD")
        tree = await git(path, "rev-parse", head + "^{tree}")
        ahead = await _ancestor(path, head, theirs)  # theirs holds ours: git fast-forwards
        if not ahead and tree == await git(path, "rev-parse", theirs + "^{tree}"):
            merge = await asyncio.to_thread(_agreed, path, tree, head, theirs)
            await git(path, "merge", "-q", "--ff-only", merge)
        else:
            await git(path, "merge", "-q", "--no-edit", theirs)
        moved = True
    return moved


def _agreed(path: Path, tree: str, head: str, theirs: str) -> str:
    from dulwich.repo import Repo

    from core.gitops import make_agreed_merge
    from core.ops.sync import AGREED_MESSAGE

    with Repo(str(path)) as repo:
        return make_agreed_merge(repo, tree.encode(), head.encode(), theirs.encode(),
                                 AGREED_MESSAGE).decode()  # fmt: skip


async def _ancestor(path: Path, a: str, b: str) -> bool:
    proc = await _spawn("git", "-C", str(path), "merge-base", "--is-ancestor", a, b)
    try:
        return await proc.wait() == 0
    finally:
        await _end(proc)


@dataclass
class GitJob:
    """The injected push job of one device (module header)."""

    own_id: str
    paths: dict[str, Path]  # device id -> its repository
    moved: Callable[[str], None] = lambda _path: None
    merge: bool = True
    log: list[tuple[str, str, bool]] = field(default_factory=list)  # (peer id, direction, ok)
    running: int = 0
    hold: asyncio.Event | None = None  # set: jobs wait for it (a busy device)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one writer per repository

    async def __call__(self, device: PairedDevice, shared: SharedRepo, direction: Direction,
                       control: PushControl) -> JobResult:  # fmt: skip
        self.running += 1
        try:
            if self.hold is not None:
                await self.hold.wait()
            peer = self.paths[device.device_id]
            if direction is Direction.OUTGOING:
                control.waiting(Wait.ACK)
                await git(shared.path, "push", "-q", str(peer), f"+main:refs/synced/{self.own_id}/main")
            elif self.merge:
                control.waiting(Wait.IDLE)
                await self.merge_now(shared.path)
            self.log.append((device.device_id, direction.value, True))
            return JobResult(True)
        finally:
            self.running -= 1

    async def merge_now(self, path: str) -> None:
        async with self.lock:
            moved = await merge_received(Path(path))
        if moved:
            self.moved(path)

    async def watch(self, path: str, every: float = 0.5) -> None:
        """The repository worker's part: merge what peers pushed here even when no incoming
        job ran to its end (a push cut off after its refs were written)."""
        while True:
            await asyncio.sleep(every)
            if self.merge:
                await self.merge_now(path)


@dataclass
class Dev:
    name: str
    account: str
    path: Path
    uuid: str
    link: XmppLink
    job: GitJob
    hub: PushHub

    @property
    def id(self) -> str:
        return self.link.hello.device_id

    async def commit(self, filename: str, text: str = "x\n") -> None:
        async with self.job.lock:
            (self.path / filename).write_text(text)
            await git(self.path, "add", filename)
            await git(self.path, "commit", "-q", "-m", f"{self.name}: {filename}")
        self.hub.branch_moved(str(self.path))

    async def files(self) -> set[str]:
        return set((await git(self.path, "ls-tree", "--name-only", "HEAD")).split())

    def done(self, peer: Dev, direction: str) -> int:
        return sum(1 for d, way, ok in self.job.log if d == peer.id and way == direction and ok)


def make_devs(server: Prosody, repos: dict[str, tuple[Path, str]], accounts: dict[str, str],
              limits: Limits | None = None, merge: bool = True,
              via: dict[str, str] | None = None) -> dict[str, Dev]:  # fmt: skip
    """One device per repository, each paired with every other (records, contacts)."""
    others = set(accounts.values())
    devs: dict[str, Dev] = {}
    for name, (path, u) in repos.items():
        cfg = config(server, accounts[name], via=(via or {}).get(name))
        lnk = link(cfg, name, others - {accounts[name]})
        own = lnk.hello.device_id
        job = GitJob(own, {}, merge=merge)
        hub = PushHub(own, job, on_change=lambda: None, limits=limits)
        job.moved = hub.branch_moved
        lnk.on_session = hub.signals.attach
        lnk.on_change = lambda lnk=lnk, hub=hub: hub.link_news(lnk)  # type: ignore[misc]
        devs[name] = Dev(name, accounts[name], path, u, lnk, job, hub)
    for d in devs.values():
        d.job.paths.update({o.id: o.path for o in devs.values() if o is not d})
        d.hub.set_records([record_of(o, d) for o in devs.values() if o is not d])
    return devs


def record_of(other: Dev, mine: Dev) -> PairedDevice:
    """``mine``'s paired record of ``other``: its id, its uuid in the shared repository, its account."""
    return PairedDevice(other.id, other.name, (SharedRepo(str(mine.path), other.uuid),),
                        Transports(other.account))  # fmt: skip


async def run_dev(d: Dev) -> None:
    async with asyncio.TaskGroup() as tg:
        tg.create_task(d.link.run())
        tg.create_task(d.hub.run())
        tg.create_task(d.job.watch(str(d.path)))
