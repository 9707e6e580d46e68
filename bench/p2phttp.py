"""P2P HTTP server benchmark: ``annexsync p2phttp`` beside ``git annex p2phttp``.

Spec: the reference notes p2phttp.md (the API both servers speak).  Not a test.

The client is the real git-annex in every row, so the server is the only
thing that differs.  For each server and row: a fresh client clone with
``annexUrl`` pointing at the server on 127.0.0.1, then the timed command:

- ``get``: ``git annex get --from srv -J<n>`` of content the server has;
- ``copy``: ``git annex copy --to srv -J<n>`` of content only the client has.

Rows: 1 × 1 GiB, 1,000 × 1 MiB (``-J1`` and ``-J4``), and with ``--small``
10,000 × 1 KiB.  ``--scale F`` shrinks every size and count for a quick run.
Printed: seconds per tool, the ratio annexsync/git-annex (below 1 = we are
faster) and each server's peak RSS (VmHWM of the server process tree).

    python bench/p2phttp.py [--scale 0.25] [--small] [--jobs 1,4] [--workdir /tmp]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"


def sh(cmd: list[str], cwd: Path, timeout: float = 3600) -> None:
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree_hwm_mib(pid: int) -> float:
    """Peak RSS of ``pid`` and its children (VmHWM), in MiB."""
    total = 0
    pids = [pid]
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            pids.append(int(line))
    for p in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
    return total / 1024


@contextlib.contextmanager
def server(tool: str, repo: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    if tool == "git-annex":
        cmd = ["git", "annex", "p2phttp"]
    else:
        cmd = [str(BIN / "python"), "-m", "core.cli", "p2phttp"]
    cmd += ["--bind", "127.0.0.1", "--port", str(port), "--wideopen", "-J4"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{tool} server did not start")
            time.sleep(0.05)
        yield port, proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


def make_files(d: Path, count: int, size: int) -> None:
    d.mkdir(parents=True, exist_ok=True)
    block = os.urandom(1 << 20)
    for i in range(count):
        with (d / f"f{i:05d}.bin").open("wb") as f:
            left = size
            f.write(i.to_bytes(8, "little"))  # distinct content per file
            left -= 8
            while left > 0:
                n = min(left, len(block))
                f.write(block[:n])
                left -= n


def setup_repo(path: Path, files: Path | None) -> str:
    path.mkdir(parents=True)
    sh(["git", "init", "-q"], path)
    sh(["git", "annex", "init", "-q", path.name], path)
    if files is not None:
        shutil.copytree(files, path / "data")
        sh(["git", "annex", "add", "-q", "data"], path)
        sh(["git", "commit", "-q", "-m", "data"], path)
    out = subprocess.run(["git", "config", "annex.uuid"], cwd=path, capture_output=True, text=True)
    return out.stdout.strip()


def client_for(tmp: Path, srv: Path, uuid: str, port: int, name: str) -> Path:
    c = tmp / name
    sh(["git", "clone", "-q", str(srv), str(c)], tmp)
    sh(["git", "annex", "init", "-q", name], c)
    for k, v in (("annex.security.allowed-ip-addresses", "127.0.0.1"),
                 ("remote.origin.annex-uuid", uuid),
                 ("remote.origin.annexUrl", f"annex+http://127.0.0.1:{port}/git-annex/")):  # fmt: skip
        sh(["git", "config", k, v], c)
    return c


def run_row(tmp: Path, files: Path, kind: str, jobs: int, tool: str) -> tuple[float, float]:
    work = Path(tempfile.mkdtemp(dir=tmp, prefix=f"{tool}-{kind}-"))
    try:
        if kind == "get":
            srv = work / "srv"
            uuid = setup_repo(srv, files)
            with server(tool, srv) as (port, proc):
                c = client_for(work, srv, uuid, port, "client")
                t0 = time.monotonic()
                sh(["git", "annex", "get", "-q", "--from", "origin", f"-J{jobs}", "data"], c)
                return time.monotonic() - t0, tree_hwm_mib(proc.pid)
        srv = work / "srv"
        uuid = setup_repo(srv, None)
        src = work / "src"
        setup_repo(src, files)
        with server(tool, srv) as (port, proc):
            for k, v in (("annex.security.allowed-ip-addresses", "127.0.0.1"),
                         ("remote.srv.annex-uuid", uuid),
                         ("remote.srv.url", "http://127.0.0.1:1/unused.git"),
                         ("remote.srv.annexUrl", f"annex+http://127.0.0.1:{port}/git-annex/")):  # fmt: skip
                sh(["git", "config", k, v], src)
            t0 = time.monotonic()
            sh(["git", "annex", "copy", "-q", "--to", "srv", f"-J{jobs}", "data"], src)
            return time.monotonic() - t0, tree_hwm_mib(proc.pid)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--small", action="store_true", help="also 10,000 x 1 KiB")
    ap.add_argument("--jobs", default="1,4")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    args = ap.parse_args()
    os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    jobs = [int(j) for j in args.jobs.split(",")]
    tmp = Path(tempfile.mkdtemp(dir=args.workdir, prefix="p2phttp-bench-"))
    home = tmp / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = bench\n\temail = b@localhost\n"
                                     "[init]\n\tdefaultBranch = main\n")  # fmt: skip
    os.environ["HOME"] = str(home)
    os.environ["GIT_CONFIG_NOSYSTEM"] = "1"
    s = args.scale
    sets = [("1 x 1 GiB", 1, int((1 << 30) * s)), (f"{int(1000 * s)} x 1 MiB", int(1000 * s), 1 << 20)]
    if args.small:
        sets.append((f"{int(10000 * s)} x 1 KiB", int(10000 * s), 1024))
    print(f"{'row':<28}{'git-annex s':>12}{'annexsync s':>12}{'ratio':>8}"
          f"{'RSS ga MiB':>12}{'RSS as MiB':>12}")  # fmt: skip
    try:
        for label, count, size in sets:
            files = tmp / f"files-{count}-{size}"
            make_files(files, count, size)
            for kind in ("get", "copy"):
                for j in jobs:
                    res = {t: run_row(tmp, files, kind, j, t) for t in ("git-annex", "annexsync")}
                    (ga, ga_rss), (us, us_rss) = res["git-annex"], res["annexsync"]
                    print(f"{kind + ' ' + label + f' -J{j}':<28}{ga:>12.2f}{us:>12.2f}"
                          f"{us / ga:>8.2f}{ga_rss:>12.0f}{us_rss:>12.0f}", flush=True)  # fmt: skip
            shutil.rmtree(files, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
