"""Repositories made by annexsync read by real git-annex, and the reverse (spec 12.2, 12.3, 12.5)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from core.ops.add import add
from core.ops.files import annexed_files
from core.ops.query import info, whereis
from core.repo.repository import AnnexRepo
from tests.conftest import annex, git

pytestmark = pytest.mark.interop

FILES = {
    "a.txt": b"hello world\n",
    "sub/dir/b.bin": os.urandom(5000),
    "odd name & 100%: ok.dat": b"odd\n",
    "empty": b"",
}


def write_files(top: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p = top / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def made_by_us(tmp_path: Path) -> AnnexRepo:
    os.chdir(tmp_path)
    repo = AnnexRepo.init(tmp_path / "ours", "our laptop")
    os.chdir(repo.path)
    write_files(repo.path, FILES)
    add(repo, ["."])
    git(repo.path, "config", "annex.addunlocked", "true")
    write_files(repo.path, {"unlocked.txt": b"unlocked content\n"})
    add(AnnexRepo.open(repo.path), ["unlocked.txt"])
    git(repo.path, "commit", "-q", "-m", "files")
    return AnnexRepo.open(repo.path)


def test_our_repository_passes_git_annex(tmp_path: Path) -> None:
    repo = made_by_us(tmp_path)
    top = repo.path
    assert (top / "a.txt").is_symlink() and (top / "a.txt").read_bytes() == FILES["a.txt"]
    assert (top / "unlocked.txt").read_bytes() == b"unlocked content\n"

    annex(top, "fsck", "-q")
    assert git(top, "status", "--porcelain") == ""

    theirs = {r["file"]: r for r in json_lines(annex(top, "whereis", "--json"))}
    ours = {w.path: w for w in whereis(repo)}
    assert set(theirs) == set(ours) == set(FILES) | {"unlocked.txt"}
    for path, w in ours.items():
        assert theirs[path]["key"] == str(w.key)
        assert [c["uuid"] for c in theirs[path]["whereis"]] == [c.uuid for c in w.copies]  # type: ignore[union-attr]

    ga_info = json.loads(annex(top, "info", "--json", "--fast"))
    semi = {r["uuid"]: r["description"] for r in ga_info["semitrusted repositories"]}
    assert "our laptop" in semi[repo.uuid]
    assert {r.uuid for r in info(repo).repositories} == set(semi)

    found = set(annex(top, "find").splitlines())
    assert found == {f.path for f in annexed_files(repo) if repo.objects.has(f.key)}


def test_clone_gets_from_our_repository(tmp_path: Path) -> None:
    repo = made_by_us(tmp_path)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo.path), str(clone))
    annex(clone, "get", ".")
    assert (clone / "sub/dir/b.bin").read_bytes() == FILES["sub/dir/b.bin"]
    assert (clone / "unlocked.txt").read_bytes() == b"unlocked content\n"
    annex(clone, "sync", "-q", "--no-content")
    annex(clone, "copy", "--to", "origin", ".")  # nothing to do, but must not fail
    ours = AnnexRepo.open(repo.path)
    ours.branch.merge_refs()
    clone_uuid = git(clone, "config", "annex.uuid").strip()
    for w in whereis(ours):
        assert clone_uuid in {c.uuid for c in w.copies}, w.path


def test_git_annex_repository_read_by_us(annex_repo: Path) -> None:
    top = annex_repo
    write_files(top, FILES)
    write_files(top, {"u/unlocked.bin": os.urandom(3000)})
    annex(top, "add", "-q", ".")
    annex(top, "unlock", "-q", "u/unlocked.bin")
    git(top, "commit", "-q", "-m", "x")
    os.chdir(top)
    repo = AnnexRepo.open(top)
    theirs = {r["file"]: r for r in json_lines(annex(top, "whereis", "--json"))}
    ours = {w.path: w for w in whereis(repo)}
    assert set(theirs) == set(ours)
    for path, w in ours.items():
        assert theirs[path]["key"] == str(w.key)
        assert [c["uuid"] for c in theirs[path]["whereis"]] == [c.uuid for c in w.copies]  # type: ignore[union-attr]
    unlocked = [f for f in annexed_files(repo) if not f.locked]
    assert [f.path for f in unlocked] == ["u/unlocked.bin"]
    found = set(annex(top, "find").splitlines())
    assert found == {f.path for f in annexed_files(repo) if repo.objects.has(f.key)}


def test_our_add_in_git_annex_repository(annex_repo: Path) -> None:
    """Spec 12.5: our writes into a git-annex repository pass fsck."""
    top = annex_repo
    write_files(top, {"x/ours.dat": b"added by annexsync\n"})
    os.chdir(top)
    add(AnnexRepo.open(top), ["x"])
    git(top, "commit", "-q", "-m", "ours")
    annex(top, "fsck", "-q")
    assert git(top, "status", "--porcelain") == ""
    w = json_lines(annex(top, "whereis", "--json", "x/ours.dat"))[0]
    assert w["whereis"][0]["uuid"] == AnnexRepo.open(top).uuid  # type: ignore[index]
