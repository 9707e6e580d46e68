from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.errors import ContentMissing, ContentVerifyError, DiskFull, DiskReserveError, TransferBusy
from core.repo import writeback
from core.repo.key import Key
from core.repo.objects import ContentLocked, ObjectStore

DATA = b"hello world\n"
K = Key.parse("SHA256E-s12--" + hashlib.sha256(DATA).hexdigest() + ".txt")


def store(tmp_path: Path, bare: bool = False) -> ObjectStore:
    (tmp_path / ".git").mkdir(exist_ok=True)  # a repository's git directory exists
    return ObjectStore(tmp_path / ".git", bare=bare, disk_reserve=0)


def test_incoming_verified_and_read_only(tmp_path: Path) -> None:
    s = store(tmp_path)
    with s.incoming(K) as inc:
        inc.write(DATA[:5])
        inc.write(DATA[5:])
        path = inc.commit()
    assert path == tmp_path / ".git" / f"annex/objects/J7/0G/{K}/{K}"
    assert path.read_bytes() == DATA
    assert path.stat().st_mode & 0o777 == 0o444
    assert path.parent.stat().st_mode & 0o777 == 0o555
    assert s.has(K)


def test_bare_uses_lower(tmp_path: Path) -> None:
    s = store(tmp_path, bare=True)
    assert s.relpath(K) == f"annex/objects/e7d/d01/{K}/{K}"


def test_corrupt_content_never_stored(tmp_path: Path) -> None:
    s = store(tmp_path)
    with s.incoming(K) as inc:
        inc.write(b"hello WORLD\n")
        with pytest.raises(ContentVerifyError):
            inc.commit()
    assert not s.has(K)
    assert not (s.tmp / K.file_name()).exists()


def test_short_and_long_content_refused(tmp_path: Path) -> None:
    s = store(tmp_path)
    with s.incoming(K) as inc:
        inc.write(DATA[:3])
        with pytest.raises(ContentVerifyError):
            inc.commit()
    with s.incoming(K) as inc, pytest.raises(ContentVerifyError):
        inc.write(DATA + b"x")
    assert not s.has(K)


def test_resume_keeps_partial(tmp_path: Path) -> None:
    s = store(tmp_path)
    with s.incoming(K) as inc:
        inc.write(DATA[:7])  # interrupted: no commit
    with s.incoming(K) as inc:
        assert inc.open() == 7
        inc.write(DATA[7:])
        inc.commit()
    assert s.find(K) is not None


def test_remove_and_lock(tmp_path: Path) -> None:
    s = store(tmp_path)
    src = tmp_path / "f"
    src.write_bytes(DATA)
    s.ingest(K, src, "move")
    assert not src.exists()
    assert s.remove(K)
    assert not s.has(K)
    assert not s.remove(K)


def test_lock_conflicts_with_other_process(tmp_path: Path) -> None:
    s = store(tmp_path)
    src = tmp_path / "f"
    src.write_bytes(DATA)
    s.ingest(K, src, "copy")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: hold a shared lock until told to stop
        os.close(w)
        with s.lock(K):
            os.read(r, 1)
        os._exit(0)
    os.close(r)
    try:
        import time

        time.sleep(0.2)
        with pytest.raises(ContentLocked):
            s.remove(K)
        assert s.has(K)
    finally:
        os.write(w, b"x")
        os.waitpid(pid, 0)
    assert s.remove(K)


def test_disk_reserve(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir(exist_ok=True)
    s = ObjectStore(tmp_path / ".git", bare=False, disk_reserve=10**18)
    big = Key.parse("SHA256-s100--" + "0" * 64)
    with s.incoming(big) as inc, pytest.raises(DiskReserveError):
        inc.open()


def test_threaded_hashing_verifies_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import core.repo.objects as objects

    monkeypatch.setattr(objects, "THREADED_HASH_FROM", 0)
    s = store(tmp_path)
    before = set(threading.enumerate())
    with s.incoming(K) as inc:
        inc.write(b"hello WORLD\n")
        with pytest.raises(ContentVerifyError):
            inc.commit()
    with s.incoming(K) as inc:
        inc.write(DATA[:4])  # abandoned mid-way: the thread must still end
    with s.incoming(K) as inc:
        assert inc.open() == 4
        inc.write(DATA[4:])
        inc.commit()
    assert s.has(K)
    assert set(threading.enumerate()) <= before  # none left (others may have ended)


class _FullDisk:
    """Stands in for the temporary file on a full disk: every write, flush and
    close fails with ENOSPC (the real thing is in tests/integration/test_disk_full.py)."""

    def __init__(self, real: object) -> None:
        self.real = real

    def _full(self, *args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    write = flush = _full

    def close(self) -> None:
        self.real.close()  # type: ignore[attr-defined]
        self._full()


@pytest.mark.parametrize("step", ["write", "commit"])
def test_disk_full_drops_the_partial_file(tmp_path: Path, step: str) -> None:
    s = store(tmp_path)
    inc = s.incoming(K)
    inc.open()
    inc._file = _FullDisk(inc._file)  # type: ignore[assignment]
    with pytest.raises(DiskFull):
        inc.write(DATA) if step == "write" else inc.commit()
    assert not inc.tmp.exists() and not s.has(K)
    inc.close()  # nothing left to fail


class _FullWrites(_FullDisk):
    """Only writes fail: flush and close would succeed on what was written."""

    def flush(self) -> None:
        self.real.flush()  # type: ignore[attr-defined]

    def close(self) -> None:
        self.real.close()  # type: ignore[attr-defined]

    def fileno(self) -> int:
        return self.real.fileno()  # type: ignore[attr-defined,no-any-return]


def test_disk_full_on_the_writer_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails on the writer thread fails the transfer in the caller
    (at a later write or at the latest at commit) and drops the partial file."""
    import threading

    import core.repo.objects as objects

    monkeypatch.setattr(objects, "THREADED_HASH_FROM", 0)
    s = store(tmp_path)
    before = set(threading.enumerate())
    inc = s.incoming(K)
    inc.open()
    inc._file = _FullWrites(inc._file)  # type: ignore[assignment]
    with pytest.raises(DiskFull):
        for i in range(len(DATA)):
            inc.write(DATA[i : i + 1])
        inc.commit()
    assert not inc.tmp.exists() and not s.has(K)
    inc.close()
    assert set(threading.enumerate()) <= before  # none left (others may have ended)


def test_threaded_path_refuses_a_corrupt_chunk_in_the_middle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many chunks through the writer and hasher threads: one flipped byte far
    from both ends is still caught, and nothing is kept under the key."""
    import core.repo.objects as objects

    monkeypatch.setattr(objects, "THREADED_HASH_FROM", 0)
    data = os.urandom(64 * 1024 + 17)
    key = Key.parse(f"SHA256E-s{len(data)}--{hashlib.sha256(data).hexdigest()}.bin")
    bad = bytearray(data)
    bad[40_000] ^= 1
    s = store(tmp_path)
    with s.incoming(key) as inc:
        for i in range(0, len(bad), 1000):
            inc.write(bytes(bad[i : i + 1000]))
        with pytest.raises(ContentVerifyError):
            inc.commit()
    assert not s.has(key) and not (s.tmp / key.file_name()).exists()
    with s.incoming(key) as inc:
        for i in range(0, len(data), 1000):
            inc.write(data[i : i + 1000])
        assert inc.commit().read_bytes() == data


def _stored(tmp_path: Path) -> ObjectStore:
    s = store(tmp_path)
    with s.incoming(K) as inc:
        inc.write(DATA)
        inc.commit()
    return s


def test_locks_exclude_within_the_process(tmp_path: Path) -> None:
    """fcntl alone would let this process remove what it holds locked (issue 8)."""
    s = _stored(tmp_path)
    with s.lock(K):
        with pytest.raises(ContentLocked):
            s.remove(K)
        assert s.has(K)
    assert s.remove(K)
    with pytest.raises(ContentMissing):  # a lock is only granted on present content
        with s.lock(K):
            pass


def test_unexpired_retention_refuses_removal(tmp_path: Path) -> None:
    s = _stored(tmp_path)
    s.retain(K, time.time() + 60)
    with pytest.raises(ContentLocked):
        s.remove(K)
    s.release_retention(K)
    assert s.remove(K)


def test_one_writer_per_key(tmp_path: Path) -> None:
    s = store(tmp_path)
    with s.incoming(K, "uuid-a") as a, s.incoming(K, "uuid-b") as b:
        a.write(DATA[:5])
        with pytest.raises(TransferBusy):
            b.open()
        with pytest.raises(TransferBusy):  # nor may it delete the other's partial file
            b.discard()
        a.write(DATA[5:])
        a.commit()
    assert s.find(K) is not None and s.find(K).read_bytes() == DATA  # type: ignore[union-attr]


def test_lock_checks_the_content_after_locking(tmp_path: Path) -> None:
    """A remover in another process may delete the object between our find and our lock."""
    s = _stored(tmp_path)
    p = s.find(K)
    assert p is not None
    p.parent.chmod(0o755)
    p.unlink()  # what that remover did; its directory is still there
    with pytest.raises(ContentMissing), s.lock(K, path=p):
        pass


def test_object_directory_stays_read_only_under_concurrent_lockers(tmp_path: Path) -> None:
    """Each locker makes the directory writable for a moment; the last one restores it."""
    import threading

    s = _stored(tmp_path)
    p = s.find(K)
    assert p is not None

    def churn() -> None:
        for _ in range(300):
            with contextlib.suppress(ContentLocked), s.lock(K):
                pass

    threads = [threading.Thread(target=churn) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert stat.S_IMODE(p.parent.stat().st_mode) == 0o555


# --- write_from: a payload read into the receiver's own buffers ------------------------


def _reading(data: bytes, step: int = 1 << 30, fail_at: int | None = None) -> tuple[
        Callable[[memoryview], int], set[int]]:  # fmt: skip
    """A ``read_into`` serving ``data`` at most ``step`` bytes a call (TimeoutError
    once ``fail_at`` bytes went out), and the ids of the buffers it filled."""
    pos = 0
    buffers: set[int] = set()

    def read_into(view: memoryview) -> int:
        nonlocal pos
        if fail_at is not None and pos >= fail_at:
            raise TimeoutError("peer silent")
        buffers.add(id(view.obj))
        n = min(len(view), step, len(data) - pos)
        view[:n] = data[pos : pos + n]
        pos += n
        return n

    return read_into, buffers


@pytest.fixture(params=["one thread", "ring"])
def receiving(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """``write_from`` both ways: hashed and written in line, or through the
    buffer ring (small buffers, so a payload takes many turns of it)."""
    import core.repo.objects as objects

    monkeypatch.setattr(objects, "RECEIVE_BUFFER", 1000)
    if request.param == "ring":
        monkeypatch.setattr(objects, "THREADED_HASH_FROM", 0)
    return str(request.param)


def test_write_from_stores_only_what_verifies(tmp_path: Path, receiving: str) -> None:
    import threading

    data = os.urandom(64 * 1024 + 17)
    key = Key.parse(f"SHA256E-s{len(data)}--{hashlib.sha256(data).hexdigest()}.bin")
    bad = bytearray(data)
    bad[40_000] ^= 1
    s = store(tmp_path)
    before = set(threading.enumerate())
    with s.incoming(key) as inc:
        assert inc.write_from(_reading(bytes(bad), step=777)[0], len(bad)) == len(bad)
        with pytest.raises(ContentVerifyError):
            inc.commit()
    assert not s.has(key) and not (s.tmp / key.file_name()).exists()
    read_into, buffers = _reading(data, step=777)
    with s.incoming(key) as inc:
        inc.write_from(read_into, len(data))
        assert inc.commit().read_bytes() == data
    assert len(buffers) <= 3  # reused, whatever the size: memory stays flat
    assert set(threading.enumerate()) <= before  # none left (others may have ended)


def test_write_from_cut_short_is_kept_for_resume(tmp_path: Path, receiving: str) -> None:
    data = os.urandom(10_000)
    key = Key.parse(f"SHA256E-s{len(data)}--{hashlib.sha256(data).hexdigest()}.bin")
    s = store(tmp_path)
    with s.incoming(key) as inc:  # the input ends after 4,000 bytes
        assert inc.write_from(_reading(data[:4000], step=999)[0], len(data)) == 4000
    with s.incoming(key) as inc:  # the peer goes silent after 6,000
        assert inc.open() == 4000
        with pytest.raises(TimeoutError):
            inc.write_from(_reading(data[4000:], fail_at=2000)[0], len(data) - 4000)
    assert not s.has(key)
    with s.incoming(key) as inc:
        assert inc.open() == 6000
        inc.write_from(_reading(data[6000:])[0], len(data) - 6000)
        assert inc.commit().read_bytes() == data


def test_write_from_refuses_more_than_the_key(tmp_path: Path) -> None:
    s = store(tmp_path)
    with s.incoming(K) as inc, pytest.raises(ContentVerifyError):
        inc.write_from(_reading(DATA + b"x")[0], len(DATA) + 1)
    assert not s.has(K) and not (s.tmp / K.file_name()).exists()


def test_write_from_disk_full_drops_the_partial_file(tmp_path: Path, receiving: str) -> None:
    data = os.urandom(10_000)
    key = Key.parse(f"SHA256E-s{len(data)}--{hashlib.sha256(data).hexdigest()}.bin")
    s = store(tmp_path)
    inc = s.incoming(key)
    inc.open()
    inc._file = _FullWrites(inc._file)  # type: ignore[assignment]
    with pytest.raises(DiskFull):
        inc.write_from(_reading(data, step=500)[0], len(data))
    assert not inc.tmp.exists() and not s.has(key)
    inc.close()


@pytest.mark.skipif(writeback._load() is None, reason="no sync_file_range here")
@pytest.mark.parametrize("way", ["write", "write_from"])
def test_a_big_files_writeback_starts_while_it_is_written(tmp_path: Path, way: str) -> None:
    """Both ways a big file arrives (a server's PUT relayed in chunks; a pipe
    read straight into the ring) start its writeback behind the writer, so the
    fdatasync before it is kept finds little left; the content still verifies."""
    import core.repo.objects as objects
    from core.repo.writeback import STEP

    data = os.urandom(objects.THREADED_HASH_FROM + 2 * STEP + 5)
    key = Key.parse(f"SHA256E-s{len(data)}--{hashlib.sha256(data).hexdigest()}.bin")
    s = store(tmp_path)
    with s.incoming(key) as inc:
        if way == "write":
            for i in range(0, len(data), 1 << 20):
                inc.write(data[i : i + (1 << 20)])
        else:
            inc.write_from(_reading(data, step=1 << 20)[0], len(data))
        assert inc.commit().read_bytes() == data
        assert inc.writeback is not None
        assert inc.writeback.requested >= len(data) - STEP
