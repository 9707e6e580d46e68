#!/usr/bin/env python3
"""Issue 8 stress: the PUT race and the lock/remove race, many times over.

    python bench/stress.py [--count N] [--races put,lock] [--where threads,processes]

Runs each race of ``tests/races.py`` ``--count`` times (default 10,000) in one
process (two threads, as the p2phttp server and the TCP listener serve
sessions) and across two processes (the lock race also through our p2phttp
server and our TCP listener over loopback), on a repository made by real git-annex,
and prints per run: tries, corrupt objects, locks granted on removed content,
locks granted without a retention timestamp, refused attempts (expected:
the losers of each race) and unexpected errors.  The suite runs the same
races 2,000 (threads) and 300 (processes) times; this is the long version.

The exit status is 0 when every count that means lost or unsafe data is 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from measure import make_env, write_gitconfig
from run import REPO, add_common_options

RACES = ("put", "lock")
WHERE = ("threads", "processes", "http", "tcp")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="issue 8 race stress (see bench/stress.py)")
    p.add_argument("--count", type=int, default=10_000, help="tries per race and setting")
    p.add_argument("--races", default=",".join(RACES), help="put,lock")
    p.add_argument("--where", default=",".join(WHERE),
                   help="threads,processes,http,tcp (http, tcp: the lock race through our "
                        "p2phttp server or TCP listener)")
    add_common_options(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="annexsync-stress-", dir=args.workdir))
    home = scratch / "home"
    write_gitconfig(home)
    env = make_env(home, args.bin)
    os.environ.clear()
    os.environ.update(env)
    sys.path.insert(0, str(REPO))
    os.chdir(REPO)  # the worker processes run ``python -m tests.races``
    from core.p2p.serving import ServedRepo
    from core.repo.repository import AnnexRepo
    from tests import races

    runs = {
        ("put", "threads"): lambda r: races.put_race_threads(r, args.count),
        ("put", "processes"): lambda r: races.put_race_processes(r, args.count),
        ("lock", "threads"): lambda r: races.lock_race_threads(ServedRepo(r), args.count),
        ("lock", "processes"): lambda r: races.lock_race_processes(r, args.count),
        ("lock", "http"): lambda r: asyncio.run(races.lock_race_http(r, args.count)),
        ("lock", "tcp"): lambda r: asyncio.run(races.lock_race_tcp(r, args.count)),
    }
    results = []
    bad = 0
    try:
        for race in args.races.split(","):
            for where in args.where.split(","):
                if (race, where) not in runs:
                    continue
                repo = AnnexRepo.open(races.make_repo(scratch / f"{race}-{where}"))
                started = time.monotonic()
                try:
                    c = runs[(race, where)](repo)
                finally:
                    repo.close()
                took = time.monotonic() - started
                print(f"{c.line(f'{race} race, {where}')} ({took:.1f} s)", flush=True)
                bad += c.bad()
                results.append({"race": race, "where": where, "seconds": round(took, 2),
                                "tries": c.tries, "corrupt": c.corrupt, "refused": c.refused,
                                "granted_on_removed": c.granted_on_removed,
                                "granted_without_rtm": c.granted_without_rtm,
                                "errors": c.errors[:20]})  # fmt: skip
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print("all clean" if bad == 0 else f"{bad} unsafe outcomes")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
