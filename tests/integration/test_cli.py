"""The annexsync command line end to end, against real git and git-annex."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import annex, git, run


def cli(cwd: Path, *args: str, check: bool = True) -> str:
    return run(["annexsync", *args], cwd, check=check).stdout


@pytest.mark.interop
def test_two_repositories_sync_content(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    cli(a, "init", "laptop a")
    (a / "photo.jpg").write_bytes(os.urandom(200_000))
    (a / "notes.txt").write_bytes(b"notes\n")
    out = cli(a, "add", ".")
    assert "add photo.jpg (annex) ok" in out
    git(a, "commit", "-q", "-m", "first")
    git(tmp_path, "clone", "-q", str(a), str(b))
    cli(b, "init", "laptop b")
    cli(b, "sync", "--content")
    assert (b / "photo.jpg").read_bytes() == (a / "photo.jpg").read_bytes()

    (b / "from-b.bin").write_bytes(os.urandom(50_000))
    cli(b, "add", "from-b.bin")
    cli(b, "sync", "--content")
    cli(a, "sync")
    assert (a / "from-b.bin").read_bytes() == (b / "from-b.bin").read_bytes()

    where = [json.loads(line) for line in cli(a, "whereis", "--json").splitlines()]
    a_uuid = git(a, "config", "annex.uuid").strip()
    b_uuid = git(b, "config", "annex.uuid").strip()
    for w in where:
        assert {c["uuid"] for c in w["whereis"]} == {a_uuid, b_uuid}, w["file"]
    # real git-annex agrees on both sides
    theirs = [json.loads(line) for line in annex(a, "whereis", "--json").splitlines()]
    assert {w["file"]: sorted(c["uuid"] for c in w["whereis"]) for w in theirs} == {
        w["file"]: sorted(c["uuid"] for c in w["whereis"]) for w in where
    }


def test_drop_refusal_exit_code_and_message(tmp_path: Path) -> None:
    a = tmp_path / "a"
    a.mkdir()
    cli(a, "init")
    (a / "only.bin").write_bytes(b"only copy\n")
    cli(a, "add", "only.bin")
    p = run(["annexsync", "drop", "only.bin"], a, check=False)
    assert p.returncode == 1
    assert "could only verify the existence of 0 out of 1 necessary copies" in p.stdout
    assert (a / "only.bin").read_bytes() == b"only copy\n"


def test_info_json_and_errors(tmp_path: Path) -> None:
    a = tmp_path / "a"
    a.mkdir()
    p = run(["annexsync", "info"], a, check=False)
    assert p.returncode == 1 and "not a git" in p.stderr
    cli(a, "init", "desc here")
    data = json.loads(cli(a, "info", "--json"))
    assert [r["description"] for r in data["semitrusted repositories"] if r["here"]] == ["desc here"]
