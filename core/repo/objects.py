"""The annex object store: where content lives under its key.

Spec: repository-format.md section 2.

Layout: ``<gitdir>/annex/objects/<hashdir>/<keyFile>/<keyFile>``, with mixed
hash directories in non-bare repositories and lower ones in bare repositories;
readers try both.  A stored object is 0444 inside a 0555 directory.

Rules kept here and nowhere else:

* Content received from elsewhere is written to ``annex/tmp/<keyFile>``,
  hashed while it streams, and renamed under its key only when hash and size
  match the key (``Incoming``).  A partial temporary file is kept for resume.
* Content added from the work tree was hashed by the adder, so ``ingest`` only
  moves, copies or hard-links it into place.
* Every path that receives content checks annex.diskreserve first.  The
  disk can still fill up (no size in the key, other writers, the reserve set
  to 0): ``disk_full_as_error`` turns ENOSPC/EDQUOT into ``DiskFull``, and
  ``Incoming`` then drops its partial file, so the space goes back to the
  other transfers and the error is the one transfer's, not the process's.
* One writer per key: ``Incoming`` holds git-annex's download transfer lock
  (``transfers``) from ``open`` until it is closed, so no two sessions,
  processes or git-annex itself write ``annex/tmp/<keyFile>`` together, and
  what it verified is what it renames.
* Content locks are POSIX ``fcntl`` record locks (``lockf``) on
  ``<object>.lck``, the lock family git-annex uses (spec 2.4), taken through
  ``lockpool`` so that they exclude within this process too.  A lock is only
  granted while the content is there; ``remove`` deletes under the exclusive
  lock and refuses while any shared lock or an unexpired ``<object>.rtm``
  retention timestamp stands.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import queue
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterator
from io import BufferedReader
from pathlib import Path
from typing import BinaryIO, Generic, TypeVar

from core.errors import ContentMissing, ContentVerifyError, DiskFull, DiskReserveError, RepoError
from core.repo import transfers
from core.repo.dirs import annex_dirs
from core.repo.key import Hasher, Key
from core.repo.lockpool import Held, LockBusy, hold
from core.repo.writeback import Writeback

logger = logging.getLogger(__name__)

T = TypeVar("T")

CHUNK = 1 << 20
THREADED_HASH_FROM = 16 << 20  # below this, a thread costs more than it saves
RECEIVE_BUFFER = 1 << 20  # write_from's buffer: one pipe's worth (transport.PIPE_SIZE)
WRITE_BATCH = 1 << 20  # bytes a network receiver gathers per ``Incoming.write`` (``write_batch``)
SMALL_BATCH = 1 << 18  # ... for files of up to 4 batches
DEFAULT_DISK_RESERVE = 100_000_000  # git-annex 10.2026 reports "+100 megabytes reserved"


DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def disk_full_as_error(where: Path) -> Iterator[None]:
    """Raise ``DiskFull(where)`` for a write that ran out of space or quota."""
    try:
        yield
    except OSError as e:
        if e.errno in DISK_FULL_ERRNOS:
            raise DiskFull(where) from e
        raise


_dirs_guard = threading.Lock()
_writable_dirs: dict[str, list[int]] = {}  # directory -> [users, mode to restore]


@contextlib.contextmanager
def writable_dir(d: Path) -> Iterator[None]:
    """Make an object's read-only directory writable for a moment (spec 2.4).

    Users in this process are counted: the first saves the mode and opens the
    directory, the last restores it.  Each restoring its own snapshot would
    leave it writable when two overlap.
    """
    key = os.path.abspath(d)
    with _dirs_guard:
        entry = _writable_dirs.get(key)
        if entry is None:
            mode = stat.S_IMODE(d.stat().st_mode)
            d.chmod(mode | stat.S_IWUSR)
            entry = _writable_dirs[key] = [0, mode]
        entry[0] += 1
    try:
        yield
    finally:
        with _dirs_guard:
            entry[0] -= 1
            if not entry[0]:
                del _writable_dirs[key]
                with contextlib.suppress(OSError):
                    d.chmod(entry[1])


class ContentLocked(RepoError):
    """Removal refused: a content lock or an unexpired retention timestamp stands."""

    def __init__(self, key: Key, why: str = "content is locked") -> None:
        super().__init__(f"{key}: {why}")
        self.key = key


class ObjectStore:
    def __init__(
        self,
        gitdir: Path,
        bare: bool,
        hash_lower: bool = False,
        disk_reserve: int = DEFAULT_DISK_RESERVE,
    ) -> None:
        self.gitdir = gitdir
        self.root = gitdir / "annex" / "objects"
        self.tmp = gitdir / "annex" / "tmp"
        self.lower_first = bare or hash_lower
        self.disk_reserve = disk_reserve

    # --- paths ----------------------------------------------------------------

    def relpath(self, key: Key) -> str:
        """Canonical object path relative to the git dir (spec 2.1, 2.3)."""
        hashdir = key.hashdir_lower() if self.lower_first else key.hashdir_mixed()
        kf = key.file_name()
        return f"annex/objects/{hashdir}/{kf}/{kf}"

    def path(self, key: Key) -> Path:
        return self.gitdir / self.relpath(key)

    def _candidates(self, key: Key) -> list[Path]:
        kf = key.file_name()
        dirs = [key.hashdir_mixed(), key.hashdir_lower()]
        if self.lower_first:
            dirs.reverse()
        return [self.root / d / kf / kf for d in dirs]

    def find(self, key: Key) -> Path | None:
        for p in self._candidates(key):
            if p.is_file():
                return p
        return None

    def has(self, key: Key) -> bool:
        return self.find(key) is not None

    @contextlib.contextmanager
    def open(self, key: Key) -> Iterator[BufferedReader]:
        p = self.find(key)
        if p is None:
            raise ContentMissing(str(key), str(self.gitdir))
        with p.open("rb") as f:
            yield f

    def keys(self) -> Iterator[Key]:
        """Every key with content here (used by info/fsck-like reports)."""
        if not self.root.is_dir():
            return
        for a in self.root.iterdir():
            for b in a.iterdir():
                for kd in b.iterdir():
                    if (kd / kd.name).is_file():
                        with contextlib.suppress(RepoError):
                            yield Key.from_file_name(kd.name)

    # --- disk reserve ---------------------------------------------------------

    def check_reserve(self, needed: int) -> None:
        """Raise DiskReserveError unless ``needed`` bytes fit above the reserve."""
        annex_dirs(self.root)
        st = os.statvfs(self.root)
        free = st.f_bavail * st.f_frsize
        if needed + self.disk_reserve > free:
            raise DiskReserveError(self.root, needed, free, self.disk_reserve)

    # --- putting content in place --------------------------------------------

    def _place(self, key: Key, move_in: Path | None, copy_from: Path | None, link: bool) -> Path:
        dest = self.path(key)
        if dest.is_file():
            if move_in is not None:
                move_in.unlink()
            return dest
        if not annex_dirs(dest.parent):  # a directory made just now is writable
            dest.parent.chmod(0o755)
        try:
            if move_in is not None:
                os.replace(move_in, dest)
            elif copy_from is not None and link:
                os.link(copy_from, dest)
            elif copy_from is not None:
                shutil.copyfile(copy_from, dest)
            dest.chmod(0o444)
        finally:
            dest.parent.chmod(0o555)
        return dest

    def ingest(self, key: Key, src: Path, how: str = "move") -> Path:
        """Put an already hashed work-tree file under its key.

        ``how`` is ``move`` (locked add: the file becomes the object),
        ``copy`` or ``hardlink`` (unlocked add, annex.thin).
        """
        if how == "move":
            return self._place(key, src, None, False)
        if how == "copy":
            self.check_reserve(src.stat().st_size)
        try:
            return self._place(key, None, src, how == "hardlink")
        except OSError as e:
            if how == "hardlink" and e.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                return self._place(key, None, src, False)
            raise

    def incoming(self, key: Key, source: str = "") -> Incoming:
        """Receive content from the repository ``source`` (uuid), verified before it is kept."""
        return Incoming(self, key, source)

    # --- removing -------------------------------------------------------------

    def remove(self, key: Key, before_unlink: Callable[[], None] | None = None) -> bool:
        """Remove the content of ``key`` under an exclusive content lock.

        Returns False when there was nothing to remove.  The decision (nobody
        holds a lock, no unexpired ``.rtm``) and the deletion happen under one
        exclusive lock, so no lock can be granted in between.  ``before_unlink``
        runs under that lock just before the deletion; if it raises, nothing
        is removed (``AnnexRepo.remove_content`` logs the copy gone there).

        Raises:
            ContentLocked: a holder in this or another process relies on
                this copy, or an unexpired retention timestamp forbids it.
        """
        p = self.find(key)
        if p is None:
            return False
        kd = p.parent
        try:
            with writable_dir(kd), self.lock(key, exclusive=True, path=p):
                self._check_retention(key, p)
                if before_unlink is not None:
                    before_unlink()
                p.chmod(0o644)
                p.unlink()
                for extra in kd.iterdir():
                    with contextlib.suppress(FileNotFoundError):
                        extra.unlink()
                with contextlib.suppress(OSError):  # a racing locker's fresh .lck
                    kd.rmdir()
        except (ContentMissing, FileNotFoundError):
            return True  # removed by someone else meanwhile
        for d in (kd.parent, kd.parent.parent):
            with contextlib.suppress(OSError):
                d.rmdir()
        return True

    @staticmethod
    def _check_retention(key: Key, p: Path) -> None:
        rtm = p.with_name(p.name + ".rtm")
        try:
            until = float(rtm.read_text().strip().rstrip("s") or 0)
        except (OSError, ValueError):
            return
        if until > time.time():
            raise ContentLocked(key, f"content is retained until {time.ctime(until)}")

    def retain(self, key: Key, until: float) -> None:
        """Write ``<object>.rtm`` = ``until`` (spec 2.4, p2p 6.2); OSError if we cannot."""
        p = self.find(key)
        if p is None:
            raise ContentMissing(str(key), str(self.gitdir))
        with writable_dir(p.parent):
            p.with_name(p.name + ".rtm").write_text(f"{until:.9f}s")

    def release_retention(self, key: Key) -> None:
        p = self.find(key)
        if p is not None:
            with contextlib.suppress(OSError), writable_dir(p.parent):
                p.with_name(p.name + ".rtm").unlink(missing_ok=True)

    # --- locks ----------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, key: Key, exclusive: bool = False, path: Path | None = None) -> Iterator[Held]:
        """Hold git-annex's content lock on ``<object>.lck`` (spec 2.4).

        Shared while a copy is relied on, exclusive while removing.  The
        content is checked *after* the lock is granted: a remover holds the
        exclusive lock until the object is gone, so a lock granted on present
        content keeps it present.

        Raises:
            ContentMissing: no content (or it went while we locked).
            ContentLocked: held in the conflicting mode, here or elsewhere.
        """
        p = path or self.find(key)
        if p is None:
            raise ContentMissing(str(key), str(self.gitdir))
        lck = p.with_name(p.name + ".lck")
        with contextlib.ExitStack() as stack:
            try:
                with writable_dir(p.parent):
                    held = stack.enter_context(hold(lck, exclusive=exclusive))
            except LockBusy as e:
                raise ContentLocked(key) from e
            except FileNotFoundError:  # the object directory went with the content
                raise ContentMissing(str(key), str(self.gitdir)) from None
            if not p.is_file():
                raise ContentMissing(str(key), str(self.gitdir))
            yield held


class _Worker(Generic[T]):
    """Applies ``fn`` to queued chunks on a helper thread, in order.

    Hashing (hashlib) and file writes both release the GIL, so a worker lets
    them run while the caller receives the next chunk.  At most ``depth``
    chunks wait, so memory stays flat whatever the file size.  The first
    exception ``fn`` raises is kept, later chunks are dropped, and ``raise_error``
    or ``close`` re-raises it in the caller; ``close`` always joins the thread.
    ``done`` is told of every chunk once it is written or dropped.
    """

    def __init__(self, fn: Callable[[T], object], name: str, depth: int = 4,
                 done: Callable[[T], object] | None = None) -> None:  # fmt: skip
        self._fn = fn
        self._done = done
        self._queue: queue.Queue[T | None] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self.error is None:
                try:
                    self._fn(chunk)
                except BaseException as e:  # handed to the caller by raise_error
                    self.error = e
            if self._done is not None:
                self._done(chunk)

    def put(self, data: T) -> None:
        self.raise_error()
        self._queue.put(data)

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Wait until every queued chunk is done; re-raise what failed."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self.raise_error()


class _BufferRing:
    """Reused buffers handed to consumers on helper threads (``Incoming.write_from``).

    The caller fills a ``buffer()`` and ``hand``s the filled part over; each
    consumer (hash, write) takes it on a thread of its own (``_Worker``), and
    the buffer comes back once every consumer is done with it.  ``depth``
    buffers of ``size`` bytes: memory is flat, and no chunk is copied in user
    space.  The first consumer error is raised by ``buffer``, ``hand`` or
    ``close``; ``close`` always joins the threads.
    """

    def __init__(self, consumers: list[Callable[[memoryview], object]], size: int,
                 depth: int = 3) -> None:  # fmt: skip
        self._free: queue.Queue[bytearray] = queue.Queue()
        for _ in range(depth):
            self._free.put(bytearray(size))
        self._users: dict[int, int] = {}  # id(buffer) -> consumers still on it
        self._lock = threading.Lock()
        self._workers: list[_Worker[memoryview]] = [
            _Worker(fn, "receiver", depth, done=self._give_back) for fn in consumers]  # fmt: skip

    def _give_back(self, view: memoryview) -> None:
        buf = view.obj
        assert isinstance(buf, bytearray)
        with self._lock:
            self._users[id(buf)] -= 1
            if self._users[id(buf)]:
                return
        self._free.put(buf)

    def buffer(self) -> memoryview:
        """A free buffer (waits for the consumers to give one back)."""
        for w in self._workers:
            w.raise_error()
        return memoryview(self._free.get())

    def hand(self, filled: memoryview) -> None:
        """Give ``filled`` (a leading part of a ``buffer()``) to every consumer."""
        with self._lock:
            self._users[id(filled.obj)] = len(self._workers)
        for w in self._workers:
            w.put(filled)

    def close(self) -> None:
        """Every handed buffer consumed; re-raise what failed."""
        errors = []
        for w in self._workers:
            try:
                w.close()
            except BaseException as e:  # noqa: BLE001 - re-raised below
                errors.append(e)
        if errors:
            raise errors[0]


class _ThreadedHasher:
    """A ``Hasher`` fed on a helper thread (``_Worker``)."""

    def __init__(self, hasher: Hasher) -> None:
        self._hasher = hasher
        self._worker = _Worker(hasher.update, "hasher")

    def update(self, data: bytes | memoryview, /) -> None:
        self._worker.put(bytes(data))  # Incoming.write made it bytes: no copy

    def close(self) -> None:
        self._worker.close()

    def hexdigest(self) -> str:
        self.close()
        return self._hasher.hexdigest()

    def unwrap(self) -> Hasher:
        """The hasher itself, once every queued chunk is in it."""
        self.close()
        return self._hasher


def write_batch(size: int | None) -> int:
    """Bytes a receiver on the event loop gathers before it hands them to
    ``Incoming.write`` on a thread: a big file's in ``WRITE_BATCH``es (few
    hand-offs), a small file's in quarters, so most of it is written and
    hashed while the rest arrives and the sender waits less for the answer
    (1 MiB files: 4.2 ms -> ~1 ms between VALID and SUCCESS; a gateway's
    nodes, which wrote each file whole after the last byte, finish sooner)."""
    return WRITE_BATCH if size is None or size > 4 * WRITE_BATCH else SMALL_BATCH


class Incoming:
    """A download in progress into ``annex/tmp/<keyFile>``.

    ``offset`` tells how much a previous attempt left (resume).  ``open``
    takes git-annex's download transfer lock for ``source`` (the repository
    the content comes from) and holds it until ``close``: only the holder
    writes the temporary file, and it is renamed under its key while still
    held.  ``write`` appends and hashes; ``commit`` checks size and hash and
    only then renames the file under its key.  On a mismatch the temporary
    file is deleted and ContentVerifyError raised.  Use as a context manager:
    leaving without ``commit`` keeps the partial file for a later resume.  A
    key whose hash we cannot compute is refused on construction
    (``UnverifiableBackend``), so no byte of it is ever transferred.
    """

    def __init__(self, store: ObjectStore, key: Key, source: str = "") -> None:
        self.store = store
        self.key = key
        self.source = source
        self.tmp = store.tmp / key.file_name()
        self._lock = contextlib.ExitStack()
        self._locked = False
        self._file: BinaryIO | None = None
        self._writer: _Worker[bytes] | None = None  # writes on a thread for big files
        self.writeback: Writeback | None = None  # a big file's, once its writer runs
        self._threaded = False  # write() hands chunks to threads (started at its first call)
        self._hasher: Hasher | _ThreadedHasher | None = key.receiving_hasher()
        self.written = 0

    @property
    def offset(self) -> int:
        try:
            return self.tmp.stat().st_size
        except FileNotFoundError:
            return 0

    def open(self, offset: int | None = None) -> int:
        """Open for appending at ``offset`` (default: what is there). Returns it.

        Raises:
            TransferBusy: another transfer of this key is writing it (any process).
            DiskReserveError: the rest would not fit above annex.diskreserve.
        """
        self._take_lock()
        annex_dirs(self.store.tmp)
        have = self.offset
        start = have if offset is None else min(offset, have)
        if self.key.size is not None:
            self.store.check_reserve(max(self.key.size - start, 0))
        f = self.tmp.open("r+b" if self.tmp.exists() else "w+b")
        f.truncate(start)
        if self._hasher is not None and start:
            f.seek(0)
            remaining = start
            while remaining:
                buf = f.read(min(CHUNK, remaining))
                if not buf:
                    break
                self._hasher.update(buf)
                remaining -= len(buf)
        f.seek(start)
        self._file = f
        self._threaded = (self.key.size or 0) - start >= THREADED_HASH_FROM
        self.written = start
        return start

    @property
    def queues_chunks(self) -> bool:
        """Whether ``write`` hands chunks to threads (a big file; known after ``open``):
        then a caller's reused buffer is copied, so fresh ``bytes`` are cheaper."""
        return self._threaded or self._writer is not None

    def _thread(self) -> None:
        """Receiving, writing and hashing overlap in ``write``: the caller
        hands a chunk over and goes back to the network while two threads
        write and hash."""
        self._threaded = False
        self._writer = _Worker(self._big_write(), "writer")
        if self._hasher is not None and not isinstance(self._hasher, _ThreadedHasher):
            self._hasher = _ThreadedHasher(self._hasher)

    def write(self, data: bytes | memoryview) -> None:
        """Append and hash ``data``; its buffer is the caller's again once this
        returns (a big file's writer and hasher threads queue a copy)."""
        if self._file is None:
            self.open()
        assert self._file is not None
        if self.key.size is not None and self.written + len(data) > self.key.size:
            self.discard()
            raise ContentVerifyError(str(self.key), f"{self.key.size} bytes", "more")
        if self._threaded:
            self._thread()
        if self._writer is not None:
            data = bytes(data)  # the one copy, shared by both threads (none if bytes)
        try:
            with disk_full_as_error(self.store.tmp):
                if self._writer is not None:
                    self._writer.put(bytes(data))  # bytes already: no copy; raises an earlier error
                else:
                    self._file.write(data)
        except DiskFull:
            self.discard()  # give the space back; the transfer starts over later
            raise
        if self._hasher is not None:
            self._hasher.update(data)
        self.written += len(data)

    def write_from(self, read_into: Callable[[memoryview], int], count: int) -> int:
        """Append up to ``count`` bytes that ``read_into`` puts in a reused
        buffer (0: the input ended), hashed and written on this thread or, for
        a big payload, on two helpers (``_BufferRing``); the bytes appended.
        For a caller on a worker thread reading a transport itself
        (``runtime.Channel.receive_payload``): no copy per chunk, memory flat.
        Same checks and errors as ``write``; an error from ``read_into``
        leaves what was appended for resume.
        """
        if self._file is None:
            self.open()
        assert self._file is not None
        if self.key.size is not None and self.written + count > self.key.size:
            self.discard()
            raise ContentVerifyError(str(self.key), f"{self.key.size} bytes", "more")
        self._unthread()
        f, hasher = self._file, self._hasher
        assert not isinstance(hasher, _ThreadedHasher)
        ring = None
        if count >= THREADED_HASH_FROM:  # hashing, writing and reading overlap
            consumers: list[Callable[[memoryview], object]] = [self._big_write()]
            if hasher is not None:
                consumers.append(hasher.update)
            ring = _BufferRing(consumers, RECEIVE_BUFFER)
        single = None if ring else memoryview(bytearray(min(count, RECEIVE_BUFFER)))
        done = 0
        try:
            with disk_full_as_error(self.store.tmp):
                try:
                    while done < count:
                        buf = ring.buffer() if ring else single
                        assert buf is not None
                        n = read_into(buf[: count - done])
                        if not n:
                            break
                        if ring:
                            ring.hand(buf[:n])
                        else:
                            if hasher is not None:
                                hasher.update(buf[:n])
                            f.write(buf[:n])
                        done += n
                        self.written += n
                finally:
                    if ring:
                        ring.close()  # every byte written and hashed, or the error raised
        except DiskFull:
            self.discard()  # as in write: the space goes back
            raise
        return done

    def _unthread(self) -> None:
        """Back to hashing and writing on the caller's thread (``write_from``
        after ``write``; a later ``write`` goes on without threads)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if isinstance(self._hasher, _ThreadedHasher):
            self._hasher = self._hasher.unwrap()

    def _big_write(self) -> Callable[[bytes | memoryview], None]:
        """The append of a big file's writer thread (``write``, ``write_from``):
        each also starts the writeback of what is behind it (``Writeback``),
        so the disk writes while more arrives and ``commit``'s fdatasync finds
        little left.  The file is closed only after that thread is joined."""
        f = self._file
        assert f is not None
        self.writeback = writeback = Writeback(f.fileno(), self.written)

        def write(data: bytes | memoryview) -> None:
            f.write(data)
            writeback.wrote(len(data))

        return write

    def commit(self) -> Path:
        if self._file is None:
            self.open()
        assert self._file is not None
        try:
            with disk_full_as_error(self.store.tmp):
                if self._writer is not None:
                    self._writer.close()  # every byte written, or its error raised
                self._file.flush()
                os.fdatasync(self._file.fileno())  # once per file, after the last write
        except DiskFull:
            self.discard()
            raise
        self._file.close()
        self._file = None
        try:
            self._verify()
        except ContentVerifyError:
            self.tmp.unlink(missing_ok=True)
            raise
        return self.store._place(self.key, self.tmp, None, False)

    def _verify(self) -> None:
        key = self.key
        if key.size is not None and self.written != key.size:
            raise ContentVerifyError(str(key), f"{key.size} bytes", f"{self.written} bytes")
        if self._hasher is None:
            if key.backend not in ("WORM", "URL", "VURL"):
                raise ContentVerifyError(str(key), key.backend, "no way to verify this backend")
            return
        got = self._hasher.hexdigest()
        if got != key.expected_digest():
            raise ContentVerifyError(str(key), key.expected_digest(), got)

    def _take_lock(self) -> None:
        if not self._locked:
            self._lock.enter_context(transfers.download(self.store.gitdir, self.source, self.key))
            self._locked = True

    def discard(self) -> None:
        """Delete the partial file, under the lock so never another writer's.

        Raises:
            TransferBusy: another transfer holds it (the file is left alone).
        """
        try:
            with contextlib.suppress(OSError, DiskFull):  # a full disk fails the last flush too
                self._close_file()
            self._take_lock()
            self.tmp.unlink(missing_ok=True)
        finally:
            self.close()

    def _close_file(self) -> None:
        """Join the threads (their errors were raised by write or commit) and close."""
        for worker in (self._writer, self._hasher):
            if isinstance(worker, (_Worker, _ThreadedHasher)):
                with contextlib.suppress(Exception):
                    worker.close()
        self._writer = None
        f, self._file = self._file, None
        if f is not None:
            with disk_full_as_error(self.store.tmp):
                f.close()

    def close(self) -> None:
        """Close the file and give the transfer lock back; safe to repeat."""
        try:
            self._close_file()
        finally:
            self._locked = False
            self._lock.close()

    def __enter__(self) -> Incoming:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
