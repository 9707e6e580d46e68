#!/usr/bin/env python3
"""annexsync vs git-annex over the P2P protocol: GET and PUT through (fake) ssh.

    python bench/p2p.py [--quick] [--rows NAME[,NAME...]] [--pairs N[,N...]] [--runs N]

Four client/server set-ups are measured side by side in one run, taking turns
run by run, on the same random data:

    as>as     annexsync client   -> ``annexsync p2pstdio``       (annex-shell=annexsync)
    ga>shell  git-annex client   -> ``git-annex-shell p2pstdio`` (the baseline)
    as>shell  annexsync client   -> ``git-annex-shell p2pstdio``
    ga>as     git-annex client   -> ``annexsync p2pstdio``

and reported as the issue's three pairings, each against ga>shell:

    1. as>as    (ours at both ends)  goal: at least 2x git-annex
    2. as>shell (our client only)    goal: at least 2x git-annex
    3. ga>as    (our server only)    goal: not slower than git-annex-shell

Method (see bench/README.md, "P2P over ssh"):

* ssh is a fake: ``GIT_SSH_COMMAND`` (with ``GIT_ANNEX_USE_GIT_SSH=1``) names a
  script that answers git's ``-G`` probe, drops the options and the host and
  runs the remote command locally (spec 4.1, 12.2).  ``p2pstdio`` commands run
  under a tiny meter that records the server's peak RSS
  (``getrusage(RUSAGE_CHILDREN)``) without touching the protocol stream.
* GET: the server is a git-annex repository holding the data (built once by
  git-annex, not timed).  Per run: ``git clone`` it, the client tool's own
  ``init``, point ``origin`` at ``ssh://localhost/<server>`` with
  ``annex-shell`` and ``annex-uuid`` set (not timed), then time ``get .``.
* PUT: per run a fresh empty server (``git init`` + ``git annex init``) and a
  fresh client (a clone of the GET server whose annex objects are hard-linked
  in, then the client tool's ``init``; not timed); time ``copy --to origin .``.
* Timing, medians and peak RSS come from the add/get harness
  (``measure.Runner`` through ``rss.py``); tables from ``report.py``.
* After every run the content is verified where it should have arrived
  (every file, its size and its SHA-256 against the key), so no tool wins by
  doing less.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from measure import Runner, Sample, ToolError, ToolResult, make_env, write_gitconfig
from report import (
    BASELINE,
    FLAT_SLACK_MIB,
    SUBJECT,
    Dataset,
    Row,
    RowResult,
    row_block,
    summary,
    write_json,
)
from run import GIT_ANNEX, SIZES, Bench, add_common_options, log, remove, version

OBJECTS = ".git/annex/objects/"
HASH_CHUNK = 1 << 20
SERVER_WAIT = 120.0  # seconds to wait for servers still running when the client exits

# git-annex's own figures measured earlier on this machine (local ``get``, -J1).
EARLIER = {"many": ("1,000 × 1 MiB", 37.0, "files/s"), "large": ("1 GiB", 174.0, "MB/s")}

FAKE_SSH = """#!/bin/sh
# Fake ssh for the P2P bench: answer git's variant probe, drop options and the
# host, run the remote command here.  p2pstdio servers run under the RSS meter.
if [ "$1" = "-G" ]; then exit 0; fi
while [ $# -gt 1 ]; do
  case "$1" in
    -o|-p|-S|-F|-i|-l|-O|-b|-c|-D|-E|-e|-I|-J|-L|-m|-Q|-R|-W|-w) shift 2;;
    -*) shift;;
    *) shift; break;;
  esac
done
echo "$*" >> "{ssh_log}"
case "$*" in
  *p2pstdio*) exec "{python}" -I -S "{meter}" "{rss_log}" "$*";;
esac
exec sh -c "$*"
"""

METER = """\
# Run one server command with our stdin/stdout, then append its peak RSS (KiB)
# and the time it ended.  In a session of its own: the wrapper (rss.py) kills
# the client's session when the client exits, and git-annex does not wait for
# its ssh; the wrapper still reaps us (it is a subreaper), so we finish.
import os, resource, sys, time
try:
    os.setsid()
except OSError:
    pass
pid = os.fork()
if pid == 0:
    os.execvp("sh", ["sh", "-c", sys.argv[2]])
os.close(0)
os.close(1)
_, status = os.waitpid(pid, 0)
with open(sys.argv[1], "a") as f:
    f.write("%d %.3f\\n" % (resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.time()))
sys.exit(os.waitstatus_to_exitcode(status))
"""


@dataclass(frozen=True)
class Setup:
    """One client tool talking to one server program."""

    name: str  # client>server, as shown in the tables
    client: str  # "annexsync" or "git-annex"
    shell: str  # remote.origin.annex-shell
    about: str
    jobs: int | None = None  # the client's -J on many-file rows; None: the tool's --jobs/--ga-jobs

    @property
    def init(self) -> list[str]:
        return ["annexsync", "init"] if self.client == "annexsync" else ["git", "annex", "init", "-q"]

    def command(self, op: str, jobs: int | None = None) -> list[str]:
        base = ["annexsync"] if self.client == "annexsync" else ["git", "annex"]
        return (base + (["get", "."] if op == "get" else ["copy", "--to", "origin", "."])
                + ([f"-J{jobs}"] if jobs else []))


AS_AS = Setup("as>as", "annexsync", "annexsync", "annexsync client, annexsync p2pstdio server")
GA_SH = Setup("ga>shell", "git-annex", "git-annex-shell", "git-annex client, git-annex-shell")
AS_SH = Setup("as>shell", "annexsync", "git-annex-shell", "annexsync client, git-annex-shell")
GA_AS = Setup("ga>as", "git-annex", "annexsync", "git-annex client, annexsync p2pstdio server")


@dataclass(frozen=True)
class Pairing:
    number: int
    subject: Setup
    baseline: Setup
    goal: float
    about: str


PAIRINGS = (
    Pairing(1, AS_AS, GA_SH, 2.0, "annexsync client + server vs git-annex + git-annex-shell"),
    Pairing(2, AS_SH, GA_SH, 2.0, "annexsync client vs git-annex client, both to git-annex-shell"),
    Pairing(3, GA_AS, GA_SH, 1.0, "git-annex client to annexsync p2pstdio vs to git-annex-shell"),
)

# Rows: an operation on a dataset; the goal comes from the pairing.
ROWS = (
    Row("get-large", "get", "large", None, about="get one big file over P2P"),
    Row("get-many", "get", "many", None, about="get many 1 MiB files over P2P"),
    Row("put-large", "put", "large", None, about="copy --to one big file over P2P"),
    Row("put-many", "put", "many", None, about="copy --to many 1 MiB files over P2P"),
)


class FakeSsh:
    """The fake ssh script, its command log and the servers' RSS log."""

    def __init__(self, root: Path) -> None:
        d = root / "fakessh"
        d.mkdir()
        self.ssh_log, self.rss_log = d / "ssh.log", d / "server-rss.log"
        meter = d / "meter.py"
        meter.write_text(METER)
        self.script = d / "ssh"
        self.script.write_text(
            FAKE_SSH.replace("{ssh_log}", str(self.ssh_log)).replace("{python}", sys.executable)
            .replace("{meter}", str(meter)).replace("{rss_log}", str(self.rss_log)))
        self.script.chmod(0o755)
        self.reset()

    def env(self) -> dict[str, str]:
        return {"GIT_SSH_COMMAND": str(self.script), "GIT_ANNEX_USE_GIT_SSH": "1"}

    def reset(self) -> None:
        self.ssh_log.write_text("")
        self.rss_log.write_text("")

    def sessions(self, client_end: float, wait: float = SERVER_WAIT) -> Sessions:
        """What the p2pstdio servers of the last run did; waits for them to end."""
        deadline = time.monotonic() + wait
        while True:
            started = sum("p2pstdio" in line for line in self.ssh_log.read_text().splitlines())
            ended = [line.split() for line in self.rss_log.read_text().splitlines()]
            if len(ended) >= started or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        peak = max((int(kib) for kib, _ in ended), default=0) / 1024
        lag = max((float(t) - client_end for _, t in ended), default=0.0)
        return Sessions(started, len(ended), peak, max(lag, 0.0))


@dataclass(frozen=True)
class Sessions:
    started: int  # p2pstdio sessions the client opened
    ended: int  # ... that ended within SERVER_WAIT of the client
    peak_mib: float  # largest server peak RSS
    lag: float  # seconds the last server ran on after the client exited


@dataclass
class SetupResult:
    """A ToolResult plus what the server side did in each run."""

    tool: ToolResult
    server_peaks: list[float] = field(default_factory=list)
    sessions: set[int] = field(default_factory=set)
    lags: list[float] = field(default_factory=list)
    unfinished: int = 0  # servers still running SERVER_WAIT after the client exited
    jobs: int | None = None  # the client's -J

    def add(self, sample: Sample, s: Sessions) -> None:
        self.tool.samples.append(sample)
        self.server_peaks.append(s.peak_mib)
        self.sessions.add(s.started)
        self.lags.append(s.lag)
        self.unfinished += s.started - s.ended

    def finish_note(self) -> None:
        if not self.server_peaks:
            return
        cpu = sorted(s.cpu_seconds for s in self.tool.samples)
        parts = [f"-J{self.jobs or 1}", f"cpu (tree) median {cpu[len(cpu) // 2]:.2f} s",
                 f"server {max(self.server_peaks):.1f} MiB",
                 "sessions " + "/".join(str(n) for n in sorted(self.sessions))]
        if max(self.lags) >= 0.1:
            parts.append(f"server ran on {max(self.lags):.2f} s after the client")
        if self.unfinished:
            parts.append(f"{self.unfinished} server(s) never ended")
        self.tool.note = "; ".join(filter(None, [self.tool.note, ", ".join(parts)]))


# --- repositories and checks ----------------------------------------------------


def git_out(runner: Runner, args: list[str], cwd: Path) -> str:
    p = subprocess.run(["git", *args], cwd=cwd, env=runner.env, capture_output=True, text=True)
    if p.returncode != 0:
        raise ToolError(f"`git {' '.join(args)}` in {cwd} exited {p.returncode}\n{p.stderr}")
    return p.stdout.strip()


def point_origin(runner: Runner, repo: Path, setup: Setup, server: Path, uuid: str) -> None:
    """Make ``origin`` the ssh remote reaching ``server`` through ``setup.shell``."""
    for item, value in (("url", f"ssh://localhost{server}"), ("annex-shell", setup.shell),
                        ("annex-uuid", uuid)):
        runner.setup(["git", "config", f"remote.origin.{item}", value], repo)


def remove_shared(path: Path) -> None:
    """Delete a repository whose annex objects are hard links into another one.

    Only directories are made writable: ``chmod -R`` (``run.remove``) would
    change the shared files' modes in the other repository too.
    """
    if path.exists():
        for dirpath, _, _ in os.walk(path):
            os.chmod(dirpath, 0o755)
        shutil.rmtree(path, ignore_errors=True)


def annexed_objects(top: Path) -> list[str]:
    """The object paths (relative to .git/annex/objects) of the annexed files under ``top``."""
    found = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            p = Path(dirpath, name)
            if p.is_symlink() and OBJECTS in (target := os.readlink(p)):
                found.append(target.split(OBJECTS, 1)[1])
    return found


def verify(objects: Path, rels: list[str], ds: Dataset) -> None:
    """Every object is in ``objects``, of the right size, and hashes to its key."""
    if len(rels) != ds.count:
        raise ToolError(f"check failed: {len(rels)} of {ds.count} files are annexed")
    for rel in rels:
        path, key = objects / rel, rel.rsplit("/", 1)[-1]
        try:
            size = path.stat().st_size
        except OSError:
            raise ToolError(f"check failed: {path} is missing") from None
        if size != ds.size:
            raise ToolError(f"check failed: {path} has {size} bytes, not {ds.size}")
        backend, _, rest = key.partition("-")
        if backend.startswith("SHA256"):
            want = rest.split("--", 1)[1].split(".", 1)[0]
            h = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(HASH_CHUNK):
                    h.update(chunk)
            if h.hexdigest() != want:
                raise ToolError(f"check failed: {path} does not hash to its key")


@dataclass
class P2PBench:
    bench: Bench  # the add/get harness: data, git-annex's source repository, runner
    fake: FakeSsh
    jobs: dict[str, int | None] = field(default_factory=dict)  # client tool -> -J on many-file rows

    def jobs_for(self, setup: Setup, ds: Dataset) -> int | None:
        """The -J this set-up's client gets on ``ds``: none for a single file."""
        if ds.count == 1:
            return None
        jobs = setup.jobs if setup.jobs is not None else self.jobs.get(setup.client)
        return jobs if jobs and jobs > 1 else None

    @property
    def runner(self) -> Runner:
        return self.bench.runner

    def server_for(self, ds: Dataset) -> tuple[Path, str]:
        """The GET server (git-annex's repository holding ``ds``) and its UUID."""
        src = self.bench.source(GIT_ANNEX, ds)
        return src, git_out(self.runner, ["config", "annex.uuid"], src)

    def clone(self, setup: Setup, ds: Dataset, label: str, with_content: bool) -> Path:
        src, _ = self.server_for(ds)
        path = self.bench.root / "repos" / label
        remove_shared(path)
        self.runner.setup(["git", "clone", "-q", str(src), str(path)], self.bench.root)
        if with_content:
            (path / ".git/annex").mkdir()
            self.runner.setup(["cp", "-al", str(src / ".git/annex/objects"),
                               str(path / ".git/annex/objects")], path)
        self.runner.setup(setup.init, path)
        return path

    def one_run(self, row: Row, setup: Setup, i: int) -> tuple[Sample, Sessions]:
        ds = self.bench.datasets[row.dataset]
        label = f"p2p-{row.name}-{setup.name.replace('>', '-')}-{i + 1}"
        server: Path | None = None
        client: Path | None = None
        try:
            if row.op == "get":
                server, uuid = self.server_for(ds)
                client = self.clone(setup, ds, label, with_content=False)
            else:
                server = self.bench.fresh(f"{label}-server")
                self.runner.setup(["git", "init", "-q"], server)
                self.runner.setup(["git", "annex", "init", "-q", "bench server"], server)
                uuid = git_out(self.runner, ["config", "annex.uuid"], server)
                client = self.clone(setup, ds, label, with_content=True)
            point_origin(self.runner, client, setup, server, uuid)
            os.sync()
            self.fake.reset()
            started = time.time()
            sample = self.runner.measure(setup.command(row.op, self.jobs_for(setup, ds)), client, label)
            # The wrapper's own start-up (~30 ms) makes the client's end look earlier.
            sessions = self.fake.sessions(started + sample.seconds)
            rels = annexed_objects(client)
            verify((client if row.op == "get" else server) / OBJECTS, rels, ds)
            return sample, sessions
        finally:
            if client is not None:
                remove_shared(client)
            if row.op == "put" and server is not None:
                remove(server)

    def run_row(self, row: Row, setups: list[Setup]) -> dict[str, SetupResult]:
        results = {s.name: SetupResult(ToolResult(s.name)) for s in setups}
        for i in range(self.bench.runs):
            for setup in setups:
                res = results[setup.name]
                if res.tool.error:
                    continue
                try:
                    sample, sess = self.one_run(row, setup, i)
                except ToolError as e:
                    res.tool.error = str(e)
                    log(f"[{row.name}] {setup.name} failed:\n{e}")
                    continue
                res.add(sample, sess)
                jobs = self.jobs_for(setup, self.bench.datasets[row.dataset])
                log(f"[{row.name}] run {i + 1}/{self.bench.runs} {setup.name} -J{jobs or 1}: "
                    f"{sample.seconds:.2f} s, cpu {sample.cpu_seconds:.2f} s, "
                    f"peak {sample.maxrss_mib:.1f} MiB, "
                    f"server {sess.peak_mib:.1f} MiB, {sess.started} session(s), "
                    f"server lag {sess.lag:.2f} s")
        for setup in setups:
            results[setup.name].jobs = self.jobs_for(setup, self.bench.datasets[row.dataset])
            results[setup.name].finish_note()
        return results


# --- reporting ------------------------------------------------------------------


def pairing_results(p: Pairing, rows: list[Row], datasets: dict[str, Dataset],
                    measured: dict[str, dict[str, SetupResult]]) -> list[RowResult]:
    out = []
    for row in rows:
        got = measured[row.name]
        out.append(RowResult(replace(row, goal=p.goal), datasets[row.dataset],
                             {SUBJECT: got[p.subject.name].tool, BASELINE: got[p.baseline.name].tool}))
    return out


def flat_line(setup: Setup, op: str, big: SetupResult | None, small: SetupResult | None,
              server: bool, labels: tuple[str, str]) -> tuple[str, bool | None]:
    """Peak RSS of the 1 GiB row against the 1 MiB-file row for one side of one set-up."""
    side = "server" if server else "largest process (client side)"
    head = f"  {op} {setup.name:<8} {side:<30}"
    if not (big and small and big.tool.ok and small.tool.ok):
        return f"{head} n/a (a row failed or was not run)", None
    a = max(big.server_peaks) if server else big.tool.maxrss_mib
    b = max(small.server_peaks) if server else small.tool.maxrss_mib
    ok = a - b <= FLAT_SLACK_MIB
    return (f"{head} {labels[0]}: {a:6.1f} MiB  vs {labels[1]}: {b:6.1f} MiB -> {a - b:+6.1f} MiB"
            f"  {'PASS' if ok else 'FAIL'}"), ok


def flatness_report(measured: dict[str, dict[str, SetupResult]], setups: list[Setup],
                    datasets: dict[str, Dataset]) -> tuple[list[str], bool]:
    labels = (datasets["large"].label, datasets["many"].label)
    lines = [f"memory flatness (annexsync's peak RSS must not grow with file size; "
             f"allowed +{FLAT_SLACK_MIB:g} MiB; git-annex for reference):"]
    passed = True
    for op in ("get", "put"):
        big, small = measured.get(f"{op}-large"), measured.get(f"{op}-many")
        if big is None or small is None:
            lines.append(f"  {op}: needs rows {op}-large and {op}-many")
            continue
        for setup in setups:
            sides = []
            if setup.client == "annexsync" or setup is GA_SH:
                sides.append(False)
            if setup.shell == "annexsync" or setup is GA_SH:
                sides.append(True)
            for server in sides:
                line, ok = flat_line(setup, op, big.get(setup.name), small.get(setup.name),
                                     server, labels)
                if setup is GA_SH:
                    line = line.replace("  PASS", "  (ref)").replace("  FAIL", "  (ref)")
                elif ok is not True:
                    passed = False
                lines.append(line)
    return lines, passed


def earlier_report(measured: dict[str, dict[str, SetupResult]], datasets: dict[str, Dataset],
                   quick: bool) -> list[str]:
    lines = ["against git-annex's figures measured earlier on this machine (local get, -J1):"]
    if quick:
        lines.append("  (not comparable with --quick sizes)")
    for dsname in ("many", "large"):
        label, figure, unit = EARLIER[dsname]
        got = measured.get(f"get-{dsname}", {})
        ds = datasets[dsname]
        parts = []
        for name, res in got.items():
            if res.tool.ok:
                r = ds.count / res.tool.seconds if ds.count > 1 else ds.total / res.tool.seconds / 1e6
                parts.append(f"{name} {r:.1f} ({r / figure:.2f}×)")
        lines.append(f"  get {label}: earlier {figure:g} {unit}; over P2P here: "
                     + (", ".join(parts) or "not run"))
    return lines


# --- main -----------------------------------------------------------------------


def csv(values: list[str] | None) -> list[str]:
    return [v.strip() for arg in values or [] for v in arg.split(",") if v.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="annexsync vs git-annex over P2P (bench/README.md)")
    p.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    p.add_argument("--rows", action="append", metavar="NAME[,NAME]",
                   help=f"only these rows: {', '.join(r.name for r in ROWS)}")
    p.add_argument("--pairs", action="append", metavar="N[,N]",
                   help="only these pairings (1, 2, 3); the baseline is always measured")
    p.add_argument("--runs", type=int, default=3, help="runs per set-up and row (median taken)")
    p.add_argument("--jobs", type=int, default=4, metavar="N",
                   help="-J of the annexsync client on the many-file rows (default 4; 1 = "
                        "no -J); the 1-file rows never get -J")
    p.add_argument("--ga-jobs", type=int, default=1, metavar="N",
                   help="-J of the git-annex client on the many-file rows (default 1, "
                        "git-annex's own default)")
    p.add_argument("--compare-jobs", type=int, action="append", default=[], metavar="N",
                   help="also measure our client to git-annex-shell at -JN, taking turns with "
                        "the others (a reference pairing 0 per value; e.g. 1 for before -J)")
    add_common_options(p)
    return p.parse_args(argv)


def select(args: argparse.Namespace) -> tuple[list[Row], list[Pairing], list[Setup]]:
    known = {r.name: r for r in ROWS}
    wanted = csv(args.rows) or list(known)
    if unknown := [n for n in wanted if n not in known]:
        raise SystemExit(f"unknown rows: {', '.join(unknown)}; known: {', '.join(known)}")
    nums = csv(args.pairs) or [str(p.number) for p in PAIRINGS]
    pairings = [p for p in PAIRINGS if str(p.number) in nums]
    if len(pairings) != len(set(nums)):
        raise SystemExit("pairings are 1, 2 and 3")
    setups = [s for s in (AS_AS, GA_SH, AS_SH, GA_AS)
              if s is GA_SH or any(p.subject is s for p in pairings)]
    return [r for r in ROWS if r.name in wanted], pairings, setups


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_p2p(args: argparse.Namespace, root: Path) -> tuple[list[tuple[Pairing, list[RowResult]]], bool]:
    rows, pairings, setups = select(args)
    for n in args.compare_jobs:
        ref = replace(AS_SH, name=f"as>shell-J{n}", jobs=n,
                      about=f"annexsync client at -J{n}, git-annex-shell")
        setups.append(ref)
        pairings.append(Pairing(0, ref, GA_SH, 2.0, f"reference: our client at -J{n} vs git-annex"))
    home = root / "home"
    write_gitconfig(home)
    with open(home / ".gitconfig", "a") as f:
        f.write("[annex]\n\tsshcaching = false\n")
    (root / "logs").mkdir()
    fake = FakeSsh(root)
    env = {**make_env(home, args.bin.resolve()), **fake.env()}
    runner = Runner(env, root / "logs", args.timeout)
    sizes = SIZES["quick" if args.quick else "default"]
    datasets = {name: Dataset(name, *sizes[name]) for name in ("large", "many")}
    print("\n".join([
        f"annexsync vs git-annex over P2P (fake ssh): median of {args.runs} runs, warm cache, "
        f"sizes: {'quick (goals are for the default sizes)' if args.quick else 'default'}",
        f"  git-annex: {version(runner, ['git', 'annex', 'version', '--raw'])}; "
        f"{version(runner, ['git', '--version'])}; python {sys.version.split()[0]}; "
        f"{os.cpu_count()} cpus; load average at start {loadavg()}",
        f"  rows: {', '.join(r.name for r in rows)}; scratch: {root}",
        "  set-ups (client>server): " + "; ".join(f"{s.name} = {s.about}" for s in setups),
        "  peak = largest process RSS of the whole tree, client and server (getrusage); "
        "tree = sampled sum; server = p2pstdio server's peak",
        f"  -J on the many-file rows: annexsync client -J{args.jobs}, git-annex client "
        f"-J{args.ga_jobs}; the 1-file rows run without -J",
    ]), flush=True)
    bench = Bench(runner, root, datasets, args.runs)
    bench.warm_up()
    p2p = P2PBench(bench, fake, {"annexsync": args.jobs if args.jobs > 1 else None,
                                 "git-annex": args.ga_jobs if args.ga_jobs > 1 else None})
    measured: dict[str, dict[str, SetupResult]] = {}
    for row in rows:
        log(f"== {row.name}: {row.about} ({datasets[row.dataset].label}); load {loadavg()}")
        measured[row.name] = p2p.run_row(row, setups)
    results = []
    for p in pairings:
        rr = pairing_results(p, rows, datasets, measured)
        results.append((p, rr))
        print(f"\n=== pairing {p.number}: {p.about}\n    "
              f"annexsync column = {p.subject.name}, git-annex column = {p.baseline.name}; "
              f"goal: {p.subject.name} ≥{p.goal:g}× as fast")
        for r in rr:
            print(row_block(r))
    print()
    for p, rr in results:
        print(f"pairing {p.number} ({p.subject.name} vs {p.baseline.name}):")
        print(summary(rr))
    flat, flat_ok = flatness_report(measured, setups, datasets)
    print("\n" + "\n".join(flat))
    print("\n" + "\n".join(earlier_report(measured, datasets, args.quick)))
    return results, flat_ok


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    parent = args.workdir or Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="annexsync-p2p-bench-", dir=parent))
    started = time.monotonic()
    try:
        results, flat_ok = run_p2p(args, root)
    finally:
        if args.keep:
            log(f"kept {root}")
        else:
            remove(root)
    print(f"total bench time {time.monotonic() - started:.0f} s; load average at end {loadavg()}")
    every = [r for _, rr in results for r in rr]
    if args.json:
        named = [replace(r, row=replace(r.row, name=f"p{p.number}-{r.row.name}"))
                 for p, rr in results for r in rr]
        meta = {"bench": "p2p", "quick": args.quick, "runs": args.runs, "cpus": os.cpu_count(),
                "pairings": {f"p{p.number}": {"subject": p.subject.name,
                                              "baseline": p.baseline.name, "goal": p.goal}
                             for p, _ in results},
                "loadavg_end": os.getloadavg()}
        write_json(args.json, named, meta)
    failed = not flat_ok or any(r.verdict() in ("FAIL", "ERROR") for r in every)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
