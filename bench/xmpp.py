#!/usr/bin/env python3
"""Paired devices through XMPP on loopback: commit-to-merged latency, content
throughput through prosody, each process's CPU share, memory as data grows.

    python bench/xmpp.py [--commits N] [--mib 4,16]

Setup (all throw-away, in a temporary directory): a private Secret Service,
prosody with TLS, two devices on one account paired through ``PairedStore``;
device B runs ``annexsync daemon`` as its own process, device A is this
process (a command's view: ``push_to_device`` and ``copy_key_to`` through a
``PairedRemote``, each with a visitor XMPP connection of its own).

Rows:

    latency   a small commit made on A until B's branch contains it
              (``push_to_device``: login, presence, IBB open, Noise handshake,
              git push through CONNECT, B's merge); goal < 1 s median
    content   one file of N MiB sent A -> B (PUT over P2P over Noise over IBB);
              MB/s of wall time, CPU seconds of A (this process), B (the
              daemon) and prosody during the transfer, and RSS of A and B after
              it -- flat as N grows is the goal

Speed goals are printed, never asserted by the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["PATH"] = os.pathsep.join([str(ROOT / ".venv" / "bin"), os.environ.get("PATH", "")])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its waited-for children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def contains(repo: Path, commit: str) -> bool:
    return subprocess.run(["git", "-C", str(repo), "merge-base", "--is-ancestor", commit,
                           "HEAD"], capture_output=True).returncode == 0  # fmt: skip


def wait(cond: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.01)


def home(d: Path) -> None:
    (d / ".gitconfig").write_text("[user]\n\tname = Bench\n\temail = bench@example.com\n"
                                  "[init]\n\tdefaultBranch = main\n")  # fmt: skip
    os.environ.update(HOME=str(d), GIT_CONFIG_NOSYSTEM="1", XDG_CONFIG_HOME=str(d / ".config"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commits", type=int, default=10)
    ap.add_argument("--mib", default="4,16", help="file sizes for the content row")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-xmpp-") as tmp:
        run(Path(tmp), args.commits, [int(x) for x in args.mib.split(",")])


def run(tmp: Path, commits: int, sizes: list[int]) -> None:
    from tests.conftest import annex, git
    from tests.integration.paired_helpers import device, make_repo, pair
    from tests.secret_service import secret_service
    from tests.xmpp_server import prosody

    home(tmp)
    with secret_service(tmp / "secrets"), prosody(tmp / "prosody") as server:
        alice = server.register("alice", "pw")
        a_repo = make_repo(tmp / "a", "laptop")
        (a_repo / "README").write_text("bench\n")
        git(a_repo, "add", "README")
        git(a_repo, "commit", "-q", "-m", "start")
        a = device(tmp, "laptop", server, alice, a_repo)
        b = device(tmp, "desk", server, alice, make_repo(tmp / "b", "desk", a_repo))
        pair(a, b)
        daemon = subprocess.Popen(["annexsync", "daemon", "--config-dir", str(b.cfg)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            os.environ["ANNEXSYNC_CONFIG_DIR"] = str(a.cfg)
            os.chdir(a.repo)
            time.sleep(2.0)  # B logs in and announces itself
            latency(a.repo, b, commits, git)
            content(a.repo, b, sizes, daemon.pid, server.proc.pid if server.proc else 0, annex)
        finally:
            daemon.terminate()
            daemon.wait(30)


def latency(a_repo: Path, b: object, commits: int, git: object) -> None:
    from core.devices.jobs import push_to_device

    took = []
    for i in range(commits):
        (a_repo / "counter.txt").write_text(f"{i}\n")
        git(a_repo, "add", "counter.txt")  # type: ignore[operator]
        git(a_repo, "commit", "-q", "-m", f"commit {i}")  # type: ignore[operator]
        sha = git(a_repo, "rev-parse", "HEAD").strip()  # type: ignore[operator]
        start = time.perf_counter()
        out = asyncio.run(push_to_device(str(a_repo), b.ident.device_id))  # type: ignore[attr-defined]
        if not out.ok:
            raise RuntimeError(out.error)
        wait(lambda sha=sha: contains(b.repo, sha), 30)  # type: ignore[attr-defined,misc]
        took.append(time.perf_counter() - start)
    med = statistics.median(took)
    print(f"latency   commit-to-merged median {med:.2f} s (min {min(took):.2f}, "
          f"max {max(took):.2f}, {commits} commits); goal < 1 s: "
          f"{'met' if med < 1 else 'NOT met'}")


def content(a_repo: Path, b: object, sizes: list[int], b_pid: int, prosody_pid: int,
            annex: object) -> None:  # fmt: skip
    from core.ops.transfer import copy_key_to
    from core.progress import NullProgress
    from core.remotes import close_remotes, find_remote, open_remote
    from core.repo.key import Key
    from core.repo.repository import AnnexRepo

    me = os.getpid()
    print(f"{'content':<9} {'MiB':>5} {'MB/s':>6} {'CPU A':>6} {'CPU B':>6} {'CPU prosody':>12} "
          f"{'RSS A':>7} {'RSS B':>7}")
    for mib in sizes:
        name = f"blob{mib}.bin"
        with (a_repo / name).open("wb") as f:
            for _ in range(mib):
                f.write(os.urandom(1 << 20))
        annex(a_repo, "add", "-q", name)  # type: ignore[operator]
        key = Key.parse(annex(a_repo, "lookupkey", name).strip())  # type: ignore[operator]
        with AnnexRepo.open(a_repo) as repo:
            remote = open_remote(repo, find_remote(repo, "desk"))
            cpu = (cpu_seconds(me), cpu_seconds(b_pid), cpu_seconds(prosody_pid))
            start = time.perf_counter()
            copy_key_to(repo, key, remote, NullProgress())
            wall = time.perf_counter() - start
            used = [after - before for before, after in
                    zip(cpu, (cpu_seconds(me), cpu_seconds(b_pid), cpu_seconds(prosody_pid)),
                        strict=True)]
            close_remotes(repo)
        share = [f"{u / wall * 100:.0f}%" for u in used]
        print(f"{'':<9} {mib:>5} {mib * 1.048576 / wall:>6.2f} {share[0]:>6} {share[1]:>6} "
              f"{share[2]:>12} {rss_mib(me):>6.0f}M {rss_mib(b_pid):>6.0f}M")
    print("(CPU columns: each process's CPU time over the transfer's wall time; "
          "100% = one core busy)")


if __name__ == "__main__":
    main()
