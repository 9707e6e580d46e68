"""Helpers for the p2phttp tests: servers (ours and git-annex's) on loopback.

No tests here.  Every server is started on 127.0.0.1 with a free port, waited
for with a deadline, and stopped by its PID (or ``aclose``) in ``finally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from core.p2phttp.server import RunningServer, Settings, start_server
from tests.conftest import annex, git
from tests.integration.servers_support import start_server as start_annexsync
from tests.integration.servers_support import stop

START_TIMEOUT = 30.0
CLIENT_UUID = "a1b2c3d4-0000-4000-8000-00000000c11e"
# users with each permission, as git-annex reads them from the environment (--authenv)
USERS = {
    "GIT_ANNEX_P2PHTTP_PASSWORD_alice": "alicepw",
    "GIT_ANNEX_P2PHTTP_PASSWORD_bob": "bobpw",
    "GIT_ANNEX_P2PHTTP_PERMISSIONS_bob": "readonly",
    "GIT_ANNEX_P2PHTTP_PASSWORD_carol": "carolpw",
    "GIT_ANNEX_P2PHTTP_PERMISSIONS_carol": "appendonly",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port}")


@dataclass
class Proc:
    proc: subprocess.Popen[bytes]
    port: int
    scheme: str = "http"

    @property
    def base(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"


@contextlib.contextmanager
def git_annex_p2phttp(cwd: Path, *args: str, env: Mapping[str, str] | None = None,
                      scheme: str = "http") -> Iterator[Proc]:  # fmt: skip
    """Real ``git annex p2phttp`` on a free loopback port."""
    port = free_port()
    cmd = ["git", "annex", "p2phttp", "--bind", "127.0.0.1", "--port", str(port), *args]
    proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_port(port, proc)
        yield Proc(proc, port, scheme)
    finally:
        stop(proc)


@contextlib.contextmanager
def our_p2phttp(cwd: Path, *args: str, env: Mapping[str, str] | None = None,
                scheme: str = "http",
                wrap: Callable[[list[str]], list[str]] | None = None) -> Iterator[Proc]:  # fmt: skip
    """``annexsync p2phttp`` as a subprocess; the port comes from its stderr line.

    ``wrap`` turns the command into another that runs it (say, in a namespace).
    """
    argv = ["p2phttp", "--bind", "127.0.0.1", "--port", "0", *args]
    pattern = r"listening on https?://127\.0\.0\.1:(\d+)"
    with start_annexsync(argv, cwd, pattern, env=env, wrap=wrap) as (proc, port):
        wait_port(port, proc)
        yield Proc(proc, port, scheme)


@contextlib.asynccontextmanager
async def in_process(settings: Settings, **kw: object) -> AsyncIterator[RunningServer]:
    server = await start_server(settings, host="127.0.0.1", port=0, **kw)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        await asyncio.wait_for(server.aclose(), 30)


def make_server_repo(path: Path, files: Mapping[str, bytes]) -> str:
    """A git-annex repository with ``files`` annexed; returns its UUID."""
    path.mkdir(parents=True)
    git(path, "init", "-q")
    annex(path, "init", "-q", path.name)
    for name, data in files.items():
        (path / name).write_bytes(data)
    if files:
        annex(path, "add", "-q", *files)
        git(path, "commit", "-q", "-m", "files")
    return git(path, "config", "annex.uuid").strip()


def lookupkey(repo: Path, name: str) -> str:
    return annex(repo, "lookupkey", name).strip()


def make_cert(tmp: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl)."""
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))
