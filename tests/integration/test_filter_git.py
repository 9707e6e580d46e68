"""The annex filter driven by real git, checked by real git-annex (spec 3.2, 3.3, 11).

Three ways git can reach our filter, all tested:

* ``configured``: the repository exactly as ``AnnexRepo.init`` leaves it,
  ``annexsync filter-process`` found on PATH (the venv's console script);
* ``module-process``: ``python -m core.filterprocess filter-process``;
* ``module-oneshot``: no ``filter.annex.process``, so git runs
  ``python -m core.filterprocess smudge [--clean] -- %f`` once per file.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from pathlib import Path

import pytest

from core.filter import AnnexFilter, Outcome
from core.repo.key import Key
from core.repo.pointer import format_pointer
from core.repo.repository import AnnexRepo
from tests.conftest import annex, git, run

MODES = ["configured", "module-process", "module-oneshot"]
SHIM = f"{sys.executable} -m core.filterprocess"


def key_of(data: bytes, name: str) -> Key:
    ext = "." + name.rsplit(".", 1)[1] if "." in name else ""
    return Key("SHA256E", hashlib.sha256(data).hexdigest() + ext, size=len(data))


def use_filter(top: Path, mode: str) -> None:
    if mode == "configured":
        return
    git(top, "config", "filter.annex.smudge", f"{SHIM} smudge -- %f")
    git(top, "config", "filter.annex.clean", f"{SHIM} smudge --clean -- %f")
    if mode == "module-process":
        git(top, "config", "filter.annex.process", f"{SHIM} filter-process")
    else:
        git(top, "config", "--unset", "filter.annex.process")


@pytest.fixture(params=MODES)
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    top = AnnexRepo.init(tmp_path / "r", "filter test").path
    use_filter(top, request.param)
    git(top, "config", "annex.largefiles", "largerthan=10b")
    return top


BIG = os.urandom(3 << 20) + b"tail"  # larger than the in-memory spool
MEDIUM = b"a medium sized file, over ten bytes\n"
SMALL = b"tiny\n"


def cat(top: Path, rel: str) -> bytes:
    import subprocess

    return subprocess.run(["git", "cat-file", "blob", f":{rel}"], cwd=top,
                          capture_output=True, check=True).stdout


def test_git_add_annexes_large_files_only(repo: Path) -> None:
    (repo / "big.bin").write_bytes(BIG)
    (repo / "sub").mkdir()
    (repo / "sub" / "medium file.txt").write_bytes(MEDIUM)
    (repo / "small.txt").write_bytes(SMALL)
    (repo / ".dot").write_bytes(MEDIUM)
    git(repo / "sub", "add", ".")  # from a subdirectory: git runs filters at the top
    git(repo, "add", ".")

    a = AnnexRepo.open(repo)
    for rel, data in (("big.bin", BIG), ("sub/medium file.txt", MEDIUM)):
        key = key_of(data, rel)
        assert cat(repo, rel) == format_pointer(key)
        found = a.objects.find(key)
        assert found is not None and found.read_bytes() == data
        assert (repo / rel).read_bytes() == data  # unlocked: content stays in place
        assert a.uuid in a.state.locations(key)
    assert cat(repo, "small.txt") == SMALL
    assert cat(repo, ".dot") == MEDIUM
    assert not any((a.gitdir / "annex" / "journal").glob("*")), "journal committed at the end"
    assert not any((a.gitdir / "annex" / "othertmp").glob("*")), "no temporary left"

    git(repo, "commit", "-q", "-m", "add")
    assert git(repo, "status", "--porcelain") == ""
    os.utime(repo / "big.bin")  # make git look again: clean must give the same pointer
    assert git(repo, "status", "--porcelain") == ""


def test_checkout_and_stash_round_trips(repo: Path) -> None:
    (repo / "big.bin").write_bytes(BIG)
    (repo / "m.txt").write_bytes(MEDIUM)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "add")

    (repo / "big.bin").unlink()
    git(repo, "checkout", "--", "big.bin")
    assert (repo / "big.bin").read_bytes() == BIG

    changed = MEDIUM + b"changed\n"
    (repo / "m.txt").write_bytes(changed)
    git(repo, "stash", "-q")
    assert (repo / "m.txt").read_bytes() == MEDIUM
    assert git(repo, "status", "--porcelain") == ""
    git(repo, "stash", "pop", "-q")
    assert (repo / "m.txt").read_bytes() == changed
    assert git(repo, "status", "--porcelain").split() == ["M", "m.txt"]

    git(repo, "checkout", "-q", "-b", "other")
    git(repo, "commit", "-q", "-am", "changed")
    git(repo, "checkout", "-q", "main")
    assert (repo / "m.txt").read_bytes() == MEDIUM
    git(repo, "checkout", "-q", "other")
    assert (repo / "m.txt").read_bytes() == changed
    assert git(repo, "status", "--porcelain") == ""


def test_smudge_without_content_gives_the_pointer(repo: Path) -> None:
    (repo / "m.txt").write_bytes(MEDIUM)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "add")
    a = AnnexRepo.open(repo)
    key = key_of(MEDIUM, "m.txt")
    assert a.objects.remove(key)
    (repo / "m.txt").unlink()
    git(repo, "checkout", "--", "m.txt")
    assert (repo / "m.txt").read_bytes() == format_pointer(key)
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.interop
def test_git_annex_fsck_passes(repo: Path) -> None:
    (repo / "big.bin").write_bytes(BIG)
    (repo / "m.txt").write_bytes(MEDIUM)
    (repo / "small.txt").write_bytes(SMALL)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "add")
    annex(repo, "numcopies", "1")
    annex(repo, "fsck")
    assert git(repo, "status", "--porcelain") == ""
    uuid = AnnexRepo.open(repo).uuid
    assert uuid in annex(repo, "whereis", "--json", "m.txt")


@pytest.mark.interop
@pytest.mark.parametrize("mode", MODES)
def test_repository_made_by_git_annex(annex_repo: Path, mode: str) -> None:
    top = annex_repo
    (top / "u.dat").write_bytes(MEDIUM)
    annex(top, "add", "u.dat")
    annex(top, "unlock", "u.dat")
    git(top, "commit", "-q", "-m", "unlocked")
    old_key = key_of(MEDIUM, "u.dat")
    # now our filter instead of git-annex's
    for name, value in (("smudge", "annexsync smudge -- %f"),
                        ("clean", "annexsync smudge --clean -- %f"),
                        ("process", "annexsync filter-process")):
        git(top, "config", f"filter.annex.{name}", value)
    use_filter(top, mode)

    (top / "u.dat").unlink()
    git(top, "checkout", "--", "u.dat")
    assert (top / "u.dat").read_bytes() == MEDIUM
    assert git(top, "status", "--porcelain") == ""

    # no annex.largefiles: was annexed, so stays annexed (3.3); a new file goes to git
    new = b"edited by annexsync\n"
    (top / "u.dat").write_bytes(new)
    (top / "plain.txt").write_bytes(b"plain\n")
    git(top, "add", "u.dat", "plain.txt")
    assert cat(top, "u.dat") == format_pointer(key_of(new, "u.dat"))
    assert cat(top, "plain.txt") == b"plain\n"
    git(top, "commit", "-q", "-m", "edit")
    annex(top, "numcopies", "1")
    annex(top, "fsck")
    assert git(top, "status", "--porcelain") == ""
    a = AnnexRepo.open(top)
    assert a.objects.has(key_of(new, "u.dat")) and a.objects.has(old_key)
    assert a.uuid in annex(top, "whereis", "--json", "u.dat")


def test_annex_thin_hard_links(repo: Path) -> None:
    git(repo, "config", "annex.thin", "true")
    (repo / "t.bin").write_bytes(BIG)
    git(repo, "add", "t.bin")
    obj = AnnexRepo.open(repo).objects.find(key_of(BIG, "t.bin"))
    assert obj is not None
    assert os.stat(obj).st_ino == os.stat(repo / "t.bin").st_ino
    assert stat.S_IMODE(os.stat(repo / "t.bin").st_mode) & stat.S_IWUSR


def test_failure_keeps_content_in_git(repo: Path) -> None:
    objects = repo / ".git" / "annex" / "objects"
    objects.rmdir()
    objects.write_text("in the way\n")  # ingest must fail
    (repo / "big.bin").write_bytes(BIG)
    p = run(["git", "add", "big.bin"], repo)
    assert cat(repo, "big.bin") == BIG
    assert "could not annex" in p.stderr


def test_pointer_input_passes_through(repo: Path) -> None:
    pointer = format_pointer(key_of(b"elsewhere\n", "x.txt"))
    (repo / "x.txt").write_bytes(pointer)
    git(repo, "add", "x.txt")
    assert cat(repo, "x.txt") == pointer


def test_one_branch_commit_per_git_add(tmp_path: Path) -> None:
    top = AnnexRepo.init(tmp_path / "r").path
    git(top, "config", "annex.largefiles", "anything")
    before = git(top, "rev-list", "--count", "git-annex")
    for i in range(20):
        (top / f"f{i}.txt").write_bytes(b"content %d\n" % i)
    git(top, "add", ".")
    assert int(git(top, "rev-list", "--count", "git-annex")) == int(before) + 1
    a = AnnexRepo.open(top)
    assert all(a.uuid in a.state.locations(key_of(b"content %d\n" % i, "x.txt")) for i in range(20))


# --- AnnexFilter in process ---------------------------------------------------------


def test_filter_in_process(tmp_path: Path) -> None:
    a = AnnexRepo.init(tmp_path / "r")
    git(a.path, "config", "annex.largefiles", "anything")
    f = AnnexFilter(AnnexRepo.open(a.path))
    out = f.clean("d/x.txt", [MEDIUM[:5], MEDIUM[5:]])
    key = key_of(MEDIUM, "x.txt")
    assert out.outcome is Outcome.POINTER and b"".join(out.chunks()) == format_pointer(key)
    again = f.clean("d/x.txt", [MEDIUM])  # content already present
    assert b"".join(again.chunks()) == format_pointer(key)
    sm = f.smudge("d/x.txt", [format_pointer(key)])
    assert sm.outcome is Outcome.OBJECT and b"".join(sm.chunks()) == MEDIUM
    sm.close()
    plain = f.smudge("y", [b"not a pointer"])
    assert plain.outcome is Outcome.ORIGINAL and b"".join(plain.chunks()) == b"not a pointer"
    f.finish()
    assert a.uuid in AnnexRepo.open(a.path).state.locations(key)


def test_unsupported_repository_gets_no_new_annexed_files(tmp_path: Path) -> None:
    top = AnnexRepo.init(tmp_path / "r").path
    git(top, "config", "annex.largefiles", "anything")
    git(top, "config", "annex.version", "8")  # spec 13.9: read, but never write
    (top / "m.txt").write_bytes(MEDIUM)
    p = run(["git", "add", "m.txt"], top)
    assert cat(top, "m.txt") == MEDIUM
    assert "not annexing" in p.stderr
