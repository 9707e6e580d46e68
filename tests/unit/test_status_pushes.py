"""Push jobs in the status (core.status.PushStatus): health, words, JSON."""

from __future__ import annotations

import json

from core.status import Health, PushStatus, RepoStatus, Status, status_from_json, to_json

NOW = 1_000_000.0


def push(**kw: object) -> PushStatus:
    base: dict[str, object] = dict(job_id=1, peer="desktop", device_id="dev-b", repo="/r",
                                   direction="outgoing", phase="running", started=NOW - 12)
    base.update(kw)
    return PushStatus(**base)  # type: ignore[arg-type]


def status(*pushes: PushStatus) -> Status:
    return Status(repos=(RepoStatus("/r", "u", "here"),), pushes=pushes)


def test_a_running_or_waiting_push_is_never_synced() -> None:
    assert status().health(NOW) is Health.SYNCED
    for p in (push(), push(phase="invited"), push(phase="pending", ready=True)):
        assert status(p).health(NOW) is Health.SYNCING, p


def test_a_push_pending_for_an_absent_device_or_done_is_not_syncing() -> None:
    assert status(push(phase="pending", ready=False)).health(NOW) is Health.SYNCED
    assert status(push(phase="ended", outcome="done", ended=NOW)).health(NOW) is Health.SYNCED


def test_a_failed_or_timed_out_push_waits_and_says_why() -> None:
    p = push(phase="ended", outcome="timed out", reason="no data within 120 s", ended=NOW)
    s = status(p)
    assert s.health(NOW) is Health.WAITING
    tip = s.tooltip(NOW)
    assert "waiting for desktop" in tip
    assert "push to desktop: timed out (no data within 120 s)" in tip
    failed = push(phase="ended", outcome="failed", reason="desktop is not reachable", ended=NOW)
    assert "push to desktop: failed (desktop is not reachable)" in status(failed).tooltip(NOW)


def test_line_counts_down_and_elapsed() -> None:
    p = push(waiting_for="block acknowledgement", deadline=NOW + 42.4)
    assert p.line(NOW) == "push to desktop: running, waiting for block acknowledgement, times out in 42 s"
    assert p.elapsed(NOW) == 12
    assert push(direction="incoming", phase="invited").line(NOW) == "push from desktop: asked it to push"
    assert push(phase="ended", ended=NOW - 2, outcome="done").elapsed(NOW) == 10


def test_json_round_trip_with_pushes() -> None:
    s = status(push(deadline=NOW + 3, waiting_for="data"), push(job_id=2, phase="ended",
                                                                outcome="refused", reason="busy"))
    assert status_from_json(json.loads(json.dumps(to_json(s)))) == s
