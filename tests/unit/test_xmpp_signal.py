"""The scheduling IQ codec (core.xmpp.signal) and the routing of a control message
to a shared repository (core.devices.pushes.route): pure, no network."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.devices.paired import PairedDevice, SharedRepo, Transports
from core.devices.pushes import route, scheduler_devices
from core.errors import RemoteProtocolError
from core.scheduler import events as ev
from core.xmpp import signal
from core.xmpp.signal import Control

DEV = "6f1c2d3e-4a5b-4c6d-8e7f-90a1b2c3d4e5"
REPO = str(uuid.UUID(int=2))
SHA = "a" * 40
NONCE = "0" * 32


def test_round_trip_of_each_action() -> None:
    for c in (Control(signal.ADVERTISE, DEV, REPO, (("main", SHA), ("git-annex", "b" * 40)), NONCE),
              Control(signal.REQUEST, DEV, REPO),
              Control(signal.PUSH_OPEN, DEV, REPO, sid="f" * 32)):
        assert signal.parse_control(signal.format_control(c)) == c


def test_answers_round_trip_and_wrong_answers_are_refused() -> None:
    assert signal.parse_answer("advertise", signal.format_answer("advertise", "want")) == "want"
    assert signal.parse_answer("push-open", {"action": "push-open", "answer": "accepted"}) == "accepted"
    with pytest.raises(RemoteProtocolError):
        signal.parse_answer("request", {"action": "request", "answer": "want"})
    with pytest.raises(RemoteProtocolError):
        signal.parse_answer("advertise", {"action": "request", "answer": "want"})
    with pytest.raises(ValueError):
        signal.format_answer("request", "accepted")


@pytest.mark.parametrize("attrs", [
    {"action": "hello", "dev": DEV, "repo": REPO},
    {"action": "request", "dev": "not-a-uuid", "repo": REPO},
    {"action": "request", "dev": DEV.upper(), "repo": REPO},  # not canonical
    {"action": "request", "dev": DEV},
    {"action": "advertise", "dev": DEV, "repo": REPO, "refs": f"main={SHA}"},  # no nonce
    {"action": "advertise", "dev": DEV, "repo": REPO, "refs": "", "nonce": NONCE},
    {"action": "advertise", "dev": DEV, "repo": REPO, "refs": f"main={SHA[:-1]}", "nonce": NONCE},
    {"action": "advertise", "dev": DEV, "repo": REPO, "refs": f"ma in={SHA}", "nonce": NONCE},
    {"action": "advertise", "dev": DEV, "repo": REPO, "refs": " ".join([f"m={SHA}"] * 9), "nonce": NONCE},
    {"action": "push-open", "dev": DEV, "repo": REPO, "sid": "xyz"},
])  # fmt: skip
def test_malformed_messages_are_protocol_errors(attrs: dict[str, str]) -> None:
    with pytest.raises(RemoteProtocolError):
        signal.parse_control(attrs)


@given(st.dictionaries(st.sampled_from(signal.ATTRIBUTES), st.text(max_size=80)))
def test_any_attributes_give_a_control_or_a_protocol_error(attrs: dict[str, str]) -> None:
    try:
        c = signal.parse_control(attrs)
    except RemoteProtocolError:
        return
    assert signal.parse_control(signal.format_control(c)) == c


def test_retry_after_is_bounded() -> None:
    assert signal.parse_retry_after("12", 30.0) == 12.0
    for bad in ("", "0", "-1", "1e3", "99999", " 5"):
        assert signal.parse_retry_after(bad, 30.0) == 30.0


# --- routing ---------------------------------------------------------------------------

A = PairedDevice("dev-a", "laptop", (SharedRepo("/r/one", "uuid-a1"), SharedRepo("/r/two", "uuid-a2")),
                 Transports("alice@example.org/annexsync-1"))
B = PairedDevice("dev-b", "desktop", (SharedRepo("/r/one", "uuid-b1"),), Transports("Alice@example.org/x"))


def test_route_finds_the_shared_repository_by_device_and_uuid() -> None:
    assert route([A, B], "dev-a", "uuid-a2") == (A, A.repos[1])
    assert route([A, B], "dev-b", "uuid-b1") == (B, B.repos[0])
    assert route([A, B], "dev-x", "uuid-a1") == "message from a device that is not paired"
    # B.25/B.26: A's uuid claimed by B (same account) is not B's repository
    assert route([A, B], "dev-b", "uuid-a1") == "repository uuid does not match the paired device"


def test_scheduler_devices_per_repository_each_by_its_own_id() -> None:
    assert scheduler_devices([A, B], "/r/one") == (
        ev.PairedDevice("dev-a", "uuid-a1", "alice@example.org"),
        ev.PairedDevice("dev-b", "uuid-b1", "alice@example.org"))
    assert scheduler_devices([A, B], "/r/two") == (ev.PairedDevice("dev-a", "uuid-a2", "alice@example.org"),)
