#!/usr/bin/env python3
"""Every bench's default rows, and one table against the speed issue's goals.

    python bench/all.py [--runs 3] [--full] [--only local,p2p,p2phttp] [--json PATH]

Runs ``run.py`` (local get and add, with the floor of a verified local get),
``p2p.py`` (P2P over fake ssh: ours at both ends, our client to
git-annex-shell) and ``p2phttp.py`` (the git-annex client against each
server, and the annexsync client) one after the other, each writing JSON,
then prints one table: row, annexsync, git-annex, ratio, goal, met.

* ratio is git-annex's median time ÷ ours (above 1: we are faster), except
  for the floor row, where it is our time ÷ the floor's (below the goal: met).
* Every bench checks every file after every run (present, right size, right
  hash), so no row can win by doing less; see each script's docstring.
* The goals are the issue's (issue 20), kept here and only here.
* Default run: the rows below with ``--runs 3``; ``--full`` adds 10,000 × 1 KiB
  adds, the git-annex client against our P2P server and the p2phttp copy rows.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Goal:
    """One line of the table: where its figures come from and what it must reach."""

    label: str
    bench: str  # "local", "p2p" or "p2phttp"
    row: str  # the row name in that bench's JSON
    ours: str  # the tool or set-up measured
    theirs: str  # the baseline
    goal: float | None  # minimum ratio; None: measured only
    full_only: bool = False
    floor: bool = False  # ratio = ours ÷ floor, met when at most ``goal``


GOALS = (
    Goal("local get 1 × 1 GiB (vs floor)", "local", "get-large", "annexsync", "floor", 1.25,
         floor=True),
    Goal("local get 1 × 1 GiB", "local", "get-large", "annexsync", "git-annex", None),
    Goal("local get 1,000 × 1 MiB", "local", "get-many", "annexsync", "git-annex", 5.0),
    Goal("add 1,000 × 1 MiB", "local", "add-many", "annexsync", "git-annex", 10.0),
    Goal("add 10,000 × 1 KiB", "local", "add-tiny", "annexsync", "git-annex", 10.0,
         full_only=True),
    Goal("P2P get 1 GiB, ours both ends", "p2p", "p1-get-large", "annexsync", "git-annex", 2.0),
    Goal("P2P get 1 GiB, our client", "p2p", "p2-get-large", "annexsync", "git-annex", 2.0),
    Goal("P2P put 1 GiB, ours both ends", "p2p", "p1-put-large", "annexsync", "git-annex", 2.0),
    Goal("P2P put 1 GiB, our client", "p2p", "p2-put-large", "annexsync", "git-annex", 1.0),
    # the many-file P2P rows: our client -J4, git-annex's at its default -J1 (p2p.py
    # --jobs/--ga-jobs); our client at -J1 is measured beside them (--compare-jobs 1)
    Goal("P2P get 1,000 × 1 MiB, ours both ends -J4", "p2p", "p1-get-many", "annexsync",
         "git-annex", 2.0),
    Goal("P2P get 1,000 × 1 MiB, our client -J4", "p2p", "p2-get-many", "annexsync",
         "git-annex", 2.0),
    Goal("P2P get 1,000 × 1 MiB, our client -J1", "p2p", "p0-get-many", "annexsync",
         "git-annex", None),
    Goal("P2P put 1,000 × 1 MiB, ours both ends -J4", "p2p", "p1-put-many", "annexsync",
         "git-annex", 2.0),
    Goal("P2P put 1,000 × 1 MiB, our client -J4", "p2p", "p2-put-many", "annexsync",
         "git-annex", 1.5),
    Goal("P2P put 1,000 × 1 MiB, our client -J1", "p2p", "p0-put-many", "annexsync",
         "git-annex", None),
    Goal("P2P get 1 GiB, git-annex → our server", "p2p", "p3-get-large", "annexsync",
         "git-annex", 1.0, full_only=True),
    Goal("p2phttp get 1 GiB -J1, git-annex client", "p2phttp", "get-large-J1", "ga>as", "ga>ga",
         2.0),
    Goal("p2phttp get 1 GiB, annexsync client", "p2phttp", "get-large-J1", "as>as", "ga>ga",
         None),
    Goal("p2phttp get 1 GiB, annexsync → git-annex", "p2phttp", "get-large-J1", "as>ga",
         "ga>ga", None),
    Goal("p2phttp get 1,000 × 1 MiB -J4, git-annex client", "p2phttp", "get-many-J4", "ga>as",
         "ga>ga", 2.0),
    Goal("p2phttp get 1,000 × 1 MiB, annexsync client", "p2phttp", "get-many-J4", "as>as",
         "ga>ga", None),
    Goal("p2phttp get 1,000 × 1 MiB, annexsync → git-annex", "p2phttp", "get-many-J4", "as>ga",
         "ga>ga", None),
)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def commands(args: argparse.Namespace, out: Path) -> dict[str, list[str]]:
    py, runs = sys.executable, str(args.runs)
    work = ["--workdir", str(args.workdir)] if args.workdir else []
    local_rows = "get-large,get-many,add-many" + (",add-tiny" if args.full else "")
    return {
        "local": [py, str(HERE / "run.py"), "--rows", local_rows, "--runs", runs,
                  "--json", str(out / "local.json"), *work],
        "p2p": [py, str(HERE / "p2p.py"), "--pairs", "1,2,3" if args.full else "1,2",
                "--compare-jobs", "1", "--runs", runs, "--json", str(out / "p2p.json"), *work],
        "p2phttp": [py, str(HERE / "p2phttp.py"), "--runs", runs,
                    "--json", str(out / "p2phttp.json"), *(["--copy"] if args.full else []),
                    *work],
    }  # fmt: skip


def load(path: Path) -> dict[str, dict[str, float | None]]:
    """{row: {tool or set-up: median seconds}} from one bench's JSON."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    found: dict[str, dict[str, float | None]] = {}
    for row in data["rows"]:
        tools = row.get("tools") or row.get("setups") or {}
        found[row["row"]] = {name: t.get("median_seconds") for name, t in tools.items()}
    return found


def line(g: Goal, figures: dict[str, dict[str, dict[str, float | None]]]) -> list[str]:
    row = figures.get(g.bench, {}).get(g.row, {})
    ours, theirs = row.get(g.ours), row.get(g.theirs)
    shown = [f"{ours:.2f} s" if ours else "-", f"{theirs:.2f} s" if theirs else "-"]
    if g.floor:
        ratio = ours / theirs if ours and theirs else None
        goal = f"≤{g.goal:g}× floor"
        met = ratio is not None and g.goal is not None and ratio <= g.goal
        shown[1] += " (floor)" if theirs else ""
    else:
        ratio = theirs / ours if ours and theirs else None
        goal = f"≥{g.goal:g}×" if g.goal is not None else "measured"
        met = ratio is not None and g.goal is not None and ratio >= g.goal
    verdict = "n/a" if ratio is None else ("-" if g.goal is None else ("met" if met else "NOT met"))
    return [g.label, *shown, f"{ratio:.2f}×" if ratio is not None else "-", goal, verdict]


def table(rows: list[list[str]]) -> str:
    head = ["row", "annexsync", "git-annex", "ratio", "goal", "result"]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    return "\n".join(fmt.format(*r) for r in [head, *rows])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="every bench, one table (bench/README.md)")
    p.add_argument("--runs", type=int, default=3, help="runs per tool and row (median)")
    p.add_argument("--full", action="store_true", help="also the long rows")
    p.add_argument("--only", default="local,p2p,p2phttp", help="benches to run")
    p.add_argument("--workdir", type=Path, help="scratch parent (default /tmp)")
    p.add_argument("--json", type=Path, help="also write the table as JSON")
    p.add_argument("--from-dir", type=Path, help="only print the table from a kept run's JSON")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.from_dir or Path(tempfile.mkdtemp(prefix="annexsync-all-"))
    started, load_start = time.monotonic(), os.getloadavg()
    if args.from_dir is None:
        for name, cmd in commands(args, out).items():
            if name not in args.only.split(","):
                continue
            log(f"=== {name}: {' '.join(cmd[1:])}")
            t0 = time.monotonic()
            rc = subprocess.run(cmd, check=False).returncode
            log(f"=== {name} done in {time.monotonic() - t0:.0f} s (exit {rc})")
    figures = {name: load(out / f"{name}.json") for name in ("local", "p2p", "p2phttp")}
    rows = [line(g, figures) for g in GOALS if args.full or not g.full_only]
    print()
    print(f"annexsync vs git-annex, median of {args.runs} runs; {os.cpu_count()} cpus; load "
          f"average {' '.join(f'{x:.2f}' for x in load_start)} at start, "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at end; "
          f"{time.monotonic() - started:.0f} s; figures in {out}")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=2, ensure_ascii=False))
    return 0 if all(r[-1] in ("met", "-") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
