"""Our client machine against a real ``git-annex-shell p2pstdio`` (spec 4.1, 12.1).

Plain blocking pipes: write what ``send`` returns, read until the machine
says it is our turn again.  Proves the codec and the machine against the
real thing: greeting, VERSION, CHECKPRESENT, GET (full, offset, missing,
version 0), PUT with an escaped file name, LOCKCONTENT, unknown requests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.p2p import (
    AuthSuccess,
    CheckPresent,
    ConnectionClosed,
    Data,
    Error,
    Failure,
    Get,
    LockContent,
    Payload,
    PayloadEnd,
    Put,
    PutFrom,
    Success,
    UnlockContent,
    Valid,
    Version,
)
from core.repo.key import Key
from tests.conftest import annex, git
from tests.integration.test_p2p_support import RawPeer, joined

pytestmark = pytest.mark.interop
CLIENT_UUID = "a1b2c3d4-0000-4000-8000-00000000c11e"


def shell_peer(repo: Path, env: dict[str, str] | None = None) -> RawPeer:
    """Our client machine talking to a real ``git-annex-shell p2pstdio``."""
    return RawPeer(["git-annex-shell", "p2pstdio", str(repo), CLIENT_UUID], env)


@pytest.fixture
def served(annex_repo: Path) -> Iterator[tuple[Path, str, Key]]:
    (annex_repo / "hello.txt").write_bytes(b"hello world\n")
    annex(annex_repo, "add", "hello.txt")
    git(annex_repo, "commit", "-q", "-m", "add")
    uuid = git(annex_repo, "config", "annex.uuid").strip()
    key = Key.parse(annex(annex_repo, "lookupkey", "hello.txt").strip())
    yield annex_repo, uuid, key


def test_version_checkpresent_get(served: tuple[Path, str, Key]) -> None:
    repo, uuid, key = served
    peer = shell_peer(repo)
    try:
        assert peer.until_our_turn() == [AuthSuccess(uuid)]
        assert peer.request(Version(4)) == [Version(4)]
        assert peer.request(CheckPresent(key)) == [Success()]
        missing = Key("SHA256E", "0" * 64, size=5)
        assert peer.request(CheckPresent(missing)) == [Failure()]
        hello = [Data(12), Payload(b"hello world\n"), PayloadEnd(True)]
        assert joined(peer.request(Get(0, b"hello.txt", key))) == hello
        assert peer.request(Success()) == []
        assert joined(peer.request(Get(6, b"", key))) == [Data(6), Payload(b"world\n"), PayloadEnd(True)]
        assert peer.request(Success()) == []
        assert peer.request(Get(0, b"", missing)) == [Data(0), PayloadEnd(False)]
        assert peer.request(Failure()) == []
        assert peer.request(LockContent(key)) == [Success()]
        assert peer.request(UnlockContent()) == []
        assert peer.request(CheckPresent(key)) == [Success()]
    finally:
        peer.close()
    assert peer.proc.returncode == 0


def test_put_and_version0(served: tuple[Path, str, Key]) -> None:
    repo, uuid, key = served
    content = b"new file content"
    new = Key("SHA256E", hashlib.sha256(content).hexdigest() + ".bin", size=len(content))
    peer = shell_peer(repo)
    try:
        assert peer.until_our_turn() == [AuthSuccess(uuid)]
        # No VERSION: version 0, GET has no VALID line (spec 10.5).
        assert joined(peer.request(Get(0, b"", key))) == [
            Data(12), Payload(b"hello world\n"), PayloadEnd(None),
        ]  # fmt: skip
        assert peer.request(Success()) == []
        assert peer.request(Put(b"dir/new file.bin", new)) == [PutFrom(0)]
        assert peer.request(Data(len(content)), Payload(content), Valid()) == [Success()]
        assert peer.request(CheckPresent(new)) == [Success()]
    finally:
        peer.close()
    assert annex(repo, "contentlocation", str(new)).strip()


def test_server_error_is_not_fatal_and_eof(served: tuple[Path, str, Key]) -> None:
    repo, uuid, key = served
    peer = shell_peer(repo, {"GIT_ANNEX_SHELL_READONLY": "1"})
    try:
        peer.until_our_turn()
        assert peer.request(Version(4)) == [Version(4)]
        denied = peer.request(Put(b"", key))
        assert denied == [Error("this repository is read-only; write access denied")]
        assert peer.request(CheckPresent(key)) == [Success()]
        peer.proc.stdin.close()  # type: ignore[union-attr]
        peer.proc.wait(timeout=30)
        peer.conn.send(CheckPresent(key))
        assert peer.until_our_turn() == [ConnectionClosed(cut_short=True)]
    finally:
        peer.proc.wait(timeout=30)


