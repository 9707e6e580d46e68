"""git-annex's transfer locks: one writer per key, across processes.

Layout (git-annex Logs/Transfer.hs, Annex/Transfer.hs; docs/design.md):

* A transfer is (direction, remote uuid, key).  Its info file is
  ``<gitdir>/annex/transfer/<upload|download>/<uuid>/<keyFile>`` (the uuid
  with any ``/`` removed), holding ``<started POSIX time>s`` and, on the next
  line, the associated file.
* An upload locks ``annex/transfer/upload/<uuid>/lck.<keyFile>``.
* A download first locks ``annex/transfer/download/lck/lck.<keyFile>``
  (no uuid: one download of a key into a repository at a time, from
  wherever it comes), then ``annex/transfer/download/<uuid>/lck.<keyFile>``
  for git-annex versions that only know the second.
* Locks are exclusive, non-blocking ``fcntl`` locks taken through
  ``lockpool`` (so sessions inside one process exclude each other too).
  When one is busy the transfer fails: git-annex says "transfer already in
  progress, or unable to take transfer lock".
* On finish the info file and the lock files are deleted, then the locks
  dropped.

The serving side of a PUT is a *download* whose uuid is the client's (the
git-annex-shell experiment in the report for issue 8 shows exactly these
files while a PUT is running).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path

from core.errors import TransferBusy
from core.repo.dirs import annex_dirs
from core.repo.key import Key
from core.repo.lockpool import LockBusy, hold

logger = logging.getLogger(__name__)

DOWNLOAD = "download"
UPLOAD = "upload"


def _uuid_dir(uuid: str) -> str:
    return uuid.replace("/", "") or "unknown"


def lock_paths(gitdir: Path, direction: str, uuid: str, key: Key) -> list[Path]:
    """The lock files of a transfer, in the order git-annex takes them."""
    base = gitdir / "annex" / "transfer" / direction
    name = "lck." + key.file_name()
    per_uuid = base / _uuid_dir(uuid) / name
    return [base / "lck" / name, per_uuid] if direction == DOWNLOAD else [per_uuid]


def info_path(gitdir: Path, direction: str, uuid: str, key: Key) -> Path:
    return gitdir / "annex" / "transfer" / direction / _uuid_dir(uuid) / key.file_name()


@contextlib.contextmanager
def transfer(
    gitdir: Path, direction: str, uuid: str, key: Key, file: str = ""
) -> Iterator[None]:
    """Hold the locks of one transfer and its info file while the body runs.

    Raises:
        TransferBusy: another transfer of ``key`` (any process) holds a lock.
    """
    info = info_path(gitdir, direction, uuid, key)
    with contextlib.ExitStack() as stack:
        for p in lock_paths(gitdir, direction, uuid, key):
            annex_dirs(p.parent)
            try:
                stack.enter_context(hold(p, exclusive=True, unlink=True))
            except LockBusy:
                raise TransferBusy(str(key)) from None
        stack.callback(info.unlink, missing_ok=True)  # before the locks are dropped
        with contextlib.suppress(OSError):  # informative only, as git-annex treats it
            info.write_text(f"{time.time():.9f}s\n{file}\n")
        yield


def download(gitdir: Path, uuid: str, key: Key, file: str = "") -> contextlib.AbstractContextManager[None]:
    """Content of ``key`` coming into the repository at ``gitdir`` from ``uuid``."""
    return transfer(gitdir, DOWNLOAD, uuid, key, file)


def upload(gitdir: Path, uuid: str, key: Key, file: str = "") -> contextlib.AbstractContextManager[None]:
    """Content of ``key`` going from the repository at ``gitdir`` to ``uuid``."""
    return transfer(gitdir, UPLOAD, uuid, key, file)


__all__ = ["DOWNLOAD", "UPLOAD", "download", "info_path", "lock_paths", "transfer", "upload"]
