#!/usr/bin/env python3
"""annexsync vs git-annex: the foundation issue's speed and memory benchmark.

    python bench/run.py [--quick] [--full] [--rows NAME[,NAME...]] [--workdir DIR]

Method
------
* Both tools run on the same random, incompressible data in the same run,
  taking turns run by run (annexsync, git-annex, annexsync, ...), so drift on
  the machine hits both alike.  The data is generated once per run of this
  script; every measured run gets its own fresh repository.
* ``add`` rows: a fresh directory is initialised (``annexsync init``, or
  ``git init && git annex init``), the data is copied in, dirty pages are
  flushed (``sync``) and only ``annexsync add .`` / ``git annex add .`` is timed.
  The copy leaves the data in the page cache: the cache is warm.
* ``get`` rows: each tool first makes a source repository of its own (init,
  add, ``git commit``; not timed), then per run ``git clone SRC DST`` (not
  timed) and only ``annexsync get .`` / ``git annex get .`` in the clone is
  timed.  Both auto-initialise the clone inside the timed command.
* Every timed command runs in a fresh wrapper process (``rss.py``) that reports
  wall time, the peak RSS of the largest process of the tree
  (``getrusage(RUSAGE_CHILDREN).ru_maxrss``) and the sampled peak of the summed
  RSS of the whole tree (``/proc`` polling).  Reported: median time of the runs,
  the largest peak RSS of the runs.
* After each timed command the result is checked (every file annexed, or every
  file's content present) so a tool cannot win by doing less.
* Both tools get a throwaway HOME whose ``.gitconfig`` has a git identity and
  ``annex.alwayscommit=true``; the system git config is ignored.
* A tool that fails on a row is reported with its output; the other rows go on.

Speed goals live here only (never in tests): see ``ROWS``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from measure import Runner, Sample, ToolError, ToolResult, make_env, write_gitconfig
from report import (
    GIB,
    KIB,
    MIB,
    Dataset,
    Row,
    RowResult,
    flatness,
    row_block,
    summary,
    write_json,
)

REPO = Path(__file__).resolve().parent.parent
CHUNK = 16 * MIB
FILES_PER_DIR = 1000

SIZES: dict[str, dict[str, tuple[int, int]]] = {
    "default": {"large": (1, GIB), "many": (1000, MIB), "tiny": (10_000, KIB), "one": (1, MIB)},
    "quick": {"large": (1, 64 * MIB), "many": (100, MIB), "tiny": (1000, KIB), "one": (1, MIB)},
}

ROWS = (
    Row("add-large", "add", "large", 4.0, about="add one big file"),
    Row("add-many", "add", "many", 5.0, about="add many 1 MiB files"),
    Row("add-tiny", "add", "tiny", 10.0, full_only=True, about="add many 1 KiB files"),
    Row("get-large", "get", "large", 3.0, about="get the big file into a clone"),
    Row("get-many", "get", "many", 3.0, about="get many 1 MiB files into a clone"),
    Row("get-tiny", "get", "tiny", 3.0, full_only=True, about="get many 1 KiB files into a clone"),
    Row("flat", "add", "one", None, about="add one 1 MiB file: memory baseline"),
)


@dataclass(frozen=True)
class Tool:
    name: str
    init: tuple[tuple[str, ...], ...]
    add: tuple[str, ...]
    get: tuple[str, ...]


TOOLS = (
    Tool("annexsync", (("annexsync", "init"),), ("annexsync", "add", "."),
         ("annexsync", "get", ".")),
    Tool("git-annex", (("git", "init", "-q"), ("git", "annex", "init", "-q")),
         ("git", "annex", "add", "."), ("git", "annex", "get", ".")),
)
GIT_ANNEX = TOOLS[1]
FLOOR = "floor"

# The least a verified local get of one file can cost: read it, hash it and
# write it durably, overlapped (cat | tee to sha256sum | dd conv=fdatasync).
FLOOR_SCRIPT = """set -e
mkfifo "$3"
sha256sum "$3" > /dev/null &
cat "$1" | tee "$3" | dd of="$2" bs=1M conv=fdatasync status=none
wait $!
rm -f "$2" "$3"
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def generate(ds: Dataset, root: Path) -> None:
    """Write ``ds`` under ``root`` from os.urandom: incompressible, undeduplicable."""
    for i in range(ds.count):
        sub = root / f"d{i // FILES_PER_DIR:03d}" if ds.count > FILES_PER_DIR else root
        sub.mkdir(parents=True, exist_ok=True)
        with open(sub / f"f{i:05d}.bin", "wb") as f:
            left = ds.size
            while left:
                n = min(left, CHUNK)
                f.write(os.urandom(n))
                left -= n


def remove(path: Path) -> None:
    """Delete a repository, including git-annex's write-protected object directories."""
    if path.exists():
        subprocess.run(["chmod", "-R", "u+w", str(path)], check=False)
        shutil.rmtree(path, ignore_errors=True)


def count_links(top: Path, present: bool) -> int:
    """Annexed files (symlinks into the annex) under ``top``; with ``present``, only
    those whose content is there."""
    n = 0
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            p = Path(dirpath, name)
            if p.is_symlink() and ".git/annex/objects/" in os.readlink(p):
                n += (not present) or p.exists()
    return n


def hardlinked(top: Path) -> int:
    """Annexed files under ``top`` whose content shares its inode with another file."""
    n = 0
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            p = Path(dirpath, name)
            n += p.is_symlink() and p.exists() and p.stat().st_nlink > 1
    return n


@dataclass
class Bench:
    runner: Runner
    root: Path
    datasets: dict[str, Dataset]
    runs: int
    tools: tuple[Tool, ...] = TOOLS
    _data: dict[str, Path] = field(default_factory=dict)
    _sources: dict[tuple[str, str], Path | ToolError] = field(default_factory=dict)

    def data(self, ds: Dataset) -> Path:
        if ds.name not in self._data:
            path = self.root / "data" / ds.name
            log(f"generating {ds.label} of random data ...")
            generate(ds, path)
            self._data[ds.name] = path
        return self._data[ds.name]

    def fresh(self, label: str) -> Path:
        path = self.root / "repos" / label
        remove(path)
        path.mkdir(parents=True)
        return path

    def init_with_data(self, tool: Tool, ds: Dataset, label: str) -> Path:
        path = self.fresh(label)
        for cmd in tool.init:
            self.runner.setup(list(cmd), path)
        self.runner.setup(["cp", "-a", "--reflink=auto", f"{self.data(ds)}/.", "."], path)
        os.sync()
        return path

    def check(self, path: Path, ds: Dataset, present: bool) -> None:
        n = count_links(path, present)
        if n != ds.count:
            what = "have their content" if present else "are annexed"
            raise ToolError(f"check failed in {path}: {n} of {ds.count} files {what}")

    def build_source(self, tool: Tool, ds: Dataset) -> Path:
        path = self.init_with_data(tool, ds, f"src-{tool.name}-{ds.name}")
        self.runner.setup(list(tool.add), path)
        self.check(path, ds, present=True)
        self.runner.setup(["git", "commit", "-q", "-m", "bench data"], path)
        return path

    def source(self, tool: Tool, ds: Dataset) -> Path:
        """The tool's own source repository for ``ds`` (built once); ToolError if it cannot."""
        key = (tool.name, ds.name)
        if key not in self._sources:
            log(f"making {tool.name}'s source repository of {ds.label} ...")
            try:
                self._sources[key] = self.build_source(tool, ds)
            except ToolError as e:
                self._sources[key] = e
        found = self._sources[key]
        if isinstance(found, ToolError):
            raise found
        return found

    def source_for_get(self, tool: Tool, ds: Dataset) -> tuple[Path, str]:
        """The tool's own source, or git-annex's when the tool cannot make one."""
        try:
            return self.source(tool, ds), ""
        except ToolError as own:
            if tool is GIT_ANNEX:
                raise
            log(f"{tool.name} could not make its source, using git-annex's:\n{own}")
            return self.source(GIT_ANNEX, ds), f"source made by git-annex; own add failed: {own}"

    @contextmanager
    def repo_for(self, row: Row, tool: Tool, ds: Dataset, label: str) -> Iterator[tuple[Path, str]]:
        note = ""
        if row.op == "add":
            path = self.init_with_data(tool, ds, label)
        else:
            src, note = self.source_for_get(tool, ds)
            path = self.root / "repos" / label
            remove(path)
            self.runner.setup(["git", "clone", "-q", str(src), str(path)], self.root)
            os.sync()
        try:
            yield path, note
        finally:
            remove(path)

    def one_run(self, row: Row, tool: Tool, i: int) -> tuple[Sample, str]:
        ds = self.datasets[row.dataset]
        label = f"{row.name}-{tool.name}-{i + 1}"
        with self.repo_for(row, tool, ds, label) as (path, note):
            cmd = list(tool.add if row.op == "add" else tool.get)
            sample = self.runner.measure(cmd, path, label)
            self.check(path, ds, present=True)
            if row.op == "get" and (links := hardlinked(path)):
                note = "; ".join(filter(None, [note, f"{links} files hard-linked, not copied"]))
        return sample, note

    def floor_run(self, ds: Dataset, i: int) -> Sample:
        """Time FLOOR_SCRIPT on the git-annex source's object of ``ds`` (one file)."""
        objects = self.source(GIT_ANNEX, ds) / ".git" / "annex" / "objects"
        (obj,) = [p for p in objects.rglob("*") if p.is_file() and not p.name.endswith(".lck")]
        out = self.root / "floor"
        out.mkdir(exist_ok=True)
        cmd = ["bash", "-c", FLOOR_SCRIPT, "floor", str(obj), str(out / "copy"), str(out / "fifo")]
        return self.runner.measure(cmd, out, f"floor-{ds.name}-{i + 1}")

    def run_row(self, row: Row) -> RowResult:
        ds = self.datasets[row.dataset]
        results = {t.name: ToolResult(t.name) for t in self.tools}
        if row.op == "get" and ds.count == 1:
            results[FLOOR] = ToolResult(FLOOR, note="cat | tee >sha256sum | dd conv=fdatasync")
        for i in range(self.runs):
            if FLOOR in results and not results[FLOOR].error:
                try:
                    results[FLOOR].samples.append(self.floor_run(ds, i))
                except (ToolError, ValueError) as e:
                    results[FLOOR].error = str(e)
            for tool in self.tools:
                res = results[tool.name]
                if res.error:
                    continue
                try:
                    sample, res.note = self.one_run(row, tool, i)
                except ToolError as e:
                    res.error = str(e)
                    log(f"[{row.name}] {tool.name} failed:\n{e}")
                    continue
                res.samples.append(sample)
                log(f"[{row.name}] run {i + 1}/{self.runs} {tool.name}: {sample.seconds:.2f} s, "
                    f"peak {sample.maxrss_mib:.1f} MiB, tree {sample.tree_mib:.1f} MiB")
        return RowResult(row, ds, results)

    def warm_up(self) -> None:
        """Load both tools' executables into the page cache and compile annexsync's
        bytecode, as an install does (not measured; see ``measure.make_env``)."""
        for cmd in (["git", "annex", "version"], ["annexsync", "--help"],
                    ["python", "-m", "compileall", "-q", str(REPO / "core")]):
            try:
                self.runner.setup(cmd, self.root)
            except ToolError as e:
                log(f"warm-up: {e}")


def select_rows(names: list[str] | None, full: bool) -> list[Row]:
    if not names:
        return [r for r in ROWS if full or not r.full_only]
    wanted = [n.strip() for arg in names for n in arg.split(",") if n.strip()]
    known = {r.name: r for r in ROWS}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise SystemExit(f"unknown rows: {', '.join(unknown)}; known: {', '.join(known)}")
    return [r for r in ROWS if r.name in wanted]


def default_bindir() -> Path:
    venv = REPO / ".venv" / "bin"
    return venv if venv.is_dir() else Path(sys.executable).parent


def add_common_options(p: argparse.ArgumentParser) -> None:
    """Options every bench script takes (scratch dir, timeouts, which binaries, JSON)."""
    p.add_argument("--workdir", type=Path, help="scratch directory parent (default: /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per command")
    p.add_argument("--bin", type=Path, default=default_bindir(),
                   help="directory put first on PATH (default: the repo's .venv/bin)")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="annexsync vs git-annex benchmark (see bench/README.md)")
    p.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    p.add_argument("--full", action="store_true", help="also the 10,000-file rows")
    p.add_argument("--rows", action="append", metavar="NAME[,NAME]",
                   help=f"only these rows: {', '.join(r.name for r in ROWS)}")
    p.add_argument("--runs", type=int, default=3, help="runs per tool and row (median taken)")
    add_common_options(p)
    return p.parse_args(argv)


def version(runner: Runner, cmd: list[str]) -> str:
    try:
        p = subprocess.run(cmd, env=runner.env, capture_output=True, text=True, timeout=60)
        return (p.stdout.strip().splitlines() or ["?"])[0]
    except (OSError, subprocess.TimeoutExpired):
        return "not found"


def header(args: argparse.Namespace, runner: Runner, rows: list[Row], root: Path) -> str:
    sizes = "quick (smoke sizes; goals are for the default sizes)" if args.quick else "default"
    return "\n".join([
        f"annexsync vs git-annex: median of {args.runs} runs, warm cache, sizes: {sizes}",
        f"  git-annex: {version(runner, ['git', 'annex', 'version', '--raw'])}; "
        f"{version(runner, ['git', '--version'])}; python {sys.version.split()[0]}; "
        f"{os.cpu_count()} cpus",
        f"  rows: {', '.join(r.name for r in rows)}; scratch: {root}",
        "  peak = largest process RSS (getrusage); tree = sampled sum over the process tree",
    ])


def run_bench(args: argparse.Namespace, root: Path) -> list[RowResult]:
    home = root / "home"
    write_gitconfig(home)
    (root / "logs").mkdir()
    runner = Runner(make_env(home, args.bin.resolve()), root / "logs", args.timeout)
    rows = select_rows(args.rows, args.full)
    sizes = SIZES["quick" if args.quick else "default"]
    datasets = {name: Dataset(name, *spec) for name, spec in sizes.items()}
    print(header(args, runner, rows, root), flush=True)
    bench = Bench(runner, root, datasets, args.runs)
    bench.warm_up()
    results = []
    for row in rows:
        log(f"== {row.name}: {row.about} ({datasets[row.dataset].label})")
        results.append(bench.run_row(row))
        print("\n" + row_block(results[-1]), flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    parent = args.workdir or Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="annexsync-bench-", dir=parent))
    started = time.monotonic()
    try:
        results = run_bench(args, root)
    finally:
        if args.keep:
            log(f"kept {root}")
        else:
            remove(root)
    by_name = {r.row.name: r for r in results}
    print("\n" + summary(results))
    print(flatness(by_name.get("add-large"), by_name.get("flat")))
    print(f"total bench time {time.monotonic() - started:.0f} s")
    if args.json:
        meta = {"quick": args.quick, "runs": args.runs, "cpus": os.cpu_count()}
        write_json(args.json, results, meta)
    failed = any(r.verdict() in ("FAIL", "ERROR") for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
