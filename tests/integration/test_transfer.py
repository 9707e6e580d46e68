"""get / copy / drop between local repositories, and drop safety (spec 9, 12.10)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.errors import CoreError
from core.ops.add import add
from core.ops.query import whereis
from core.ops.transfer import copy, drop, get
from core.repo.repository import AnnexRepo
from core.repo.state import Trust
from tests.conftest import annex, git, run

BIG = os.urandom(300_000)


def origin_and_clone(tmp_path: Path) -> tuple[AnnexRepo, AnnexRepo]:
    origin = AnnexRepo.init(tmp_path / "origin", "origin repo")
    (origin.path / "big.bin").write_bytes(BIG)
    (origin.path / "d").mkdir()
    (origin.path / "d" / "small.txt").write_bytes(b"small\n")
    os.chdir(origin.path)
    add(origin, ["."])
    git(origin.path, "commit", "-q", "-m", "files")
    git(tmp_path, "clone", "-q", str(origin.path), str(tmp_path / "clone"))
    clone = AnnexRepo.open(tmp_path / "clone")  # auto-initialises, as git-annex does
    os.chdir(clone.path)
    return AnnexRepo.open(origin.path), clone


def ok(outcomes: list) -> list:  # type: ignore[type-arg]
    assert all(o.ok for o in outcomes), [o.note for o in outcomes]
    return outcomes


@pytest.mark.interop
def test_get_verifies_and_records(tmp_path: Path) -> None:
    origin, clone = origin_and_clone(tmp_path)
    ok(get(clone, ["."]))
    assert (clone.path / "big.bin").read_bytes() == BIG
    w = {x.path: {c.uuid for c in x.copies} for x in whereis(clone)}
    assert w["big.bin"] == {origin.uuid, clone.uuid}
    # real git-annex agrees, and fsck passes in the clone
    annex(clone.path, "fsck", "-q")
    assert clone.uuid in annex(clone.path, "whereis", "big.bin")


def test_corrupt_remote_content_not_stored(tmp_path: Path) -> None:
    origin, clone = origin_and_clone(tmp_path)
    obj = (origin.path / "big.bin").resolve()
    obj.parent.chmod(0o755)
    obj.chmod(0o644)
    obj.write_bytes(b"x" * len(BIG))
    outcomes = get(clone, ["big.bin"])
    assert not outcomes[0].ok and "did not verify" in outcomes[0].note
    assert not clone.objects.has(outcomes[0].key)
    assert not list((clone.gitdir / "annex" / "tmp").glob("*"))


@pytest.mark.interop
def test_drop_needs_verified_copies(tmp_path: Path) -> None:
    origin, clone = origin_and_clone(tmp_path)
    ok(get(clone, ["."]))
    clone.state.set_numcopies(2)
    clone.branch.commit()
    refused = drop(clone, ["big.bin"])
    assert not refused[0].ok and "1 out of 2" in refused[0].note
    assert clone.objects.has(refused[0].key)
    # git-annex refuses the same drop
    assert run(["git", "annex", "drop", "big.bin"], clone.path, check=False).returncode != 0
    assert (clone.path / "big.bin").read_bytes() == BIG
    clone.state.set_numcopies(1)
    clone.branch.commit()
    ok(drop(clone, ["big.bin"]))
    assert not clone.objects.has(refused[0].key)
    assert origin.objects.has(refused[0].key)


def test_untrusted_copies_do_not_count_trusted_do(tmp_path: Path) -> None:
    origin, clone = origin_and_clone(tmp_path)
    ok(get(clone, ["."]))
    clone.state.set_trust(origin.uuid, Trust.UNTRUSTED)
    clone.branch.commit()
    assert not drop(clone, ["big.bin"])[0].ok
    # trusted counts on the log's word, even when the remote cannot be reached
    clone.state.set_trust(origin.uuid, Trust.TRUSTED)
    clone.branch.commit()
    os.rename(origin.path, tmp_path / "gone")
    ok(drop(clone, ["big.bin"]))


def test_last_copy_never_dropped(tmp_path: Path) -> None:
    origin, clone = origin_and_clone(tmp_path)
    ok(get(clone, ["."]))
    ok(drop(clone, ["big.bin"]))
    os.chdir(origin.path)
    out = drop(AnnexRepo.open(origin.path), ["big.bin"])
    assert not out[0].ok
    assert AnnexRepo.open(origin.path).objects.has(out[0].key)


def test_copy_to_and_drop_from_remote(tmp_path: Path) -> None:
    origin, clone = origin_and_clone(tmp_path)
    (clone.path / "new.dat").write_bytes(b"made in the clone\n")
    add(clone, ["new.dat"])
    git(clone.path, "commit", "-q", "-m", "new")
    ok(copy(clone, ["new.dat"], to="origin"))
    key = next(w.key for w in whereis(clone) if w.path == "new.dat")
    assert AnnexRepo.open(origin.path).objects.has(key)
    ok(drop(clone, ["new.dat"], source="origin"))
    assert not AnnexRepo.open(origin.path).objects.has(key)
    # and now the clone holds the only copy: dropping it is refused
    assert not drop(clone, ["new.dat"])[0].ok


@pytest.mark.interop
def test_required_content_blocks_drop(tmp_path: Path) -> None:
    origin, clone = origin_and_clone(tmp_path)
    ok(get(clone, ["."]))
    annex(clone.path, "required", "here", "include=*.bin")
    clone = AnnexRepo.open(clone.path)
    out = drop(clone, ["big.bin"])
    assert not out[0].ok and "required" in out[0].note


def test_copy_needs_a_direction(tmp_path: Path) -> None:
    _, clone = origin_and_clone(tmp_path)
    with pytest.raises(CoreError):
        copy(clone, ["."])
