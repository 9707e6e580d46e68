"""The add rules against real git-annex: the same tree, added by each, gives the same index.

Spec: repository-format.md 3.3 (the clean filter), 3.6 (dotfiles), 11
(annex.largefiles: git config, then gitattributes, then config.log).  The
oracle is ``git ls-files -s`` after ``git annex add`` (or ``git add`` through
git-annex's own filter) on an identical tree: modes and blob ids say which
files went to git, which were annexed, and under which key.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from core.repo.repository import AnnexRepo
from tests.conftest import annex, git

pytestmark = pytest.mark.interop

LATIN1 = os.fsdecode(b"caf\xe9.txt")  # not UTF-8: git and git-annex keep the bytes

TREE: dict[str, bytes] = {
    ".gitattributes": b"*.md annex.largefiles=nothing\n*.bin annex.backend=MD5E\n",
    "sub/.gitattributes": b"*.txt annex.largefiles=largerthan=3b\n",
    "notes.md": b"kept in git by the attribute\n",
    "x.bin": b"an MD5E key by the attribute\n",
    "plain.dat": b"annexed, default backend\n",
    LATIN1: b"a latin-1 name\n",
    f"sub/{LATIN1}": b"annexed: larger than 3 bytes\n",
    "sub/big.txt": b"annexed as well\n",
    "sub/small.txt": b"ab",
    "sub/.hidden": b"a dotfile goes to git\n",
    ".bashrc": b"so does this one\n",
    "dir with space/y.bin": b"nested, MD5E\n",
}

# (name, git config pairs, `git annex config --set` pairs)
SETUPS = [
    ("attributes only", [], []),
    ("git config beats attributes", [("annex.largefiles", "anything")], []),
    ("attributes beat config.log", [], [("annex.largefiles", "largerthan=1000b")]),
    ("attribute backend beats git config", [("annex.backend", "SHA1")], []),
]


def write_tree(top: Path, leave_out: tuple[str, ...] = ()) -> None:
    for rel, data in TREE.items():
        if rel in leave_out:
            continue
        path = top / os.fsencode(rel).decode("utf-8", "surrogateescape")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def run_bytes(cmd: list[str], cwd: Path) -> bytes:
    """stdout as bytes: names that are not UTF-8 stay as they are."""
    return subprocess.run(cmd, cwd=cwd, capture_output=True, check=True, timeout=60).stdout


def ls_files(top: Path) -> bytes:
    return run_bytes(["git", "ls-files", "-s", "-z"], top)


def configure(top: Path, git_config: list[tuple[str, str]], log: list[tuple[str, str]]) -> None:
    for name, value in git_config:
        git(top, "config", name, value)
    for name, value in log:
        annex(top, "config", "--set", name, value)


@pytest.mark.parametrize(("what", "git_config", "log"), SETUPS, ids=[s[0] for s in SETUPS])
def test_add_puts_files_where_git_annex_add_does(
    tmp_path: Path, what: str, git_config: list[tuple[str, str]], log: list[tuple[str, str]]
) -> None:
    theirs, ours = tmp_path / "theirs", tmp_path / "ours"
    for top in (theirs, ours):
        top.mkdir()
        git(top, "init", "-q")
        annex(top, "init", "-q", top.name)
        configure(top, git_config, log)
        write_tree(top)
    annex(theirs, "add", ".")
    out = run_bytes(["annexsync", "add", "."], ours)
    assert b"add caf\xe9.txt (" in out  # printed as its bytes
    expected = ls_files(theirs)
    assert expected.count(b"120000 ") >= 2  # the tree exercises both outcomes
    assert ls_files(ours) == expected, what
    annex(ours, "fsck", "-q")


@pytest.mark.parametrize(("what", "git_config", "log"), SETUPS, ids=[s[0] for s in SETUPS])
def test_git_add_filter_decides_as_git_annex_filter(
    tmp_path: Path, what: str, git_config: list[tuple[str, str]], log: list[tuple[str, str]]
) -> None:
    """``git add`` through each filter: the attributes decide alike (3.3).

    The latin-1 names are left out: git-annex 10.20261026's own
    filter-process mangles them when it annexes one ("cp: cannot stat 'sub/caf.txt'", "failed to
    link to annex") and lets git store the file; ours annexes it (checked
    by ``test_git_add_annexes_a_latin1_name``).
    """
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    git(theirs, "init", "-q")
    annex(theirs, "init", "-q", "theirs")
    ours = AnnexRepo.init(tmp_path / "ours", "ours").path  # our filter configured
    for top in (theirs, ours):
        configure(top, git_config, log)
        write_tree(top, leave_out=(LATIN1, f"sub/{LATIN1}"))
        git(top, "add", ".")
    expected = ls_files(theirs)
    assert ls_files(ours) == expected, what


def test_git_add_annexes_a_latin1_name(tmp_path: Path) -> None:
    """Our filter takes the name as the bytes git gives; git-annex reads the result."""
    ours = AnnexRepo.init(tmp_path / "ours", "ours").path
    write_tree(ours)
    git(ours, "add", ".")
    listing = ls_files(ours)
    assert b'100644 ' in listing
    pointer = run_bytes(["git", "cat-file", "blob", b":sub/caf\xe9.txt".decode(
        "utf-8", "surrogateescape")], ours)
    assert pointer.startswith(b"/annex/objects/SHA256E-s29--")
    git(ours, "commit", "-q", "-m", "latin-1")
    annex(ours, "fsck", "-q")


def test_unlocked_latin1_name_is_filled_by_get(tmp_path: Path) -> None:
    """get fills an unlocked file whose name is not UTF-8 and restages it clean."""
    a, b = tmp_path / "a", tmp_path / "b"
    AnnexRepo.init(a, "a")
    git(a, "config", "annex.addunlocked", "true")
    (a / LATIN1).write_bytes(b"unlocked, latin-1\n")
    run_bytes(["annexsync", "add", "."], a)
    run_bytes(["annexsync", "sync", "-m", "one"], a)
    git(tmp_path, "clone", "-q", str(a), str(b))
    AnnexRepo.init(b, "b")
    run_bytes(["annexsync", "sync"], b)
    run_bytes(["annexsync", "get", LATIN1], b)
    assert (b / LATIN1).read_bytes() == b"unlocked, latin-1\n"
    assert run_bytes(["git", "status", "--porcelain"], b) == b""
    annex(b, "fsck", "-q")
