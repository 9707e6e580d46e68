"""``annexsync get/copy -J N`` against real git-annex servers (``core.ops.jobs``).

Every test runs the real command line against a real ``git-annex-shell
p2pstdio`` (over the fake ssh of ``test_p2p_support``) or a real ``git annex
p2phttp``, then lets git-annex judge the result (``git annex fsck``).  The
slow runs (a server killed, Ctrl-C) put a throttle between git-annex-shell
and us (``annex-shell`` = ``slowshell``), so there is a "mid-run" to hit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import annex, git, run
from tests.integration.test_p2p_support import install_fake_ssh
from tests.integration.test_p2phttp_support import git_annex_p2phttp

pytestmark = pytest.mark.interop

COUNT = 24
SIZE = 64 * 1024
WAIT = 60.0

THROTTLE = """#!{python}
# git-annex-shell with its output slowed down: 64 KiB, then a pause.
import os, subprocess, sys, time
child = subprocess.Popen(["git-annex-shell", *sys.argv[1:]], stdout=subprocess.PIPE)
try:
    while d := os.read(child.stdout.fileno(), 65536):
        os.write(1, d)
        time.sleep(0.03)
except BrokenPipeError:  # the client went away
    pass
child.stdout.close()
child.wait()
"""


@dataclass
class Repos:
    tmp: Path
    server: Path
    uuid: str
    clone: Path
    ssh_log: Path


def _files(repo: Path, count: int, size: int) -> None:
    d = repo / "data"
    d.mkdir()
    for i in range(count):
        (d / f"f{i:03d}.bin").write_bytes(i.to_bytes(4, "little") + os.urandom(size - 4))
    # two more files sharing one key: one worker must move it, once
    (d / "same-1.bin").write_bytes(b"shared content\n" * 100)
    (d / "same-2.bin").write_bytes(b"shared content\n" * 100)


def _server(path: Path, count: int, size: int) -> str:
    path.mkdir()
    git(path, "init", "-q")
    annex(path, "init", "-q", path.name)
    if count:
        _files(path, count, size)
        annex(path, "add", "-q", "data")
        git(path, "commit", "-q", "-m", "data")
    return git(path, "config", "annex.uuid").strip()


def _point(repo: Path, name: str, server: Path, uuid: str, shell: str = "git-annex-shell") -> None:
    git(repo, "config", f"remote.{name}.url", f"ssh://localhost{server}")
    git(repo, "config", f"remote.{name}.annex-shell", shell)
    git(repo, "config", f"remote.{name}.annex-uuid", uuid)


def _make(tmp: Path, monkeypatch: pytest.MonkeyPatch, count: int = COUNT, size: int = SIZE) -> Repos:
    log = install_fake_ssh(tmp, monkeypatch)
    server = tmp / "server"
    uuid = _server(server, count, size)
    clone = tmp / "clone"
    git(tmp, "clone", "-q", str(server), str(clone))
    run(["annexsync", "init"], clone)
    _point(clone, "origin", server, uuid)
    return Repos(tmp, server, uuid, clone, log)


@pytest.fixture
def repos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repos:
    return _make(tmp_path, monkeypatch)


def sessions(log: Path) -> int:
    return sum("p2pstdio" in line for line in log.read_text().splitlines())


def processes(*words: bytes) -> list[int]:
    """PIDs of the processes with every one of ``words`` in an argument."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if all(any(w in a for a in argv) for w in words):
            found.append(int(pid))
    return found


def servers_of(path: Path) -> list[int]:
    """PIDs of the p2pstdio servers of ``path``."""
    return processes(b"p2pstdio", os.fsencode(str(path)))


def no_servers_left(path: Path) -> None:
    """Every server process of ``path`` ends soon after the client did."""
    deadline = time.monotonic() + 10
    while servers_of(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert servers_of(path) == []


def objects(repo: Path) -> list[Path]:
    return [p for p in (repo / ".git/annex/objects").rglob("*") if p.is_file()]


def present(repo: Path) -> list[str]:
    return sorted(annex(repo, "find", "data").split())


def logged_here(repo: Path) -> list[str]:
    """The files whose location log (not their content) says this repository has them,
    as git-annex reads it (whereis), before any fsck could fix the log."""
    import json

    uuid = git(repo, "config", "annex.uuid").strip()
    out = []
    for line in annex(repo, "whereis", "--json", "data").splitlines():
        entry = json.loads(line)
        if any(w["uuid"] == uuid for w in entry["whereis"]):
            out.append(entry["file"])
    return sorted(out)


def fsck_clean(repo: Path, *args: str) -> None:
    """git-annex itself checks every present file's content and our location log."""
    out = run(["git", "annex", "fsck", "-q", *args], repo, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def no_transfer_leftovers(repo: Path) -> None:
    left = [p for p in (repo / ".git/annex/transfer").rglob("*") if p.is_file()]
    assert left == []


def _outcomes(stdout: str) -> dict[str, bool]:
    out = {}
    for line in stdout.splitlines():
        if line.startswith(("get ", "copy ")):
            out[line.split()[1]] = line.endswith(" ok")
    return out


# --- -J and annex.jobs ---------------------------------------------------------


def test_get_j3_over_ssh_then_fsck(repos: Repos) -> None:
    p = run(["annexsync", "get", "-J3", "."], repos.clone)
    got = _outcomes(p.stdout)
    assert len(got) == COUNT + 2 and all(got.values()), p.stdout
    assert sessions(repos.ssh_log) == 3  # three servers, one per job
    assert len(present(repos.clone)) == COUNT + 2
    assert logged_here(repos.clone) == present(repos.clone)  # every line in the journal
    fsck_clean(repos.clone)
    no_servers_left(repos.server)
    no_transfer_leftovers(repos.clone)


def test_in_process_every_session_ends_with_the_command(repos: Repos,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """No server and no worker thread outlives ``get``/``copy`` (the process
    goes on: a session left open would keep its server running)."""
    from core.ops.transfer import copy, get
    from core.repo.repository import AnnexRepo

    monkeypatch.chdir(repos.clone)
    before = set(threading.enumerate())  # threads of earlier tests may end meanwhile
    target = repos.tmp / "target"
    _point(repos.clone, "target", target, _server(target, 0, 0))
    with AnnexRepo.open(repos.clone) as repo:
        assert all(o.ok for o in get(repo, ["data"], jobs=3))
        assert servers_of(repos.server) == []
        assert all(o.ok for o in copy(repo, ["data"], to="target", jobs=3))
        assert servers_of(target) == []
    assert [t for t in threading.enumerate() if t not in before] == []
    fsck_clean(repos.clone)
    fsck_clean(target, "--all")


def test_get_j3_from_a_path_remote(repos: Repos) -> None:
    """The same pool for a repository on this machine (no sessions at all)."""
    local = repos.tmp / "local"
    git(repos.tmp, "clone", "-q", str(repos.server), str(local))
    run(["annexsync", "init"], local)
    git(local, "remote", "add", "near", str(repos.server))
    p = run(["annexsync", "get", "-J3", "--from", "near", "."], local)
    got = _outcomes(p.stdout)
    assert len(got) == COUNT + 2 and all(got.values()), p.stdout
    fsck_clean(local)
    assert sessions(repos.ssh_log) == 0


def test_annex_jobs_config_sets_the_sessions(repos: Repos) -> None:
    git(repos.clone, "config", "annex.jobs", "2")
    run(["annexsync", "get", "data/f000.bin", "data/f001.bin", "data/f002.bin"], repos.clone)
    assert sessions(repos.ssh_log) == 2
    run(["annexsync", "get", "-J1", "."], repos.clone)  # -J wins over annex.jobs
    assert sessions(repos.ssh_log) == 3
    fsck_clean(repos.clone)


def test_copy_to_j3_over_ssh_then_fsck(repos: Repos) -> None:
    run(["annexsync", "get", "-J3", "."], repos.clone)
    target = repos.tmp / "target"
    uuid = _server(target, 0, 0)
    _point(repos.clone, "target", target, uuid)
    before = sessions(repos.ssh_log)
    p = run(["annexsync", "copy", "-J3", "--to", "target", "."], repos.clone)
    got = _outcomes(p.stdout)
    assert len(got) == COUNT + 2 and all(got.values()), p.stdout
    assert sessions(repos.ssh_log) - before == 3
    fsck_clean(target, "--all")  # what arrived there is right, and its log says so
    assert len(objects(target)) == COUNT + 1
    # our log records the copies at the target (fsck --from checks them)
    assert annex(repos.clone, "find", "--in", "target", "data").split() == present(repos.clone)
    fsck_clean(repos.clone, "--from", "target", "--fast")
    no_servers_left(target)


def test_corrupt_file_at_server_is_refused_the_rest_arrive(repos: Repos) -> None:
    key = annex(repos.server, "lookupkey", "data/f005.bin").strip()
    obj = repos.server / annex(repos.server, "contentlocation", key).strip()
    obj.parent.chmod(0o755)
    obj.chmod(0o644)
    data = bytearray(obj.read_bytes())
    data[1000] ^= 0xFF  # same size, other bytes
    obj.write_bytes(bytes(data))
    p = run(["annexsync", "get", "-J3", "."], repos.clone, check=False)
    assert p.returncode != 0
    got = _outcomes(p.stdout)
    assert got.pop("data/f005.bin") is False
    assert len(got) == COUNT + 1 and all(got.values()), p.stdout
    assert "data/f005.bin" not in present(repos.clone)
    assert not list((repos.clone / ".git/annex/objects").rglob(key))  # never kept
    assert len(present(repos.clone)) == COUNT + 1
    fsck_clean(repos.clone)
    no_servers_left(repos.server)


# --- a dead server, Ctrl-C (a throttled server, so there is a middle) ------------


@pytest.fixture
def slow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repos:
    r = _make(tmp_path, monkeypatch, count=30, size=1 << 20)
    shell = tmp_path / "slowshell"
    shell.write_text(THROTTLE.replace("{python}", sys.executable))
    shell.chmod(0o755)
    git(r.clone, "config", "remote.origin.annex-shell", str(shell))
    return r


def _start(repo: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(["annexsync", *args], cwd=repo, text=True, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def _when_some_arrived(repo: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + WAIT
    while not list((repo / ".git/annex/objects").rglob("*.bin")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_server_killed_mid_run(slow: Repos) -> None:
    proc = _start(slow.clone, "get", "-J3", ".")
    try:
        _when_some_arrived(slow.clone, proc)
        victims = [pid for pid in servers_of(slow.server)
                   if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
                   .endswith(b"git-annex-shell")]  # fmt: skip
        assert victims
        os.kill(victims[0], signal.SIGKILL)
        out, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, out + err
    got = _outcomes(out)
    failed = [path for path, ok in got.items() if not ok]
    assert failed, out
    # said in words: the session ended (EOF, a broken pipe), nothing else
    assert all("connection" in line or "protocol error" in line
               for line in out.splitlines() if line.endswith(" failed")), out
    no_servers_left(slow.server)
    no_transfer_leftovers(slow.clone)
    fsck_clean(slow.clone)  # what arrived is whole and logged
    run(["annexsync", "get", "-J3", "."], slow.clone)  # and a second run finishes the job
    assert len(present(slow.clone)) == 32
    fsck_clean(slow.clone)


def test_ctrl_c_ends_every_session(slow: Repos) -> None:
    proc = _start(slow.clone, "get", "-J3", ".")
    try:
        _when_some_arrived(slow.clone, proc)
        assert len(servers_of(slow.server)) >= 3
        os.kill(proc.pid, signal.SIGINT)  # only annexsync: its servers must be ended by it
        out, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err, err
    no_servers_left(slow.server)
    no_transfer_leftovers(slow.clone)
    assert 0 < len(present(slow.clone)) < 32
    fsck_clean(slow.clone)


# --- p2phttp: concurrent requests to git-annex's server ---------------------------


def _http(repos: Repos, port: int, name: str = "origin") -> None:
    git(repos.clone, "config", "annex.security.allowed-ip-addresses", "127.0.0.1")
    git(repos.clone, "config", f"remote.{name}.annexUrl", f"annex+http://127.0.0.1:{port}/git-annex/")


def test_get_j3_from_git_annex_p2phttp(repos: Repos) -> None:
    key = annex(repos.server, "lookupkey", "data/f007.bin").strip()
    obj = repos.server / annex(repos.server, "contentlocation", key).strip()
    obj.parent.chmod(0o755)
    obj.chmod(0o644)
    obj.write_bytes(b"\0" * SIZE)  # same size, other bytes: must be refused
    with git_annex_p2phttp(repos.server, "--wideopen", "-J4") as srv:
        _http(repos, srv.port)
        p = run(["annexsync", "get", "-J3", "."], repos.clone, check=False)
    assert p.returncode == 1
    got = _outcomes(p.stdout)
    assert got.pop("data/f007.bin") is False
    assert len(got) == COUNT + 1 and all(got.values()), p.stdout
    assert sessions(repos.ssh_log) == 0  # HTTP only
    assert len(present(repos.clone)) == COUNT + 1
    assert logged_here(repos.clone) == present(repos.clone)
    fsck_clean(repos.clone)


def test_copy_to_j3_git_annex_p2phttp(repos: Repos) -> None:
    run(["annexsync", "get", "-J3", "."], repos.clone)
    target = repos.tmp / "target"
    uuid = _server(target, 0, 0)
    with git_annex_p2phttp(target, "--wideopen", "-J4") as srv:
        git(repos.clone, "config", "remote.target.url", "http://127.0.0.1:1/unused.git")
        git(repos.clone, "config", "remote.target.annex-uuid", uuid)
        _http(repos, srv.port, "target")
        p = run(["annexsync", "copy", "-J3", "--to", "target", "."], repos.clone)
    got = _outcomes(p.stdout)
    assert len(got) == COUNT + 2 and all(got.values()), p.stdout
    fsck_clean(target, "--all")
    assert len(objects(target)) == COUNT + 1
    assert annex(repos.clone, "find", "--in", "target", "data").split() == present(repos.clone)


def test_p2phttp_server_killed_mid_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = _make(tmp_path, monkeypatch, count=200, size=1 << 20)
    with git_annex_p2phttp(r.server, "--wideopen", "-J4") as srv:
        _http(r, srv.port)
        server = (b"p2phttp", str(srv.port).encode())  # git, and git-annex under it
        proc = _start(r.clone, "get", "-J3", ".")
        try:
            _when_some_arrived(r.clone, proc)
            for pid in processes(*server):
                os.kill(pid, signal.SIGKILL)
            out, err = proc.communicate(timeout=WAIT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for pid in processes(*server):  # a killed git leaves git-annex behind
                os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 1, out + err
    got = _outcomes(out)
    assert not all(got.values()), out  # the run did not just finish before the kill
    failed = [line for line in out.splitlines() if line.endswith(" failed")]
    assert all("origin" in line or "127.0.0.1" in line for line in failed), failed[:3]
    assert "Traceback" not in err, err
    no_transfer_leftovers(r.clone)
    fsck_clean(r.clone)
