"""Long-running servers under load: figures before and after N mixed requests.

Not a test (the suite runs the same load with fewer requests and asserts the
figures; see tests/integration/test_servers_stay_up.py).  For each server,
``annexsync p2phttp -J2 --wideopen`` and ``annexsync p2p-listen``, on a fresh
repository on 127.0.0.1: a warm-up of 300 requests, then N mixed requests
from 8 workers (uploads that commit the git-annex branch, downloads,
checkpresent, removes, timestamps; a new connection every 50 requests).
Printed: the server process's descriptors, threads and RSS before and after,
the time taken and the git-annex branch commits made.

    python bench/servers.py [--requests 10000] [--concurrency 8] [--workdir /tmp]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.repo.repository import AnnexRepo  # noqa: E402
from tests.integration.servers_support import (  # noqa: E402
    TOKEN,
    figures,
    p2p_load,
    p2phttp_load,
    settle,
    start_server,
)

WARMUP = 300


def commits(repo: Path) -> int:
    out = subprocess.run(["git", "rev-list", "--count", "git-annex"], cwd=repo,
                         capture_output=True, text=True, check=True)  # fmt: skip
    return int(out.stdout)


def bench(name: str, tmp: Path, n: int, concurrency: int) -> None:
    server = AnnexRepo.init(tmp / "server", "server")
    if name == "p2phttp":
        argv = ["p2phttp", "--bind", "127.0.0.1", "--port", "0", "--wideopen", "-J2"]
        pattern = r"listening on http://127\.0\.0\.1:(\d+)"
    else:
        creds = server.gitdir / "annex" / "creds"
        creds.mkdir(parents=True)
        (creds / "p2pauth").write_text(TOKEN + "\n")
        argv = ["p2p-listen", "--bind", "127.0.0.1:0", str(server.path)]
        pattern = r"listening on 127\.0\.0\.1:(\d+)"
    client = AnnexRepo.init(tmp / "client", "client")
    with start_server(argv, server.path, pattern) as (proc, port):

        def load(count: int, start: int) -> dict[str, int]:
            if name == "p2phttp":
                return asyncio.run(p2phttp_load(port, server.uuid, count, concurrency, start))
            return asyncio.run(p2p_load(port, client, tmp, count, concurrency, start))

        load(WARMUP, 0)
        before = settle(proc.pid, figures(proc.pid).fds)
        c0 = commits(server.path)
        t0 = time.monotonic()
        done = load(n, WARMUP)
        took = time.monotonic() - t0
        after = settle(proc.pid, before.fds)
    print(f"annexsync {name}: {n} requests in {took:.1f} s ({n / took:.0f}/s), "
          f"{commits(server.path) - c0} branch commits")
    print(f"  before: {before}")
    print(f"  after:  {after}")
    print(f"  replies: {dict(sorted(done.items()))}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    args = ap.parse_args()
    for name in ("p2phttp", "p2p-listen"):
        tmp = Path(tempfile.mkdtemp(prefix=f"bench-{name}-", dir=args.workdir))
        try:
            bench(name, tmp, args.requests, args.concurrency)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
