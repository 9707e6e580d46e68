"""core.xmpp.payloads and core.xmpp.buddies: pure rules (xmpp-sync C.1, B.18-B.22, B.32, B.52)."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import RemoteProtocolError
from core.xmpp import payloads
from core.xmpp.buddies import Buddies
from core.xmpp.payloads import Hello, format_hello, parse_hello

DEV = str(uuid.UUID(int=0xABCDEF))


def test_presence_has_negative_priority_and_names_the_app() -> None:
    f = payloads.presence_fields()
    assert f["priority"] == -1 and f["show"] == "xa" and "annexsync" in str(f["status"])
    assert payloads.presence_fields(paused=True)["show"] == "dnd"


def test_resource_is_stable_and_short() -> None:
    assert payloads.resource_name("0123abcd-0000-4000-8000-000000000000") == "annexsync-0123abcd"


@pytest.mark.parametrize(("resource", "priority", "ok"), [
    ("annexsync-0123abcd", -1, True), ("annexsync-0123abcd", 0, False),
    ("phone", -1, False), ("Gajim", 5, False),
])  # fmt: skip
def test_only_our_shape_is_ever_asked(resource: str, priority: int, ok: bool) -> None:
    assert payloads.is_candidate(resource, priority) is ok


def test_hello_round_trip_and_strictness() -> None:
    h = Hello(DEV, "laptop")
    assert parse_hello(format_hello(h)) == h
    for attrs in ({"action": "push", "dev": DEV, "name": "x"}, {"action": "hello", "dev": "nope", "name": "x"},
                  {"action": "hello", "dev": DEV.upper(), "name": "x"},
                  {"action": "hello", "dev": DEV, "name": ""},
                  {"action": "hello", "dev": DEV, "name": "a\nb"},
                  {"action": "hello", "dev": DEV, "name": "x" * 65}):  # fmt: skip
        with pytest.raises(RemoteProtocolError):
            parse_hello(attrs)


@given(st.dictionaries(st.sampled_from(["action", "dev", "name", "x"]), st.text(max_size=80)))
def test_any_attributes_give_a_hello_or_a_protocol_error(attrs: dict[str, str]) -> None:
    try:
        h = parse_hello(attrs)
    except RemoteProtocolError:
        return
    assert h.device_id == attrs["dev"] and h.name == attrs["name"]


@pytest.mark.parametrize(("text", "want"), [
    ("example.org", ("example.org", 5222)), ("127.0.0.1:5333", ("127.0.0.1", 5333)),
    ("[::1]:5333", ("::1", 5333)), ("[::1]", ("::1", 5222)),
])  # fmt: skip
def test_parse_server(text: str, want: tuple[str, int]) -> None:
    assert payloads.parse_server(text) == want


@pytest.mark.parametrize("text", ["", ":5222", "host:0", "host:70000", "host:+5", "host:5x"])
def test_parse_server_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        payloads.parse_server(text)


def test_jids_compared_case_blind_and_shortened_in_logs() -> None:
    assert payloads.bare("Alice@Example.ORG/Phone") == "alice@example.org"
    assert payloads.shorten("alice@example.org/annexsync-01234567") == "a5@example.org/annexsync-01234567"
    assert "alice" not in payloads.shorten("alice@example.org/Private Laptop")


def test_buddies_list_only_proven_devices_and_track_presence() -> None:
    b = Buddies()
    jid = "alice@x/annexsync-00000000"
    assert not b.got_presence(jid, True, "xa", 10.0)  # not proven yet: not listed
    assert b.devices() == ()
    assert b.got_device(jid, Hello(DEV, "laptop"), 11.0)
    (d,) = b.devices()
    assert (d.presence, d.last_seen, d.account) == ("online", 10.0, "alice@x")
    assert b.got_presence(jid, True, "dnd", 12.0)
    assert b.devices()[0].presence == "away"
    assert b.got_presence("Alice@X/annexsync-00000000", False, "", 13.0)  # same JID, other case
    assert (b.devices()[0].presence, b.devices()[0].last_seen) == ("offline", 13.0)
    b.got_presence(jid, True, "xa", 14.0)
    b.lost_stream()  # B.22: nobody's presence is known once our stream is gone
    assert b.devices()[0].presence == "unknown"


def test_a_device_on_a_new_resource_is_one_entry() -> None:
    b = Buddies()
    b.got_device("alice@x/annexsync-00000000", Hello(DEV, "laptop"), 1.0)
    b.got_device("alice@x/annexsync-renamed0", Hello(DEV, "laptop"), 2.0)
    assert [d.jid for d in b.devices()] == ["alice@x/annexsync-renamed0"]
