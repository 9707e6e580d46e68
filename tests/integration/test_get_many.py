"""get of many files from a path remote, several at once (core.ops.receiving: the
default one job, whose path-remote files are still received ahead on worker threads).

The origin is made by real git-annex; real git-annex checks every clone
afterwards (``fsck`` must neither fail nor have to fix the location log).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.ops import receiving
from core.ops.files import annexed_files
from core.ops.transfer import get
from core.repo.key import Key
from core.repo.objects import Incoming
from core.repo.repository import AnnexRepo
from tests.conftest import annex, git

pytestmark = pytest.mark.interop

COUNT = 24
BAD = 11  # the file whose source is corrupted


def _contents() -> dict[str, bytes]:
    files = {f"f{i:02d}.bin": os.urandom(1000 + i * 37_000) for i in range(COUNT)}
    files["same.bin"] = files["f03.bin"]  # two files, one key
    files["big.bin"] = os.urandom(17 << 20)  # written on Incoming's own writer thread
    return files


@pytest.fixture
def origin_and_clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                     ) -> tuple[Path, AnnexRepo, dict[str, bytes]]:
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q")
    annex(origin, "init", "-q", "origin")
    files = _contents()
    for name, data in files.items():
        (origin / name).write_bytes(data)
    annex(origin, "add", "-q", ".")
    git(origin, "commit", "-q", "-m", "files")
    git(tmp_path, "clone", "-q", str(origin), str(tmp_path / "clone"))
    monkeypatch.chdir(tmp_path / "clone")
    return origin, AnnexRepo.open(tmp_path / "clone"), files


def _fsck_clean(repo: AnnexRepo) -> None:
    """Real git-annex finds every present object sound and the log right about it."""
    out = annex(repo.path, "fsck")
    assert "fixing" not in out and "failed" not in out, out


def _no_leftovers(repo: AnnexRepo) -> None:
    assert not list((repo.gitdir / "annex" / "tmp").glob("*"))
    transfer = repo.gitdir / "annex" / "transfer"
    assert not [p for p in transfer.rglob("*") if p.is_file()], "transfer locks or info left"
    assert not [t for t in threading.enumerate() if t.name.startswith("receive")]


def _present_means_logged_and_whole(repo: AnnexRepo, files: dict[str, bytes]) -> int:
    """Every object under its key is complete and logged here; returns how many keys."""
    present: set[Key] = set()
    for f in annexed_files(repo):
        path = repo.objects.find(f.key)
        logged = repo.uuid in repo.state.locations(f.key)
        if path is None:
            assert not logged, f.path
            continue
        present.add(f.key)
        assert logged, f"{f.path}: content kept but not in the location log"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == \
            hashlib.sha256(files[f.path]).hexdigest(), f.path
    return len(present)


def test_parallel_get_is_sound(origin_and_clone: tuple[Path, AnnexRepo, dict[str, bytes]]) -> None:
    _, clone, files = origin_and_clone
    outcomes = get(clone, ["."])
    assert [o.path for o in outcomes] == [f.path for f in annexed_files(clone, ["."])]
    assert all(o.ok for o in outcomes), [(o.path, o.note) for o in outcomes if not o.ok]
    notes = {o.path: o.note for o in outcomes}
    assert {notes["f03.bin"], notes["same.bin"]} == {"from origin", "already present"}
    for name, data in files.items():
        assert (clone.path / name).read_bytes() == data
    assert _present_means_logged_and_whole(clone, files) == len(files) - 1  # one shared key
    _no_leftovers(clone)
    _fsck_clean(clone)
    assert annex(clone.path, "find", "--not", "--in=here") == ""


def test_corrupt_source_in_the_middle_is_refused_and_the_rest_arrive(
    origin_and_clone: tuple[Path, AnnexRepo, dict[str, bytes]],
) -> None:
    origin, clone, files = origin_and_clone
    bad = f"f{BAD:02d}.bin"
    obj = (origin / bad).resolve()
    obj.parent.chmod(0o755)
    obj.chmod(0o644)
    obj.write_bytes(b"x" * len(files[bad]))  # same size, other bytes
    outcomes = get(clone, ["."])
    failed = [o for o in outcomes if not o.ok]
    assert [o.path for o in failed] == [bad]
    assert "did not verify" in failed[0].note
    assert not clone.objects.has(failed[0].key)
    assert clone.uuid not in clone.state.locations(failed[0].key)
    for name, data in files.items():
        if name != bad:
            assert (clone.path / name).read_bytes() == data
    _present_means_logged_and_whole(clone, files)
    _no_leftovers(clone)
    _fsck_clean(clone)


class _InterruptAfter:
    """A progress whose caller's thread gets Ctrl-C after ``n`` files (as from a terminal),
    once the workers are ahead: ``n`` objects are here (the ``n`` files may share keys)."""

    def __init__(self, n: int, repo: AnnexRepo) -> None:
        self.n = n
        self.objects = repo.gitdir / "annex" / "objects"

    def start(self, what: str, items: int, total_bytes: int | None) -> None:
        pass

    def _ahead(self, count: int) -> bool:
        return sum(1 for p in self.objects.rglob("*") if p.is_file() and p.suffix != ".lck") >= count

    def advance(self, items: int = 0, nbytes: int = 0, current: str = "") -> None:
        if items and threading.current_thread() is threading.main_thread():
            self.n -= 1
            if self.n == 0:
                deadline = time.monotonic() + 30  # the workers are busy ahead, so not long
                while not self._ahead(8) and time.monotonic() < deadline:
                    time.sleep(0.01)
                raise KeyboardInterrupt

    def finish(self) -> None:
        pass


def test_interrupted_get_keeps_only_whole_logged_content(
    origin_and_clone: tuple[Path, AnnexRepo, dict[str, bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, clone, files = origin_and_clone
    monkeypatch.setattr(receiving, "WINDOW_PER_JOB", 2)  # so the cut finds keys not yet received
    with pytest.raises(KeyboardInterrupt):
        get(clone, ["."], progress=_InterruptAfter(8, clone))
    present = _present_means_logged_and_whole(clone, files)
    assert 8 <= present < len(files) - 1  # the workers were ahead; not all came
    transfer = clone.gitdir / "annex" / "transfer"
    assert not [p for p in transfer.rglob("*") if p.is_file()], "transfer locks or info left"
    assert not [t for t in threading.enumerate() if t.name.startswith("receive")]
    _fsck_clean(clone)
    again = get(clone, ["."])  # what was cut off (a partial file) is resumed
    assert all(o.ok for o in again)
    assert _present_means_logged_and_whole(clone, files) == len(files) - 1
    _no_leftovers(clone)


def test_ctrl_c_to_the_get_command(tmp_path: Path) -> None:
    """SIGINT to ``annexsync get`` while it receives: nothing half-written under a
    key, everything kept is logged, git-annex's fsck is clean."""
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q")
    annex(origin, "init", "-q", "origin")
    files = {f"g{i:03d}.bin": os.urandom(1 << 20) for i in range(150)}
    for name, data in files.items():
        (origin / name).write_bytes(data)
    annex(origin, "add", "-q", ".")
    git(origin, "commit", "-q", "-m", "files")
    git(tmp_path, "clone", "-q", str(origin), str(tmp_path / "clone"))
    clone_path = tmp_path / "clone"
    objects = clone_path / ".git" / "annex" / "objects"
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", "get", "."], cwd=clone_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (objects.is_dir() and any(objects.rglob("*.bin"))):
            assert proc.poll() is None, "get ended before it was interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (proc.returncode, err)  # interrupted, not finished first
    clone = AnnexRepo.open(clone_path)
    present = _present_means_logged_and_whole(clone, files)
    assert 0 < present < len(files)
    _fsck_clean(clone)



def _slow_commits(m: pytest.MonkeyPatch, committing: threading.Event) -> None:
    """Every received file waits 0.5 s after its last chunk (so it is past
    every Stopped), before it is checked and put under its key."""
    commit = Incoming.commit

    def slow_commit(inc: Incoming) -> Path:
        committing.set()
        time.sleep(0.5)
        return commit(inc)

    m.setattr(Incoming, "commit", slow_commit)


def _receivers_end(deadline: float = 10) -> None:
    end = time.monotonic() + deadline
    while [t for t in threading.enumerate() if t.name.startswith("receive")]:
        assert time.monotonic() < end, "a receiving thread outlived get"
        time.sleep(0.05)


def test_ctrl_c_while_a_receiver_starts_logs_what_it_kept(
    origin_and_clone: tuple[Path, AnnexRepo, dict[str, bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A real SIGINT that lands while the pool starts a worker thread: that
    worker (already receiving) is still awaited, and what it keeps is logged.
    Raised inside ``Thread.start``, the KeyboardInterrupt used to leave the
    running thread out of the pool's count: ``close`` logged what it had and
    returned, the worker kept its key after that, and a full run once found
    content nobody logged."""
    _, clone, files = origin_and_clone
    start = threading.Thread.start
    signalled: list[str] = []
    committing = threading.Event()

    def start_then_ctrl_c(thread: threading.Thread) -> None:
        start(thread)
        if thread.name.startswith("receive") and not signalled:
            signalled.append(thread.name)
            assert committing.wait(10)  # the thread took its key and received it
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # Python's handler raises here: inside ``start``

    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        _slow_commits(m, committing)
        m.setattr(threading.Thread, "start", start_then_ctrl_c)
        get(clone, ["."])
    _receivers_end()
    assert signalled
    assert _present_means_logged_and_whole(clone, files) >= 1  # the first worker's key came
    _fsck_clean(clone)


def test_a_second_ctrl_c_while_get_stops_loses_no_log_line(
    origin_and_clone: tuple[Path, AnnexRepo, dict[str, bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C pressed twice: the second lands while ``close`` waits for the
    workers, which are putting received files under their keys.  It is raised
    once they are logged.  (It used to cut the wait short: on Python 3.11 an
    interrupted ``join`` marks the thread ended while it runs, and the files
    kept after that were never logged.)"""
    _, clone, files = origin_and_clone
    committing = threading.Event()

    def press_twice() -> None:
        assert committing.wait(10)
        for _ in range(2):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)  # the second comes while the workers commit

    presser = threading.Thread(target=press_twice)
    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        _slow_commits(m, committing)
        presser.start()
        try:
            get(clone, ["."])
        finally:
            presser.join()
    _receivers_end()
    assert _present_means_logged_and_whole(clone, files) >= 1
    _fsck_clean(clone)
