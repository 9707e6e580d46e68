"""Our expression matcher against real git-annex (spec 12.11).

``git annex matchexpression`` has no batch mode, so its calls run a few at a
time in threads; the table is chosen so every row exercises one rule.
"""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from core.errors import ExpressionError
from core.repo.key import Key
from core.repo.preferred import Context, is_large, matches, parse, wants_drop, wants_get
from tests.conftest import annex, git

pytestmark = pytest.mark.interop

NAMES = ["a.c", "sub/dir/n.mp3", "archive/x.txt", "d/archive/y", "x/c", "B.C", " sp", "[x]"]
SIZES = [999, 1000, 1001, 1_000_000, 1_000_001, 1_048_576, 1_048_577]

# (expression, names, sizes): the cross product of each row is checked.
TABLE: list[tuple[str, list[str], list[int]]] = [
    ("include=*.c or include=*.mp3 and include=a*", NAMES, [0]),
    ("(include=*.c)or(include=x?c)", NAMES, [0]),
    ("not include=a* or include=*/archive/*", NAMES, [0]),
    ("exclude=archive/* and exclude=*/archive/*", NAMES, [0]),
    ("include=*.C include=B*", NAMES, [0]),
    ("include=[[:space:]]* or include=[[]x] or include=[!a-c]*", NAMES, [0]),
    ("include=sub/*.mp3 or include=sub//dir/*", NAMES, [0]),
    ("include=*.c or", NAMES[:2], [0]),
    ("not ( include=*.c or include=x*", NAMES[:5], [0]),
    ("( include=a* ) ) or include=*.txt", NAMES[:4], [0]),
    ("largerthan=1mb", ["f"], SIZES),
    ("largerthan=1MiB", ["f"], SIZES),
    ("smallerthan=1kb", ["f"], SIZES),
    ("smallerthan=1KiB", ["f"], SIZES),
    ("largerthan=0.001gb", ["f"], SIZES[3:5]),
    ("largerthan=1megabytes or smallerthan=1kilobyte", ["f"], SIZES),
    ("largerthan=1000000b and smallerthan=1mebibyte", ["f"], SIZES),
    ("largerthan=1e6", ["f"], SIZES[3:5]),
    ("largerthan=1.0000005mb", ["f"], SIZES[3:5]),
    ("largerthan=1mb1", ["f"], SIZES[3:5]),
    ("anything", ["f"], [0]),
    ("nothing", ["f"], [0]),
    ("include=*.c and largerthan=1kb or include=*.mp3", NAMES[:3], [999, 1001]),
    ("foo", ["f"], [0]),
    ("largerthan=1kbytes", ["f"], [0]),
    ("copies=x", ["f"], [0]),
]
LARGEFILES: list[tuple[str, list[str], list[int]]] = [
    ("(largerthan=100kb)and(not(include=*.c))", ["a.c", "b.bin"], [100_000, 100_001]),
    ("include=*.mp3 or largerthan=1MiB", NAMES[:3], [1_048_576, 1_048_577]),
    ("present", ["f"], [0]),
    ("copies=1", ["f"], [0]),
]


def _annex_match(repo: Path, expr: str, name: str, size: int, largefiles: bool) -> int:
    cmd = ["git", "annex", "matchexpression", expr, "--file", name, "--size", str(size)]
    if largefiles:
        cmd.insert(3, "--largefiles")
    return subprocess.run(cmd, cwd=repo, capture_output=True, timeout=60).returncode


def _ours(expr: str, name: str, size: int, largefiles: bool) -> int:
    try:
        if largefiles:
            return 0 if is_large(expr, name, size) else 1
        parsed = parse(expr)
        assert parsed is not None
        return 0 if matches(parsed.tree, Context(path=name, size=size)) else 1
    except ExpressionError:
        return 42  # git-annex's exit code for a bad expression


def test_matchexpression_table(annex_repo: Path) -> None:
    cases = [(e, n, s, False) for e, ns, ss in TABLE for n in ns for s in ss]
    cases += [(e, n, s, True) for e, ns, ss in LARGEFILES for n in ns for s in ss]
    with ThreadPoolExecutor(8) as pool:
        theirs = list(pool.map(lambda c: _annex_match(annex_repo, *c), cases))
    ours = [_ours(*c) for c in cases]
    diffs = [(c, t, o) for c, t, o in zip(cases, theirs, ours, strict=True) if t != o]
    assert not diffs, diffs
    assert len(cases) > 100


# --- want-get / want-drop -----------------------------------------------------

FILES = {"a.txt": "a", "b.dat": "bb", "archive/c.txt": "ccc", "d.txt": "dddd"}


def _two_repos(tmp_path: Path) -> tuple[Path, str, str]:
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    git(here, "init", "-q")
    annex(here, "init", "-q", "here")
    for name, text in FILES.items():
        (here / name).parent.mkdir(parents=True, exist_ok=True)
        (here / name).write_text(text)
    annex(here, "add", "-q", ".")
    git(here, "commit", "-qm", "files")
    git(tmp_path, "clone", "-q", str(here), str(there))
    annex(there, "init", "-q", "there")
    git(here, "remote", "add", "there", str(there))
    git(here, "fetch", "-q", "there")
    annex(here, "copy", "-q", "--to", "there", "a.txt", "archive/c.txt", "b.dat")
    annex(here, "drop", "-q", "--force", "d.txt", "b.dat")
    u_here = git(here, "config", "annex.uuid").strip()
    u_there = git(there, "config", "annex.uuid").strip()
    return here, u_here, u_there


def _locations(repo: Path) -> dict[str, tuple[Key, frozenset[str]]]:
    out = annex(repo, "whereis", "--json", check=False)  # exit 1: a file with no copy
    found: dict[str, tuple[Key, frozenset[str]]] = {}
    for line in out.splitlines():
        rec = json.loads(line)
        found[rec["file"]] = (Key.parse(rec["key"]), frozenset(w["uuid"] for w in rec["whereis"]))
    assert set(found) == set(FILES)
    return found


SCENARIOS: list[tuple[dict[str, list[str]], dict[str, str], str, str]] = [
    # groups by repo ("here"/"there"), groupwanted, wanted here, wanted there
    ({"here": ["client"], "there": ["archive"]}, {}, "standard", "standard"),
    ({"here": ["transfer"], "there": ["backup"]}, {}, "standard", "standard"),
    ({"here": ["client", "archive"], "there": ["source"]}, {}, "standard", "standard"),
    ({"here": ["manual"], "there": ["smallarchive"]}, {}, "standard", "standard"),
    ({"here": ["incrementalbackup"], "there": ["unwanted"]}, {}, "standard", "standard"),
    ({"here": ["g1"], "there": ["g2"]}, {"g1": "include=*.txt", "g2": "copies=g1:1"},
     "groupwanted", "groupwanted or copies=2"),
    ({"here": ["g1"], "there": ["g1"]}, {}, "present", "inallgroup=g1 or largerthan=2"),
    ({}, {}, "copies=1 and not copies=there:1", "approxlackingcopies=1 or securehash"),
]


def _find(repo: Path, option: str) -> set[str]:
    return set(annex(repo, "find", option).splitlines())


def _ours_sets(
    expr: str, uuid: str, locations: dict[str, tuple[Key, frozenset[str]]],
    groups: dict[str, frozenset[str]], group_wanted: dict[str, str],
) -> tuple[set[str], set[str]]:
    get, drop = set(), set()
    for name, (key, holders) in locations.items():
        ctx = Context(path=name, key=key, holders=holders, uuid=uuid,
                      groups=groups, group_wanted=group_wanted)
        if wants_get(expr, ctx):
            get.add(name)
        if wants_drop(expr, ctx):
            drop.add(name)
    return get, drop


def test_want_get_and_drop(tmp_path: Path) -> None:
    """One pair of repositories; each scenario resets groups and wanted."""
    here, u_here, u_there = _two_repos(tmp_path)
    uuids = {"here": u_here, "there": u_there}
    locations = _locations(here)
    for groups_by, group_wanted, wanted_here, wanted_there in SCENARIOS:
        for repo in uuids:
            for g in annex(here, "group", repo).split():
                annex(here, "ungroup", repo, g)
            for g in groups_by.get(repo, []):
                annex(here, "group", repo, g)
        for g, e in group_wanted.items():
            annex(here, "groupwanted", g, e)
        annex(here, "wanted", "here", wanted_here)
        annex(here, "wanted", "there", wanted_there)
        groups = {uuids[r]: frozenset(gs) for r, gs in groups_by.items()}
        options = [f"--want-{w}-by={r}" for r in uuids for w in ("get", "drop")]
        with ThreadPoolExecutor(4) as pool:
            theirs = list(pool.map(lambda o: _find(here, o), options))
        ours: list[set[str]] = []
        for repo, expr in (("here", wanted_here), ("there", wanted_there)):
            ours.extend(_ours_sets(expr, uuids[repo], locations, groups, group_wanted))
        assert list(zip(options, ours, strict=True)) == list(zip(options, theirs, strict=True))
