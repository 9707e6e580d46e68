"""Load for the long-running servers, shared by the tests and ``bench/servers.py``.

No tests here.  ``p2phttp_load`` and ``p2p_load`` send a mix of requests
(uploads that commit the git-annex branch, downloads, checkpresent, removes,
timestamps) from ``concurrency`` workers, opening new connections as they
go; ``figures`` reads a server process's descriptors, threads and RSS from
/proc; ``start_server`` runs ``annexsync p2phttp`` or ``annexsync
p2p-listen`` on a free loopback port and reads the port from its stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from core.p2p.remote import P2PClient
from core.p2p.transport import open_tcp
from core.repo.key import Key
from core.repo.repository import AnnexRepo

CLIENT_UUID = "a1b2c3d4-0000-4000-8000-00000000c11e"
TOKEN = "0123456789abcdef0123456789abcdef"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Figures:
    fds: int
    threads: int
    rss_kib: int

    def __str__(self) -> str:
        return f"fds={self.fds} threads={self.threads} rss={self.rss_kib / 1024:.1f} MiB"


def figures(pid: int) -> Figures:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return Figures(len(os.listdir(f"/proc/{pid}/fd")), int(fields["Threads"]),
                   int(fields["VmRSS"].split()[0]))  # fmt: skip


def content(i: int, size: int = 200) -> tuple[Key, bytes]:
    data = (f"{i}:".encode() * size)[:size]
    return Key.parse(f"SHA256E-s{len(data)}--{hashlib.sha256(data).hexdigest()}"), data


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate ``proc`` by its PID; kill it if it does not end in time."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT)


@contextlib.contextmanager
def start_server(argv: list[str], cwd: Path, pattern: str, *,
                 preexec: Callable[[], None] | None = None, env: Mapping[str, str] | None = None,
                 wrap: Callable[[list[str]], list[str]] | None = None,
                 ) -> Iterator[tuple[subprocess.Popen[bytes], int]]:  # fmt: skip
    """``annexsync ARGV`` in ``cwd``; yields (process, port) once ``pattern`` (port group) shows.

    ``preexec`` runs in the child before it starts (resource limits); the
    process is stopped by its PID at the end.  ``wrap`` turns the command into
    another that runs it (say, in a namespace)."""
    env = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "core.cli", *argv]
    proc = subprocess.Popen(wrap(cmd) if wrap else cmd, cwd=cwd, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, preexec_fn=preexec)  # fmt: skip
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + START_TIMEOUT
        port = None
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline().decode()
            if not line and proc.poll() is not None:
                raise AssertionError(f"annexsync {argv[0]} exited with {proc.returncode}")
            found = re.search(pattern, line)
            port = int(found.group(1)) if found else None
        assert port is not None, f"annexsync {argv[0]} did not start"
        yield proc, port
    finally:
        stop(proc)
        if proc.stderr is not None:
            proc.stderr.close()


# --- P2P over HTTP ---------------------------------------------------------------------


async def p2phttp_load(port: int, uuid: str, count: int, concurrency: int = 8,
                       start: int = 0) -> dict[str, int]:  # fmt: skip
    """``count`` mixed requests; returns how many of each kind got a 200."""
    base = f"http://127.0.0.1:{port}/git-annex/{uuid}/v4"
    done: dict[str, int] = {}
    numbers = itertools.count(start)
    left = [count]

    async def one(s: aiohttp.ClientSession, kind: str, i: int, put: Key) -> str:
        key, data = content(i)
        q = f"key={key}&clientuuid={CLIENT_UUID}"
        if kind == "put":
            r = await s.post(f"{base}/put?{q}", data=data,
                             headers={"X-git-annex-data-length": str(len(data))})  # fmt: skip
        elif kind == "get":
            r = await s.get(f"{base}/key/{put}?clientuuid={CLIENT_UUID}")
        elif kind == "remove":
            r = await s.post(f"{base}/remove?key={put}&clientuuid={CLIENT_UUID}")
        elif kind == "gettimestamp":
            r = await s.post(f"{base}/gettimestamp?clientuuid={CLIENT_UUID}")
        else:
            r = await s.post(f"{base}/{kind}?{q}")
        async with r:
            await r.read()
            return kind if r.status == 200 else f"{kind} {r.status}"

    kinds = ("put", "checkpresent", "get", "remove", "gettimestamp", "putoffset")

    async def worker() -> None:
        mine = itertools.cycle(kinds)  # in order per worker: get and remove what it put
        put = content(-1)[0]
        while left[0] > 0:
            # a new connection now and then: accept and close are part of the load
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
                for _ in range(50):
                    if left[0] <= 0:
                        return
                    left[0] -= 1
                    i, kind = next(numbers), next(mine)
                    put = content(i)[0] if kind == "put" else put
                    result = await one(s, kind, i, put)
                    done[result] = done.get(result, 0) + 1

    async with asyncio.TaskGroup() as tg:
        for _ in range(concurrency):
            tg.create_task(worker())
    return done


# --- the P2P protocol over TCP -------------------------------------------------------------


async def p2p_load(port: int, client: AnnexRepo, tmp: Path, count: int, concurrency: int = 8,
                   start: int = 0) -> dict[str, int]:  # fmt: skip
    """``count`` mixed requests over AUTHed sessions; ``client`` receives the GETs."""
    done: dict[str, int] = {}
    numbers = itertools.count(start)
    left = [count]

    async def one(c: P2PClient, kind: str, i: int, put: Key, src: Path) -> None:
        key, data = content(i)
        if kind == "put":
            await asyncio.to_thread(src.write_bytes, data)
            await c.put(key, src, lambda n: None)
        elif kind == "checkpresent":
            assert await c.check_present(key) is False
        elif kind == "get":
            inc = client.objects.incoming(put)
            try:
                await c.get(put, inc, lambda n: None)
            finally:
                await asyncio.to_thread(inc.discard)
        elif kind == "remove":
            assert await c.remove(put)
        else:
            await c.timestamp()

    kinds = ("put", "checkpresent", "get", "remove", "timestamp")

    async def worker(src: Path) -> None:
        mine = itertools.cycle(kinds)
        put = content(-1)[0]
        while left[0] > 0:
            c = await P2PClient.connect(await open_tcp("127.0.0.1", port), our_uuid=CLIENT_UUID,
                                        token=TOKEN)  # fmt: skip
            try:
                for _ in range(50):
                    if left[0] <= 0:
                        return
                    left[0] -= 1
                    i, kind = next(numbers), next(mine)
                    put = content(i)[0] if kind == "put" else put
                    await one(c, kind, i, put, src)
                    done[kind] = done.get(kind, 0) + 1
            finally:
                await c.aclose()

    async with asyncio.TaskGroup() as tg:
        for n in range(concurrency):
            tg.create_task(worker(tmp / f"source{n}"))
    return done


def settle(pid: int, expect_fds: int, seconds: float = 10.0) -> Figures:
    """The server's figures once its descriptors are back to ``expect_fds`` (or time is up).

    Closed client connections and the last branch commit (about a second
    after the last upload) end a little after the load does.
    """
    deadline = time.monotonic() + seconds
    f = figures(pid)
    while f.fds != expect_fds and time.monotonic() < deadline:
        time.sleep(0.2)
        f = figures(pid)
    time.sleep(1.5)  # the branch commit
    return figures(pid)


__all__ = ["CLIENT_UUID", "TOKEN", "Figures", "content", "figures", "p2p_load", "p2phttp_load",
           "settle", "start_server", "stop"]  # fmt: skip
