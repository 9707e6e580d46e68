"""The committer's batching rules (assistant-behaviour.md 3.1 step 2), with a fake clock."""

from __future__ import annotations

from core.daemon.batching import Batcher, BatchRules


def test_nothing_pending_nothing_to_do() -> None:
    b = Batcher()
    assert b.decide(100.0) == []
    assert b.next_check(100.0) is None


def test_single_change_waits_one_second_then_commits() -> None:
    b = Batcher()
    b.record(["a.txt"], 10.0)
    assert b.decide(10.5) == []
    assert b.next_check(10.5) == 11.0
    assert b.decide(11.0) == ["a.txt"]
    assert b.pending == 0


def test_repeated_changes_to_one_path_count_once_and_keep_their_age() -> None:
    b = Batcher()
    b.record(["a"], 10.0)
    b.record(["a"], 10.6)
    assert b.pending == 1
    assert b.decide(11.0) == ["a"]


def test_ten_changes_in_a_second_mean_a_batch_is_running() -> None:
    b = Batcher()
    t = 10.0
    while t < 13.0:  # an import writing 20 files a second for 3 s
        b.record([f"f{t:.2f}"], t)
        assert b.decide(t) == []
        t += 0.05
    assert b.burst_running(13.0)
    assert b.next_check(13.0) >= 13.0
    assert b.decide(13.5) == []  # still 10 changes within the last second
    assert len(b.decide(14.0)) == 60  # the burst is over: all at once


def test_nine_changes_a_second_do_not_hold_the_commit() -> None:
    b = Batcher()
    for i in range(9):
        b.record([f"f{i}"], 10.0 + i * 0.1)
    assert not b.burst_running(10.85)
    assert b.decide(10.9) == []  # the oldest is younger than 1 s
    assert len(b.decide(11.0)) == 9  # then everything, although some are newer


def test_at_most_5000_per_commit_even_during_a_burst() -> None:
    b = Batcher()
    b.record([f"f{i:05}" for i in range(12000)], 10.0)
    first = b.decide(10.0)
    assert len(first) == 5000
    assert first == sorted(first)
    assert len(b.decide(10.0)) == 5000
    assert b.decide(10.0) == []  # 2000 left: a burst is running and they are young
    assert len(b.decide(11.5)) == 2000


def test_smaller_rules_for_tests() -> None:
    b = Batcher(BatchRules(quiet=0.1, burst=3, window=0.2, max_batch=2))
    b.record(["a", "b", "c"], 0.0)
    assert b.decide(0.0) == ["a", "b"]  # max_batch reached
    assert b.decide(0.15) == []  # burst still in the window
    assert b.decide(0.25) == ["c"]


def test_requeue_waits_a_full_quiet_period() -> None:
    b = Batcher()
    b.record(["a"], 0.0)
    taken = b.decide(1.0)
    b.requeue(taken, 1.0)
    assert b.decide(1.5) == []
    assert b.decide(2.0) == ["a"]


def test_flush_takes_everything_at_once() -> None:
    b = Batcher()
    b.record(["x", "y"], 5.0)
    assert sorted(b.flush()) == ["x", "y"]
    assert b.pending == 0
