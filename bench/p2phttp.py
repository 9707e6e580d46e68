"""P2P HTTP server benchmark: ``annexsync p2phttp`` beside ``git annex p2phttp``.

Spec: the reference notes p2phttp.md (the API both servers speak).  Not a test.

The client is the real git-annex in every row, so the server is the only
thing that differs.  For each server and row: a fresh client clone with
``annexUrl`` pointing at the server on 127.0.0.1, then the timed command:

- ``get``: ``git annex get --from srv -J<n>`` of content the server has;
- ``copy``: ``git annex copy --to srv -J<n>`` of content only the client has.

Set-ups (client>server): ``ga>ga`` is the baseline (git-annex at both ends);
``ga>as`` is the git-annex client against ``annexsync p2phttp`` (the issue's
rows); ``as>as`` and ``as>ga`` measure the annexsync client (``annexsync get
--from``/``copy --to``).  Both clients get the row's ``-J``.  Every set-up is run ``--runs``
times, taking turns, and the median is reported; after each run every file is
checked where it should have arrived (present, right size, hashes to its key).

Rows: 1 × 1 GiB ``-J1`` and 1,000 × 1 MiB ``-J4`` (the defaults, ``--rows``),
``--jobs`` for more (the annexsync client, which has no ``-J``, only in the
first), ``--small`` for 10,000 × 1 KiB.  ``--scale F`` shrinks
every size and count for a quick run.  Printed: median seconds per set-up, the
speedup against ga>ga (git-annex's time ÷ ours), the CPU seconds (user +
system) of the client command and of the server's process tree during it, and
each server's peak RSS (VmHWM of the server process tree).

    python bench/p2phttp.py [--scale 0.25] [--small] [--runs 3] [--copy] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from measure import p2phttp_server
from p2p import annexed_objects, verify
from report import Dataset

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"


def sh(cmd: list[str], cwd: Path, timeout: float = 3600) -> None:
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")


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
    if tool == "git-annex":
        cmd = ["git", "annex", "p2phttp"]
    else:
        cmd = [str(BIN / "python"), "-m", "core.cli", "p2phttp"]
    cmd += ["--wideopen", "-J4"]
    with p2phttp_server(cmd, repo, {**os.environ, "PYTHONPATH": str(ROOT)}) as running:
        yield running


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


def client_for(tmp: Path, srv: Path, uuid: str, port: int, name: str, client: str) -> Path:
    c = tmp / name
    sh(["git", "clone", "-q", str(srv), str(c)], tmp)
    sh(["annexsync", "init"] if client == "annexsync" else ["git", "annex", "init", "-q", name], c)
    for k, v in (("annex.security.allowed-ip-addresses", "127.0.0.1"),
                 ("remote.origin.annex-uuid", uuid),
                 ("remote.origin.annexUrl", f"annex+http://127.0.0.1:{port}/git-annex/")):  # fmt: skip
        sh(["git", "config", k, v], c)
    return c


@dataclass(frozen=True)
class Setup:
    client: str  # "git-annex" or "annexsync"
    server: str

    @property
    def name(self) -> str:
        short = {"git-annex": "ga", "annexsync": "as"}
        return f"{short[self.client]}>{short[self.server]}"

    def command(self, kind: str, jobs: int, remote: str) -> list[str]:
        if self.client == "annexsync":
            return ["annexsync", kind, "--from" if kind == "get" else "--to", remote,
                    f"-J{jobs}", "data"]  # fmt: skip
        return ["git", "annex", kind, "-q", "--from" if kind == "get" else "--to", remote,
                f"-J{jobs}", "data"]  # fmt: skip


BASE = Setup("git-annex", "git-annex")
SETUPS = (Setup("git-annex", "annexsync"), BASE, Setup("annexsync", "annexsync"),
          Setup("annexsync", "git-annex"))  # fmt: skip


@dataclass
class Measured:
    times: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    client_cpu: list[float] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)
    error: str = ""


@dataclass(frozen=True)
class Took:
    seconds: float
    rss_mib: float
    client_cpu: float  # user + system of the timed command (and what it waited for)
    server_cpu: float  # user + system of the server's process tree meanwhile


def tree_cpu(pid: int) -> float:
    """User + system seconds of ``pid`` and its descendants so far (/proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    return total / tick


def timed(cmd: list[str], cwd: Path, server_pid: int) -> tuple[float, float, float]:
    """Wall seconds, the command's CPU and the server's CPU while it ran."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = tree_cpu(server_pid)
    t0 = time.monotonic()
    sh(cmd, cwd)
    took = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return took, cpu, tree_cpu(server_pid) - server_before


def run_row(tmp: Path, files: Path, ds: Dataset, kind: str, jobs: int, setup: Setup) -> Took:
    work = Path(tempfile.mkdtemp(dir=tmp, prefix=f"{setup.name.replace('>', '-')}-{kind}-"))
    try:
        srv = work / "srv"
        if kind == "get":
            uuid = setup_repo(srv, files)
            with server(setup.server, srv) as (port, proc):
                c = client_for(work, srv, uuid, port, "client", setup.client)
                took, cpu, server_cpu = timed(setup.command(kind, jobs, "origin"), c, proc.pid)
                verify(c / ".git/annex/objects", annexed_objects(c), ds)
                return Took(took, tree_hwm_mib(proc.pid), cpu, server_cpu)
        uuid = setup_repo(srv, None)
        src = work / "src"
        setup_repo(src, files)
        if setup.client == "annexsync":
            sh(["annexsync", "init"], src)
        with server(setup.server, srv) as (port, proc):
            for k, v in (("annex.security.allowed-ip-addresses", "127.0.0.1"),
                         ("remote.srv.annex-uuid", uuid),
                         ("remote.srv.url", "http://127.0.0.1:1/unused.git"),
                         ("remote.srv.annexUrl", f"annex+http://127.0.0.1:{port}/git-annex/")):  # fmt: skip
                sh(["git", "config", k, v], src)
            took, cpu, server_cpu = timed(setup.command(kind, jobs, "srv"), src, proc.pid)
            verify(srv / ".git/annex/objects", annexed_objects(src), ds)
            return Took(took, tree_hwm_mib(proc.pid), cpu, server_cpu)
    finally:
        sh(["chmod", "-R", "u+w", str(work)], tmp)
        shutil.rmtree(work, ignore_errors=True)


def measure_row(tmp: Path, files: Path, ds: Dataset, kind: str, jobs: int,
                runs: int, setups: list[Setup]) -> dict[str, Measured]:  # fmt: skip
    out = {s.name: Measured() for s in setups}
    for _ in range(runs):
        for setup in setups:
            m = out[setup.name]
            if m.error:
                continue
            try:
                took = run_row(tmp, files, ds, kind, jobs, setup)
            except Exception as e:  # the tool failed or the check did: shown, bench goes on
                m.error = str(e)[-1500:]
                print(f"  {setup.name} failed: {m.error}", file=sys.stderr, flush=True)
                continue
            m.times.append(took.seconds)
            m.rss.append(took.rss_mib)
            m.client_cpu.append(took.client_cpu)
            m.server_cpu.append(took.server_cpu)
    return out


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--small", action="store_true", help="also 10,000 x 1 KiB")
    ap.add_argument("--jobs", default="", help="-J values for every row (default: 1 for "
                    "the big file, 4 for many files)")
    ap.add_argument("--copy", action="store_true", help="also copy --to rows")
    ap.add_argument("--rows", default="large,many", help="datasets: large, many (and tiny "
                    "with --small)")
    ap.add_argument("--setups", default="", help="only these set-ups, e.g. 'as>ga' (ga>ga, "
                    "the baseline, always runs)")
    ap.add_argument("--runs", type=int, default=3, help="runs per set-up (median taken)")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    return ap.parse_args()


def main() -> int:
    args = parse_args()
    os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    tmp = Path(tempfile.mkdtemp(dir=args.workdir, prefix="p2phttp-bench-"))
    home = tmp / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = bench\n\temail = b@localhost\n"
                                     "[init]\n\tdefaultBranch = main\n")  # fmt: skip
    os.environ["HOME"] = str(home)
    os.environ["GIT_CONFIG_NOSYSTEM"] = "1"
    s = args.scale
    sets = [Dataset("large", 1, int((1 << 30) * s)), Dataset("many", int(1000 * s), 1 << 20)]
    if args.small:
        sets.append(Dataset("tiny", int(10000 * s), 1024))
    names = {r.strip() for r in args.rows.split(",")} | ({"tiny"} if args.small else set())
    sets = [d for d in sets if d.name in names]
    print(f"p2phttp: median of {args.runs} runs; speedup = ga>ga's time ÷ the set-up's; "
          f"load average at start {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("  -J: every row passes the same -J to both clients (git-annex's and annexsync's)")
    print(f"{'row':<30}{'set-up':>8}{'median s':>10}{'speedup':>9}{'client cpu':>11}"
          f"{'server cpu':>11}{'server RSS MiB':>16}  runs")
    wanted = {w.strip() for w in args.setups.split(",") if w.strip()}
    setups = [st for st in SETUPS if st is BASE or not wanted or st.name in wanted]
    rows = []
    try:
        for ds in sets:
            files = tmp / f"files-{ds.name}"
            make_files(files, ds.count, ds.size)
            for kind in ("get", "copy") if args.copy else ("get",):
                jobs = [int(j) for j in args.jobs.split(",")] if args.jobs else [
                    1 if ds.count == 1 else 4]
                for j in jobs:
                    label = f"{kind} {ds.label} -J{j}"
                    measured = measure_row(tmp, files, ds, kind, j, args.runs, setups)
                    rows.append(report_row(label, kind, ds, j, measured))
            shutil.rmtree(files, ignore_errors=True)
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(tmp)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps({"meta": {"bench": "p2phttp", "runs": args.runs,
                                                  "scale": s}, "rows": rows}, indent=2))
    return 0 if all(not m["error"] for r in rows for m in r["setups"].values()) else 1


def report_row(label: str, kind: str, ds: Dataset, jobs: int,
               measured: dict[str, Measured]) -> dict[str, object]:  # fmt: skip
    base = measured[BASE.name]
    base_s = statistics.median(base.times) if base.times else None
    out: dict[str, dict[str, object]] = {}
    for name, m in measured.items():
        med = statistics.median(m.times) if m.times else None
        speed = base_s / med if (base_s and med) else None
        ccpu = statistics.median(m.client_cpu) if m.client_cpu else None
        scpu = statistics.median(m.server_cpu) if m.server_cpu else None
        out[name] = {"median_seconds": med, "runs": m.times, "server_rss_mib": max(m.rss, default=0),
                     "speedup": speed, "error": m.error, "client_cpu_seconds": ccpu,
                     "server_cpu_seconds": scpu}
        shown = f"{med:10.2f}" if med is not None else f"{'error':>10}"
        sp = f"{speed:8.2f}×" if speed is not None else f"{'-':>9}"
        cpus = "".join(f"{c:11.2f}" if c is not None else f"{'-':>11}" for c in (ccpu, scpu))
        runs = ", ".join(f"{t:.2f}" for t in m.times)
        print(f"{label:<30}{name:>8}{shown}{sp}{cpus}{max(m.rss, default=0):16.0f}  ({runs})",
              flush=True)
    return {"row": f"{kind}-{ds.name}-J{jobs}", "label": label, "kind": kind, "files": ds.count,
            "file_size": ds.size, "jobs": jobs, "setups": out}


if __name__ == "__main__":
    sys.exit(main())
