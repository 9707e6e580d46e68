"""A real git-annex client against our server over (fake) ssh (spec 12.2).

The client's ``remote.origin.annex-shell`` is ``annexsync``, so git-annex
runs ``annexsync 'configlist' DIR`` and ``annexsync 'p2pstdio' DIR UUID
--uuid X`` through the fake ssh of ``test_p2p_support``.  Raw peers (our
client machine over pipes to ``annexsync p2pstdio``) cover what git-annex
will not do on purpose: corrupted payloads, a cut in the middle of DATA,
two sessions racing for a lock.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.p2p import (
    AlreadyHave,
    AuthSuccess,
    CheckPresent,
    ConnectionClosed,
    Data,
    Failure,
    Get,
    GetTimestamp,
    Invalid,
    LockContent,
    Payload,
    PayloadEnd,
    Put,
    PutFrom,
    Remove,
    RemoveBefore,
    Success,
    Timestamp,
    UnlockContent,
    Valid,
    Version,
)
from core.repo.key import Key
from core.repo.objects import THREADED_HASH_FROM
from tests.conftest import annex, git, run
from tests.integration.test_p2p_support import (
    CLIENT_UUID,
    RawPeer,
    content_of,
    install_fake_ssh,
    joined,
)

pytestmark = pytest.mark.interop


@dataclass
class Pair:
    server: Path
    client: Path
    server_uuid: str
    ssh_log: Path


@pytest.fixture
def pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pair]:
    log = install_fake_ssh(tmp_path, monkeypatch)
    server = tmp_path / "server"
    server.mkdir()
    git(server, "init", "-q")
    annex(server, "init", "-q", "server")
    (server / "a.txt").write_bytes(b"served content\n")
    annex(server, "add", "-q", "a.txt")
    git(server, "commit", "-q", "-m", "add a")
    client = tmp_path / "client"
    git(tmp_path, "clone", "-q", str(server), str(client))
    git(client, "remote", "set-url", "origin", f"ssh://localhost{server}")
    git(client, "config", "remote.origin.annex-shell", "annexsync")
    git(client, "config", "annex.sshcaching", "false")
    annex(client, "init", "-q", "client")
    uuid = git(server, "config", "annex.uuid").strip()
    yield Pair(server, client, uuid, log)


def _key(repo: Path, path: str) -> str:
    return annex(repo, "lookupkey", path).strip()


def _server_peer(p: Pair, env: dict[str, str] | None = None) -> RawPeer:
    peer = RawPeer(["annexsync", "p2pstdio", str(p.server), CLIENT_UUID], env)
    assert peer.until_our_turn() == [AuthSuccess(p.server_uuid)]
    assert peer.request(Version(4)) == [Version(4)]
    return peer


def _new_content(repo: Path, name: str, data: bytes) -> str:
    (repo / name).write_bytes(data)
    annex(repo, "add", "-q", name)
    git(repo, "commit", "-q", "-m", f"add {name}")
    return _key(repo, name)


def test_configlist_and_uuid_probe(pair: Pair) -> None:
    assert git(pair.client, "config", "remote.origin.annex-uuid").strip() == pair.server_uuid
    assert "annexsync 'configlist'" in pair.ssh_log.read_text()


def test_get_copy_drop_with_real_client(pair: Pair) -> None:
    c, s = pair.client, pair.server
    annex(c, "get", "a.txt")
    assert (c / "a.txt").read_bytes() == b"served content\n"
    annex(c, "fsck", "a.txt")
    assert "annexsync 'p2pstdio'" in pair.ssh_log.read_text()

    key = _new_content(c, "b.txt", b"to the server\n")
    annex(c, "copy", "--to", "origin", "b.txt")
    assert content_of(s, key) == b"to the server\n"
    # The server logged its own copy in its git-annex branch (spec 6.5).
    assert "here" in annex(s, "whereis", "--key", key)

    # Local drop with numcopies 1: the only other copy is locked (spec 6.2).
    out = run(["git", "annex", "drop", "--debug", "a.txt"], c).stderr
    assert "LOCKCONTENT" in out and "UNLOCKCONTENT" in out
    assert content_of(c, _key(c, "a.txt")) is None

    annex(c, "drop", "--from", "origin", "b.txt")
    assert content_of(s, key) is None
    assert "(0 copies)" in annex(s, "whereis", "--key", key, check=False)
    # Nothing left behind by the lock.
    assert not list((s / ".git" / "annex" / "objects").rglob("*.rtm"))


def test_put_payload_is_verified(pair: Pair) -> None:
    good = b"exactly these bytes"
    key = Key("SHA256E", hashlib.sha256(good).hexdigest() + ".bin", size=len(good))
    peer = _server_peer(pair)
    try:
        assert peer.request(Put(b"f.bin", key)) == [PutFrom(0)]
        bad = b"X" * len(good)
        assert peer.request(Data(len(bad)), Payload(bad), Valid()) == [Failure()]
        assert peer.request(CheckPresent(key)) == [Failure()]
        # Right bytes flagged INVALID: re-verified and kept (spec 6.5).
        assert peer.request(Put(b"", key)) == [PutFrom(0)]
        assert peer.request(Data(len(good)), Payload(good), Invalid()) == [Success()]
        assert peer.request(Put(b"", key)) == [AlreadyHave()]
    finally:
        assert peer.close() == 0
    assert content_of(pair.server, str(key)) == good
    assert not any((pair.server / ".git" / "annex" / "tmp").iterdir())


def test_big_put_read_on_a_thread_is_verified(pair: Pair) -> None:
    """A payload above ``THREADED_HASH_FROM`` goes from the pipe through the
    buffer ring (``FdReader``, ``Channel.receive_payload``, ``Incoming.write_from``): one
    flipped byte in its middle is refused with nothing kept, the right bytes
    are stored, and the requests after each payload are read as requests."""
    data = os.urandom(THREADED_HASH_FROM + 12_345)
    key = Key("SHA256E", hashlib.sha256(data).hexdigest() + ".bin", size=len(data))
    bad = bytearray(data)
    bad[len(data) // 2] ^= 1
    tmp = pair.server / ".git" / "annex" / "tmp" / key.file_name()
    peer = _server_peer(pair)
    try:
        for body, answer in ((bytes(bad), Failure()), (data, Success())):
            assert peer.request(Put(b"f.bin", key)) == [PutFrom(0)]
            peer.write(Data(len(body)))
            for i in range(0, len(body), 300_000):
                peer.write(Payload(body[i : i + 300_000]))
            assert peer.request(Valid()) == [answer]
            assert not tmp.exists()
            assert peer.request(CheckPresent(key)) == [answer]
    finally:
        assert peer.close() == 0
    assert content_of(pair.server, str(key)) == data


def test_ctrl_c_mid_payload_keeps_the_partial_and_no_lock(pair: Pair) -> None:
    """SIGINT while the payload's thread waits on the pipe: the server ends at
    once (the thread is woken, not left for the read timeout), what arrived
    stays in annex/tmp for resume, no transfer lock or info file is left, and
    nothing is stored under the key."""
    data = os.urandom(THREADED_HASH_FROM + (4 << 20))
    key = Key("SHA256E", hashlib.sha256(data).hexdigest() + ".bin", size=len(data))
    tmp = pair.server / ".git" / "annex" / "tmp" / key.file_name()
    peer = _server_peer(pair)
    assert peer.request(Put(b"f.bin", key)) == [PutFrom(0)]
    peer.write(Data(len(data)), Payload(data[: THREADED_HASH_FROM]))
    deadline = time.monotonic() + 30
    while not (tmp.exists() and tmp.stat().st_size == THREADED_HASH_FROM):
        assert time.monotonic() < deadline, "the first part never reached annex/tmp"
        time.sleep(0.05)
    started = time.monotonic()
    peer.proc.send_signal(signal.SIGINT)
    assert peer.proc.wait(30) != 0
    assert time.monotonic() - started < 4  # CLOSE_TIMEOUT (5 s) was not waited out
    transfer = pair.server / ".git" / "annex" / "transfer"
    assert not [p for p in transfer.rglob("*") if p.is_file()]
    assert tmp.stat().st_size == THREADED_HASH_FROM
    assert not list((pair.server / ".git" / "annex" / "objects").rglob(key.file_name()))


def test_put_cut_then_resumed_by_real_client(pair: Pair) -> None:
    c, s = pair.client, pair.server
    data = os.urandom(200_000)
    key = _new_content(c, "big.bin", data)
    peer = _server_peer(pair)
    assert peer.request(Put(b"big.bin", Key.parse(key))) == [PutFrom(0)]
    peer.write(Data(len(data)), Payload(data[:70_000]))
    peer.close()  # cut in the middle of DATA (spec 2.3)
    tmp = s / ".git" / "annex" / "tmp" / Key.parse(key).file_name()
    assert tmp.stat().st_size == 70_000
    # Offer-only probe: DATA 0 + INVALID keeps the partial file (spec 6.5).
    peer = _server_peer(pair)
    assert peer.request(Put(b"", Key.parse(key))) == [PutFrom(70_000)]
    assert peer.request(Data(0), Invalid()) == [Failure()]
    assert peer.close() == 0
    assert tmp.stat().st_size == 70_000

    out = run(["git", "annex", "copy", "--debug", "--to", "origin", "big.bin"], c).stderr
    assert "PUT-FROM 70000" in out
    assert "DATA 130000" in out
    assert content_of(s, key) == data


def _transfer_files(repo: Path) -> list[Path]:
    return [p for p in (repo / ".git" / "annex" / "transfer").rglob("*") if p.is_file()]


def test_offset_probe_takes_no_transfer_lock(pair: Pair) -> None:
    """PUT, then DATA 0 + INVALID short of the key (the offset probe a gateway
    runs for a putoffset, clusters.md 10) takes no lock and writes nothing:
    it is answered while another session holds the key's lock in the middle
    of its DATA, its session goes on, and the writer is not disturbed."""
    data = os.urandom(200_000)
    key = Key("SHA256E", hashlib.sha256(data).hexdigest() + ".bin", size=len(data))
    writer, prober = _server_peer(pair), _server_peer(pair)
    try:
        assert writer.request(Put(b"f.bin", key)) == [PutFrom(0)]
        writer.write(Data(len(data)), Payload(data[:70_000]))
        deadline = time.monotonic() + 20  # the writer's server takes the lock at DATA
        while not _transfer_files(pair.server) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _transfer_files(pair.server)
        (offer,) = prober.request(Put(b"f.bin", key))
        assert isinstance(offer, PutFrom)
        assert prober.request(Data(0), Invalid()) == [Failure()]  # not the end of the session
        assert prober.request(CheckPresent(key)) == [Failure()]
        assert writer.request(Payload(data[70_000:]), Valid()) == [Success()]
        # A probe with no other transfer running leaves no transfer file either.
        assert prober.request(Put(b"", key)) == [AlreadyHave()]
    finally:
        assert writer.close() == 0
        assert prober.close() == 0
    assert content_of(pair.server, str(key)) == data
    assert not _transfer_files(pair.server)


def test_offer_holds_no_lock_until_data(pair: Pair) -> None:
    """PUT-FROM takes no lock (git-annex-shell takes it at DATA): a second
    session offered the same key stores it first, and the first one's DATA
    then finds the partial file gone and answers FAILURE without writing."""
    data = os.urandom(200_000)
    key = Key("SHA256E", hashlib.sha256(data).hexdigest() + ".bin", size=len(data))
    first, second = _server_peer(pair), _server_peer(pair)
    tmp = pair.server / ".git" / "annex" / "tmp" / key.file_name()
    try:  # a partial file of 70,000 bytes, offered to both
        assert first.request(Put(b"", key)) == [PutFrom(0)]
        first.write(Data(len(data)), Payload(data[:70_000]))
        first.close()  # cut in the middle of DATA (exit 1, as git-annex-shell)
        assert tmp.stat().st_size == 70_000
        first = _server_peer(pair)
        assert first.request(Put(b"", key)) == [PutFrom(70_000)]
        assert second.request(Put(b"", key)) == [PutFrom(70_000)]
        # the second sends the wrong bytes: refused, and its partial file deleted
        rest = b"X" * (len(data) - 70_000)
        assert second.request(Data(len(rest)), Payload(rest), Valid()) == [Failure()]
        assert not tmp.exists()
        # the first's bytes would land at 0, not at 70,000: refused unwritten
        assert first.request(Data(len(data) - 70_000), Payload(data[70_000:]),
                             Valid()) == [Failure()]  # fmt: skip
        assert tmp.stat().st_size == 0  # opened under the lock, nothing written
        assert first.request(Put(b"", key)) == [PutFrom(0)]
        assert first.request(Data(len(data)), Payload(data), Valid()) == [Success()]
    finally:
        assert first.close() == 0
        assert second.close() == 0
    assert content_of(pair.server, str(key)) == data
    assert not _transfer_files(pair.server)


def test_get_from_offset_and_missing(pair: Pair) -> None:
    key = Key.parse(_key(pair.server, "a.txt"))
    missing = Key("SHA256E", "0" * 64, size=5)
    peer = _server_peer(pair)
    try:
        got = joined(peer.request(Get(7, b"a.txt", key)))
        assert got == [Data(8), Payload(b"content\n"), PayloadEnd(True)]
        assert peer.request(Success()) == []
        assert peer.request(Get(0, b"", missing)) == [Data(0), PayloadEnd(False)]
        assert peer.request(Failure()) == []
        assert peer.request(Get(100, b"", key)) == [Data(0), PayloadEnd(True)]
        assert peer.request(Success()) == []
    finally:
        assert peer.close() == 0


def test_get_of_an_object_changed_while_sent_ends_invalid(pair: Pair) -> None:
    """A payload of many ``sendfile`` steps into the pipe arrives whole and
    VALID; when the object's mtime changes after its first bytes went out, the
    server ends it INVALID (spec 6.7) and the client must not keep it."""
    data = os.urandom(8 << 20)  # far more than the pipe holds
    key = Key.parse(_new_content(pair.server, "big.bin", data))
    obj = pair.server / annex(pair.server, "contentlocation", str(key)).strip()
    peer = _server_peer(pair)
    try:
        assert joined(peer.request(Get(0, b"", key))) == [Data(len(data)), Payload(data),
                                                          PayloadEnd(True)]  # fmt: skip
        assert peer.request(Success()) == []
        peer.write(Get(0, b"", key))
        assert peer.proc.stdout is not None
        peer.conn.receive_data(os.read(peer.proc.stdout.fileno(), 1 << 12))  # the first bytes
        st = obj.stat()
        os.utime(obj, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        assert joined(peer.until_our_turn()) == [Data(len(data)), Payload(data), PayloadEnd(False)]
        assert peer.request(Failure()) == []
    finally:
        assert peer.close() == 0


def test_lock_blocks_remove_from_other_session(pair: Pair) -> None:
    key = Key.parse(_key(pair.server, "a.txt"))
    holder = _server_peer(pair)
    other = _server_peer(pair)
    try:
        assert holder.request(LockContent(key)) == [Success()]
        # As git-annex-shell (spec 6.3, 10.4): no reply, "content is locked", exit 1.
        assert other.request(Remove(key)) == [ConnectionClosed(cut_short=True)]
        assert other.close() == 1
        assert other.proc.stderr is not None
        assert b"content is locked" in other.proc.stderr.read()
        other = _server_peer(pair)
        # Real git-annex honours our lock too.
        out = run(["git", "annex", "drop", "--force", "a.txt"], pair.server, check=False)
        assert out.returncode != 0
        assert holder.request(UnlockContent()) == []
        # UNLOCKCONTENT has no reply: a reply to the next request shows it was handled
        assert holder.request(CheckPresent(key)) == [Success()]
        (ts,) = other.request(GetTimestamp())
        assert isinstance(ts, Timestamp)
        assert other.request(RemoveBefore(max(ts.timestamp - 1, 0), key)) == [Failure()]
        assert other.request(CheckPresent(key)) == [Success()]
        assert other.request(RemoveBefore(ts.timestamp + 60, key)) == [Success()]
        assert other.request(CheckPresent(key)) == [Failure()]
    finally:
        holder.close()
        other.close()


def test_lock_released_on_disconnect(pair: Pair) -> None:
    key = Key.parse(_key(pair.server, "a.txt"))
    holder = _server_peer(pair)
    assert holder.request(LockContent(key)) == [Success()]
    assert list((pair.server / ".git" / "annex" / "objects").rglob("*.rtm"))
    holder.close()
    assert not list((pair.server / ".git" / "annex" / "objects").rglob("*.rtm"))
    annex(pair.server, "drop", "--force", "a.txt")


def test_read_only_and_append_only_modes(pair: Pair) -> None:
    key = Key.parse(_key(pair.server, "a.txt"))
    peer = _server_peer(pair, {"GIT_ANNEX_SHELL_READONLY": "1"})
    try:
        (denied,) = peer.request(Remove(key))
        assert "read-only" in str(denied)
        assert peer.request(CheckPresent(key)) == [Success()]
    finally:
        peer.close()
    peer = _server_peer(pair, {"GIT_ANNEX_SHELL_APPENDONLY": "1"})
    try:
        (denied,) = peer.request(Remove(key))
        assert "append-only" in str(denied)
    finally:
        peer.close()


def test_startup_failures(pair: Pair, tmp_path: Path) -> None:
    out = run(["annexsync", "p2pstdio", str(pair.server)], tmp_path, check=False)
    assert out.returncode == 1 and out.stdout == "" and "missing UUID" in out.stderr
    out = run(["annexsync", "p2pstdio", str(pair.server), CLIENT_UUID, "--uuid", "nope"],
              tmp_path, check=False)  # fmt: skip
    assert out.returncode == 1 and out.stdout == "" and "expected repository UUID" in out.stderr
    out = run(["annexsync", "p2pstdio", str(tmp_path), CLIENT_UUID], tmp_path, check=False)
    assert out.returncode == 1 and "Not a git-annex" in out.stderr
    # Requests in a regular file, as from a script (stdio relay path).
    req = tmp_path / "req"
    req.write_bytes(b"VERSION 4\nFROBNICATE\n")
    with req.open("rb") as f:
        out = run(["annexsync", "p2pstdio", str(pair.server), CLIENT_UUID], tmp_path, stdin=f)
    assert out.stdout.splitlines() == [
        f"AUTH-SUCCESS {pair.server_uuid}", "VERSION 4", "ERROR unknown command",
    ]  # fmt: skip


def test_eof_mid_get_result_is_clean(pair: Pair) -> None:
    key = Key.parse(_key(pair.server, "a.txt"))
    peer = _server_peer(pair)
    got = joined(peer.request(Get(0, b"", key)))
    assert got[0] == Data(15)
    assert peer.close() == 0
    assert not isinstance(got[-1], ConnectionClosed)


def test_upload_under_a_stale_branch_lock_succeeds(pair: Pair) -> None:
    """A ``refs/heads/git-annex.lock`` left by a dead process on the server: the
    content is stored and the upload reported ok; the location line waits in the
    journal and git-annex commits it once the lock is gone (issue 8)."""
    c, s = pair.client, pair.server
    lock = s / ".git" / "refs" / "heads" / "git-annex.lock"
    lock.write_bytes(b"")
    key = _new_content(c, "c.txt", b"stored anyway\n")
    annex(c, "copy", "--to", "origin", "c.txt")
    assert content_of(s, key) == b"stored anyway\n"
    assert os.listdir(s / ".git" / "annex" / "journal")
    lock.unlink()
    assert "here" in annex(s, "whereis", "--key", key)
    git(s, "fsck", "--no-progress")
