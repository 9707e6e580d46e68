"""Long-running servers under load, slow, hostile and endless clients (issue 9).

Both servers as users run them (``annexsync p2phttp``, ``annexsync
p2p-listen``) or in process where a setting must be small: descriptors,
threads and RSS before and after thousands of mixed requests (printed), N+1
requests served while N slow clients hold ``-J N``, half-open and silent
connections past the cap, the AUTH deadline and throttle, one log line per
malformed or aborted request.  The full 10,000-request figures are printed
by ``bench/servers.py``; here ``LOAD`` requests keep the suite short.
Loopback only; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from core.p2p.limits import AuthThrottle
from core.p2p.remote import P2PClient
from core.p2p.serving import ServedRepo
from core.p2p.transport import open_tcp
from core.p2phttp.auth import AuthPolicy
from core.p2phttp.server import Settings
from core.repo.repository import AnnexRepo
from tests.integration.servers_support import (
    CLIENT_UUID,
    TOKEN,
    Figures,
    content,
    figures,
    p2p_load,
    p2phttp_load,
    settle,
    start_server,
)
from tests.integration.test_p2p_listener import ListenerThread
from tests.integration.test_p2phttp_support import in_process

LOAD = int(os.environ.get("ANNEXSYNC_SERVER_LOAD", "3000"))
WARMUP = 300
RSS_BOUND_KIB = 30 * 1024  # growth allowed over the load: caches fill, nothing else
HTTP_PORT = r"listening on http://127\.0\.0\.1:(\d+)"
LISTEN_PORT = r"listening on 127\.0\.0\.1:(\d+)"
T = 20.0  # bound on every wait below


def _check(before: Figures, after: Figures, what: str) -> None:
    print(f"\n{what}: before {before}; after {LOAD} requests {after}")
    assert after.fds == before.fds
    assert after.threads == before.threads
    assert after.rss_kib - before.rss_kib < RSS_BOUND_KIB


def _quiet(pid: int, seconds: float = 6.0) -> Figures:
    """The server's figures with the fewest descriptors over ``seconds``: four
    repositories' branch commits (each up to ``COMMIT_LATEST`` after its last
    line) and closing connections hold some for a moment after a load."""
    best = figures(pid)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.2)
        f = figures(pid)
        best = f if f.fds < best.fds else best
    return best


def _branch_commits(repo: Path) -> int:
    out = subprocess.run(["git", "rev-list", "--count", "git-annex"], cwd=repo,
                         capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    return int(out.stdout)


def _with_token(repo: AnnexRepo) -> AnnexRepo:
    creds = repo.gitdir / "annex" / "creds"
    creds.mkdir(parents=True, exist_ok=True)
    (creds / "p2pauth").write_text(f"{TOKEN} p2p-annex::annexsync-tcp:127.0.0.1:1\n")
    return repo


# --- nothing grows with the number of requests -----------------------------------------


@pytest.mark.slow  # a stress/soak run: tests/run runs it in the slow step
def test_p2phttp_resources_return_to_their_start(tmp_path: Path) -> None:
    server = AnnexRepo.init(tmp_path / "server", "server")
    argv = ["p2phttp", "--bind", "127.0.0.1", "--port", "0", "--wideopen", "-J2"]
    with start_server(argv, server.path, HTTP_PORT) as (proc, port):
        asyncio.run(p2phttp_load(port, server.uuid, WARMUP))
        before = settle(proc.pid, figures(proc.pid).fds)
        commits = _branch_commits(server.path)
        done = asyncio.run(p2phttp_load(port, server.uuid, LOAD, start=WARMUP))
        after = settle(proc.pid, before.fds)
    assert sum(done.values()) == LOAD and all(" " not in k for k in done), done
    assert _branch_commits(server.path) > commits  # the uploads committed the branch
    _check(before, after, "annexsync p2phttp")


@pytest.mark.slow  # a stress/soak run: tests/run runs it in the slow step
@pytest.mark.interop  # the cluster is made by real git-annex
def test_p2phttp_cluster_gateway_resources_return_to_their_start(tmp_path: Path) -> None:
    """The same mixed load against a 3-node cluster our p2phttp serves as its
    gateway: pooled gateway sessions, their in-process node sessions and the
    putoffset offers left open (the load's putoffsets are never followed by
    their put, so the pool keeps and abandons them) do not grow."""
    from tests.integration.cluster_support import NODES, build_gateway, finish_gateway

    g = build_gateway(tmp_path)
    finish_gateway(g)
    cluster = g.uuids["mycluster"]
    argv = ["p2phttp", "--bind", "127.0.0.1", "--port", "0", "--wideopen", "-J2"]
    with start_server(argv, g.gw, HTTP_PORT) as (proc, port):
        asyncio.run(p2phttp_load(port, cluster, WARMUP))
        before = _quiet(proc.pid)
        commits = [_branch_commits(p) for p in (g.gw, *(g.root / n for n in NODES))]
        done = asyncio.run(p2phttp_load(port, cluster, LOAD, start=WARMUP))
        after = settle(proc.pid, before.fds)
    assert sum(done.values()) == LOAD and all(" " not in k for k in done), done
    # the puts and removes reached the gateway's log and every node's
    later = [_branch_commits(p) for p in (g.gw, *(g.root / n for n in NODES))]
    assert all(a > b for a, b in zip(later, commits, strict=True)), (commits, later)
    _check(before, after, "annexsync p2phttp, cluster gateway")


@pytest.mark.slow  # a stress/soak run: tests/run runs it in the slow step
@pytest.mark.interop  # the cluster is made by real git-annex
def test_p2phttp_cluster_gateway_tasks_return_to_their_start(tmp_path: Path) -> None:
    """In process, where tasks can be counted: the gateway's sessions, their
    node sessions and the open putoffset offers do not grow with the load.
    The pool keeps at most ``-J`` idle connections and ``-J`` open offers,
    each a gateway session and one per node: that much may differ between
    two moments, never more (open offers kept without bound: 198 -> 856)."""
    from tests.integration.cluster_support import NODES, build_gateway, finish_gateway

    g = build_gateway(tmp_path)
    finish_gateway(g)
    cluster = g.uuids["mycluster"]
    settings = Settings(repositories=[g.gw], policy=AuthPolicy(wideopen=True), jobs=2)

    async def go() -> tuple[int, int, dict[str, int]]:
        async with in_process(settings) as srv:
            await p2phttp_load(srv.port, cluster, WARMUP)
            await asyncio.sleep(0.5)
            before = len(asyncio.all_tasks())
            done = await p2phttp_load(srv.port, cluster, LOAD // 3, start=WARMUP)
            await asyncio.sleep(0.5)
            return before, len(asyncio.all_tasks()), done

    before, after, done = asyncio.run(go())
    print(f"\ncluster gateway in process: {before} tasks before, {after} after {LOAD // 3} requests")
    assert sum(done.values()) == LOAD // 3 and all(" " not in k for k in done), done
    assert after <= before + 2 * settings.jobs * (1 + len(NODES))


@pytest.mark.slow  # a stress/soak run: tests/run runs it in the slow step
def test_p2p_listener_resources_return_to_their_start(tmp_path: Path) -> None:
    server = _with_token(AnnexRepo.init(tmp_path / "server", "server"))
    client = AnnexRepo.init(tmp_path / "client", "client")
    argv = ["p2p-listen", "--bind", "127.0.0.1:0", str(server.path)]
    with start_server(argv, tmp_path, LISTEN_PORT) as (proc, port):
        asyncio.run(p2p_load(port, client, tmp_path, WARMUP))
        before = settle(proc.pid, figures(proc.pid).fds)
        commits = _branch_commits(server.path)
        done = asyncio.run(p2p_load(port, client, tmp_path, LOAD, start=WARMUP))
        after = settle(proc.pid, before.fds)
    assert sum(done.values()) == LOAD, done
    assert _branch_commits(server.path) > commits
    _check(before, after, "annexsync p2p-listen")


# --- p2phttp: slow clients, half-open connections, logs --------------------------------


def _http_request(method: str, target: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1",
             *(f"{k}: {v}" for k, v in headers.items()), "", ""]  # fmt: skip
    return "\r\n".join(lines).encode()


async def _trickle(port: int, head: bytes, body: bytes) -> float:
    """Send ``head``, then ``body`` a byte every 0.3 s; seconds until the server hung up."""
    start = time.monotonic()
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(head)
        for b in body:
            w.write(bytes([b]))
            await w.drain()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.3):
                    if await r.read(65536) == b"" or r.at_eof():
                        break
    except ConnectionError:
        pass
    finally:
        w.close()
    return time.monotonic() - start


@contextlib.asynccontextmanager
async def _never_reading(port: int, target: str) -> AsyncIterator[None]:
    """A GET whose client never reads the body (a small receive buffer fills at once)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    await asyncio.get_running_loop().sock_sendall(sock, _http_request("GET", target, {}))
    try:
        yield
    finally:
        sock.close()


def test_a_request_is_served_while_slow_clients_hold_every_job(tmp_path: Path) -> None:
    """-J2, two uploads trickling a byte at a time, two GETs of 16 MiB never read."""
    server = AnnexRepo.init(tmp_path / "server", "server")
    big_key, big = content(1, 16 << 20)
    with server.objects.incoming(big_key) as inc:
        inc.write(big)
        inc.commit()
    settings = Settings(repositories=[server.path], policy=AuthPolicy(wideopen=True), jobs=2,
                        io_timeout=4.0, min_rate=1000)  # fmt: skip
    v4 = f"/git-annex/{server.uuid}/v4"

    async def go() -> tuple[int, list[float]]:
        async with in_process(settings) as srv, asyncio.TaskGroup() as tg:
            slow = []
            for i in (2, 3):
                key, data = content(i, 100)
                head = _http_request("POST", f"{v4}/put?key={key}&clientuuid={CLIENT_UUID}",
                                     {"X-git-annex-data-length": "100",
                                      "Content-Length": "100"})  # fmt: skip
                slow.append(tg.create_task(_trickle(srv.port, head, data)))
            target = f"{v4}/key/{big_key}?clientuuid={CLIENT_UUID}"
            async with _never_reading(srv.port, target), _never_reading(srv.port, target):
                await asyncio.sleep(0.5)  # all four are inside their requests now
                assert srv.gate.table.busy_count == 4
                async with aiohttp.ClientSession() as s, asyncio.timeout(T):
                    url = f"http://127.0.0.1:{srv.port}{v4}/checkpresent"
                    async with s.post(url, params={"key": str(big_key),
                                                   "clientuuid": CLIENT_UUID}) as r:  # fmt: skip
                        status = r.status
                        assert await r.json() == {"present": True}
                # answered while the four were still inside their requests
                assert srv.gate.table.busy_count == 4
                async with asyncio.timeout(T):  # and each slow one is cut, in bounded time
                    cut = [await t for t in slow]
        return status, cut

    status, cut = asyncio.run(go())
    assert status == 200
    assert all(c < 10 for c in cut)  # 100 bytes at 0.3 s each would take 30 s


def test_half_open_requests_past_the_cap_do_not_stop_a_request(tmp_path: Path) -> None:
    """A server with 200 descriptors, 400 connections trickling a request line."""
    server = AnnexRepo.init(tmp_path / "server", "server")
    argv = ["p2phttp", "--bind", "127.0.0.1", "--port", "0", "--wideopen", "-J2"]

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))

    with start_server(argv, server.path, HTTP_PORT, preexec=low_limit) as (proc, port):
        half_open = []
        try:
            for _ in range(400):
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(b"POST /git-annex/")
                half_open.append(s)

            async def request() -> int:
                async with aiohttp.ClientSession() as s, asyncio.timeout(T):
                    url = f"http://127.0.0.1:{port}/git-annex/{server.uuid}/v4/gettimestamp"
                    async with s.post(url, params={"clientuuid": CLIENT_UUID}) as r:
                        return r.status

            assert asyncio.run(request()) == 200
        finally:
            for s in half_open:
                s.close()
        proc.terminate()
        assert proc.stderr is not None
        err = proc.stderr.read().decode(errors="replace")
    assert "Traceback" not in err and "Too many open files" not in err


def test_malformed_and_aborted_requests_log_one_short_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = AnnexRepo.init(tmp_path / "server", "server")
    big_key, big = content(7, 8 << 20)
    with server.objects.incoming(big_key) as inc:
        inc.write(big)
        inc.commit()
    settings = Settings(repositories=[server.path], policy=AuthPolicy(wideopen=True))

    async def go() -> None:
        async with in_process(settings) as srv:
            r, w = await asyncio.open_connection("127.0.0.1", srv.port)
            w.write(b"GET /" + b"x\x01" * 50_000 + b" HTTP/1.1\r\n\r\n")  # 100 KB request line
            async with asyncio.timeout(T):
                await r.read()
            w.close()
            r, w = await asyncio.open_connection("127.0.0.1", srv.port)
            w.write(_http_request(
                "GET", f"/git-annex/{server.uuid}/v4/key/{big_key}?clientuuid={CLIENT_UUID}", {}))
            async with asyncio.timeout(T):
                await r.readexactly(100_000)
            w.transport.abort()  # gone in the middle of the download
            await asyncio.sleep(1.0)

    with caplog.at_level(logging.INFO):
        asyncio.run(go())
    ours = [r for r in caplog.records if r.name.startswith(("core.p2phttp", "aiohttp"))
            and r.levelno >= logging.INFO]  # fmt: skip
    print("\n".join(f"{r.name}: {r.getMessage()}" for r in ours))
    assert len(ours) == 2  # one for the malformed request, one for the aborted download
    for rec in ours:
        assert rec.exc_info is None and rec.exc_text is None
        assert len(rec.getMessage()) <= 300 and "\n" not in rec.getMessage()


# --- the TCP listener: cap, AUTH deadline, AUTH throttle ----------------------------------


@pytest.fixture
def listener(tmp_path: Path, request: pytest.FixtureRequest) -> ListenerThread:
    repo = AnnexRepo.init(tmp_path / "server", "server")
    kw = getattr(request, "param", {})
    lt = ListenerThread(ServedRepo(repo), **kw)
    request.addfinalizer(lt.stop)
    return lt


async def _auth(port: int, token: str = TOKEN) -> str:
    c = await P2PClient.connect(await open_tcp("127.0.0.1", port), our_uuid=CLIENT_UUID,
                                token=token)  # fmt: skip
    try:
        assert await c.check_present(content(0)[0]) is False
        return c.server_uuid
    finally:
        await c.aclose()


@pytest.mark.parametrize("listener", [{"max_connections": 10, "auth_timeout": 60.0}],
                         indirect=True)  # fmt: skip
def test_silent_connections_past_the_cap_do_not_lock_peers_out(listener: ListenerThread) -> None:
    port = listener.listener.port
    silent = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(30)]
    try:
        time.sleep(0.5)
        assert listener.listener.active <= 10  # counted at accept: a burst cannot overrun it
        open_ones = 0
        for s in silent:
            s.settimeout(0.05)
            with contextlib.suppress(TimeoutError):
                open_ones += s.recv(1) != b""
        assert open_ones <= 10
        assert asyncio.run(asyncio.wait_for(_auth(port), T)) == listener.listener.served.uuid
    finally:
        for s in silent:
            s.close()


@pytest.mark.parametrize("listener", [{"auth_timeout": 1.0, "idle_timeout": 60.0}],
                         indirect=True)  # fmt: skip
def test_a_peer_that_does_not_authenticate_in_time_is_dropped(listener: ListenerThread) -> None:
    s = socket.create_connection(("127.0.0.1", listener.listener.port), timeout=T)
    try:
        start = time.monotonic()
        line = f"AUTH {CLIENT_UUID} {TOKEN}{TOKEN}".encode()  # 20 s at a byte per 0.2 s
        for b in line:  # a byte at a time: no read ever times out
            try:
                s.sendall(bytes([b]))
            except OSError:
                break
            s.settimeout(0.2)
            with contextlib.suppress(TimeoutError):
                if s.recv(100) == b"":
                    break
        assert time.monotonic() - start < 10  # cut at the deadline, not after every byte
    finally:
        s.close()


@pytest.mark.parametrize("listener", [{"auth_timeout": 30.0}], indirect=True)
def test_auth_failures_are_throttled_but_a_right_token_is_not(listener: ListenerThread) -> None:
    listener.listener.throttle = AuthThrottle(free=2, interval=0.3, clock=time.monotonic)

    async def guesses(n: int) -> float:
        r, w = await asyncio.open_connection("127.0.0.1", listener.listener.port)
        start = time.monotonic()
        try:
            for i in range(n):
                w.write(f"AUTH {CLIENT_UUID} {i:032x}\n".encode())
                async with asyncio.timeout(T):
                    assert await r.readline() == b"AUTH-FAILURE\n"
        finally:
            w.close()
        return time.monotonic() - start

    async def go() -> tuple[float, float, str]:
        async with asyncio.TaskGroup() as tg:  # two connections share one address's budget
            a, b = tg.create_task(guesses(5)), tg.create_task(guesses(5))
        return max(a.result(), b.result()), 0.0, await _auth(listener.listener.port)

    slowest, _, uuid = asyncio.run(go())
    assert slowest >= (10 - 2 - 1) * 0.3  # 8 throttled answers, spaced by 0.3 s at least
    assert uuid == listener.listener.served.uuid


def test_a_malformed_line_to_the_listener_logs_one_short_line(
    listener: ListenerThread, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="core"):
        s = socket.create_connection(("127.0.0.1", listener.listener.port), timeout=T)
        try:
            # a P2P line (it starts with a letter: core.p2p.sniff), 45,001 bytes, no newline
            s.sendall(b"G" + b"\x01garbage" * 5000)
            assert s.recv(100) == b""  # dropped without an ERROR (spec 2.1)
        finally:
            s.close()
        time.sleep(0.5)
    ours = [r for r in caplog.records if r.name.startswith("core.p2p")]
    print("\n".join(r.getMessage() for r in ours))
    assert len(ours) == 1
    assert ours[0].exc_info is None and len(ours[0].getMessage()) <= 300
