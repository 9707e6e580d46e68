"""The gateway's pure parts: the GET content check, and the listener's proxied tokens."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

from core.p2p.gateway import HASH_BATCH, _ContentCheck
from core.p2p.listener import add_proxied_token, creds_tokens, proxied_tokens
from core.repo.key import Key

DATA = b"cluster content\n"
KEY = Key.parse(f"SHA256E-s{len(DATA)}--{hashlib.sha256(DATA).hexdigest()}.txt")


def _check(key: Key, offset: int, *chunks: bytes) -> str | None:
    async def run() -> str | None:
        check = _ContentCheck.of(key, offset)
        for c in chunks:
            await check.update(c)
        return await check.failure()

    return asyncio.run(run())


def test_content_relayed_from_the_start_is_hashed() -> None:
    assert _check(KEY, 0, DATA[:5], DATA[5:]) is None
    bad = bytes([DATA[0] ^ 1]) + DATA[1:]
    assert "does not match the key" in (_check(KEY, 0, bad) or "")


def test_large_content_is_hashed_in_batches() -> None:
    data = os.urandom(3 * HASH_BATCH + 5)
    key = Key.parse(f"SHA256-s{len(data)}--{hashlib.sha256(data).hexdigest()}")
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    assert _check(key, 0, *chunks) is None
    chunks[20] = bytes(len(chunks[20]))
    assert _check(key, 0, *chunks) is not None


def test_from_an_offset_only_the_size_is_known() -> None:
    bad = bytes([DATA[3] ^ 1]) + DATA[4:]
    assert _check(KEY, 3, bad) is None  # the client, holding the start, hashes it
    assert "bytes where" in (_check(KEY, 3, DATA[3:-1]) or "")


def test_a_key_without_a_hash_is_checked_by_size() -> None:
    worm = Key.parse(f"WORM-s{len(DATA)}-m1--f.txt")
    assert _check(worm, 0, DATA) is None
    assert _check(worm, 0, DATA + b"x") is not None


def test_proxied_tokens_live_apart_from_git_annexs(tmp_path: Path) -> None:
    gitdir = tmp_path / ".git"
    (gitdir / "annex" / "creds").mkdir(parents=True)
    (gitdir / "annex" / "creds" / "p2pauth").write_text("OWN p2p-annex::annexsync-tcp:h:1\n")
    add_proxied_token(gitdir, "ABC", "ac000000-0000-8000-0000-000000000000")
    with (gitdir / "annex" / "creds" / "p2pauth-proxied").open("a") as f:
        f.write("lonely\n\n")
    assert proxied_tokens(gitdir) == [("abc", "ac000000-0000-8000-0000-000000000000")]
    assert creds_tokens(gitdir) == ["own"]
    assert (gitdir / "annex" / "creds" / "p2pauth-proxied").stat().st_mode & 0o077 == 0
