"""The process-wide lock pool and git-annex's transfer-lock layout (issue 8)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import TransferBusy
from core.repo import lockpool, transfers
from core.repo.key import Key
from core.repo.lockpool import LockBusy, held_here, hold

K = Key.parse("SHA256E-s3--ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad.txt")

HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.lockf(fd, fcntl.LOCK_SH if sys.argv[2] == "sh" else fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


def _other_process(path: Path, mode: str) -> subprocess.Popen[str]:
    """Another process holding an fcntl lock on ``path`` until its stdin closes."""
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), mode],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert p.stdout is not None and p.stdout.readline() == "held\n"
    return p


def _end(p: subprocess.Popen[str]) -> None:
    assert p.stdin is not None
    p.stdin.close()
    p.wait(10)


def test_in_process_shared_and_exclusive_exclude(tmp_path: Path) -> None:
    lck = tmp_path / "x.lck"
    with hold(lck, exclusive=False), hold(lck, exclusive=False):
        with pytest.raises(LockBusy):
            with hold(lck, exclusive=True):
                pass
    with hold(lck, exclusive=True):
        for exclusive in (False, True):
            with pytest.raises(LockBusy), hold(lck, exclusive=exclusive):
                pass
    assert not held_here(lck)
    with hold(lck, exclusive=True):  # all released
        pass


def test_other_processes_are_excluded_both_ways(tmp_path: Path) -> None:
    lck = tmp_path / "x.lck"
    other = _other_process(lck, "sh")
    try:
        with hold(lck, exclusive=False):
            pass
        with pytest.raises(LockBusy), hold(lck, exclusive=True):
            pass
    finally:
        _end(other)
    with hold(lck, exclusive=True):
        probe = subprocess.run([sys.executable, "-c",
                                "import fcntl,os,sys; fd=os.open(sys.argv[1], os.O_RDWR);"
                                "fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)", str(lck)],
                               capture_output=True)  # fmt: skip
        assert probe.returncode != 0


def test_upgrade_only_when_alone(tmp_path: Path) -> None:
    lck = tmp_path / "x.lck"
    with hold(lck, exclusive=False) as a:
        with hold(lck, exclusive=False):
            assert not a.upgrade()  # another holder in this process
        other = _other_process(lck, "sh")
        try:
            assert not a.upgrade()  # another process shares it
        finally:
            _end(other)
        assert a.upgrade()
        with pytest.raises(LockBusy), hold(lck, exclusive=False):
            pass


def test_unlink_on_release_deletes_while_locked(tmp_path: Path) -> None:
    lck = tmp_path / "x.lck"
    with hold(lck, exclusive=True, unlink=True):
        assert lck.exists()
    assert not lck.exists()


def test_a_lock_on_a_deleted_file_is_not_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between our open and our lockf the last holder deleted the file (checkSaneLock)."""
    lck = tmp_path / "x.lck"
    lck.touch()
    real = lockpool._try_lockf
    calls: list[int] = []

    def cleanup_in_between(fd: int, exclusive: bool) -> bool:
        if not calls:
            lck.unlink()  # the previous holder's cleanup...
            lck.touch()  # ...and a new holder's file under the same name
        calls.append(fd)
        return real(fd, exclusive)

    monkeypatch.setattr(lockpool, "_try_lockf", cleanup_in_between)
    with hold(lck, exclusive=True):
        assert len(calls) == 2  # the orphan was dropped, the path opened again
        key = os.path.abspath(lck)
        entry = lockpool._stripe(key).entries[key]
        assert os.fstat(entry.fd).st_ino == lck.stat().st_ino


def test_download_lock_layout_and_cleanup(tmp_path: Path) -> None:
    gitdir = tmp_path
    uuid = "a1b2c3d4-0000-4000-8000-00000000c11e"
    base = gitdir / "annex" / "transfer" / "download"
    kf = K.file_name()
    with transfers.download(gitdir, uuid, K, "dir/file.txt"):
        assert (base / "lck" / f"lck.{kf}").is_file()
        assert (base / uuid / f"lck.{kf}").is_file()
        first, file = (base / uuid / kf).read_text().splitlines()
        assert first.endswith("s") and float(first[:-1]) > 0
        assert file == "dir/file.txt"
        # One download of a key at a time, whatever the source.
        with pytest.raises(TransferBusy), transfers.download(gitdir, "other-uuid", K):
            pass
        with transfers.upload(gitdir, uuid, K):  # an upload is another transfer
            assert (gitdir / "annex" / "transfer" / "upload" / uuid / f"lck.{kf}").is_file()
    assert not [p for p in (gitdir / "annex" / "transfer").rglob("*") if p.is_file()]


def test_download_lock_excludes_another_process(tmp_path: Path) -> None:
    lck = transfers.lock_paths(tmp_path, transfers.DOWNLOAD, "u", K)[0]
    lck.parent.mkdir(parents=True)
    other = _other_process(lck, "ex")
    try:
        with pytest.raises(TransferBusy) as e, transfers.download(tmp_path, "u", K):
            pass
        assert "transfer already in progress, or unable to take transfer lock" in str(e.value)
    finally:
        _end(other)
    with transfers.download(tmp_path, "u", K):
        pass


def test_a_slow_lock_file_does_not_hold_up_another(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Creating a lock file can take milliseconds on a busy file system; a
    gateway's dozen transfers must not queue behind each other's calls.
    Here one lock's fcntl call hangs; a lock on another file is granted
    meanwhile."""
    import threading

    def stripe(path: Path) -> object:
        return lockpool._stripe(os.path.abspath(path))

    slow = tmp_path / "slow.lck"
    others = (tmp_path / f"other{i}.lck" for i in range(1000))
    other = next(p for p in others if stripe(p) is not stripe(slow))  # another guard
    entered, release = threading.Event(), threading.Event()
    real = lockpool._try_lockf

    def hanging(fd: int, exclusive: bool) -> bool:
        if os.fstat(fd).st_ino == slow.stat().st_ino:
            entered.set()
            release.wait(10)
        return real(fd, exclusive)

    monkeypatch.setattr(lockpool, "_try_lockf", hanging)

    def hold_slow() -> None:
        with hold(slow, exclusive=True):
            pass

    t = threading.Thread(target=hold_slow)
    t.start()
    try:
        assert entered.wait(5)
        granted = threading.Event()

        def hold_other() -> None:
            with hold(other, exclusive=True):
                granted.set()

        u = threading.Thread(target=hold_other, daemon=True)
        u.start()
        assert granted.wait(2), "a lock on another file waited for the slow one"
    finally:
        release.set()
        t.join(10)
