"""Race harness for issue 8 (no tests here): shared by ``test_races`` and ``bench/stress.py``.

Two races, each run in one process (two threads) or across two processes
(two workers driven over pipes, ``python -m tests.races worker REPO``):

* **PUT race**: two writers receive the same key at the same moment, one
  with the right bytes, one with other bytes of the same length, each
  through ``Incoming`` (the path every server and client download takes)
  under its own source uuid.  Counted: *corrupt* objects (present under the
  key, hash wrong), writers *refused* (``TransferBusy``), *errors*
  (anything unexpected, e.g. the old ``FileNotFoundError`` in ``_place``).
* **Lock/remove race**: one side takes ``ServedRepo.lock`` (LOCKCONTENT),
  the other ``ServedRepo.remove`` (REMOVE) on present content at the same
  moment; the locker holds its lock until the remover has answered, then
  checks the content and its ``.rtm``.  Counted: *granted on removed
  content* (lock granted but the content gone, or both answered "locked"
  and "removed"), *granted without retention* (no ``.rtm`` while locked),
  *errors*.

The lock/remove race also runs through our real servers in this process:
concurrent p2phttp requests (``lock_race_http``) and two TCP listener
sessions (``lock_race_tcp``), the settings the issue measured.

Each try uses a fresh key, so tries are independent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ContentVerifyError, TransferBusy
from core.p2p.serving import ServedRepo
from core.repo.key import Key
from core.repo.objects import ContentLocked
from core.repo.repository import AnnexRepo

SIZE = 48 * 1024  # several writes per try, so the writers interleave
CHUNK = 8 * 1024
UUIDS = ("11111111-0000-4000-8000-00000000000a", "22222222-0000-4000-8000-00000000000b")


@dataclass
class Counts:
    tries: int = 0
    corrupt: int = 0
    refused: int = 0  # a writer or a locker that was turned away (expected)
    granted_on_removed: int = 0
    granted_without_rtm: int = 0
    errors: list[str] = field(default_factory=list)

    def bad(self) -> int:
        return self.corrupt + self.granted_on_removed + self.granted_without_rtm + len(self.errors)

    def line(self, name: str) -> str:
        return (f"{name}: {self.tries} tries, {self.corrupt} corrupt, "
                f"{self.granted_on_removed} locks granted on removed content, "
                f"{self.granted_without_rtm} without retention, {self.refused} refused, "
                f"{len(self.errors)} errors {self.errors[:3]}")  # fmt: skip


def content(run: str, i: int, good: bool) -> bytes:
    seed = f"{run} try {i}\n".encode()
    data = (seed * (SIZE // len(seed) + 1))[:SIZE]
    return data if good else data[::-1]


def key_of(data: bytes) -> Key:
    return Key.parse(f"SHA256E-s{len(data)}--{hashlib.sha256(data).hexdigest()}.bin")


def object_ok(repo: AnnexRepo, key: Key) -> bool | None:
    """None: no object; else whether it matches its key."""
    p = repo.objects.find(key)
    if p is None:
        return None
    return hashlib.sha256(p.read_bytes()).hexdigest() == key.expected_digest()


def place(repo: AnnexRepo, data: bytes) -> Key:
    """Put content under its key the way ``add`` does."""
    key = key_of(data)
    src = repo.gitdir / "annex" / "race-src"
    src.write_bytes(data)
    repo.objects.ingest(key, src, "move")
    return key


# --- one side of a race (a thread here, or a worker process) -----------------------


def put_side(repo: AnnexRepo, key: Key, data: bytes, source: str) -> str:
    try:
        with repo.objects.incoming(key, source) as inc:
            inc.open()
            for at in range(0, len(data), CHUNK):
                inc.write(data[at : at + CHUNK])
            inc.commit()
        return "stored"
    except TransferBusy:
        return "busy"
    except ContentVerifyError:
        return "unverified"
    except Exception as e:  # noqa: BLE001 - counted and shown
        return f"error {type(e).__name__}: {e}"


def remove_side(served: ServedRepo, key: Key) -> str:
    try:
        return "removed" if served.remove(key) else "kept"
    except ContentLocked:
        return "locked"
    except Exception as e:  # noqa: BLE001 - counted and shown
        return f"error {type(e).__name__}: {e}"


def lock_check(served: ServedRepo, key: Key) -> str:
    return lock_check_repo(served.repo, key)


def lock_check_repo(repo: AnnexRepo, key: Key) -> str:
    """After the remover answered: is the locked content still there, with its .rtm?"""
    p = repo.objects.find(key)
    if p is None:
        return "gone"
    return "present" if p.with_name(p.name + ".rtm").is_file() else "no-rtm"


def _judge(c: Counts, locked: bool, check: str, removed: str) -> None:
    for r in (check, removed):
        if r.startswith("error"):
            c.errors.append(r)
    if not locked:
        c.refused += 1
    elif check == "gone" or removed == "removed":
        c.granted_on_removed += 1
    elif check == "no-rtm":
        c.granted_without_rtm += 1


def _judge_put(c: Counts, repo: AnnexRepo, key: Key, results: list[str]) -> None:
    c.refused += results.count("busy")
    c.errors.extend(r for r in results if r.startswith("error"))
    if object_ok(repo, key) is False:
        c.corrupt += 1


# --- in one process ----------------------------------------------------------------


def put_race_threads(repo: AnnexRepo, tries: int, run: str = "t") -> Counts:
    c = Counts()
    for i in range(tries):
        good, bad = content(run, i, True), content(run, i, False)
        key = key_of(good)
        c.tries += 1
        _judge_put(c, repo, key, _put_try(repo, key, good, bad))
    return c


def _put_try(repo: AnnexRepo, key: Key, good: bytes, bad: bytes) -> list[str]:
    results = ["", ""]
    gate = threading.Barrier(2)

    def side(n: int, data: bytes) -> None:
        gate.wait()
        results[n] = put_side(repo, key, data, UUIDS[n])

    _run_both(lambda: side(0, good), lambda: side(1, bad))
    return results


def lock_race_threads(served: ServedRepo, tries: int, run: str = "t") -> Counts:
    c = Counts()
    for i in range(tries):
        key = place(served.repo, content(run, i, True))
        locked, check, removed = _lock_try(served, key)
        c.tries += 1
        _judge(c, locked, check, removed)
    return c


def _lock_try(served: ServedRepo, key: Key) -> tuple[bool, str, str]:
    gate = threading.Barrier(2)
    removed_done = threading.Event()
    out = {"check": "", "removed": ""}
    locked: list[bool] = []

    def locker() -> None:
        gate.wait()
        if served.lock(key):
            locked.append(True)
            removed_done.wait(30)  # hold the lock until the remover has answered
            out["check"] = lock_check(served, key)
            served.unlock(key)

    def remover() -> None:
        gate.wait()
        try:
            out["removed"] = remove_side(served, key)
        finally:
            removed_done.set()

    _run_both(locker, remover)
    return bool(locked), out["check"], out["removed"]


def _run_both(a: Callable[[], None], b: Callable[[], None]) -> None:
    threads = [threading.Thread(target=f) for f in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)


# --- across processes ----------------------------------------------------------------


class Worker:
    """A child process running ``worker``: one line in, one line out."""

    def __init__(self, repo: Path, root: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.races", "worker", str(repo)], cwd=root,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )  # fmt: skip

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")

    def recv(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"race worker ended ({self.proc.wait(10)})")
        return line.strip()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        self.proc.wait(30)


@contextlib.contextmanager
def workers(repo: Path) -> Iterator[tuple[Worker, Worker]]:
    root = Path(__file__).resolve().parent.parent
    a, b = Worker(repo, root), Worker(repo, root)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def put_race_processes(repo: AnnexRepo, tries: int, run: str = "p") -> Counts:
    c = Counts()
    with workers(repo.path) as (a, b):
        for i in range(tries):
            key = key_of(content(run, i, True))
            a.send(f"put {run} {i} good 0")
            b.send(f"put {run} {i} bad 1")
            c.tries += 1
            _judge_put(c, repo, key, [a.recv(), b.recv()])
    return c


def lock_race_processes(repo: AnnexRepo, tries: int, run: str = "p") -> Counts:
    c = Counts()
    with workers(repo.path) as (locker, remover):
        for i in range(tries):
            key = place(repo, content(run, i, True))
            locker.send(f"lock {key}")
            remover.send(f"remove {key}")
            removed = remover.recv()
            locker.send("check")  # the remover has answered: look now
            locked, check = locker.recv().split()
            c.tries += 1
            _judge(c, locked == "locked", check, removed)
    return c


def worker(repo_path: str) -> None:
    """Serve race commands from stdin (see the ``*_processes`` drivers)."""
    repo = AnnexRepo.open(repo_path, auto_init=False)
    served = ServedRepo(repo)
    for line in sys.stdin:
        cmd, *args = line.split()
        if cmd == "put":
            run, i, kind, n = args
            data = content(run, int(i), kind == "good")
            reply = put_side(repo, key_of(content(run, int(i), True)), data, UUIDS[int(n)])
        elif cmd == "remove":
            reply = remove_side(served, Key.parse(args[0]))
        else:  # lock KEY, then wait for "check"
            key = Key.parse(args[0])
            ok = served.lock(key)
            sys.stdin.readline()
            reply = f"{'locked' if ok else 'refused'} {lock_check(served, key) if ok else '-'}"
            if ok:
                served.unlock(key)
        sys.stdout.write(reply + "\n")
        sys.stdout.flush()
    served.flush()
    repo.close()


# --- over p2phttp: one server process, many requests ---------------------------------


async def lock_race_http(repo: AnnexRepo, tries: int, run: str = "h") -> Counts:
    """LOCKCONTENT and REMOVE as concurrent requests to our p2phttp server.

    The server (in this process, as ``annexsync p2phttp`` runs it) serves both
    requests at once on its worker threads; the lock is kept until the
    remove has been answered, then released with ``keeplocked``.
    """
    import aiohttp

    from core.p2phttp.auth import AuthPolicy
    from core.p2phttp.server import Settings, start_server

    settings = Settings(repositories=[repo.path], policy=AuthPolicy(wideopen=True), jobs=4)
    server = await start_server(settings, host="127.0.0.1", port=0)
    c = Counts()
    try:
        base = f"http://127.0.0.1:{server.port}/git-annex/{repo.uuid}/v4"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            for i in range(tries):
                key = place(repo, content(run, i, True))
                locked, check, removed = await _http_try(http, base, repo, key)
                c.tries += 1
                _judge(c, locked, check, removed)
    finally:
        await asyncio.wait_for(server.aclose(), 30)
    return c


async def _http_try(http: Any, base: str, repo: AnnexRepo, key: Key) -> tuple[bool, str, str]:
    q = f"key={key}&clientuuid={UUIDS[0]}"

    async def post(op: str, query: str, body: bytes = b"") -> tuple[int, Any]:
        async with http.post(f"{base}/{op}?{query}", data=body) as r:
            return r.status, (await r.json() if r.status == 200 else None)

    (ls, lbody), (rs, rbody) = await asyncio.gather(post("lockcontent", q), post("remove", q))
    removed = "locked" if rs == 500 else ("removed" if rbody["removed"] else "kept")
    if ls != 200 or not lbody.get("locked"):
        return False, "", removed
    check = lock_check_repo(repo, key)
    await post("keeplocked", f"lockid={lbody['lockid']}&clientuuid={UUIDS[0]}", b'{"unlock":true}\n')
    return True, check, removed


# --- over the TCP listener: one server process, many sessions ------------------------

TOKEN = "0123456789abcdef0123456789abcdef"


async def lock_race_tcp(repo: AnnexRepo, tries: int, run: str = "n") -> Counts:
    """LOCKCONTENT on one session and REMOVE on another, sent together.

    The listener runs in this process as ``annexsync`` runs it.  A REMOVE of
    locked content ends its session (as git-annex-shell's does): the remover
    then connects again.
    """
    c = Counts()
    async with tcp_listener(repo) as port:
        await _tcp_tries(repo, port, tries, run, c)
    return c


@contextlib.asynccontextmanager
async def tcp_listener(repo: AnnexRepo) -> AsyncIterator[int]:
    """Our TCP listener serving ``repo`` in this process; yields its port."""
    from core.p2p.listener import Listener

    listener = Listener(ServedRepo(repo), [TOKEN])
    started = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        serving = tg.create_task(listener.run(started))
        await started.wait()
        try:
            yield listener.port
        finally:
            serving.cancel()


async def tcp_client(port: int, uuid: str) -> Any:
    """A ``P2PClient`` session to ``tcp_listener``."""
    from core.p2p.remote import P2PClient
    from core.p2p.transport import open_tcp

    return await P2PClient.connect(await open_tcp("127.0.0.1", port), our_uuid=uuid,
                                   token=TOKEN, read_timeout=30)  # fmt: skip


async def _tcp_tries(repo: AnnexRepo, port: int, tries: int, run: str, c: Counts) -> None:
    from core.errors import CoreError

    locker, remover = await tcp_client(port, UUIDS[0]), await tcp_client(port, UUIDS[1])
    try:
        for i in range(tries):
            key = place(repo, content(run, i, True))
            locked, answer = await asyncio.gather(locker.lock(key), remover.remove(key),
                                                  return_exceptions=True)  # fmt: skip
            if isinstance(locked, CoreError):  # the server failed the locker's session
                c.errors.append(f"error LOCKCONTENT: {locked}")
                await locker.aclose()
                locker, locked = await tcp_client(port, UUIDS[0]), False
            elif isinstance(locked, BaseException):
                raise locked
            if isinstance(answer, CoreError):  # the session ended: "content is locked"
                await remover.aclose()
                remover = await tcp_client(port, UUIDS[1])
            removed = "removed" if answer is True else "kept" if answer is False else "locked"
            check = lock_check_repo(repo, key) if locked else ""
            if locked:
                await locker.unlock()
            c.tries += 1
            _judge(c, bool(locked), check, removed)
    finally:
        await locker.aclose()
        await remover.aclose()


def make_repo(where: Path) -> Path:
    """A repository initialised by real git-annex."""
    where.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1"}
    for cmd in (["git", "init", "-q"], ["git", "annex", "init", "-q", "race"]):
        subprocess.run(cmd, cwd=where, check=True, capture_output=True, env=env, timeout=120)
    return where


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    worker(sys.argv[2])
