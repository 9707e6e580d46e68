"""What the receiving device refuses through XMPP (xmpp-sync.md C.4): a device
without the pair secret, a Noise frame tampered with on the way (the XMPP
server sees every IBB block), a whole session's bytes replayed into another
stream.  In each case nothing is written under the key on the receiver and
the refusal or the broken frame is a security event.

The receiving device runs its daemon; the sending side is the ``PairedRemote``
a command would use, with a hostile server standing between the session and
the bytestream (``_stream``).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from core import gitops
from core.devices.identity import load_or_create
from core.devices.paired import PairedDevice, PairedStore, PairSecret, SharedRepo, Transports
from core.devices.remote import PairedRemote, paired_remote
from core.errors import CoreError, RemoteUnavailable
from core.ops.transfer import copy_key_to
from core.progress import NullProgress
from core.remotes import close_remotes, find_remote, git_access
from core.repo.key import Key
from core.repo.repository import AnnexRepo, annex_uuid_at
from core.xmpp.bytestream import IbbPair
from core.xmpp.visitor import Visitor
from tests.conftest import annex, git
from tests.integration.paired_helpers import (
    Device,
    acting_as,
    cli,
    device,
    make_repo,
    pair,
    start,
    stop,
    wait,
)
from tests.xmpp_server import Prosody

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

Hook = Callable[[bytes], bytes]


@dataclass
class Pair:
    a: Device
    b: Device


@pytest.fixture
def devices(tmp_path: Path, xmpp_server: Prosody, real_keyring: object) -> Iterator[Pair]:
    alice = xmpp_server.register("alice", "pw")
    a_repo = make_repo(tmp_path / "a", "laptop")
    (a_repo / "file.bin").write_bytes(os.urandom(300_000))
    annex(a_repo, "add", "-q", "file.bin")
    git(a_repo, "commit", "-q", "-m", "file")
    a = device(tmp_path, "laptop", xmpp_server, alice, a_repo)
    b = device(tmp_path, "desk", xmpp_server, alice, make_repo(tmp_path / "b", "desk", a_repo))
    pair(a, b)
    start(b)
    yield Pair(a, b)
    stop(b)


def _key(repo: Path) -> Key:
    return Key.parse(annex(repo, "lookupkey", "file.bin").strip())


def _nothing_written(b: Device, key: Key) -> None:
    assert annex(b.repo, "find", "--in=here", "--key", str(key), check=False).strip() == ""
    assert not list((b.repo / ".git/annex/objects").rglob(key.file_name()))
    assert git(b.repo, "for-each-ref", "refs/synced").strip() == ""


class Hostile(PairedRemote):
    """Every byte the session writes to the bytestream passes ``hook`` first."""

    hook: Hook = staticmethod(lambda data: data)  # type: ignore[assignment]

    async def _stream(self, visitor: Visitor) -> IbbPair:
        pair = await super()._stream(visitor)
        write = pair.writer.write
        pair.writer.write = lambda data: write(self.hook(bytes(data)))  # type: ignore[method-assign]
        return pair


def _send(p: Pair, monkeypatch: pytest.MonkeyPatch, hook: Hook) -> None:
    """PUT file.bin from A to B through a hostile server; the copy must fail."""
    with acting_as(p.a, monkeypatch), AnnexRepo.open(p.a.repo) as repo:
        real = paired_remote(repo, find_remote(repo, "desk"))
        real.close()
        remote = Hostile(real.info, repo, real.device, real.creds, real.cfg)
        remote.hook = hook  # type: ignore[method-assign]
        try:
            with pytest.raises(CoreError):
                copy_key_to(repo, _key(p.a.repo), remote, NullProgress())
        finally:
            remote.close()


def test_a_device_without_the_pair_secret_is_refused(
        devices: Pair, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    caplog.set_level(logging.WARNING, logger="annexsync.security")
    a, b = devices.a, devices.b
    store = PairedStore(a.cfg, a.ident.device_id)
    secret = store.secret(b.ident.device_id)
    assert secret is not None
    record = store.get(b.ident.device_id)
    assert record is not None
    store.add(record, replace(secret, pair_secret=os.urandom(32)))  # not the one B holds
    assert cli(a, monkeypatch, "copy", "--to", "desk", "file.bin") == 1
    out = capsys.readouterr().out
    assert "could not prove the pairing" in out, out
    _nothing_written(b, _key(a.repo))
    assert b.core is not None
    wait(lambda: bool(b.core and b.core.hub.refused), 5, "the refusal in B's hub")
    assert "could not prove the pairing" in b.core.hub.refused[-1].text
    assert any("refused" in r.getMessage() for r in caplog.records)
    # B's status shows the refused session, in words, as text and as JSON
    wait(lambda: bool(b.core and b.core.status.sessions), 5, "the session in B's status")
    assert cli(b, monkeypatch, "status", "--json") == 0
    sessions = json.loads(capsys.readouterr().out)["sessions"]
    assert [(x["direction"], x["state"]) for x in sessions] == [("incoming", "refused")]
    assert "could not prove the pairing" in sessions[0]["reason"]
    assert cli(b, monkeypatch, "status") == 0
    text = capsys.readouterr().out
    assert "session from " in text and "refused" in text and "could not prove" in text, text


def test_a_tampered_block_is_refused(devices: Pair, monkeypatch: pytest.MonkeyPatch,
                                     caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    caplog.set_level(logging.WARNING, logger="annexsync.security")
    seen = [0]

    def flip(data: bytes) -> bytes:  # one bit, 100 kB into what the session writes
        at = 100_000 - seen[0]
        seen[0] += len(data)
        if 0 <= at < len(data):
            data = data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]
        return data

    _send(devices, monkeypatch, flip)
    key = _key(devices.a.repo)
    _nothing_written(devices.b, key)
    partial = devices.b.repo / ".git/annex/tmp" / key.file_name()
    if partial.exists():  # kept for resume: only authenticated bytes, a prefix
        assert (devices.a.repo / "file.bin").read_bytes().startswith(partial.read_bytes())
    wait(lambda: any("broken" in r.getMessage() for r in caplog.records), 10, "security event")


def test_a_session_replayed_into_another_stream_is_refused(
        devices: Pair, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    recorded: list[bytes] = []

    def record(data: bytes) -> bytes:
        recorded.append(data)
        return data

    class Replay(Hostile):
        async def _stream(self, visitor: Visitor) -> IbbPair:
            pair = await PairedRemote._stream(self, visitor)
            if recorded:  # a second session: the server sends the first one's bytes
                pair.writer.write(b"".join(recorded))
                await pair.writer.drain()
            return pair

    # the first session's bytes, cut before the content arrived (nothing stored)
    def record_then_cut(data: bytes) -> bytes:
        record(data)
        if sum(map(len, recorded)) > 150_000:
            raise RemoteUnavailable("the server cut the stream")  # as a broken IBB writer
        return data

    _send(devices, monkeypatch, record_then_cut)
    key = _key(devices.a.repo)
    _nothing_written(devices.b, key)
    before = _tmp_size(devices.b, key)
    with acting_as(devices.a, monkeypatch), AnnexRepo.open(devices.a.repo) as repo:
        real = paired_remote(repo, find_remote(repo, "desk"))
        real.close()
        remote = Replay(real.info, repo, real.device, real.creds, real.cfg)
        try:
            with pytest.raises(CoreError):
                remote.check_present(key)
        finally:
            remote.close()
    _nothing_written(devices.b, key)
    assert _tmp_size(devices.b, key) == before  # not one replayed byte was taken


def _tmp_size(b: Device, key: Key) -> int:
    partial = b.repo / ".git/annex/tmp" / key.file_name()
    return partial.stat().st_size if partial.exists() else 0





def test_a_push_writes_only_the_senders_own_refs(devices: Pair,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    a, b = devices.a, devices.b
    (a.repo / "new.txt").write_text("new\n")
    git(a.repo, "add", "new.txt")
    git(a.repo, "commit", "-q", "-m", "new")
    before = git(b.repo, "for-each-ref").strip()
    own = f"refs/synced/{a.uuid}/{a.ident.device_id}/main"
    others = ["refs/heads/main", "refs/heads/synced/main", "refs/heads/git-annex",
              f"refs/synced/{b.uuid}/{b.ident.device_id}/main",  # another sender's
              f"refs/synced/{a.uuid}/{b.ident.device_id}/main"]  # fmt: skip
    with acting_as(a, monkeypatch), AnnexRepo.open(a.repo) as repo:
        try:
            with git_access(repo, find_remote(repo, "desk")):
                for ref in others:
                    assert gitops.push(a.repo, "desk", [f"refs/heads/main:{ref}"]) == {ref: False}
                assert git(b.repo, "for-each-ref").strip() == before
                assert gitops.push(a.repo, "desk", [f"refs/heads/main:{own}"]) == {own: True}
        finally:
            close_remotes(repo)
    assert git(b.repo, "rev-parse", own).strip() == git(a.repo, "rev-parse", "main").strip()


def test_only_a_repository_shared_with_that_device_is_served(
        devices: Pair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    a, b = devices.a, devices.b
    other = make_repo(tmp_path / "other", "desk's other repository")
    third = load_or_create(tmp_path / "cfg-third", "third")
    PairedStore(b.cfg, b.ident.device_id).add(  # shared with a third device, not with A
        PairedDevice(third.device_id, "third", (SharedRepo(str(other), str(uuid.uuid4())),),
                     Transports(f"{a.jid}/annexsync-{third.short_id}")),
        PairSecret(os.urandom(32), third.public_key, 1.0))  # fmt: skip
    git(a.repo, "config", "remote.desk.annex-uuid", str(annex_uuid_at(other)))
    assert cli(a, monkeypatch, "copy", "--to", "desk", "file.bin") == 1
    out = capsys.readouterr().out
    assert "desk does not share repository" in out, out
    assert not list((other / ".git/annex/objects").rglob("*"))
    _nothing_written(b, _key(a.repo))
