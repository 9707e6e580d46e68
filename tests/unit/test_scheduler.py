"""The push scheduler, one test per bug of spec xmpp-sync.md part B that this layer owns.

Each test is named after the bug (section B, item number) it makes impossible.
"""

from __future__ import annotations

import pytest

from core.errors import LocalProtocolError
from core.scheduler.events import (
    AdvertiseAnswered,
    AdvertiseReceived,
    AnswerAdvertise,
    AnswerOffer,
    AnswerRequest,
    Connected,
    DevicesChanged,
    Direction,
    Disconnected,
    EndJob,
    JobFinished,
    JobWaiting,
    Limits,
    LocalCommit,
    OfferRefused,
    Outcome,
    PairedDevice,
    PeerUnreachable,
    Phase,
    PresenceChanged,
    PushOfferReceived,
    PushRequestReceived,
    Reject,
    RequestScan,
    SendAdvertise,
    Sender,
    SendPushRequest,
    StartJob,
    SyncNow,
    Tick,
    Wait,
    WakeAt,
)
from core.scheduler.machine import Scheduler
from tests.unit.scheduler_helpers import A, B, C, Driver, available, ends, jid, sender, starts


def push_to(d: Driver, device_id: str) -> StartJob:
    """Our outgoing push to ``device_id``, started by its request."""
    acts = d(PushRequestReceived(sender({A.device_id: A, B.device_id: B, C.device_id: C}[device_id])))
    (start,) = [s for s in starts(acts) if s.direction is Direction.OUTGOING]
    return start


def test_b5_deadlock_when_both_sides_push_to_each_other() -> None:
    d = Driver()
    d.online(A)
    ours = push_to(d, A.device_id)
    acts = d(PushOfferReceived(sender(A), "s1"))
    assert AnswerOffer(A.device_id, "s1", True) in acts
    (theirs,) = starts(acts)
    assert theirs.direction is Direction.INCOMING and theirs.job_id != ours.job_id


def test_b6_vanished_peer_ends_its_jobs_at_once_and_by_idle_timeout() -> None:
    d = Driver()
    d.online(A, C)
    job = push_to(d, A.device_id)
    assert ends(d(available(A, False))) == [EndJob(job.job_id, Outcome.ABORTED, "the device went offline")]
    # without any news, the idle limit ends an incoming push after 120 s, not later
    d(PushOfferReceived(sender(C), "s"), at=10)
    assert ends(d(Tick(), at=129.9)) == []
    (end,) = ends(d(Tick(), at=130))
    assert end.outcome is Outcome.TIMED_OUT and "120 s" in end.reason


def test_b8_advertise_answered_while_both_lanes_are_busy() -> None:
    d = Driver()
    d.online(A, B, C)
    push_to(d, A.device_id)
    d(PushOfferReceived(sender(B), "s"))
    assert AnswerAdvertise(C.device_id) in d(AdvertiseReceived(sender(C)))


def test_b9_initiation_during_a_running_job_of_the_same_side_is_queued() -> None:
    d = Driver()
    d.online(A, C)
    first = push_to(d, A.device_id)
    acts = d(PushRequestReceived(sender(C)))
    assert AnswerRequest(C.device_id) in acts and starts(acts) == []
    (second,) = starts(d(JobFinished(first.job_id, True)))
    assert second.device_id == C.device_id


def test_b10_two_pushes_to_one_device_never_run_at_once_and_requests_coalesce() -> None:
    d = Driver()
    d.online(A)
    first = push_to(d, A.device_id)
    for _ in range(5):
        assert starts(d(PushRequestReceived(sender(A)))) == []
    views = [v for v in d.s.jobs() if v.device_id == A.device_id and v.direction is Direction.OUTGOING]
    assert [v.phase for v in views] == [Phase.RUNNING, Phase.PENDING]
    assert len(starts(d(JobFinished(first.job_id, True)))) == 1
    assert [v.phase for v in d.s.jobs() if v.phase is not Phase.ENDED] == [Phase.RUNNING]


@pytest.mark.parametrize("path", ["finish", "failure", "timeout", "refused", "offline", "disconnect", "unpaired"])
def test_b11_every_started_job_ends_exactly_once(path: str) -> None:
    d = Driver()
    d.online(A)
    job = push_to(d, A.device_id)
    event = {
        "finish": JobFinished(job.job_id, True),
        "failure": JobFinished(job.job_id, False, "git push failed"),
        "timeout": Tick(),
        "refused": OfferRefused(job.job_id),
        "offline": available(A, False),
        "disconnect": Disconnected(),
        "unpaired": DevicesChanged((B, C)),
    }[path]
    acts = d(event, at=31 if path == "timeout" else 1)
    assert [e.job_id for e in ends(acts)] == [job.job_id]
    # late news about that job ends nothing twice
    for late in (JobFinished(job.job_id, False), JobWaiting(job.job_id, Wait.IDLE), OfferRefused(job.job_id), Tick()):
        assert ends(d(late, at=5000)) == []


def test_b11_a_move_outside_the_table_is_refused() -> None:
    s = Scheduler((A,))
    job = s._new_job(A.device_id, Direction.OUTGOING, Phase.PENDING)
    with pytest.raises(LocalProtocolError):
        s._move(job, "offer")


def test_b12_b54_state_is_bounded_by_paired_devices() -> None:
    d = Driver()
    d.online(A, B, C)
    for i in range(50):
        for dev in (A, B, C):
            d(PushRequestReceived(sender(dev)))
            d(PushOfferReceived(sender(dev), f"s{i}"))
        d(PushRequestReceived(Sender(f"x{i}@evil.example/r", f"dev-x{i}", f"uuid-x{i}")))
    live = [v for v in d.s.jobs() if v.phase is not Phase.ENDED]
    assert len(live) <= 2 * 2 * 3
    assert len(d.s._peers) == 3


def test_b13_one_device_cannot_drown_the_others() -> None:
    d = Driver()
    d.online(A, B, C)
    job = push_to(d, A.device_id)
    order = []
    for _ in range(9):
        for dev in (A, B, C):
            d(PushRequestReceived(sender(dev)))  # everyone always wants more
        (job,) = starts(d(JobFinished(job.job_id, True)))
        order.append(job.device_id)
    assert order == [B.device_id, C.device_id, A.device_id] * 3


def test_b14_a_missing_block_ack_is_noticed_after_60_s_not_120() -> None:
    d = Driver()
    d.online(A)
    job = push_to(d, A.device_id)
    d(JobWaiting(job.job_id, Wait.ACK), at=20)
    (view,) = [v for v in d.s.jobs() if v.job_id == job.job_id]
    assert view.waiting_for is Wait.ACK and view.deadline == 80
    assert ends(d(Tick(), at=79.9)) == []
    (end,) = ends(d(Tick(), at=80))
    assert end.reason == "no block acknowledgement within 60 s"
    (ended,) = [v for v in d.s.jobs() if v.job_id == job.job_id]
    assert ended.outcome is Outcome.TIMED_OUT and ended.reason == end.reason


def test_b11_whole_job_limit_caps_every_wait() -> None:
    d = Driver()
    d.online(A)
    job = push_to(d, A.device_id)
    for t in range(20, 1800, 100):  # news every 100 s: no wait expires, the whole limit does
        assert ends(d(JobWaiting(job.job_id, Wait.IDLE), at=t)) == []
    (end,) = ends(d(Tick(), at=1800))
    assert end.reason == "the push took longer than 30 min"


def test_b15_no_push_when_the_peer_is_up_to_date() -> None:
    d = Driver()
    d.online(A)
    assert SendAdvertise(A.device_id) in d(LocalCommit())
    assert starts(d(AdvertiseAnswered(A.device_id, False))) == []
    assert not d.s.dirty(A.device_id)
    assert len(starts(d(LocalCommit()) + d(AdvertiseAnswered(A.device_id, True)))) == 1


def test_b17_many_commits_make_one_advertise() -> None:
    d = Driver()
    d(Connected())
    for _ in range(20):
        d(LocalCommit())
    acts = d(available(A))
    assert acts.count(SendAdvertise(A.device_id)) == 1
    assert SendAdvertise(A.device_id) not in d(LocalCommit())  # one in flight already


def test_b18_nothing_is_sent_before_presence() -> None:
    d = Driver()
    acts = d(Connected()) + d(LocalCommit()) + d(PresenceChanged(jid(A), A.device_id, True, capable=False))
    assert not [a for a in acts if isinstance(a, (SendAdvertise, SendPushRequest, StartJob))]
    acts = d(available(A))
    assert SendAdvertise(A.device_id) in acts and SendPushRequest(A.device_id) in acts


def test_b22_presence_is_unknown_after_the_stream_is_lost() -> None:
    d = Driver()
    d.online(A, B, C)
    d(Disconnected())
    assert not any(d.s.present(x.device_id) for x in (A, B, C))
    acts = d(Connected()) + d(LocalCommit())
    assert not [a for a in acts if isinstance(a, (SendAdvertise, SendPushRequest))]


@pytest.mark.parametrize(
    "bad",
    [
        Sender("mallory@example.org/x", "dev-m", "uuid-m"),  # unpaired device
        Sender(jid(A), A.device_id, "uuid-other"),  # another repository on a paired account
        Sender("mallory@example.org/annexsync-dev-a", A.device_id, A.repo_uuid),  # right ids, wrong account
    ],
)
def test_b25_only_paired_devices_may_push(bad: Sender) -> None:
    d = Driver()
    d.online(A, B, C)
    before = (d.s.jobs(), [d.s.wants_pull(x.device_id) for x in (A, B, C)])
    for event in (PushOfferReceived(bad, "s"), PushRequestReceived(bad), AdvertiseReceived(bad)):
        acts = d(event)
        assert len(acts) == 1 and isinstance(acts[0], Reject) and acts[0].jid == bad.jid
    assert (d.s.jobs(), [d.s.wants_pull(x.device_id) for x in (A, B, C)]) == before


def test_b26_second_device_behind_one_account_may_push() -> None:
    d = Driver()
    d.online(A, B)
    assert AnswerOffer(A.device_id, "s1", True) in d(PushOfferReceived(sender(A), "s1"))
    acts = d(PushOfferReceived(sender(B), "s2"))
    assert AnswerOffer(B.device_id, "s2", False, 30.0) in acts  # busy, not refused for its account
    assert not [a for a in acts if isinstance(a, Reject)]


def test_b27_desync_is_per_device_and_triggers_a_scan() -> None:
    d = Driver(Limits(incoming_slots=2))
    d.online(A, B, settle=False)  # both invited to push: we may have missed something
    (job,) = starts(d(PushOfferReceived(sender(B), "s")))
    assert RequestScan(B.device_id) in d(JobFinished(job.job_id, True))
    assert d.s.desynced(A.device_id) and not d.s.desynced(B.device_id)
    # once in sync, a push that changes nothing asks for no scan; one that changes the branch does
    (job,) = starts(d(PushOfferReceived(sender(B), "t")))
    assert RequestScan(B.device_id) not in d(JobFinished(job.job_id, True, changed=False))
    (job,) = starts(d(PushOfferReceived(sender(B), "u")))
    assert RequestScan(B.device_id) in d(JobFinished(job.job_id, True, changed=True))
    d(Disconnected())
    assert d.s.desynced(B.device_id)


def test_b35_message_for_another_device_never_waits_behind_a_push() -> None:
    d = Driver()
    d.online(A, C)
    push_to(d, A.device_id)
    d(AdvertiseAnswered(C.device_id, False))
    acts = d(LocalCommit())
    assert SendAdvertise(C.device_id) in acts
    assert AnswerRequest(C.device_id) in d(PushRequestReceived(sender(C)))


def test_b36_push_waits_for_an_offline_device_and_runs_when_it_returns() -> None:
    d = Driver()
    d.online(A)
    job = push_to(d, A.device_id)
    d(PushRequestReceived(sender(A)))
    d(available(A, False))
    d(JobFinished(job.job_id, True))
    d(PushRequestReceived(sender(A)))  # arrived just before it left
    (view,) = [v for v in d.s.jobs() if v.phase is Phase.PENDING]
    assert not view.ready
    assert len(starts(d(available(A)))) == 1


def test_b44_b49_news_from_an_aborted_session_does_not_touch_the_next() -> None:
    d = Driver()
    d.online(A)
    old = push_to(d, A.device_id)
    d(Disconnected())
    d.online(A)
    new = push_to(d, A.device_id)
    assert new.job_id != old.job_id
    assert ends(d(JobFinished(old.job_id, True))) == []
    (view,) = [v for v in d.s.jobs() if v.job_id == new.job_id]
    assert view.phase is Phase.RUNNING


def test_b47_repeated_presence_does_not_repeat_messages() -> None:
    d = Driver()
    d(Connected())
    d(LocalCommit())
    first = d(available(A))
    again = d(available(A)) + d(available(A))
    assert first.count(SendAdvertise(A.device_id)) == 1
    assert not [a for a in again if isinstance(a, (SendAdvertise, SendPushRequest))]


def test_b51_failed_push_keeps_dirty_and_backs_off_doubling() -> None:
    d = Driver()
    d.online(A)
    d(LocalCommit())
    delays = []
    for _ in range(8):
        (job,) = starts(d(AdvertiseAnswered(A.device_id, True)))
        failed_at = d.now
        (end,) = ends(d(JobFinished(job.job_id, False, "git push failed")))
        assert end.outcome is Outcome.FAILED and d.s.dirty(A.device_id)
        wake = [a for a in d.s.handle(Tick(), d.now) if isinstance(a, WakeAt)]
        delays.append(wake[0].when - failed_at)
        assert SendAdvertise(A.device_id) in d(Tick(), at=wake[0].when)
    assert delays == [30, 60, 120, 240, 480, 960, 1800, 1800]
    (job,) = starts(d(AdvertiseAnswered(A.device_id, True)))
    d(JobFinished(job.job_id, True))
    assert not d.s.dirty(A.device_id)


def test_sync_now_ends_the_back_off_at_once() -> None:
    """The person's "Sync now": a device in back-off after a failed push is advertised to
    at once, not 30 s later; the next failure backs off from 30 s again; and every
    present device is asked for what we missed."""
    d = Driver()
    d.online(A)
    d(LocalCommit())
    for _ in range(3):  # failures: the back-off grew to 120 s
        (job,) = starts(d(AdvertiseAnswered(A.device_id, True)))
        d(JobFinished(job.job_id, False, "git push failed"))
        d(Tick(), at=d.s.next_wake())
    (job,) = starts(d(AdvertiseAnswered(A.device_id, True)))
    failed_at = d.now
    d(JobFinished(job.job_id, False, "git push failed"))
    assert SendAdvertise(A.device_id) not in d(Tick(), at=failed_at + 1)
    acts = d(SyncNow(), at=failed_at + 2)
    assert SendAdvertise(A.device_id) in acts
    assert SendPushRequest(A.device_id) in acts
    (job,) = starts(d(AdvertiseAnswered(A.device_id, True)))
    d(JobFinished(job.job_id, False, "git push failed"))
    assert d.s.next_wake() == d.now + 30


def test_commit_during_a_push_is_advertised_after_it() -> None:
    d = Driver()
    d.online(A)
    d(LocalCommit())
    (job,) = starts(d(AdvertiseAnswered(A.device_id, True)))
    assert SendAdvertise(A.device_id) not in d(LocalCommit())
    assert SendAdvertise(A.device_id) in d(JobFinished(job.job_id, True))


def test_b14_after_a_refusal_and_the_push_it_asked_for_the_next_commit_goes_at_once() -> None:
    """Found by bench/xmpp_soak.py: a refused push-open set a 30 s retry that the push the
    peer then asked for did not clear, so every commit in the next 30 s waited (a stall)."""
    d = Driver()
    d.online(A)
    d(LocalCommit())
    (job,) = starts(d(AdvertiseAnswered(A.device_id, True)))
    d(OfferRefused(job.job_id))  # A was busy; it asks us when it is free
    (job,) = starts(d(PushRequestReceived(sender(A))))
    d(JobFinished(job.job_id, True))
    assert SendAdvertise(A.device_id) in d(LocalCommit(), at=d.now + 1)
    d(AdvertiseAnswered(A.device_id, False))
    assert SendAdvertise(A.device_id) in d(LocalCommit(), at=d.now + 1)


def test_busy_device_is_invited_when_the_incoming_slot_frees() -> None:
    d = Driver()
    d.online(A, C)
    d(AdvertiseAnswered(A.device_id, False))
    (job,) = starts(d(PushOfferReceived(sender(A), "s")))
    assert AnswerOffer(C.device_id, "t", False, 30.0) in d(PushOfferReceived(sender(C), "t"))
    acts = d(JobFinished(job.job_id, True))
    assert SendPushRequest(C.device_id) in acts
    # the slot is kept for C: A's next offer waits, C's is accepted
    assert AnswerOffer(A.device_id, "u", False, 30.0) in d(PushOfferReceived(sender(A), "u"))
    assert AnswerOffer(C.device_id, "v", True) in d(PushOfferReceived(sender(C), "v"))


def test_status_shows_countdown_then_timed_out() -> None:
    d = Driver()
    d.online(A)
    job = push_to(d, A.device_id)
    (view,) = [v for v in d.s.jobs() if v.job_id == job.job_id]
    assert (view.phase, view.waiting_for, view.deadline) == (Phase.RUNNING, Wait.IQ, 30)
    d(Tick(), at=30)
    (view,) = [v for v in d.s.jobs() if v.job_id == job.job_id]
    assert (view.phase, view.outcome, view.reason) == (Phase.ENDED, Outcome.TIMED_OUT, "no answer within 30 s")


def test_lane_size_is_configurable() -> None:
    d = Driver(Limits(outgoing_slots=2))
    d.online(A, B, C)
    acts = [a for x in (A, B, C) for a in d(PushRequestReceived(sender(x)))]
    assert [s.device_id for s in starts(acts)] == [A.device_id, B.device_id]


def test_b2_b6_iq_error_means_unreachable_and_ends_its_jobs() -> None:
    d = Driver()
    d.online(A, C)
    job = push_to(d, A.device_id)
    acts = d(PeerUnreachable(A.device_id))
    assert [e.job_id for e in ends(acts)] == [job.job_id] and not d.s.present(A.device_id)
    assert not [a for a in d(LocalCommit()) if isinstance(a, SendAdvertise) and a.device_id == A.device_id]


def test_b2_unanswered_advertise_backs_off_then_retries() -> None:
    d = Driver()
    d.online(A)
    assert SendAdvertise(A.device_id) in d(LocalCommit(), at=1)
    assert d(Tick(), at=31) == []  # the advertise got no answer within 30 s
    assert SendAdvertise(A.device_id) in d(Tick(), at=61)
    assert d(AdvertiseAnswered(A.device_id, True), at=1000) == []  # too late: ignored


def test_b24_new_pairing_syncs_both_ways_as_soon_as_the_device_is_present() -> None:
    d = Driver()
    d.s.handle(DevicesChanged((A,)), 0)
    d.online(A)
    new = PairedDevice("dev-n", "uuid-n", "nina@example.org")
    d(DevicesChanged((A, new)))
    assert d.s.dirty(new.device_id) and d.s.wants_pull(new.device_id) and d.s.desynced(new.device_id)
    acts = d(PresenceChanged(f"nina@example.org/annexsync-{new.device_id}", new.device_id, True))
    assert SendAdvertise(new.device_id) in acts and SendPushRequest(new.device_id) in acts
