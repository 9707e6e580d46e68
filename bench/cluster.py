"""Cluster gateway benchmark (issue 17): copying to a 3-node cluster over HTTP.

Spec: clusters.md 5.6 (fan-out), 10 (p2phttp serving a cluster).  Not a test.

The client is the real git-annex in every row (``git annex copy --to
<gw>-mycluster -J<n>``), so only the server side differs.  Side by side in
one run, on the same data:

- ``ga gateway``: ``git annex p2phttp --clusterjobs 3`` serving a cluster of
  three git nodes (made by ``git annex initcluster`` / ``updatecluster``);
- ``as gateway``: ``annexsync p2phttp`` serving the same kind of gateway
  repository (its local nodes served inside the server process);
- ``ga one node`` / ``as one node``: the same client copying to one plain
  repository served by each p2phttp (one copy instead of three);
- ``floor``: three copies made by the shortest honest program, in this
  process: read, SHA-256 and write each file three times, one after another.

Every setup is built fresh for each run (gateway, nodes, server), not timed;
only the ``copy`` is timed, and its scratch repositories are deleted right
after it.  The setups take turns: run r starts with the r-th setup of the
list, so no setup always follows the same one (on this project's machines a
setup pays for its predecessor: on an ext4 without a journal for the inodes
it deleted, in a VM for the page-cache memory it freed).  Afterwards every
node must hold every file's content (counted in its object directory), or
the row fails.  Each server's CPU time (user + system, its threads and
processes included) is shown next to the wall time: on a shared machine it
is the steadier figure.  So is the git-annex client's (its whole process
tree): on 2 cores a client busy for most of the wall time bounds the row
whatever the server does.

Goals (printed with PASS/FAIL): annexsync's gateway ≥ 3× faster than
git-annex's on each row; on the many-files row our fan-out takes ≤ 1.3× our
one-node time; on the large-file row our gateway is within 1.3× of the floor.

    python bench/cluster.py [--quick] [--runs N] [--jobs N] [--workdir DIR] [--keep]
                            [--setups "as gateway,as one node"] [--profile DIR]
                            [--node-dirs D1,D2,D3]

``--profile DIR``: our servers run under ``py-spy record`` (collapsed stacks
in DIR, one file per setup and run; py-spy must be on PATH).

``--node-dirs D1,D2,D3``: node i's repository in Di (three file systems,
say), one node's in D1; the default keeps everything in one scratch
directory, so the three nodes share one disk and one file system.

Default rows: 100 × 1 MiB and 1 × 1 GiB (about 3-5 minutes on 2 cores);
``--quick``: 20 × 1 MiB and 1 × 64 MiB (about a minute).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from measure import p2phttp_server

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
NODES = ("node1", "node2", "node3")
SETUPS = ("ga gateway", "as gateway", "ga one node", "as one node", "floor")
CHUNK = 1 << 20
NODE_ROOTS: list[Path] = []  # --node-dirs: node i's repositories under NODE_ROOTS[i]


def node_dir(work: Path, i: int, name: str) -> Path:
    """Where the i-th node's repository of a run goes (``work`` unless --node-dirs)."""
    return NODE_ROOTS[i] / work.name / name if NODE_ROOTS else work / name


def sh(cmd: list[str], cwd: Path, timeout: float = 3600) -> str:
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return p.stdout


@dataclass
class Server:
    port: int
    proc: subprocess.Popen[bytes]

    def cpu(self) -> float:
        """User + system seconds the server's process tree used so far."""
        return cpu_seconds(self.proc.pid)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid``, its threads, its reaped children and its
    live descendants (Linux /proc; 0 elsewhere)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            children = [int(c) for t in Path(f"/proc/{p}/task").iterdir()
                        for c in (t / "children").read_text().split()]  # fmt: skip
        except (OSError, ValueError):
            continue
        total += sum(int(x) for x in fields[11:15]) / tick  # utime stime cutime cstime
        todo += children
    return total


def children_cpu() -> float:
    """User + system CPU of this process's reaped children (the client's
    whole tree: git-annex waits for its own children)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


@contextlib.contextmanager
def server(tool: str, repo: Path, jobs: int, profile: Path | None = None) -> Iterator[Server]:
    """A p2phttp server on ``repo``; yields it, stops it by its PID."""
    if tool == "ga":
        cmd = ["git", "annex", "p2phttp", "--clusterjobs", str(len(NODES))]
    else:
        cmd = [str(BIN / "python"), "-m", "core.cli", "p2phttp"]
    cmd += ["--wideopen", f"-J{jobs}"]
    profiled = profile is not None and tool == "as"
    if profiled:
        cmd = ["py-spy", "record", "--format", "raw", "--rate", "250", "--threads", "--nonblocking",
               "--output", str(profile), "--", *cmd]  # fmt: skip
    with (repo.parent / f"{tool}-server.log").open("wb") as log, p2phttp_server(
        cmd, repo, {**os.environ, "PYTHONPATH": str(ROOT)}, log,
        signal.SIGINT if profiled else signal.SIGTERM,
    ) as (port, proc):  # fmt: skip
        yield Server(port, proc)


def make_files(d: Path, count: int, size: int) -> None:
    d.mkdir(parents=True)
    block = os.urandom(CHUNK)
    for i in range(count):
        with (d / f"f{i:05d}.bin").open("wb") as f:
            f.write(i.to_bytes(8, "little"))  # distinct content per file
            left = size - 8
            while left > 0:
                f.write(block[: min(left, CHUNK)])
                left -= CHUNK


def init_repo(path: Path) -> str:
    path.mkdir(parents=True, exist_ok=True)
    sh(["git", "init", "-q"], path)
    sh(["git", "annex", "init", "-q", path.name], path)
    return sh(["git", "config", "annex.uuid"], path).strip()


def make_gateway(work: Path) -> Path:
    """A gateway with three git nodes in ``mycluster`` (clusters.md 13)."""
    gw = work / "gw"
    init_repo(gw)
    sh(["git", "annex", "initcluster", "mycluster"], gw)
    for i, n in enumerate(NODES):
        node = node_dir(work, i, n)
        sh(["git", "clone", "-q", str(gw), str(node)], work)
        sh(["git", "annex", "init", "-q", n], node)
        sh(["git", "remote", "add", n, str(node)], gw)
        sh(["git", "config", f"remote.{n}.annex-cluster-node", "mycluster"], gw)
    sh(["git", "annex", "updatecluster"], gw)
    sh(["git", "fetch", "-q", "--all"], gw)
    sh(["git", "annex", "merge", "-q"], gw)
    sh(["git", "annex", "wanted", ".", "nothing"], gw)
    return gw


def objects(repo: Path) -> int:
    return sum(1 for p in (repo / ".git" / "annex" / "objects").rglob("*")
               if p.is_file() and not p.name.endswith((".rtm", ".lck")))  # fmt: skip


@dataclass
class Took:
    wall: float  # seconds of the copy
    cpu: float  # the server's user + system seconds during the copy (floor: this process's)
    client: float = 0.0  # the git-annex client's user + system seconds (its whole process tree)


@dataclass
class Client:
    path: Path
    count: int
    serial: int = 0

    def remote(self, port: int, url: str, uuid: str | None = None) -> str:
        self.serial += 1
        name = f"r{self.serial}"
        sh(["git", "remote", "add", name, url], self.path)
        sh(["git", "config", f"remote.{name}.annexurl",
            f"annex+http://127.0.0.1:{port}/git-annex/"], self.path)  # fmt: skip
        if uuid is not None:
            sh(["git", "config", f"remote.{name}.annex-uuid", uuid], self.path)
        else:  # learn the gateway's proxy.log: <name>-mycluster appears
            sh(["git", "fetch", "-q", name], self.path)
            sh(["git", "annex", "merge", "-q"], self.path)
        return name

    def copy(self, to: str, jobs: int, srv: Server) -> Took:
        cpu0, client0, t0 = srv.cpu(), children_cpu(), time.monotonic()
        sh(["git", "annex", "copy", "-q", "--to", to, f"-J{jobs}", "data"], self.path)
        return Took(time.monotonic() - t0, srv.cpu() - cpu0, children_cpu() - client0)


def gateway_run(tool: str, work: Path, client: Client, jobs: int,
                profile: Path | None) -> Took:  # fmt: skip
    gw = make_gateway(work)
    with server(tool, gw, jobs, profile) as srv:
        name = client.remote(srv.port, str(gw))
        took = client.copy(f"{name}-mycluster", jobs, srv)
    for i, n in enumerate(NODES):
        got = objects(node_dir(work, i, n))
        if got != client.count:
            raise RuntimeError(f"{tool} gateway: {n} holds {got} of {client.count} files")
    return took


def one_node_run(tool: str, work: Path, client: Client, jobs: int,
                 profile: Path | None) -> Took:  # fmt: skip
    one = node_dir(work, 0, "one")
    uuid = init_repo(one)
    with server(tool, one, jobs, profile) as srv:
        name = client.remote(srv.port, "http://127.0.0.1:1/unused.git", uuid)
        took = client.copy(name, jobs, srv)
    if objects(one) != client.count:
        raise RuntimeError(f"{tool} one node: {objects(one)} of {client.count} files")
    return took


def floor_run(work: Path, data: Path) -> Took:
    """Copy, hash and write three times (the three copies a fan-out makes)."""
    files = sorted(data.iterdir())
    work.mkdir(parents=True, exist_ok=True)
    cpu0, t0 = time.process_time(), time.monotonic()
    for i in range(len(NODES)):
        for src in files:
            h = hashlib.sha256()
            with src.open("rb") as f, (work / f"{i}-{src.name}").open("wb") as out:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
                    out.write(chunk)
            h.hexdigest()
    return Took(time.monotonic() - t0, time.process_time() - cpu0)


def run_one(setup: str, work: Path, client: Client, data: Path, jobs: int,
            profile: Path | None) -> Took:  # fmt: skip
    work.mkdir(parents=True)
    try:
        if setup == "floor":
            return floor_run(work, data)
        tool = setup[:2]
        if setup.endswith("gateway"):
            return gateway_run(tool, work, client, jobs, profile)
        return one_node_run(tool, work, client, jobs, profile)
    finally:
        remove(work)
        for root in NODE_ROOTS:
            remove(root / work.name)


def remove(path: Path) -> None:
    """rm -rf, git-annex's write-protected object directories included."""
    subprocess.run(["chmod", "-R", "u+w", str(path)], capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(label: str, count: int, size: int, t: dict[str, Took]) -> bool:
    """Print the row; whether its goals are met (a goal whose setups did not run is skipped)."""
    print(f"\n{label}")
    for s, took in t.items():
        rate = count / took.wall if count > 1 else size / took.wall / 1e6
        unit = "files/s" if count > 1 else "MB/s"
        client = f"   client cpu {took.client:>6.2f} s" if took.client else ""
        print(f"  {s:<14}{took.wall:>9.2f} s {rate:>9.1f} {unit}   cpu {took.cpu:>7.2f} s{client}")
    ok = True

    def ratio(a: str, b: str) -> float | None:
        return t[a].wall / t[b].wall if a in t and b in t else None

    speedup = ratio("ga gateway", "as gateway")
    if speedup is not None:
        ok &= speedup >= 3
        print(f"  annexsync gateway vs git-annex gateway: {speedup:.2f}x faster (goal >= 3x) "
              f"{verdict(speedup >= 3)}")  # fmt: skip
    fan, ga_fan = ratio("as gateway", "as one node"), ratio("ga gateway", "ga one node")
    ga = f"; git-annex: {ga_fan:.2f}x" if ga_fan is not None else ""
    if count > 1 and fan is not None:
        ok &= fan <= 1.3
        print(f"  fan-out to 3 nodes vs one node: {fan:.2f}x (goal <= 1.3x) "
              f"{verdict(fan <= 1.3)}{ga}")  # fmt: skip
    floor = ratio("as gateway", "floor")
    if count == 1 and floor is not None:
        ok &= floor <= 1.3
        print(f"  gateway vs three-copy floor: {floor:.2f}x (goal <= 1.3x) {verdict(floor <= 1.3)}"
              + (f"; fan-out vs one node {fan:.2f}x" if fan is not None else "") + ga)
    return ok


def median(runs: list[Took]) -> Took:
    fields = ("wall", "cpu", "client")
    return Took(*(statistics.median(getattr(r, f) for r in runs) for f in fields))


def environment(tmp: Path) -> None:
    os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    home = tmp / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = bench\n\temail = b@localhost\n"
                                     "[init]\n\tdefaultBranch = main\n")  # fmt: skip
    os.environ["HOME"] = str(home)
    os.environ["GIT_CONFIG_NOSYSTEM"] = "1"
    for var in [v for v in os.environ if v.startswith("GIT_") and v != "GIT_CONFIG_NOSYSTEM"]:
        del os.environ[var]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20 x 1 MiB and 1 x 64 MiB")
    ap.add_argument("--runs", type=int, default=1, help="runs per setup (median shown)")
    ap.add_argument("--jobs", type=int, default=4, help="client -J and servers' -J")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--setups", default=",".join(SETUPS),
                    help="comma-separated subset of: " + ", ".join(SETUPS))  # fmt: skip
    ap.add_argument("--rows", default="many,big", help="many, big or both (comma-separated)")
    ap.add_argument("--profile", type=Path, help="run our servers under py-spy, stacks here")
    ap.add_argument("--node-dirs", help="three comma-separated directories (say, three file "
                    "systems): node i's repository in the i-th (one node's in the first)")  # fmt: skip
    args = ap.parse_args()
    if args.node_dirs:
        NODE_ROOTS[:] = [Path(d).resolve() for d in args.node_dirs.split(",")]
        if len(NODE_ROOTS) != len(NODES):
            ap.error(f"--node-dirs needs {len(NODES)} directories")
    setups = [s.strip() for s in args.setups.split(",") if s.strip()]
    if unknown := set(setups) - set(SETUPS):
        ap.error(f"unknown setups: {', '.join(sorted(unknown))}")
    tmp = Path(tempfile.mkdtemp(dir=args.workdir, prefix="cluster-bench-"))
    environment(tmp)
    many, big = (20, 64 << 20) if args.quick else (100, 1 << 30)
    rows = [(f"copy {many} x 1 MiB", many, 1 << 20), (f"copy 1 x {big >> 20} MiB", 1, big)]
    rows = [r for r, name in zip(rows, ("many", "big"), strict=True) if name in args.rows]
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    print(f"cluster bench: git-annex client -J{args.jobs}, servers -J{args.jobs}, "
          f"{args.runs} run(s) per setup, in {tmp}", flush=True)  # fmt: skip
    ok = True
    try:
        for label, count, size in rows:
            client = Client(tmp / f"client-{count}", count)
            init_repo(client.path)
            sh(["git", "config", "annex.security.allowed-ip-addresses", "127.0.0.1"], client.path)
            make_files(client.path / "data", count, size)
            sh(["git", "annex", "add", "-q", "data"], client.path)
            sh(["git", "commit", "-q", "-m", "data"], client.path)
            times: dict[str, list[Took]] = {s: [] for s in setups}
            for r in range(args.runs):
                turn = r % len(setups)
                for s in setups[turn:] + setups[:turn]:
                    name = f"{s.replace(' ', '-')}-{count}-{r}"
                    profile = args.profile / f"{name}.txt" if args.profile else None
                    took = run_one(s, tmp / name, client, client.path / "data", args.jobs, profile)
                    times[s].append(took)
                    print(f"  {label}: {s} run {r + 1}: {took.wall:.2f} s, cpu {took.cpu:.2f} s, "
                          f"client cpu {took.client:.2f} s",
                          flush=True)  # fmt: skip
            ok &= report(label, count, size, {s: median(v) for s, v in times.items()})
            remove(client.path)
    finally:
        if not args.keep:
            remove(tmp)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
