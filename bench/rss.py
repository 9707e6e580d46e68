"""Run one command, report its wall time and peak memory as one JSON line.

    python bench/rss.py [--cwd DIR] [--log FILE] [--timeout S] -- CMD [ARG...]

The benchmark starts this wrapper afresh for every measured command, so the
wrapper's own counters cover that command's process tree and nothing else:

* ``maxrss_kib``: ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` after the command
  and all its descendants have been reaped.  The kernel keeps, for every
  waited-for descendant, the largest resident set any one of them ever had, so
  this is the peak RSS of the *largest single process* in the tree; it is exact
  (no sampling).  The wrapper makes itself a child subreaper (``prctl``) so
  that grandchildren orphaned by an early exit are re-parented here, reaped,
  and counted too.
* ``tree_kib``: the largest *sum* of RSS over all live descendants, sampled
  from ``/proc/<pid>/statm`` every ``--interval`` seconds.  It sees processes
  running side by side (``git-annex`` plus its ``git cat-file`` helpers) but may
  miss peaks shorter than the interval, and it counts shared pages (libraries)
  once per process.

* ``cpu_seconds``: user + system time of every descendant reaped here
  (``getrusage(RUSAGE_CHILDREN)``): the command and whatever it started that
  ended within the reaping grace, servers included.

Wall time is measured here around ``Popen``/``wait`` and so excludes the
wrapper's own interpreter start-up.  The command's stdout and stderr go to
``--log``; the JSON report is the only thing this script prints.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
REAP_GRACE_SECONDS = 5.0


def become_subreaper() -> None:
    """Adopt orphaned descendants so their rusage is counted (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def parent_map() -> dict[int, int]:
    """pid -> parent pid for every process visible in /proc."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(root: int, parents: dict[int, int]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def rss_kib(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KIB
    except (OSError, IndexError, ValueError):
        return 0


class TreeSampler(threading.Thread):
    """Polls /proc and keeps the largest summed RSS of this process's descendants."""

    def __init__(self, interval: float) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak_kib = 0
        self.stopped = threading.Event()

    def sample(self) -> None:
        pids = descendants(os.getpid(), parent_map())
        self.peak_kib = max(self.peak_kib, sum(rss_kib(p) for p in pids))

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.sample()


def reap_all(session: int) -> None:
    """Kill what is left of the command's session and reap every descendant."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(session, signal.SIGKILL)
    deadline = time.monotonic() + REAP_GRACE_SECONDS
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.01)


def run(cmd: list[str], cwd: str, log: str, timeout: float, interval: float) -> dict[str, object]:
    become_subreaper()
    sampler = TreeSampler(interval)
    sampler.start()
    timed_out = False
    with open(log, "wb") as out:
        started = time.perf_counter()
        try:
            proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as e:
            return {"rc": 127, "seconds": 0.0, "maxrss_kib": 0, "tree_kib": 0,
                    "timed_out": False, "error": str(e)}
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            rc = proc.wait()
        seconds = time.perf_counter() - started
    sampler.stopped.set()
    sampler.join()
    reap_all(proc.pid)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"rc": rc, "seconds": seconds, "maxrss_kib": usage.ru_maxrss,
            "tree_kib": max(sampler.peak_kib, usage.ru_maxrss), "timed_out": timed_out,
            "cpu_seconds": usage.ru_utime + usage.ru_stime}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cwd", default=".")
    p.add_argument("--log", default=os.devnull)
    p.add_argument("--timeout", type=float, default=None)
    p.add_argument("--interval", type=float, default=0.05)
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        p.error("no command given")
    print(json.dumps(run(cmd, args.cwd, args.log, args.timeout, args.interval)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
