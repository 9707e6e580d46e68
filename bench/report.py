"""Formatting benchmark results: the per-row table, the verdicts and the JSON dump."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from measure import ToolResult

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
BASELINE = "git-annex"
SUBJECT = "annexsync"
FLAT_SLACK_MIB = 32.0


@dataclass(frozen=True)
class Dataset:
    """``count`` files of ``size`` bytes each, random and incompressible."""

    name: str
    count: int
    size: int

    @property
    def total(self) -> int:
        return self.count * self.size

    @property
    def label(self) -> str:
        return f"{self.count:,} × {human(self.size)}"


@dataclass(frozen=True)
class Row:
    """One benchmark row: an operation on a dataset, with the issue's speed goal."""

    name: str
    op: str  # "add" or "get"
    dataset: str
    goal: float | None  # required speedup of annexsync over git-annex
    full_only: bool = False
    about: str = ""


@dataclass
class RowResult:
    row: Row
    dataset: Dataset
    tools: dict[str, ToolResult]

    def speedup(self) -> float | None:
        a, b = self.tools.get(SUBJECT), self.tools.get(BASELINE)
        if not (a and b and a.ok and b.ok) or a.seconds <= 0:
            return None
        return b.seconds / a.seconds

    def verdict(self) -> str:
        if self.row.goal is None:
            return "-"
        s = self.speedup()
        if s is None:
            return "ERROR"
        return "PASS" if s >= self.row.goal else "FAIL"


def human(n: float) -> str:
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n:.0f} B"


def rate(ds: Dataset, seconds: float) -> str:
    """MB/s for a single file, files/s for many."""
    if seconds <= 0:
        return "-"
    if ds.count == 1:
        return f"{ds.total / seconds / 1e6:8.1f} MB/s"
    return f"{ds.count / seconds:8.1f} files/s"


def tool_line(ds: Dataset, res: ToolResult) -> str:
    name = f"{res.tool:<10}"
    if not res.samples:
        return f"{name} ERROR {res.note}\n{res.error or 'no runs'}"
    runs = ", ".join(f"{s.seconds:.2f}" for s in res.samples)
    note = f"  [{res.note}]" if res.note else ""
    line = (f"{name} {res.seconds:8.2f} s  {rate(ds, res.seconds):>15}  "
            f"peak {res.maxrss_mib:7.1f} MiB  tree {res.tree_mib:7.1f} MiB  (runs {runs}){note}")
    if res.error:
        line += f"\n{' ' * len(name)} ERROR after {len(res.samples)} good run(s):\n{res.error}"
    return line


def row_block(r: RowResult) -> str:
    head = f"{r.row.name:<10} {r.dataset.label:<16} "
    pad = " " * len(head)
    lines = [head + tool_line(r.dataset, r.tools[SUBJECT])]
    lines += [pad + tool_line(r.dataset, res) for name, res in r.tools.items() if name != SUBJECT]
    s = r.speedup()
    if r.row.goal is not None:
        shown = f"{s:.2f}×" if s is not None else "n/a"
        lines.append(f"{pad}speedup {shown} (goal ≥{r.row.goal:g}×)  {r.verdict()}")
    return "\n".join(lines)


def flatness(big: RowResult | None, small: RowResult | None) -> str:
    """annexsync's add peak RSS for the big file against a 1 MiB file."""
    if big is None or small is None:
        return "memory flatness: needs rows add-large and flat"
    a, b = big.tools[SUBJECT], small.tools[SUBJECT]
    if not (a.samples and b.samples):
        return "memory flatness: ERROR (annexsync add failed)"
    grow = a.maxrss_mib - b.maxrss_mib
    verdict = "PASS" if grow <= FLAT_SLACK_MIB else "FAIL"
    ga_big, ga_small = big.tools[BASELINE], small.tools[BASELINE]
    ref = ""
    if ga_big.ok and ga_small.ok:
        ref = f"  (git-annex: {ga_big.maxrss_mib:.1f} vs {ga_small.maxrss_mib:.1f} MiB)"
    return (f"memory flatness: annexsync add peak RSS {big.dataset.label}: {a.maxrss_mib:.1f} MiB"
            f" vs {small.dataset.label}: {b.maxrss_mib:.1f} MiB -> {grow:+.1f} MiB"
            f" (allowed +{FLAT_SLACK_MIB:g})  {verdict}{ref}")


def summary(results: list[RowResult]) -> str:
    lines = [f"{'row':<10} {'data':<16} {'annexsync':>10} {'git-annex':>10} {'speedup':>8}"
             f" {'goal':>6}  result"]
    for r in results:
        if r.row.goal is None:
            continue
        a, b, s = r.tools[SUBJECT], r.tools[BASELINE], r.speedup()
        lines.append(
            f"{r.row.name:<10} {r.dataset.label:<16} "
            f"{(f'{a.seconds:.2f} s' if a.ok else 'error'):>10} "
            f"{(f'{b.seconds:.2f} s' if b.ok else 'error'):>10} "
            f"{(f'{s:.2f}×' if s is not None else 'n/a'):>8} {f'≥{r.row.goal:g}×':>6}  {r.verdict()}")
    return "\n".join(lines)


def write_json(path: Path, results: list[RowResult], meta: dict[str, object]) -> None:
    rows = []
    for r in results:
        tools = {
            name: {"ok": t.ok, "error": t.error, "note": t.note,
                   "runs": [vars(s) for s in t.samples],
                   **({"median_seconds": t.seconds, "peak_rss_mib": t.maxrss_mib,
                       "tree_rss_mib": t.tree_mib} if t.ok else {})}
            for name, t in r.tools.items()
        }
        rows.append({"row": r.row.name, "op": r.row.op, "files": r.dataset.count,
                     "file_size": r.dataset.size, "goal": r.row.goal,
                     "speedup": r.speedup(), "verdict": r.verdict(), "tools": tools})
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
