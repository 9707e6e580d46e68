"""Two daemons on one machine, syncing a folder through path remotes.

Real parts only: real git repositories (B is a ``git clone`` of A), real
filesystem events (watchfiles/inotify), real ``Core`` instances with their
own config directories; timers are shortened through ``Timings``.  Every
test checks that ``stop()`` leaves no task behind.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.api import Core
from core.daemon.timings import Timings
from core.settings import Settings, save_settings
from core.status import Health, Status
from tests.conftest import git

pytestmark = pytest.mark.asyncio

FAST = Timings(push_delay=0.2, probe_interval=0.5, idle_tick=0.5, retry_base=0.2,
               stop_grace=5.0)
BOUND = 45.0  # seconds any expected change may take
_live: list[Core] = []  # cores of the running test, described when a wait times out


def _describe() -> str:
    out = []
    for core in _live:
        s = core.status
        out.append(f"{core.config_dir.name}: health {s.health(time.time()).value}")
        for r in s.repos:
            out.append(f"  {r.path} uncommitted={r.uncommitted} queued={r.queued} "
                       f"conflicts={r.conflicts} error={r.error}")
            out += [f"    {t}" for t in r.transfers] + [f"    {rm}" for rm in r.remotes]
            out.append(git(r.path, "log", "--graph", "--oneline", "--all", "-n", "15",
                           check=False))
    return "\n".join(out)


async def wait_for(pred: Callable[[], object], what: str, timeout: float = BOUND) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if pred():
                return
        except (OSError, KeyError, IndexError, StopIteration):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}\n"
                                 + _describe())
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running(core: Core) -> AsyncIterator[Core]:
    task = asyncio.create_task(core.run(), name=f"test-run {core.config_dir.name}")
    _live.append(core)
    await wait_for(lambda: core._tg is not None or task.done(), "core to start", 10)
    try:
        yield core
    finally:
        _live.remove(core)
        await core.stop()
        await asyncio.wait_for(task, 20)


def health(core: Core) -> Health:
    return core.status.health(time.time())


def repo(core: Core, path: Path):  # type: ignore[no-untyped-def]
    return next(r for r in core.status.repos if r.path == str(path))


def synced(core: Core) -> bool:
    return health(core) is Health.SYNCED and all(
        rm.reachable for r in core.status.repos for rm in r.remotes)


@dataclass
class Pair:
    a: Core
    b: Core
    pa: Path
    pb: Path


@asynccontextmanager
async def pair(tmp: Path, settings: Settings | None = None) -> AsyncIterator[Pair]:
    before = asyncio.all_tasks()
    for name in ("cfgA", "cfgB"):
        if settings is not None:
            save_settings(tmp / name, settings)
    a = Core(tmp / "cfgA", timings=FAST)
    b = Core(tmp / "cfgB", timings=FAST)
    pa, pb = tmp / "A", tmp / "B"
    async with running(a):
        await a.add_repository(str(pa), create=True, description="A")
        (pa / "seed.txt").write_text("seed\n")
        await wait_for(lambda: synced(a) and repo(a, pa).uuid, "A to commit the seed")
        await wait_for(lambda: git(pa, "log", "--oneline", check=False).strip(), "A's first commit")
        git(tmp, "clone", "-q", str(pa), "B")
        async with running(b):
            await b.add_repository(str(pb), create=True, description="B")
            await a.add_remote(str(pa), "b", str(pb))
            await wait_for(lambda: (pb / "seed.txt").read_text() == "seed\n", "seed in B")
            await wait_for(lambda: synced(a) and synced(b), "both synced")
            yield Pair(a, b, pa, pb)
    assert asyncio.all_tasks() == before, "tasks left after stop()"


async def test_file_written_in_a_appears_in_b(tmp_path: Path) -> None:
    async with pair(tmp_path) as p:
        data = os.urandom(300_000)
        (p.pa / "photo.jpg").write_bytes(data)
        t0 = time.monotonic()
        await wait_for(lambda: (p.pb / "photo.jpg").read_bytes() == data, "photo.jpg in B")
        assert time.monotonic() - t0 < BOUND
        # The folder holds an ordinary file, not a symlink, on both sides.
        assert not (p.pb / "photo.jpg").is_symlink() and not (p.pa / "photo.jpg").is_symlink()
        await wait_for(lambda: synced(p.a) and synced(p.b), "both synced again")
        # An edit in B travels back to A.
        (p.pb / "photo.jpg").write_bytes(data[:1000])
        await wait_for(lambda: (p.pa / "photo.jpg").read_bytes() == data[:1000], "edit back in A")


async def test_transfer_progress_shows_in_status(tmp_path: Path) -> None:
    async with pair(tmp_path, Settings(bandwidth_limit=1_500_000)) as p:
        seen: list[tuple[str, int, int | None, str]] = []

        def record(s: Status) -> None:
            for r in s.repos:
                for t in r.transfers:
                    seen.append((t.state, t.bytes_done, t.bytes_total, t.path))

        unsub_a, unsub_b = p.a.subscribe(record), p.b.subscribe(record)
        data = os.urandom(3_000_000)
        (p.pa / "video.mkv").write_bytes(data)
        await wait_for(lambda: (p.pb / "video.mkv").read_bytes() == data, "video.mkv in B")
        # A's upload fills B's unlocked file itself (as git-annex's local
        # remotes do), so the file can be there just before "done" is reported
        await wait_for(lambda: any(s[0] == "done" and s[3] == "video.mkv" for s in seen),
                       "the transfer reported done")
        unsub_a()
        unsub_b()
        partial = [s for s in seen if s[0] == "running" and s[3] == "video.mkv"
                   and 0 < s[1] < (s[2] or 0)]
        assert partial, "no running transfer with partial progress was reported"
        await wait_for(lambda: synced(p.a) and synced(p.b), "both synced after the transfer")
        done = [t for r in p.a.status.repos + p.b.status.repos for t in r.transfers
                if t.path == "video.mkv"]
        assert done and all(t.state == "done" for t in done)


def _variant_with(root: Path, variants: tuple[str, ...], text: str) -> str | None:
    for v in variants:
        try:
            if (root / v).read_text() == text:
                return v
        except (OSError, UnicodeDecodeError):
            pass
    return None


async def test_conflict_is_flagged_and_resolved(tmp_path: Path) -> None:
    async with pair(tmp_path) as p:
        await p.a.pause()
        await p.b.pause()
        assert health(p.a) is Health.PAUSED
        (p.pa / "seed.txt").write_text("from A\n")
        (p.pb / "seed.txt").write_text("from B\n")
        await wait_for(lambda: repo(p.a, p.pa).uncommitted and repo(p.b, p.pb).uncommitted,
                       "changes seen while paused")
        await p.a.resume()
        await p.b.resume()
        for core, root in ((p.a, p.pa), (p.b, p.pb)):
            await wait_for(lambda c=core, r=root: [x for x in repo(c, r).conflicts
                                                   if x.path == "seed.txt"
                                                   and len(x.variants) == 2],
                           f"conflict flagged in {root.name}")
        assert health(p.a) is Health.ATTENTION
        # Both daemons fixed the conflict the same way, each in its own fix
        # commit.  The choice is made without waiting for the fixes to be
        # exchanged: sync's settled merges keep it (tests/integration/
        # test_conflict_resolution.py has the race step by step).
        conflict = repo(p.a, p.pa).conflicts[0]
        await wait_for(lambda: _variant_with(p.pa, conflict.variants, "from B\n"),
                       "B's variant content in A")
        keep = _variant_with(p.pa, conflict.variants, "from B\n")
        assert keep is not None
        await p.a.resolve_conflict(str(p.pa), "seed.txt", keep)
        await wait_for(lambda: not repo(p.a, p.pa).conflicts, "A's conflict gone")
        assert (p.pa / "seed.txt").read_text() == "from B\n"
        await wait_for(lambda: not repo(p.b, p.pb).conflicts
                       and (p.pb / "seed.txt").read_text() == "from B\n", "B follows")
        await wait_for(lambda: synced(p.a) and synced(p.b), "both synced after resolving")
        assert not [f for f in os.listdir(p.pa) if ".variant-" in f]


async def test_unreachable_remote_waits_then_recovers(tmp_path: Path) -> None:
    before = asyncio.all_tasks()
    a = Core(tmp_path / "cfgA", timings=FAST)
    pa, pc = tmp_path / "A", tmp_path / "C"
    async with running(a):
        await a.add_repository(str(pa), create=True)
        (pa / "one.txt").write_text("1\n")
        await wait_for(lambda: git(pa, "log", "--oneline", check=False).strip(), "first commit")
        git(tmp_path, "clone", "-q", str(pa), "C")
        await a.add_remote(str(pa), "c", str(pc))
        await wait_for(lambda: synced(a), "synced with c")
        pc.rename(tmp_path / "C.away")
        (pa / "two.txt").write_text("2\n")
        # committed first: an unreachable remote may be noticed before the watcher
        # reports the new file, and then nothing would be owed to c yet
        await wait_for(lambda: "two.txt" in git(pa, "ls-tree", "-r", "--name-only", "main"),
                       "two.txt committed")
        await wait_for(lambda: health(a) is Health.WAITING, "health WAITING")
        rc = next(r for r in repo(a, pa).remotes if r.name == "c")
        assert rc.reachable is False and rc.waiting_since is not None
        assert "waiting for c" in a.status.tooltip(time.time())
        (tmp_path / "C.away").rename(pc)
        await wait_for(lambda: synced(a), "synced again after the remote came back")
        main = git(pa, "rev-parse", "main").strip()
        assert git(pc, "rev-parse", "refs/heads/synced/main").strip() == main
    assert asyncio.all_tasks() == before


async def test_latin1_name_syncs_and_its_conflict_resolves(tmp_path: Path) -> None:
    """Paths are bytes: a name that is not UTF-8 is watched, added, synced and resolved."""
    name = os.fsdecode(b"caf\xe9.txt")
    async with pair(tmp_path) as p:
        (p.pa / "d").mkdir()
        (p.pa / "d" / name).write_bytes(b"latin-1\n")
        await wait_for(lambda: (p.pb / "d" / name).read_bytes() == b"latin-1\n", "the file in B")
        await wait_for(lambda: synced(p.a) and synced(p.b), "both synced")
        await p.a.pause()
        await p.b.pause()
        (p.pa / "d" / name).write_bytes(b"from A\n")
        (p.pb / "d" / name).write_bytes(b"from B\n")
        await wait_for(lambda: repo(p.a, p.pa).uncommitted and repo(p.b, p.pb).uncommitted,
                       "changes seen while paused")
        await p.a.resume()
        await p.b.resume()
        original = f"d/{name}"
        await wait_for(lambda: [x for x in repo(p.a, p.pa).conflicts
                                if x.path == original and len(x.variants) == 2],
                       "conflict flagged in A")
        conflict = next(x for x in repo(p.a, p.pa).conflicts if x.path == original)
        await wait_for(lambda: _variant_with(p.pa, conflict.variants, "from B\n"),
                       "B's variant content in A")
        keep = _variant_with(p.pa, conflict.variants, "from B\n")
        assert keep is not None
        await p.a.resolve_conflict(str(p.pa), original, keep)
        await wait_for(lambda: not repo(p.a, p.pa).conflicts, "A's conflict gone")
        assert (p.pa / original).read_bytes() == b"from B\n"
        await wait_for(lambda: (p.pb / original).read_bytes() == b"from B\n", "B follows")


async def test_sync_now_runs_a_failed_job_at_once(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A commit failed (a git holds index.lock) and waits out its back-off (10 min
    here); the lock gone, "Sync now" commits at once instead."""
    monkeypatch.setenv("ANNEXSYNC_LOCK_WAIT", "0.3")  # a held lock fails the job quickly
    core = Core(tmp_path / "cfg", timings=dataclasses.replace(
        FAST, job_retry_base=600.0, job_retry_max=600.0))  # fmt: skip
    path = tmp_path / "Sync"
    async with running(core):
        await core.add_repository(str(path), create=True, description="A")
        await wait_for(lambda: synced(core) and repo(core, path).uuid, "ready")
        lock = path / ".git" / "index.lock"
        lock.write_bytes(b"DIRC")  # another git's lock, not stale
        (path / "a.txt").write_text("a\n")
        await wait_for(lambda: "index.lock" in (repo(core, path).error or ""), "the failed commit")
        lock.unlink()
        await core.sync_now(str(path))
        await wait_for(lambda: "a.txt" in git(path, "ls-tree", "--name-only", "HEAD", check=False)
                       and synced(core), "committed at once", 15)  # fmt: skip


_POLICY = """#!/bin/sh
case "$1" in refs/heads/synced/main|refs/synced/*) echo "policy: not $1" >&2; exit 1;; esac
"""


@pytest.mark.interop
async def test_branch_refused_under_every_name_is_an_error_in_words(tmp_path: Path) -> None:
    """A non-bare remote refuses our main (checked out there) and its update hook refuses
    synced/main and our single-writer refs: the status says so (an error, not "synced"),
    while the location logs still reach it (synced/git-annex)."""
    server = tmp_path / "server"
    server.mkdir()
    git(server, "init", "-q", "-b", "main")
    git(server, "annex", "init", "server")
    hook = server / ".git" / "hooks" / "update"
    hook.write_text(_POLICY)
    hook.chmod(0o755)
    core = Core(tmp_path / "cfg", timings=FAST)
    local = tmp_path / "laptop"
    async with running(core):
        await core.add_repository(str(local), create=True, description="laptop")
        (local / "a.txt").write_text("a\n")
        await core.add_remote(str(local), "server", str(server))

        def refused() -> bool:
            (r,) = repo(core, local).remotes
            return r.error is not None and "synced/main" in (r.detail or "")

        await wait_for(refused, "the refusal in the status", 20)
        (r,) = repo(core, local).remotes
        assert r.state_words() == "failing: refused our changes", r
        assert r.detail == "server refused the push of main, also as synced/main", r
        assert health(core) is Health.ERROR
        await wait_for(lambda: git(server, "rev-parse", "synced/git-annex", check=False).strip()
                       == git(local, "rev-parse", "git-annex").strip(), "the logs pushed", 20)
    assert "synced/main" not in git(server, "for-each-ref")
