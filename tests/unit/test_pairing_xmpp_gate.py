"""The XMPP pairing gate (pure): who may probe a window and feed an attempt, in which order."""

from __future__ import annotations

from core.pairing.xmpp import BUSY, OUT_OF_ORDER, STRANGER, UNKNOWN, Gate, check_friend
from core.xmpp.client import XmppError

OWN = "alice@x/annexsync-pair-aaaaaa"
OTHER_RESOURCE = "alice@x/annexsync-pair-bbbbbb"


def gate() -> Gate:
    return Gate(lambda jid: jid.split("/")[0].lower() == "alice@x", nameplate=7)


def test_probe_answers_only_the_chosen_account_and_the_right_number() -> None:
    g = gate()
    assert g.probe(OWN, "7") is None
    assert g.probe(OWN, "8") == UNKNOWN
    assert g.probe("carol@x/annexsync-pair-cccccc", "7") == STRANGER
    assert Gate(lambda _j: True).probe(OWN, "7") == UNKNOWN  # a joiner holds no window


def test_an_attempt_is_bound_to_its_sid_sender_and_sequence() -> None:
    g = gate()
    assert g.frame(OWN, "s1", "1") == UNKNOWN  # an attempt opens at seq 0 only
    assert g.frame(OWN, "s1", "0") is None and g.opens("s1")
    g.open(OWN, "s1", 1)
    assert g.frame(OWN, "s1", "0") == OUT_OF_ORDER  # replayed
    assert g.frame(OWN, "s1", "2") == OUT_OF_ORDER  # skipped
    assert g.frame(OTHER_RESOURCE, "s1", "1") == STRANGER  # another resource of the account
    assert g.frame("carol@x/r", "s1", "1") == STRANGER
    assert g.frame(OWN, "s1", "1") is None and g.frame(OWN, "s1", "2") is None
    g.close("s1")
    assert g.frame(OWN, "s1", "3") == UNKNOWN and g.frame(OWN, "s1", "0") == UNKNOWN  # spent
    assert g.frame("alice@x", "s2", "0") == STRANGER  # a bare JID is no device
    assert BUSY == "resource-constraint"


def test_a_friend_address_is_checked() -> None:
    assert check_friend("Bob@Example.org") == "bob@example.org"
    for bad in ("bob", "@x", "bob@", "bob@x/r", "bob @x"):
        try:
            check_friend(bad)
        except XmppError:
            continue
        raise AssertionError(bad)
