"""The pure rules that keep servers up: connection table, pace, AUTH throttle, log lines."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.p2p.limits import AuthThrottle, ConnectionTable, Pace, one_line


def test_a_full_table_evicts_the_oldest_pending_connection() -> None:
    t: ConnectionTable[str] = ConnectionTable(3)
    assert t.admit("a") == (True, None)
    assert t.admit("b") == (True, None)
    assert t.admit("c") == (True, None)
    t.busy("a")  # authenticated / inside a request
    assert t.admit("d") == (True, "b")
    assert len(t) == 3 and "b" not in t and "a" in t


def test_a_table_of_busy_connections_refuses() -> None:
    t: ConnectionTable[str] = ConnectionTable(2)
    for c in "ab":
        t.admit(c)
        t.busy(c)
    assert t.admit("c") == (False, None)
    assert len(t) == 2
    t.idle("a")  # a request ended: evictable again
    assert t.admit("c") == (True, "a")


def test_idle_makes_a_connection_the_newest() -> None:
    t: ConnectionTable[str] = ConnectionTable(2)
    t.admit("a")
    t.admit("b")
    t.busy("a")
    t.idle("a")  # now newer than b
    assert t.admit("c") == (True, "b")


@given(st.lists(st.tuples(st.sampled_from(["admit", "busy", "idle", "remove"]),
                          st.integers(0, 20)), max_size=200), st.integers(1, 6))  # fmt: skip
def test_the_table_never_exceeds_its_limit(ops: list[tuple[str, int]], limit: int) -> None:
    t: ConnectionTable[int] = ConnectionTable(limit)
    for op, c in ops:
        if op == "admit" and c not in t:
            admitted, victim = t.admit(c)
            assert admitted == (c in t)
            assert victim is None or victim not in t
        elif op != "admit":
            getattr(t, op)(c)
        assert len(t) <= limit


def test_pace_slides_only_when_enough_moved() -> None:
    p = Pace(10.0, 100, now=0.0)
    assert p.deadline() == 10.0
    p.moved(60, now=5.0)
    assert p.deadline() == 10.0  # one byte at a time never buys time
    p.moved(40, now=8.0)
    assert p.deadline() == 18.0
    p.moved(1, now=17.0)
    assert p.deadline() == 18.0


def test_auth_failures_are_spaced_per_peer() -> None:
    now = [100.0]
    th = AuthThrottle(free=2, interval=1.0, clock=lambda: now[0])
    assert th.failed("p") == 0.0
    assert th.failed("p") == 0.0
    # the next ones, even from parallel connections at the same instant, queue up
    assert [th.failed("p") for _ in range(3)] == [1.0, 2.0, 3.0]
    assert th.failed("q") == 0.0  # another address is not slowed
    now[0] += 3.0
    assert th.failed("p") == 1.0  # its queue has drained to now: one interval
    now[0] += 10_000.0
    assert th.failed("p") == 0.0  # forgotten after a while


def test_the_throttle_table_is_bounded() -> None:
    now = [0.0]
    th = AuthThrottle(max_peers=10, clock=lambda: now[0])
    for i in range(1000):
        now[0] += 0.001
        th.failed(f"peer{i}")
    assert len(th) <= 10


@given(st.text(max_size=5000))
def test_one_line_is_one_bounded_line(text: str) -> None:
    line = one_line(text)
    assert "\n" not in line and "\r" not in line and len(line) <= 200
    assert line.isprintable()
