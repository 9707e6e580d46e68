"""Our get/copy/drop against a real ``git-annex-shell p2pstdio`` over fake ssh (spec 12.1).

``core.ops.transfer`` reaches the remote through ``open_remote`` ->
``P2PRemote``; the fake ssh of ``test_p2p_support`` runs the real
git-annex-shell locally, and can trace what we send or cut the connection.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.ops.add import add
from core.ops.transfer import copy, drop, get
from core.p2p.remote import P2PRemote, earliest_lock_expiry
from core.remotes import find_remote, open_remote
from core.repo.key import Key
from core.repo.repository import AnnexRepo
from tests.conftest import annex, git, run
from tests.integration.test_p2p_support import content_of, install_fake_ssh

pytestmark = pytest.mark.interop

BIG = os.urandom(400_000)


@dataclass
class Setup:
    server: Path
    server_uuid: str
    clone: AnnexRepo
    trace: Path
    tmp: Path


def _ssh_remote(repo: Path, name: str, target: Path, uuid: str) -> None:
    git(repo, "config", f"remote.{name}.url", f"ssh://localhost{target}")
    git(repo, "config", f"remote.{name}.annex-shell", "git-annex-shell")
    git(repo, "config", f"remote.{name}.annex-uuid", uuid)


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    install_fake_ssh(tmp_path, monkeypatch)
    server = tmp_path / "server"
    server.mkdir()
    git(server, "init", "-q")
    annex(server, "init", "-q", "real server")
    (server / "big.bin").write_bytes(BIG)
    (server / "a.txt").write_bytes(b"hello p2p\n")
    annex(server, "add", "-q", "big.bin", "a.txt")
    git(server, "commit", "-q", "-m", "files")
    uuid = git(server, "config", "annex.uuid").strip()
    git(tmp_path, "clone", "-q", str(server), str(tmp_path / "clone"))
    _ssh_remote(tmp_path / "clone", "origin", server, uuid)
    clone = AnnexRepo.open(tmp_path / "clone")
    os.chdir(clone.path)
    trace = tmp_path / "trace"
    monkeypatch.setenv("P2P_TRACE_INPUT", str(trace))
    yield Setup(server, uuid, clone, trace, tmp_path)
    clone.close()


def ok(outcomes: list) -> list:  # type: ignore[type-arg]
    assert all(o.ok for o in outcomes), [o.note for o in outcomes]
    return outcomes


def _key(repo: Path, path: str) -> Key:
    return Key.parse(annex(repo, "lookupkey", path).strip())


def test_remote_kind_is_p2p(setup: Setup) -> None:
    remote = open_remote(setup.clone, find_remote(setup.clone, "origin"))
    assert isinstance(remote, P2PRemote)
    try:
        assert remote.check_present(_key(setup.server, "a.txt"))
        assert not remote.check_present(Key("SHA256E", "0" * 64, size=5))
    finally:
        remote.close()


def test_get_copy_drop_from(setup: Setup) -> None:
    c = setup.clone
    ok(get(c, ["big.bin", "a.txt"], source="origin"))
    assert (c.path / "big.bin").read_bytes() == BIG
    annex(c.path, "fsck", "-q", "big.bin")

    (c.path / "new.txt").write_bytes(b"from annexsync\n")
    add(c, ["new.txt"])
    git(c.path, "commit", "-q", "-m", "new")
    key = _key(c.path, "new.txt")
    ok(copy(c, ["new.txt"], to="origin"))
    assert content_of(setup.server, str(key)) == b"from annexsync\n"
    assert setup.server_uuid in c.state.locations(key)
    sent = setup.trace.read_bytes()
    assert b"VERSION 4\n" in sent and b"PUT  " + str(key).encode() in sent

    ok(drop(c, ["new.txt"], source="origin"))
    assert content_of(setup.server, str(key)) is None
    assert setup.server_uuid not in c.state.locations(key)
    assert b"REMOVE " + str(key).encode() in setup.trace.read_bytes()


def test_local_drop_locks_remote_copy(setup: Setup) -> None:
    c = setup.clone
    ok(get(c, ["a.txt"], source="origin"))
    key = _key(c.path, "a.txt")
    ok(drop(c, ["a.txt"]))
    assert not c.objects.has(key)
    sent = setup.trace.read_bytes()
    assert b"LOCKCONTENT " + str(key).encode() + b"\nUNLOCKCONTENT\n" in sent
    assert earliest_lock_expiry() is None
    # The lock left nothing behind: real git-annex may drop it now.
    annex(setup.server, "drop", "--force", "a.txt")


def test_drop_from_relying_on_lock_uses_remove_before(setup: Setup) -> None:
    c, tmp = setup.clone, setup.tmp
    other = tmp / "other"
    git(tmp, "clone", "-q", str(setup.server), str(other))
    annex(other, "init", "-q", "other")
    annex(other, "get", "-q", "a.txt")
    other_uuid = git(other, "config", "annex.uuid").strip()
    _ssh_remote(c.path, "other", other, other_uuid)
    key = _key(c.path, "a.txt")
    c.state.set_location(key, other_uuid, True)
    c.branch.commit()
    assert not c.objects.has(key)
    ok(drop(c, ["a.txt"], source="origin"))
    assert content_of(setup.server, str(key)) is None
    assert content_of(other, str(key)) is not None
    sent = setup.trace.read_bytes()
    assert b"LOCKCONTENT " + str(key).encode() in sent  # on other
    assert b"GETTIMESTAMP\nREMOVE-BEFORE " in sent  # on origin


def test_get_resumes_after_cut(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    c = setup.clone
    key = _key(c.path, "big.bin")
    monkeypatch.setenv("P2P_CUT_OUTPUT", "150000")
    failed = get(c, ["big.bin"], source="origin")
    assert not failed[0].ok, failed
    assert "closed the connection" in failed[0].note
    partial = c.gitdir / "annex" / "tmp" / key.file_name()
    have = partial.stat().st_size
    assert 100_000 < have < 150_000
    monkeypatch.delenv("P2P_CUT_OUTPUT")
    ok(get(c, ["big.bin"], source="origin"))
    assert (c.path / "big.bin").read_bytes() == BIG
    assert f"GET {have} big.bin".encode() in setup.trace.read_bytes() or \
        f"GET {have}  {key}".encode() in setup.trace.read_bytes()


def test_put_resumes_after_cut(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    c = setup.clone
    data = os.urandom(300_000)
    (c.path / "up.bin").write_bytes(data)
    add(c, ["up.bin"])
    git(c.path, "commit", "-q", "-m", "up")
    key = _key(c.path, "up.bin")
    monkeypatch.delenv("P2P_TRACE_INPUT")
    monkeypatch.setenv("P2P_CUT_INPUT", "120000")
    assert not copy(c, ["up.bin"], to="origin")[0].ok
    partial = setup.server / ".git" / "annex" / "tmp" / key.file_name()
    have = partial.stat().st_size
    assert 100_000 < have < 120_000
    monkeypatch.delenv("P2P_CUT_INPUT")
    monkeypatch.setenv("P2P_TRACE_INPUT", str(setup.trace))
    ok(copy(c, ["up.bin"], to="origin"))
    assert content_of(setup.server, str(key)) == data
    assert f"DATA {len(data) - have}\n".encode() in setup.trace.read_bytes()


def test_server_error_fails_one_file_only(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    c = setup.clone
    for name in ("r1.txt", "r2.txt"):
        (c.path / name).write_bytes(name.encode())
    add(c, ["r1.txt", "r2.txt"])
    git(c.path, "commit", "-q", "-m", "r")
    monkeypatch.setenv("GIT_ANNEX_SHELL_READONLY", "1")
    outcomes = copy(c, ["r1.txt", "r2.txt"], to="origin")
    assert [o.ok for o in outcomes] == [False, False]
    assert "read-only" in outcomes[0].note and "read-only" in outcomes[1].note
    monkeypatch.delenv("GIT_ANNEX_SHELL_READONLY")
    ok(copy(c, ["r1.txt"], to="origin"))


def test_cli_get_over_p2p(setup: Setup) -> None:
    out = run(["annexsync", "get", "a.txt", "--from", "origin"], setup.clone.path)
    assert "ok" in out.stdout
    assert (setup.clone.path / "a.txt").read_bytes() == b"hello p2p\n"
