"""NOTIFYCHANGE / CHANGED: telling a peer that our refs moved (spec 6.9).

Theory of operation
-------------------
A networked server answers ``NOTIFYCHANGE`` with ``CHANGED <sha> ...`` once
some ref is created or moved; the words are the new SHAs, not ref names.
This module has a pure part and a thin watcher:

- ``ref_changes(old, new)`` is the rule: the SHAs of refs that are new or
  point elsewhere now, in ref-name order, each ref once (a deleted ref is not
  a change a fetch could act on, as with git-annex, which reports written
  ref files only).
- ``RefWatcher`` polls the refs of one repository (loose and packed, read
  with dulwich in a thread) every ``interval`` seconds and keeps a baseline
  per session: ``wait_changed`` returns the changes since the last answer,
  waiting for one if there are none yet.  Changes that arrive within
  ``settle`` seconds of the first are answered together (git-annex batches
  0.05 s).  Changes made between two NOTIFYCHANGEs are answered at once by
  the second, so nothing is lost.

Departure from git-annex, on purpose: the first NOTIFYCHANGE of a session is
not answered at once with every existing ref (spec 6.9 says it *may* be);
our baseline is the refs when the session first asks.  A client wanting an
initial fetch fetches after connecting.

The wait is bounded by the caller; ``peer_gone`` lets the server stop
waiting as soon as the client hangs up (the machine reads nothing while it
is the server's turn, so EOF is seen on the stream itself).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path

logger = logging.getLogger(__name__)

POLL_INTERVAL = 0.1
SETTLE = 0.05  # spec 6.9: git-annex batches changes arriving within 0.05 s

RefSnapshot = dict[bytes, bytes]


def ref_changes(old: Mapping[bytes, bytes], new: Mapping[bytes, bytes]) -> tuple[str, ...]:
    """New SHAs of refs created or moved between two snapshots (spec 6.9)."""
    return tuple(
        new[name].decode("ascii") for name in sorted(new)
        if old.get(name) != new[name] and name != b"HEAD"
    )  # fmt: skip


def read_refs(gitdir: Path) -> RefSnapshot:
    """Every ref under ``refs/`` and its SHA (symbolic refs resolved)."""
    from dulwich.refs import Ref
    from dulwich.repo import Repo

    repo = Repo(str(gitdir))
    try:
        refs = repo.refs.as_dict(Ref(b"refs"))
        return {b"refs/" + bytes(k): bytes(v) for k, v in refs.items()}
    finally:
        repo.close()


class RefWatcher:
    """Polls one repository's refs for one session.

    Args:
        gitdir: the repository's git directory.
        interval: seconds between polls.
        settle: after a first change, wait this long for more.
        reader: reads a snapshot (injectable for tests).
    """

    def __init__(
        self,
        gitdir: Path,
        *,
        interval: float = POLL_INTERVAL,
        settle: float = SETTLE,
        reader: Callable[[Path], RefSnapshot] = read_refs,
    ) -> None:
        self.gitdir = gitdir
        self.interval = interval
        self.settle = settle
        self.reader = reader
        self._baseline: RefSnapshot | None = None

    async def _snapshot(self) -> RefSnapshot:
        return await asyncio.to_thread(self.reader, self.gitdir)

    async def start(self) -> None:
        """Take the baseline now (a later ``wait_changed`` reports moves after this)."""
        if self._baseline is None:
            self._baseline = await self._snapshot()

    async def wait_changed(
        self, timeout: float, peer_gone: Callable[[], bool] = lambda: False
    ) -> tuple[str, ...] | None:
        """SHAs changed since the last answer; None on timeout or when the peer left."""
        await self.start()
        assert self._baseline is not None
        deadline = time.monotonic() + timeout
        while True:
            now = await self._snapshot()
            changed = ref_changes(self._baseline, now)
            if changed:
                await asyncio.sleep(self.settle)
                now = await self._snapshot()
                changed = ref_changes(self._baseline, now) or changed
                self._baseline = now
                return changed
            if peer_gone() or time.monotonic() >= deadline:
                return None
            await asyncio.sleep(min(self.interval, max(deadline - time.monotonic(), 0)))


__all__ = ["POLL_INTERVAL", "SETTLE", "RefSnapshot", "RefWatcher", "read_refs", "ref_changes"]
