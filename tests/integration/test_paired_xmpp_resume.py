"""A transfer to a paired device cut mid-way resumes from its offset
(xmpp-sync.md C.3; P2P spec 6.5): the sending device reaches prosody through
a loopback TCP relay that the test closes while content flows; the next
session asks PUT-FROM the bytes the receiver kept, sends only the rest, and
the content verifies on the receiver (``git annex fsck``)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from core.devices.remote import LoopThread
from core.errors import CoreError
from core.ops.transfer import copy_key_to
from core.remotes import close_remotes, find_remote, open_remote
from core.repo.key import Key
from core.repo.repository import AnnexRepo
from core.settings import load_settings, save_settings
from tests.conftest import annex, git
from tests.integration.paired_helpers import acting_as, device, make_repo, pair, start, stop
from tests.integration.xmpp_helpers import Relay
from tests.xmpp_server import Prosody

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

SIZE = 2_000_000


class Counted:
    def __init__(self) -> None:
        self.sent = 0

    def start(self, what: str, items: int, total_bytes: int | None) -> None:
        pass

    def advance(self, items: int = 0, nbytes: int = 0, current: str = "") -> None:
        self.sent += nbytes

    def finish(self) -> None:
        pass


def test_a_cut_transfer_resumes_from_its_offset(tmp_path: Path, xmpp_server: Prosody,
                                                real_keyring: object,
                                                monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    alice = xmpp_server.register("alice", "pw")
    a_repo = make_repo(tmp_path / "a", "laptop")
    data = os.urandom(SIZE)
    (a_repo / "big.bin").write_bytes(data)
    annex(a_repo, "add", "-q", "big.bin")
    git(a_repo, "commit", "-q", "-m", "big")
    a = device(tmp_path, "laptop", xmpp_server, alice, a_repo)
    b = device(tmp_path, "desk", xmpp_server, alice, make_repo(tmp_path / "b", "desk", a_repo))
    pair(a, b)
    relay_loop = LoopThread("relay")
    relay = Relay(xmpp_server.port)
    relay_loop.run(relay.__aenter__(), 10)
    save_settings(a.cfg, load_settings(a.cfg).replace(xmpp_server=relay.address))
    key = Key.parse(annex(a_repo, "lookupkey", "big.bin").strip())
    partial = b.repo / ".git/annex/tmp" / key.file_name()
    cut_at: list[int] = []

    def cutter() -> None:  # closes the relay once a quarter has arrived
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            size = partial.stat().st_size if partial.exists() else 0
            if size > SIZE // 4:
                cut_at.append(size)
                relay_loop.loop.call_soon_threadsafe(relay.cut)
                return
            time.sleep(0.01)

    try:
        start(b)
        watcher = threading.Thread(target=cutter)
        watcher.start()
        with acting_as(a, monkeypatch), AnnexRepo.open(a.repo) as repo:
            first = Counted()
            with pytest.raises(CoreError):
                copy_key_to(repo, key, open_remote(repo, find_remote(repo, "desk")), first)
            close_remotes(repo)
            watcher.join(10)
            assert cut_at, "the transfer was never cut"
            kept = partial.stat().st_size
            assert 0 < kept < SIZE
            for attempt in range(10):  # the receiver may not have seen the cut yet
                second = Counted()  # what the attempt that worked sent
                try:
                    copy_key_to(repo, key, open_remote(repo, find_remote(repo, "desk")), second)
                    break
                except CoreError:
                    if attempt == 9:
                        raise
                    time.sleep(0.5)
                finally:
                    close_remotes(repo)
        assert second.sent <= SIZE - kept  # only what was missing went again
        annex(b.repo, "fsck", "--quiet", "--key", str(key))
        assert b.repo.joinpath(".git/annex/objects").exists()
    finally:
        stop(b)
        relay_loop.run(relay.__aexit__(None, None, None), 10)
        relay_loop.stop()
