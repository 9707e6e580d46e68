"""whereis as git-annex prints it: remote labels, byte names, a reader that leaves.

Spec: repository-format.md 5.4 (``description [remotename]``).  The oracle is
``git annex whereis`` on the same repository.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from core.repo.repository import AnnexRepo
from tests.conftest import annex, git, run

pytestmark = pytest.mark.interop


def cli(cwd: Path, *args: str) -> bytes:
    """annexsync's output as bytes (it prints names as their bytes)."""
    return subprocess.run(["annexsync", *args], cwd=cwd, capture_output=True, check=True,
                          timeout=120).stdout  # fmt: skip


def whereis_text(cmd: list[str], cwd: Path) -> list[str]:
    out = run([*cmd, "whereis", "s.dat"], cwd).stdout
    return [line.rstrip() for line in out.splitlines()]


def json_descriptions(cmd: list[str], cwd: Path) -> list[str]:
    out = json.loads(run([*cmd, "whereis", "--json", "s.dat"], cwd).stdout)
    return [w["description"] for w in out["whereis"]]


def test_labels_match_git_annex(tmp_path: Path) -> None:
    """Special remotes named as described show ``[name]``; an undescribed here is ``here``."""
    origin, clone = tmp_path / "origin", tmp_path / "clone"
    origin.mkdir()
    git(origin, "init", "-q")
    annex(origin, "init", "-q", "the origin")
    (origin / "s.dat").write_bytes(b"special\n")
    annex(origin, "add", "-q", "s.dat")
    git(origin, "commit", "-q", "-m", "s")
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    annex(clone, "init", "-q", "")
    for name, described in (("dr", None), ("dr2", "my disk")):
        (tmp_path / name).mkdir()
        annex(clone, "initremote", "-q", name, "type=directory",
              f"directory={tmp_path / name}", "encryption=none")  # fmt: skip
        if described:
            annex(clone, "describe", "-q", name, described)
        annex(clone, "copy", "-q", "--from", "origin", "--to", name, "s.dat")
    annex(clone, "get", "-q", "s.dat")
    annex(clone, "describe", "-q", "origin", "origin")  # a git remote named as described
    annex(clone, "describe", "-q", "here", "")
    theirs = whereis_text(["git", "annex"], clone)
    assert "[dr]" in "\n".join(theirs) and "[origin]" in "\n".join(theirs)
    assert whereis_text(["annexsync"], clone) == theirs
    assert json_descriptions(["annexsync"], clone) == json_descriptions(["git", "annex"], clone)


def test_byte_names_and_a_reader_that_leaves(tmp_path: Path) -> None:
    """A latin-1 name syncs and shows; ``whereis --json | head -1`` ends quietly."""
    a, b = tmp_path / "a", tmp_path / "b"
    AnnexRepo.init(a, "a")
    name = os.fsdecode(b"caf\xe9.txt")
    (a / name).write_bytes(b"latin-1 name\n")
    (a / "many").mkdir()
    for i in range(300):  # more than a pipe buffer of JSON lines
        (a / "many" / f"f{i:03}.bin").write_bytes(b"%d\n" % i)
    cli(a, "add", ".")
    cli(a, "sync", "-m", "first")
    git(tmp_path, "clone", "-q", str(a), str(b))
    AnnexRepo.init(b, "b")
    cli(b, "sync", "--content")
    assert (b / name).read_bytes() == b"latin-1 name\n"
    annex(b, "fsck", "-q")

    first = json.loads(cli(b, "whereis", "--json").splitlines()[0])
    assert first["file"] == "caf\ufffd.txt"  # as git-annex's JSON shows it
    assert len(first["whereis"]) == 2

    proc = subprocess.Popen(["annexsync", "whereis", "--json"], cwd=b,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err
    assert proc.returncode == 141
