"""The job pool of get/copy (``core.ops.jobs``): order, ownership, stopping, config."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from core.ops.jobs import Stopped, configured_jobs, jobs_for, parse_jobs, run_jobs
from core.progress import NullProgress, Progress
from core.repo.repository import AnnexRepo


@pytest.fixture
def repo(tmp_path: Path) -> AnnexRepo:
    return AnnexRepo.init(tmp_path / "r", "jobs")


class Counting(NullProgress):
    def __init__(self) -> None:
        self.items = 0
        self.bytes = 0

    def advance(self, items: int = 0, nbytes: int = 0, current: str = "") -> None:
        n = self.items + items  # a read-modify-write: racy unless the pool serialises it
        time.sleep(0)
        self.items = n
        self.bytes += nbytes


def test_parse_jobs() -> None:
    assert parse_jobs("3") == 3
    assert parse_jobs(" 2 ") == 2
    assert parse_jobs("cpus") >= 1
    for bad in ("0", "-1", "x", "", "1.5", "+2"):
        with pytest.raises(ValueError):
            parse_jobs(bad)


def test_annex_jobs_from_config(repo: AnnexRepo) -> None:
    assert configured_jobs(repo.git.get_config_stack()) is None
    assert jobs_for(repo, None) == 1  # git-annex's default
    cfg = repo.git.get_config()
    for value, want in ((b"3", 3), (b"cpus", parse_jobs("cpus")), (b"lots", None)):
        cfg.set((b"annex",), b"jobs", value)
        cfg.write_to_path()
        assert configured_jobs(repo.git.get_config_stack()) == want
    cfg.set((b"annex",), b"jobs", b"3")
    cfg.write_to_path()
    assert jobs_for(repo, None) == 3
    assert jobs_for(repo, 2) == 2  # -J wins


def test_results_in_order_each_worker_its_own_handle(repo: AnnexRepo) -> None:
    seen: dict[str, set[int]] = {}
    lock = threading.Lock()

    def work(r: AnnexRepo, item: int, p: Progress) -> int:
        assert r is not repo and r.path == repo.path
        with lock:
            seen.setdefault(threading.current_thread().name, set()).add(id(r))
        time.sleep(0.01)
        p.advance(1, 10)
        return item * 2

    progress = Counting()
    assert run_jobs(repo, list(range(40)), work, 3, progress) == [i * 2 for i in range(40)]
    assert len(seen) == 3 and all(len(handles) == 1 for handles in seen.values())
    assert (progress.items, progress.bytes) == (40, 400)


def test_one_job_runs_inline_on_the_callers_handle(repo: AnnexRepo) -> None:
    def work(r: AnnexRepo, item: int, p: Progress) -> str:
        assert r is repo
        return threading.current_thread().name

    assert set(run_jobs(repo, [1, 2, 3], work, 1, NullProgress())) == {
        threading.current_thread().name}


def test_a_bug_in_one_worker_stops_the_others_and_is_raised(repo: AnnexRepo) -> None:
    started: list[int] = []
    stopped: list[int] = []

    def work(r: AnnexRepo, item: int, p: Progress) -> int:
        started.append(item)
        if item == 0:
            time.sleep(0.2)  # items 1 and 2 are in flight meanwhile
            raise KeyError("a bug")
        try:
            for _ in range(2000):  # a transfer in flight (10 s): reports bytes as it goes
                p.advance(0, 1)
                time.sleep(0.005)
        except Stopped:
            stopped.append(item)
            raise
        return item

    with pytest.raises(KeyError, match="a bug"):
        run_jobs(repo, list(range(50)), work, 3, NullProgress())
    assert len(started) < 10  # no new item after the failure
    assert stopped  # the transfers in flight ended at their next byte report


def _ctrl_c_in_a_pool(repo: AnnexRepo, count: int, kill_at: int,
                      first_cleanup: float = 0.05) -> tuple[list[int], list[int]]:  # fmt: skip
    """A pool of ``count`` workers, each a transfer until it is stopped; a real
    SIGINT once ``kill_at`` of them began.  The first worker's cleanup takes
    ``first_cleanup`` s, the others' 0.05 s.  Returns (began, cleaned up)."""
    import os
    import signal

    running: list[int] = []
    cleaned: list[int] = []
    lock = threading.Lock()

    def work(r: AnnexRepo, item: int, p: Progress) -> int:
        with lock:
            running.append(item)
            if len(running) == kill_at:
                os.kill(os.getpid(), signal.SIGINT)
        try:
            while True:  # a transfer: its byte reports raise Stopped once stopping
                p.advance(0, 1)
                time.sleep(0.005)
        finally:  # the session closing, its lock released
            first = threading.current_thread().name.endswith("-1")
            time.sleep(first_cleanup if first else 0.05)
            with lock:
                cleaned.append(item)

    with pytest.raises(KeyboardInterrupt):
        run_jobs(repo, list(range(count)), work, count, NullProgress())
    with lock:
        return sorted(running), sorted(cleaned)


def test_ctrl_c_while_the_workers_start_waits_for_every_one(repo: AnnexRepo) -> None:
    """Ctrl-C while the caller still starts workers: every worker that began
    is awaited.  (Raised inside ``Thread.start`` after that thread began to
    run, a KeyboardInterrupt used to leave it out of the count the caller
    waits on: the old pool failed 3 of 3 runs of this test.)"""
    for _ in range(20):
        began, cleaned = _ctrl_c_in_a_pool(repo, 8, kill_at=1)  # the first worker sends it
        assert cleaned == began


def testctrl_c_held_back_while_the_workers_start_is_raised_after() -> None:
    """The guard itself, deterministically (the pool test above needs a SIGINT
    to land in a window of a few instructions): a Ctrl-C inside it is raised
    only as it ends, and Python's own handler is back."""
    import os
    import signal

    from core.ops.jobs import ctrl_c_held_back

    went_on = False
    with pytest.raises(KeyboardInterrupt), ctrl_c_held_back():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler has run by now
        went_on = True
    assert went_on
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_that_a_worker_thread_took_still_stops_the_pool(repo: AnnexRepo) -> None:
    """The kernel may hand a process's SIGINT to any of its threads; Python
    runs the handler only in the main thread, once it runs bytecode.  Here a
    worker takes the SIGINT itself while the main thread waits for the pool:
    the pool must still stop its workers and raise KeyboardInterrupt.  (An
    untimed wait slept on while the workers transferred forever; a timer ends
    them after 5 s so that this test fails instead of hanging.)"""
    import signal

    give_up = threading.Event()
    gave_up: list[int] = []

    def work(r: AnnexRepo, item: int, p: Progress) -> int:
        if item == 0:
            time.sleep(0.3)  # the main thread is waiting by now
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # to this thread
        while not give_up.is_set():  # a transfer: its byte reports raise Stopped
            p.advance(0, 1)
            time.sleep(0.005)
        gave_up.append(item)
        return item

    timer = threading.Timer(5, give_up.set)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_jobs(repo, [0, 1, 2], work, 3, NullProgress())
    finally:
        give_up.set()
        timer.cancel()
    assert not gave_up  # stopped by the pool, not by the timer


def test_finished_files_are_counted_while_stopping(repo: AnnexRepo) -> None:
    def work(r: AnnexRepo, item: int, p: Progress) -> int:
        if item == 0:
            raise RuntimeError("stop")
        time.sleep(0.05)
        p.advance(1, 0)  # not a byte report: never raises
        return item

    with pytest.raises(RuntimeError):
        run_jobs(repo, [0, 1, 2], work, 3, NullProgress())


def test_ctrl_c_waits_for_every_workers_cleanup(repo: AnnexRepo) -> None:
    """A real SIGINT while the pool runs: ``run_jobs`` raises KeyboardInterrupt
    only after every worker's transfer has cleaned up.  (On Python 3.11 a
    ``Thread.join`` that Ctrl-C interrupts marks its thread as ended while it
    still runs: a pool waiting in ``join`` let the process exit mid-transfer,
    its transfer lock files left behind.)"""
    began, cleaned = _ctrl_c_in_a_pool(repo, 3, kill_at=3, first_cleanup=0.6)
    assert began == cleaned == [0, 1, 2]  # the first worker (whose join Ctrl-C interrupts) last
