"""The pairing handshake machine, two ends back to back, no IO (pairing.md 6.5)."""

from __future__ import annotations

import json
import struct
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import LocalProtocolError, RemoteProtocolError
from core.pairing.machine import (
    NEED_DATA,
    PAKE_ID,
    Paired,
    PairingFailed,
    PairingMachine,
    PairingWindow,
    Reason,
    State,
    StoreNow,
    confirm_mac,
    derive_keys,
)
from core.pairing.messages import Hello, RepoOffer, format_frame, unb64
from core.pairing.words import Code, make_code, parse_code

CODE = parse_code("7-tracker-revenue")


def hello(n: int, repos: int = 1) -> Hello:
    return Hello(str(uuid.UUID(int=n)), f"device {n}", bytes([n]) * 32,
                 tuple(RepoOffer(str(uuid.UUID(int=100 + n + i)), f"repo {i}") for i in range(repos)),
                 lan=("127.0.0.1:1234",), xmpp=None)  # fmt: skip


def pair(shower_code: Code = CODE, joiner_code: Code = CODE) -> tuple[PairingMachine, PairingMachine]:
    return PairingMachine.shower(shower_code, hello(1)), PairingMachine.joiner(joiner_code, hello(2))


def pump(src: PairingMachine, dst: PairingMachine) -> object:
    """Move src's outbox to dst; dst's next event."""
    data = src.data_to_send()
    if data:
        dst.receive_data(data)
    return dst.next_event()


def run_to_end(shower: PairingMachine, joiner: PairingMachine) -> tuple[object, object]:
    joiner.start()
    assert pump(joiner, shower) is NEED_DATA  # pake -> shower answers pake
    assert pump(shower, joiner) is NEED_DATA  # pake -> joiner confirms
    assert pump(joiner, shower) is NEED_DATA  # confirm -> shower confirms
    assert pump(shower, joiner) is NEED_DATA  # confirm -> joiner's hello
    assert pump(joiner, shower) is NEED_DATA  # hello -> shower's hello
    ev = pump(shower, joiner)  # hello -> joiner stores
    assert isinstance(ev, StoreNow)
    joiner.stored()
    ev2 = pump(joiner, shower)  # done -> shower stores
    assert isinstance(ev2, StoreNow)
    shower.stored()
    assert shower.next_event() is NEED_DATA  # stored, said done: waits for the joiner's close
    end_j = pump(shower, joiner)
    shower.receive_data(b"")  # the joiner, paired, closes
    return shower.next_event(), end_j


def test_both_ends_agree_on_the_peer_and_the_pair_secret() -> None:
    shower, joiner = pair()
    end_s, end_j = run_to_end(shower, joiner)
    assert isinstance(end_s, Paired) and isinstance(end_j, Paired)
    assert end_s.result.peer == hello(2) and end_j.result.peer == hello(1)
    assert end_s.result.pair_secret == end_j.result.pair_secret
    assert len(end_s.result.pair_secret) == 32
    assert "secret" not in repr(end_s.result) and end_s.result.pair_secret.hex() not in repr(end_s)
    assert shower.state is State.PAIRED and joiner.state is State.PAIRED


def test_two_runs_with_the_same_code_give_different_secrets() -> None:
    a = run_to_end(*pair())[0]
    b = run_to_end(*pair())[0]
    assert isinstance(a, Paired) and isinstance(b, Paired)
    assert a.result.pair_secret != b.result.pair_secret


def until_confirm(shower: PairingMachine, joiner: PairingMachine) -> None:
    joiner.start()
    pump(joiner, shower)
    pump(shower, joiner)


def test_a_wrong_code_is_refused_on_both_sides_and_counts_as_an_attempt() -> None:
    shower, joiner = pair(joiner_code=parse_code("7-tracker-revival"))
    until_confirm(shower, joiner)
    with pytest.raises(PairingFailed) as e:
        pump(joiner, shower)
    assert e.value.reason is Reason.WRONG_CODE and not e.value.by_peer
    assert shower.state is State.FAILED and shower.peer is None
    window = PairingWindow(CODE, opened=0.0)
    window.attempt_failed(e.value)
    assert window.failures == 1
    with pytest.raises(PairingFailed) as told:
        pump(shower, joiner)  # the advisory "refused" reaches the joiner
    assert told.value.reason is Reason.WRONG_CODE and told.value.by_peer
    window.attempt_failed(told.value)
    assert window.failures == 1  # what the peer says is not counted


def test_the_wrong_nameplate_is_no_window_and_no_attempt() -> None:
    shower, joiner = pair(joiner_code=Code(8, CODE.words))
    joiner.start()
    with pytest.raises(PairingFailed) as e:
        pump(joiner, shower)
    assert e.value.reason is Reason.NO_WINDOW
    window = PairingWindow(CODE, opened=0.0)
    window.attempt_failed(e.value)
    assert window.failures == 0


def test_three_wrong_codes_close_the_window() -> None:
    window = PairingWindow(CODE, opened=100.0, timeout=60.0)
    for guess in ("7-tracker-revival", "7-tracker-revolver", "7-tracker-retrieval"):
        window.check(101.0)
        shower, joiner = pair(joiner_code=parse_code(guess))
        until_confirm(shower, joiner)
        with pytest.raises(PairingFailed) as e:
            pump(joiner, shower)
        window.attempt_failed(e.value)
    with pytest.raises(PairingFailed) as closed:
        window.check(101.0)
    assert closed.value.reason is Reason.TOO_MANY_ATTEMPTS


def test_the_window_expires_and_is_single_use() -> None:
    window = PairingWindow(CODE, opened=100.0, timeout=5.0)
    window.check(104.9)
    with pytest.raises(PairingFailed) as e:
        window.check(105.0)
    assert e.value.reason is Reason.EXPIRED
    window = PairingWindow(CODE, opened=100.0, timeout=5.0)
    window.succeeded()
    with pytest.raises(PairingFailed):
        window.check(101.0)


def test_a_peer_gone_mid_way_is_peer_gone() -> None:
    shower, joiner = pair()
    until_confirm(shower, joiner)
    joiner.data_to_send()
    shower.receive_data(b"")
    with pytest.raises(PairingFailed) as e:
        shower.next_event()
    assert e.value.reason is Reason.PEER_GONE


def test_a_mismatched_number_of_repositories_is_refused_before_anything_is_stored() -> None:
    shower = PairingMachine.shower(CODE, hello(1, repos=2))
    joiner = PairingMachine.joiner(CODE, hello(2, repos=1))
    until_confirm(shower, joiner)
    pump(joiner, shower)  # confirm
    pump(shower, joiner)  # the joiner's hello goes out
    with pytest.raises(PairingFailed) as e:
        pump(joiner, shower)
    assert e.value.reason is Reason.MISMATCH
    with pytest.raises(PairingFailed) as told:
        pump(shower, joiner)
    assert told.value.reason is Reason.MISMATCH and joiner.peer is None


def test_a_device_cannot_pair_with_itself() -> None:
    shower = PairingMachine.shower(CODE, hello(1))
    joiner = PairingMachine.joiner(CODE, hello(1))
    until_confirm(shower, joiner)
    pump(joiner, shower)
    pump(shower, joiner)
    with pytest.raises(PairingFailed) as e:
        pump(joiner, shower)
    assert e.value.reason is Reason.INVALID


def frames(data: bytes) -> list[bytes]:
    out = []
    while data:
        (n,) = struct.unpack(">I", data[:4])
        out.append(data[:4 + n])
        data = data[4 + n:]
    return out


def test_a_replayed_hello_from_another_run_does_not_open() -> None:
    """Each run has its own keys, so a message recorded in one is garbage in another."""
    s1, j1 = pair()
    until_confirm(s1, j1)
    pump(j1, s1)
    pump(s1, j1)
    old_hello = j1.data_to_send()
    s2, j2 = pair()
    until_confirm(s2, j2)
    pump(j2, s2)
    pump(s2, j2)
    j2.data_to_send()  # the real hello is dropped; the recorded one goes in its place
    s2.receive_data(old_hello)
    with pytest.raises(RemoteProtocolError, match="did not authenticate"):
        s2.next_event()
    assert s2.state is State.FAILED


def test_a_repeated_message_is_out_of_turn() -> None:
    shower, joiner = pair()
    joiner.start()
    first = joiner.data_to_send()
    shower.receive_data(first)
    shower.next_event()
    shower.receive_data(first)
    with pytest.raises(RemoteProtocolError, match="not allowed"):
        shower.next_event()
    assert shower.state is State.FAILED
    with pytest.raises(LocalProtocolError):
        shower.receive_data(b"x")


def test_a_reflected_pake_message_is_refused() -> None:
    """The joiner's own message sent back as the shower's: SPAKE2 refuses reflection."""
    joiner = PairingMachine.joiner(CODE, hello(2))
    joiner.start()
    joiner.receive_data(joiner.data_to_send())
    with pytest.raises(RemoteProtocolError, match="bad PAKE message"):
        joiner.next_event()
    assert joiner.state is State.FAILED


@given(st.integers(min_value=0, max_value=20), st.integers(min_value=0, max_value=7),
       st.integers(min_value=1, max_value=255))
def test_any_flipped_bit_in_any_message_is_refused(which: int, bit: int, offset: int) -> None:
    """Tampering anywhere: an error (never a pairing with different keys)."""
    shower, joiner = pair()
    joiner.start()
    machines = [(joiner, shower), (shower, joiner)]
    step = 0
    stored = {id(shower): False, id(joiner): False}
    for _ in range(8):
        for src, dst in machines:
            data = src.data_to_send()
            if not data:
                continue
            if step == which:
                raw = bytearray(data)
                raw[4 + offset % (len(raw) - 4)] ^= 1 << bit
                data = bytes(raw)
            step += 1
            try:
                dst.receive_data(data)
                ev = dst.next_event()
            except (PairingFailed, RemoteProtocolError):
                assert dst.state is State.FAILED
                return
            if isinstance(ev, StoreNow):
                stored[id(dst)] = True
                dst.stored()
                ev = dst.next_event()
    # no tamper happened (which was past the last message): a clean pairing
    shower.receive_data(b"")
    assert isinstance(shower.next_event(), Paired)
    assert shower.state is State.PAIRED and joiner.state is State.PAIRED


@given(st.binary(max_size=200))
def test_random_bytes_give_need_data_or_a_declared_error(data: bytes) -> None:
    shower = PairingMachine.shower(CODE, hello(1))
    try:
        for i in range(len(data)):
            shower.receive_data(data[i:i + 1])
            assert shower.next_event() is NEED_DATA
    except (RemoteProtocolError, PairingFailed):
        assert shower.state is State.FAILED


def test_truncated_then_closed_is_peer_gone() -> None:
    shower, joiner = pair()
    joiner.start()
    data = joiner.data_to_send()
    shower.receive_data(data[:-3])
    assert shower.next_event() is NEED_DATA
    shower.receive_data(b"")
    with pytest.raises(PairingFailed) as e:
        shower.next_event()
    assert e.value.reason is Reason.PEER_GONE


def test_an_oversized_frame_is_refused_before_it_is_buffered() -> None:
    shower = PairingMachine.shower(CODE, hello(1))
    with pytest.raises(RemoteProtocolError, match="frame of"):
        shower.receive_data(struct.pack(">I", 1 << 30))


def test_a_recorded_transcript_gives_no_offline_test_of_a_guess() -> None:
    """An eavesdropper holds both PAKE messages and both confirmations.

    The only way to check a guess against them is to compute K, which needs a
    secret scalar of one side (never sent).  Here the eavesdropper does the
    best it can: it runs SPAKE2 with its guess against each recorded message
    -- with a fresh scalar of its own, since it has neither side's -- and
    gets confirmation values that match nothing, for the right code too: the
    recording cannot tell right from wrong.
    """
    shower, joiner = pair()
    joiner.start()
    pake_j = json.loads(joiner.data_to_send()[4:])
    shower.receive_data(format_frame(pake_j))
    shower.next_event()
    pake_s = json.loads(shower.data_to_send()[4:])
    joiner.receive_data(format_frame(pake_s))
    joiner.next_event()
    confirm_j = unb64(json.loads(joiner.data_to_send()[4:])["mac"], "mac", 32)
    m_j, m_s = unb64(pake_j["m"], "m", 33), unb64(pake_s["m"], "m", 33)
    from spake2 import SPAKE2_Symmetric

    from core.pairing.machine import Role

    for guess in (CODE, parse_code("7-tracker-revival")):
        attacker = SPAKE2_Symmetric(guess.password, idSymmetric=PAKE_ID)
        attacker.start()
        k = attacker.finish(m_s)  # the shower's message with the attacker's own scalar
        keys = derive_keys(k, m_j, m_s, Role.JOINER)
        assert confirm_mac(keys.confirm, Role.JOINER, guess.nameplate, m_j, m_s) != confirm_j


def test_codes_round_trip_and_are_random() -> None:
    codes = {str(make_code()) for _ in range(50)}
    assert len(codes) > 40
    for text in codes:
        assert str(parse_code(text.upper().replace("-", " "))) == text
    assert len(make_code(3).words) == 3


@pytest.mark.parametrize("text, why", [
    ("", "starts with a number"), ("tracker-revenue", "starts with a number"),
    ("0-tracker-revenue", "between 1 and"), ("7-tracker", "2 or 3 words"),
    ("7-revenue-tracker", "another position"), ("7-tracker-bogus", "'bogus' is not a word"),
    ("7-tracker-revenue-tumor-revenue", "2 or 3 words"), ("\u0667-tracker-revenue", "number"),
])
def test_bad_codes_say_what_is_wrong(text: str, why: str) -> None:
    from core.pairing.words import BadCode

    with pytest.raises(BadCode, match=why):
        parse_code(text)


def test_the_word_lists_are_the_pgp_lists() -> None:
    from core.pairing.words import word_lists

    lists = word_lists()
    assert (lists.even[0], lists.odd[0], lists.even[255], lists.odd[255]) == (
        "aardvark", "adroitness", "zulu", "yucatan")
    assert str(parse_code("  7 TRACKER  Revenue ")) == "7-tracker-revenue"


def stored_shower() -> tuple[PairingMachine, PairingMachine]:
    shower, joiner = pair()
    joiner.start()
    for src, dst in [(joiner, shower), (shower, joiner)] * 2 + [(joiner, shower)]:
        assert pump(src, dst) is NEED_DATA
    assert isinstance(pump(shower, joiner), StoreNow)
    joiner.stored()
    assert isinstance(pump(joiner, shower), StoreNow)
    shower.stored()
    assert shower.next_event() is NEED_DATA
    return shower, joiner


def test_the_shower_is_paired_only_on_the_joiners_clean_close() -> None:
    shower, joiner = stored_shower()
    assert shower.state is State.WAIT_CLOSE
    assert isinstance(pump(shower, joiner), Paired)
    shower.receive_data(b"")
    ev = shower.next_event()
    assert isinstance(ev, Paired) and shower.state is State.PAIRED


def test_a_joiner_that_gives_up_after_storing_makes_the_shower_undo() -> None:
    """The shower's done did not arrive: the joiner aborts, says so; the shower fails."""
    shower, joiner = stored_shower()
    shower.data_to_send()  # the shower's done is lost
    joiner.abort(Reason.PEER_GONE, "no done")
    assert joiner.state is State.FAILED
    with pytest.raises(PairingFailed) as e:
        pump(joiner, shower)
    assert e.value.reason is Reason.PEER_GONE and e.value.by_peer
    assert shower.state is State.FAILED  # the carrier undoes its store


def test_a_message_after_done_is_out_of_turn() -> None:
    shower, joiner = stored_shower()
    shower.receive_data(format_frame({"t": "confirm", "mac": "AAAA"}))
    with pytest.raises(RemoteProtocolError):
        shower.next_event()


def recorded_messages() -> list[bytes]:
    """Every frame of one real run, both directions, plus a refusal."""
    shower, joiner = pair()
    joiner.start()
    out: list[bytes] = []
    for src, dst in [(joiner, shower), (shower, joiner)] * 3:
        data = src.data_to_send()
        out.append(data)
        dst.receive_data(data)
        ev = dst.next_event()
        if isinstance(ev, StoreNow):
            dst.stored()
    out.append(joiner.data_to_send())
    return [*out, format_frame({"t": "refused", "why": "busy"})]


RECORDED = recorded_messages()


@given(st.sampled_from(["shower", "joiner"]),
       st.lists(st.integers(min_value=0, max_value=len(RECORDED) - 1), max_size=8))
def test_any_sequence_of_real_messages_gives_events_or_declared_errors(
        who: str, order: list[int]) -> None:  # fmt: skip
    """Messages of another run, in any order: never a pairing, never another error."""
    machine = (PairingMachine.shower if who == "shower" else PairingMachine.joiner)(CODE, hello(3))
    if who == "joiner":
        machine.start()
    try:
        for i in order:
            machine.receive_data(RECORDED[i])
            ev = machine.next_event()
            assert not isinstance(ev, Paired | StoreNow)  # other keys: nothing opens
    except (PairingFailed, RemoteProtocolError):
        assert machine.state is State.FAILED


def test_a_joiner_written_from_the_wire_format_document_pairs_with_us() -> None:
    """docs/pairing.md §3-4, implemented again here from the text alone (spake2,
    HKDF, HMAC, ChaCha20-Poly1305 directly), pairs with our shower machine."""
    import base64
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    from spake2 import SPAKE2_Symmetric

    shower = PairingMachine.shower(CODE, hello(1))

    def send(msg: dict[str, object]) -> dict[str, object] | None:
        shower.receive_data(format_frame(msg))
        ev = shower.next_event()
        if isinstance(ev, StoreNow):
            shower.stored()
        out = shower.data_to_send()
        return json.loads(out[4:]) if out else None

    b64e, b64d = (lambda b: base64.b64encode(b).decode()), base64.b64decode
    spake = SPAKE2_Symmetric(b"7-tracker-revenue", idSymmetric=b"annexsync/pair/v1")
    x = spake.start()
    answer = send({"v": 1, "t": "pake", "np": 7, "m": b64e(x)})
    assert answer is not None and answer["t"] == "pake" and answer["np"] == 7
    y = b64d(str(answer["m"]))
    k = spake.finish(y)
    salt = b"".join(sorted([x, y]))

    def hkdf(label: str) -> bytes:
        return HKDF(hashes.SHA256(), 32, salt, b"annexsync/pair/v1 " + label.encode()).derive(k)

    def mac(role: str) -> bytes:
        return hmac.new(hkdf("confirm"), b"\0".join([role.encode(), b"7", x, y]),
                        hashlib.sha256).digest()  # fmt: skip

    def seal(n: int, kind: str, data: bytes) -> str:
        aead = ChaCha20Poly1305(hkdf("payload-joiner"))
        return b64e(aead.encrypt(n.to_bytes(12, "big"), data, b"annexsync/pair/v1 " + kind.encode()))

    def unseal(n: int, kind: str, box: object) -> bytes:
        aead = ChaCha20Poly1305(hkdf("payload-shower"))
        return aead.decrypt(n.to_bytes(12, "big"), b64d(str(box)), b"annexsync/pair/v1 " + kind.encode())

    answer = send({"t": "confirm", "mac": b64e(mac("joiner"))})
    assert answer == {"t": "confirm", "mac": b64e(mac("shower"))}
    mine = {"device_id": str(uuid.UUID(int=9)), "name": "other implementation",
            "static_key": b64e(b"\x09" * 32), "repos": [{"uuid": str(uuid.UUID(int=99)),
            "description": "theirs"}], "transports": {"lan": [], "xmpp": None},
            "protocols": {"session": [1]}}  # fmt: skip
    answer = send({"t": "hello", "box": seal(0, "hello", json.dumps(mine).encode())})
    assert answer is not None and answer["t"] == "hello"
    theirs = json.loads(unseal(0, "hello", answer["box"]))
    assert theirs["device_id"] == hello(1).device_id and theirs["name"] == "device 1"
    answer = send({"t": "done", "box": seal(1, "done", b"{}")})
    assert answer is not None and answer["t"] == "done"
    assert unseal(1, "done", answer["box"]) == b"{}"
    shower.receive_data(b"")  # we close: the shower is paired
    ev = shower.next_event()
    assert isinstance(ev, Paired) and ev.result.pair_secret == hkdf("pair-secret")
    assert ev.result.peer.name == "other implementation"
