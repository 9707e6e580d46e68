"""Paired devices that meet only through XMPP (real prosody with TLS on loopback):
git history and annexed content travel as the P2P protocol over the Noise
session over XEP-0047 (xmpp-sync.md C.3, C.4; issue 12).

Each device has its own config dir, identity and keyring entries; records are
made through ``PairedStore``.  The serving device runs its daemon (``Core``)
on a loop in a thread; the other runs ``annexsync sync --content`` in-process
(its own short-lived visitor connection).  The repositories have no other
remote: what arrives came through XMPP.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.ops.sync import ANNEX_BRANCH
from tests.conftest import annex, git
from tests.integration.paired_helpers import (
    Device,
    cli,
    device,
    has_content,
    head_files,
    make_repo,
    pair,
    start,
    stop,
    wait,
)
from tests.xmpp_server import Prosody

pytestmark = [pytest.mark.interop, pytest.mark.timeout(110)]


def _commit_file(repo: Path, name: str, data: bytes) -> None:
    """Add and commit ``name`` (a running daemon may commit it first)."""
    (repo / name).write_bytes(data)
    annex(repo, "add", "-q", name)
    git(repo, "commit", "-q", "-m", f"add {name}", check=False)
    wait(lambda: name in head_files(repo), 10, f"{name} committed")


def _arrived(receiver: Device, name: str, data: bytes) -> None:
    wait(lambda: name in head_files(receiver.repo), 20, f"{receiver.name} merged {name}")
    assert (receiver.repo / name).read_bytes() == data
    annex(receiver.repo, "fsck", "--quiet", name)


def _first_commit(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "a", "laptop")
    (repo / "README").write_text("shared\n")
    git(repo, "add", "README")
    git(repo, "commit", "-q", "-m", "start")
    return repo


def test_own_devices_sync_a_commit_and_5mb_through_xmpp_alone(
        tmp_path: Path, xmpp_server: Prosody, real_keyring: object,
        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    alice = xmpp_server.register("alice", "pw")
    a_repo = _first_commit(tmp_path)
    a = device(tmp_path, "laptop", xmpp_server, alice, a_repo)
    b = device(tmp_path, "desk", xmpp_server, alice, make_repo(tmp_path / "b", "desk", a_repo))
    pair(a, b)
    try:
        start(b)
        big = os.urandom(5_000_000)
        _commit_file(a.repo, "big.bin", big)
        assert cli(a, monkeypatch, "sync", "--content") == 0
        _arrived(b, "big.bin", big)
        prefix = f"refs/synced/{a.uuid}/{a.ident.device_id}/"
        refs = git(b.repo, "for-each-ref", "--format=%(refname)", "refs/synced").split()
        assert sorted(refs) == [prefix + "git-annex", prefix + "main"]  # per sender, only
        assert git(b.repo, "branch", "--list", "synced/*").strip() == ""
        assert b.core is not None  # B's status: the sessions A opened, with their bytes
        done = [x for x in b.core.status.sessions if x.state == "done"]
        assert {x.device for x in done} == {"laptop"}
        assert {x.direction for x in done} == {"incoming"}
        assert sum(x.bytes_in for x in done) > 5_000_000

        start(a)  # B -> A: now A serves
        small = os.urandom(30_000)
        _commit_file(b.repo, "small.bin", small)
        assert cli(b, monkeypatch, "sync", "--content") == 0
        _arrived(a, "small.bin", small)
        for d in (a, b):  # both git-annex branches still read as git-annex's
            annex(d.repo, "info", "--fast")
    finally:
        stop(a)
        stop(b)


def test_a_friends_device_on_another_account(
        tmp_path: Path, xmpp_server: Prosody, real_keyring: object,
        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    alice, bob = xmpp_server.register("alice", "pw"), xmpp_server.register("bob", "pw")
    a_repo = _first_commit(tmp_path)
    a = device(tmp_path, "laptop", xmpp_server, alice, a_repo)
    c = device(tmp_path, "friend", xmpp_server, bob, make_repo(tmp_path / "c", "friend", a_repo))
    pair(a, c)
    try:
        start(a)  # the daemons subscribe to each other's accounts (C.1)
        start(c)
        data = os.urandom(200_000)
        _commit_file(a.repo, "photo.jpg", data)
        assert cli(a, monkeypatch, "sync", "--content") == 0
        _arrived(c, "photo.jpg", data)
        _commit_file(c.repo, "reply.txt", b"thanks\n" * 1000)
        assert cli(c, monkeypatch, "sync", "--content") == 0
        _arrived(a, "reply.txt", b"thanks\n" * 1000)
        assert git(a.repo, "rev-parse", ANNEX_BRANCH)
    finally:
        stop(a)
        stop(c)



def test_the_daemons_sync_with_an_online_paired_device_by_themselves(
        tmp_path: Path, xmpp_server: Prosody, real_keyring: object) -> None:  # fmt: skip
    """No command runs: A's daemon commits a new file; with B online, A's worker
    pushes to it (per-sender refs, merged by B at once) and its transfer queue
    sends the content; B's worker fetches from A as from any remote."""
    alice = xmpp_server.register("alice", "pw")
    a_repo = _first_commit(tmp_path)
    a = device(tmp_path, "laptop", xmpp_server, alice, a_repo)
    b = device(tmp_path, "desk", xmpp_server, alice, make_repo(tmp_path / "b", "desk", a_repo))
    pair(a, b)
    try:
        start(a)
        start(b)
        data = os.urandom(300_000)
        (a.repo / "new.bin").write_bytes(data)  # the daemon adds and commits it
        # the content arrives first, then B's worker fills the unlocked file: wait
        # for the file as a person sees it, not for the object alone
        wait(lambda: "new.bin" in head_files(b.repo) and has_content(b.repo, "new.bin")
             and (b.repo / "new.bin").read_bytes() == data, 40,
             "the new file and its content on B")
        annex(b.repo, "fsck", "--quiet", "new.bin")
        assert b.core is not None and a.core is not None
        (repo_b,) = b.core.status.repos
        assert [r.kind for r in repo_b.remotes] == ["paired"]  # while A is online
        # A's status shows the session that carried the content, with its bytes: its
        # own upload to B (outgoing) or B's download from it (incoming), whichever won
        core_a = a.core
        wait(lambda: any(x.device == "desk" and x.bytes_out > 300_000
                         for x in core_a.status.sessions), 10, "the session in A's status")
    finally:
        stop(a)
        stop(b)


def test_offline_and_unpaired_devices_are_said_in_words(
        tmp_path: Path, xmpp_server: Prosody, real_keyring: object,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    import uuid

    alice = xmpp_server.register("alice", "pw")
    a_repo = _first_commit(tmp_path)
    _commit_file(a_repo, "f.bin", b"x" * 5000)
    a = device(tmp_path, "laptop", xmpp_server, alice, a_repo)
    b = device(tmp_path, "desk", xmpp_server, alice, make_repo(tmp_path / "b", "desk", a_repo))
    pair(a, b)
    assert cli(a, monkeypatch, "copy", "--to", "desk", "f.bin") == 1
    assert "desk is offline: not seen on XMPP within 5 s" in capsys.readouterr().out
    git(a.repo, "remote", "add", "ghost", f"annexsync::paired:{uuid.uuid4()}")
    git(a.repo, "config", "remote.ghost.annex-uuid", str(uuid.uuid4()))
    assert cli(a, monkeypatch, "copy", "--to", "ghost", "f.bin") == 1
    assert "is not paired with this device" in capsys.readouterr().err
    assert cli(a, monkeypatch, "sync", "desk") == 1
    assert "desk is offline" in capsys.readouterr().err


@pytest.mark.asyncio
async def test_scheduler_entry_points_push_to_and_pull_from_a_device(
        tmp_path: Path, xmpp_server: Prosody, real_keyring: object,
        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """``push_to_device``/``pull_from_device`` (for the push scheduler): B serves,
    A (no daemon) pushes a commit to it, then pulls B's; an offline device is
    an unreachable outcome in words.  Then copy, drop and get over XMPP."""
    import asyncio

    from core.devices.jobs import pull_from_device, push_to_device
    from core.devices.remote import use_config_dir
    from core.devices.sessions import outgoing

    alice = xmpp_server.register("alice", "pw")
    a_repo = _first_commit(tmp_path)
    a = device(tmp_path, "laptop", xmpp_server, alice, a_repo)
    b = device(tmp_path, "desk", xmpp_server, alice, make_repo(tmp_path / "b", "desk", a_repo))
    pair(a, b)
    use_config_dir(a.repo, a.cfg)
    out = await push_to_device(str(a.repo), b.ident.device_id)
    assert not out.ok and out.unreachable and "desk is offline" in (out.error or "")
    await asyncio.to_thread(start, b)
    try:
        (a.repo / "a.txt").write_text("from a\n")
        git(a.repo, "add", "a.txt")
        git(a.repo, "commit", "-q", "-m", "a")
        assert (await push_to_device(str(a.repo), b.ident.device_id)).ok
        await asyncio.to_thread(wait, lambda: "a.txt" in head_files(b.repo), 10, "merged")
        (b.repo / "b.txt").write_text("from b\n")
        git(b.repo, "add", "b.txt")
        git(b.repo, "commit", "-q", "-m", "b", check=False)
        await asyncio.to_thread(wait, lambda: "b.txt" in head_files(b.repo), 10, "b committed")
        assert (await pull_from_device(str(a.repo), b.ident.device_id)).ok
        assert {"a.txt", "b.txt"} <= head_files(a.repo)
        # copy, drop (the copy on B proven by LOCKCONTENT through XMPP) and get again
        data = os.urandom(100_000)
        _commit_file(a.repo, "c.bin", data)
        assert cli(a, monkeypatch, "copy", "--to", "desk", "c.bin") == 0
        last = outgoing(a.ident.device_id)[-1].snapshot()  # what A's daemon would show
        assert (last.device, last.direction, last.state) == ("desk", "outgoing", "done")
        assert last.bytes_out > 100_000
        assert cli(a, monkeypatch, "drop", "c.bin") == 0
        assert not has_content(a.repo, "c.bin")
        assert cli(a, monkeypatch, "get", "c.bin") == 0
        assert (a.repo / "c.bin").read_bytes() == data
        annex(a.repo, "fsck", "--quiet", "c.bin")
    finally:
        await asyncio.to_thread(stop, b)
