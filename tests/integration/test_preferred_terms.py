"""The repository-dependent terms against git-annex's own evaluator (spec 10.2, 12.11).

A repository set up by real git-annex -- groups (``git annex group``),
metadata (``git annex metadata``), numcopies, and copies on two real clones
-- is read by our branch views (``AnnexRepo.match_context``) and every
expression is evaluated for every file by us and by ``git annex
matchexpression EXPR --file F --key K`` in that repository.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from core.errors import ExpressionError
from core.repo.key import Key
from core.repo.preferred import fallback_reason, parse, wants_get
from core.repo.repository import AnnexRepo
from tests.conftest import annex, git, isolate_home, run
from tests.integration.test_daemon_cli import ANNEXSYNC, cli, status_json, wait_for

pytestmark = pytest.mark.interop

FILES = {"a.txt": b"a", "pics/p.jpg": b"pp", "public/doc.txt": b"ddd",
         "x/public/y.txt": b"yyyy", "public/sub/z": b"zzzzz", "big.bin": b"b" * 1000}
METADATA = [
    ("a.txt", ["tag=foo", "tag=Bar", "year=2019", "rating=10", "title=two words"]),
    ("pics/p.jpg", ["tag=baz", "year=2021", "rating=9"]),
    ("pics/p.jpg", ["tag-=baz", "author=me"]),
    ("public/doc.txt", ["year=abc", "rating=-3.5"]),
]
# metadata terms are tried on the files with metadata and one without
METADATA_TERMS = [
    "metadata=tag=foo", "metadata=tag=FOO", "metadata=TAG=b*", "metadata=tag=baz",
    "metadata=tag", "metadata=year<2020",
    "metadata=rating>9", "metadata=rating<=9", "metadata=rating<-1",
    "metadata=title=two?words", "metadata=author=ME",
    "metadata=lastchanged=2*", "metadata=tag-lastchanged=*",
    "metadata=year>ab", "metadata=bad!x=1",
    "url=http://example.com/*", "url=*dir?a.txt", "url=HTTP*",
]
LOCATION_TERMS = [
    "onlyingroup=archive", "onlyingroup=client", "onlyingroup=backup", "onlyingroup=none",
    "inpreferreddir",
    "copies=archive:1", "copies=+archive+backup=1", "copies=client-backup=1",
    "copies=-archive=2", "copies=trusted+:1",
    "lackingcopies=1", "lackingcopies=client:1", "lackingcopies=archive:2",
    "lackingcopies=+archive-client=1", "approxlackingcopies=client:1",
    "unused", "not metadata=tag=foo and onlyingroup=client",
    "metadata=year<2020 or copies=archive:1 and not inpreferreddir",
]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Built once for the module, in a HOME of its own (the per-test one is not set up yet)."""
    tmp = tmp_path_factory.mktemp("terms")
    with pytest.MonkeyPatch.context() as mp:
        isolate_home(tmp_path_factory.mktemp("home"), mp)
        yield _build(tmp)


def _build(tmp: Path) -> Path:
    here = tmp / "here"
    here.mkdir()
    git(here, "init", "-q")
    annex(here, "init", "-q", "here")
    for name, data in FILES.items():
        (here / name).parent.mkdir(parents=True, exist_ok=True)
        (here / name).write_bytes(data)
    annex(here, "add", "-q", ".")
    git(here, "commit", "-q", "-m", "files")
    for name in ("r1", "r2"):
        git(tmp, "clone", "-q", str(here), str(tmp / name))
        annex(tmp / name, "init", "-q", name)
        git(here, "remote", "add", name, str(tmp / name))
    git(here, "fetch", "-q", "--all")
    annex(here, "copy", "-q", "--to", "r1", "a.txt", "pics/p.jpg", "public/doc.txt")
    annex(here, "copy", "-q", "--to", "r2", "a.txt", "x/public/y.txt")
    annex(here, "move", "-q", "--to", "r1", "big.bin")
    for name, groups in (("here", ["client"]), ("r1", ["archive"]), ("r2", ["client", "backup"])):
        for g in groups:
            annex(here, "group", name, g)
    annex(here, "numcopies", "2")
    for path, fields in METADATA:
        annex(here, "metadata", "-q", *(a for f in fields for a in ("-s", f)), path)
    key = annex(here, "lookupkey", "a.txt").strip()
    annex(here, "registerurl", key, "http://example.com/dir/a.txt")
    return here


def _theirs(repo: Path, expr: str, path: str, key: str) -> int:
    cmd = ["git", "annex", "matchexpression", expr, "--file", path, "--key", key]
    return subprocess.run(cmd, cwd=repo, capture_output=True, timeout=60).returncode


def _ours(repo: AnnexRepo, expr: str, path: str, key: str) -> int:
    try:
        parsed = parse(expr)
    except ExpressionError:
        return 42
    ctx = repo.match_context(Key.parse(key), path, repo.uuid)
    assert fallback_reason(parsed, ctx) is None, expr
    return 0 if wants_get(parsed, ctx) else 1


def test_terms_match_git_annex(repo: Path) -> None:
    keys = {p: annex(repo, "lookupkey", p).strip() for p in FILES}
    with_metadata = [p for p, _ in METADATA] + ["big.bin"]
    cases = [(e, p, keys[p]) for e in METADATA_TERMS for p in dict.fromkeys(with_metadata)]
    cases += [(e, p, keys[p]) for e in LOCATION_TERMS for p in FILES]
    with ThreadPoolExecutor(4) as pool:
        theirs = list(pool.map(lambda c: _theirs(repo, *c), cases))
    with AnnexRepo.open(repo) as ours_repo:
        ours = [_ours(ours_repo, *c) for c in cases]
    diffs = [(c[:2], t, o) for c, t, o in zip(cases, theirs, ours, strict=True) if t != o]
    assert not diffs, diffs
    assert sorted(set(theirs)) == [0, 1, 42] and len(cases) > 140


# --- expressions we cannot evaluate: "present", and said so -------------------


@pytest.fixture
def unevaluable(tmp_path: Path) -> tuple[Path, Path]:
    """here wants ``balanced=client`` (needs repository sizes), r1 ``standard``
    while in no group; a file whose only copy is on r1."""
    here, r1 = tmp_path / "here", tmp_path / "r1"
    here.mkdir()
    git(here, "init", "-q")
    annex(here, "init", "-q", "here")
    git(tmp_path, "clone", "-q", str(here), str(r1))
    annex(r1, "init", "-q", "r1")
    (r1 / "only-there.txt").write_text("r1 has it\n")
    annex(r1, "add", "-q", "only-there.txt")
    git(r1, "commit", "-q", "-m", "add")
    git(here, "remote", "add", "r1", str(r1))
    annex(here, "sync", "-q", "--no-content", "r1")
    annex(here, "group", "here", "client")
    annex(here, "wanted", "here", "balanced=client")
    annex(here, "wanted", "r1", "standard")
    return here, r1


def _said(text: str) -> None:
    assert "preferred content of here (\"balanced=client\") cannot be evaluated " \
        "(annexsync cannot evaluate 'balanced=client'); treated as \"present\"" in text, text
    assert "preferred content of r1 (\"standard\") cannot be evaluated " \
        "(repository is in 0 standard groups, not exactly one)" in text, text


def test_unevaluable_is_said_in_cli(unevaluable: tuple[Path, Path]) -> None:
    here, _ = unevaluable
    _said(run(["annexsync", "wanted"], here).stdout)
    _said(run(["annexsync", "info"], here).stdout)
    _said(run(["annexsync", "sync", "--content"], here).stderr)
    # and acted on as "present": here wants only what it has, so nothing came
    with AnnexRepo.open(here) as repo:
        assert not any(repo.objects.keys())


def test_unevaluable_is_said_in_status(unevaluable: tuple[Path, Path], tmp_path: Path) -> None:
    here, _ = unevaluable
    cfg = tmp_path / "cfg"
    proc = subprocess.Popen([*ANNEXSYNC, "--config-dir", str(cfg), "daemon", str(here)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: [r for r in status_json(cfg)["repos"] if r["uuid"] and r["remotes"]],
                 "the repository and its remote in status")
        status = status_json(cfg)["repos"][0]
        _said(status["wanted_note"] + "\n" + status["remotes"][0]["wanted_note"])
        _said(cli(cfg, "status").stdout)
    finally:
        proc.terminate()
        proc.wait(30)
