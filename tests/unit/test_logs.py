"""Unit tests for core.repo.logs: clocks, families, tie rules, encodings, union merge."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import LogLineError
from core.repo import logs
from core.repo.logs import (
    FieldLine,
    PresenceLine,
    UuidLine,
    ValueLine,
    format_clock,
    parse_clock,
    union_blob,
)

U1 = b"27081629-997e-49ac-be61-c1cd4bf05326"
U2 = b"2b112e6b-671d-4d89-aadd-a6521e9e8221"
U3 = b"b4592ef6-a3ff-42e0-9c96-5265a743e621"

# --- strategies ---------------------------------------------------------------

clocks = st.fractions(min_value=0, max_value=10**11, max_denominator=10**6).map(
    lambda f: Fraction(int(f * 10**6), 10**6)
)
words = st.binary(min_size=1, max_size=20).filter(
    lambda b: b" " not in b and b"\n" not in b and b"\r" not in b
)
values = st.binary(max_size=30).filter(lambda b: b"\n" not in b and b"\r" not in b)
statuses = st.sampled_from([logs.PRESENT, logs.ABSENT, logs.DEAD])
presence_lines = st.builds(PresenceLine, clocks, statuses, words)
field_lines = st.builds(FieldLine, clocks, words, values)
uuid_lines = st.builds(
    UuidLine, words, values.filter(lambda v: not v.endswith(b" ")), st.none() | clocks
)


# --- clocks -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "canonical"),
    [
        (b"1795288828s", Fraction(1795288828), b"1795288828s"),
        (b"1287290770", Fraction(1287290770), b"1287290770s"),
        (b"1287290777.5s", Fraction(12872907775, 10), b"1287290777.5s"),
        (b"1317929189.157237s", Fraction(1317929189157237, 10**6), b"1317929189.157237s"),
        (b"1.100s", Fraction(11, 10), b"1.1s"),
        (b"1.0000000000019s", Fraction(1000000000001, 10**12), b"1.000000000001s"),
        (b"-5s", Fraction(-5), b"-5s"),
    ],
)
def test_clock_parse_and_canonical_form(text: bytes, value: Fraction, canonical: bytes) -> None:
    assert parse_clock(text) == value
    assert format_clock(value) == canonical


@pytest.mark.parametrize(
    "text", [b"", b"s", b"1.s", b".5s", b"+1s", b"1_000s", b"1 s", b"1e3s", b"\xd9\xa1s", b"--1"]
)
def test_bad_clocks(text: bytes) -> None:
    with pytest.raises(ValueError):
        parse_clock(text)


@given(clocks)
def test_clock_round_trip(value: Fraction) -> None:
    assert parse_clock(format_clock(value)) == value


def test_next_clock() -> None:
    assert logs.next_clock(1000, None) == 1000
    assert logs.next_clock(1000, Fraction(999)) == 1000
    assert logs.next_clock(1000, Fraction(1000)) == 1001
    assert logs.next_clock(1000, Fraction(1795288984)) == 1795288985


# --- presence -----------------------------------------------------------------


def test_presence_spec_example_round_trip() -> None:
    blob = (
        b"1795288906s 1 " + U1 + b"\n"
        b"1795288927s 0 " + U2 + b"\n"
        b"1795288828s 1 " + U3 + b"\n"
    )
    lines = logs.parse_presence(blob)
    assert logs.format_presence(logs.compact_presence(lines).values()) == blob


def test_presence_tie_first_wins_and_messy_input() -> None:
    blob = (
        b"garbage line\r\n"
        b"1287290770 1 " + U1 + b"\r\n"
        b"1287290770s 0 " + U1 + b"\n"
        b"1287290777.5s 0 " + U2 + b"\n"
        b"1287290770.1s 1 " + U2 + b"\n"
        b"12 Q " + U3 + b"\n"
    )
    kept = logs.compact_presence(logs.parse_presence(blob))
    assert {k: v.status for k, v in kept.items()} == {U1: b"1", U2: b"0"}
    assert logs.format_presence(kept.values()) == (
        b"1287290770s 1 " + U1 + b"\n" b"1287290777.5s 0 " + U2 + b"\n"
    )


def test_change_presence_rules() -> None:
    blob = b"2000s 1 " + U1 + b"\n"
    assert logs.change_presence(blob, U1, logs.PRESENT, 3000) is None
    assert logs.change_presence(blob, U1, logs.ABSENT, 1000) == b"2001s 0 " + U1 + b"\n"
    assert logs.change_presence(None, U2, logs.PRESENT, 5) == b"5s 1 " + U2 + b"\n"
    both = logs.change_presence(blob, U2, logs.PRESENT, 1000)
    assert both == b"2000s 1 " + U1 + b"\n1000s 1 " + U2 + b"\n"  # clock rule is per subject


@given(st.lists(presence_lines, max_size=8))
def test_presence_round_trip(lines: list[PresenceLine]) -> None:
    kept = logs.compact_presence(lines)
    text = logs.format_presence(kept.values())
    assert logs.compact_presence(logs.parse_presence(text)) == kept
    assert logs.format_presence(logs.compact_presence(logs.parse_presence(text)).values()) == text


# --- uuid-based (old) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        (U3 + b" laptop one, renamed timestamp=1795288913s",
         UuidLine(U3, b"laptop one, renamed", Fraction(1795288913))),
        (U3 + b"  timestamp=5s", UuidLine(U3, b"", Fraction(5))),
        (U3 + b" timestamp=5s", UuidLine(U3, b"", Fraction(5))),
        (U3 + b" old value", UuidLine(U3, b"old value", None)),
        (U3 + b" x timestamp=bad", UuidLine(U3, b"x timestamp=bad", None)),
        (U3, UuidLine(U3, b"", None)),
        (U3 + b" a timestamp=1s b timestamp=2s", UuidLine(U3, b"a timestamp=1s b", Fraction(2))),
    ],
)
def test_uuid_line_parsing(line: bytes, parsed: UuidLine) -> None:
    assert logs.parse_uuid_line(line) == parsed


def test_uuid_log_tie_last_wins_unknown_oldest() -> None:
    blob = (
        U1 + b" first timestamp=10s\n" + U1 + b" second timestamp=10s\n"
        + U2 + b" no clock\n" + U2 + b" clocked timestamp=1s\n" + U2 + b" later no clock\n"
    )
    kept = logs.compact_uuid_log(logs.parse_uuid_log(blob))
    assert kept[U1].value == b"second"
    assert kept[U2].value == b"clocked"


def test_change_uuid_log_clock_rule_and_sorting() -> None:
    blob = U2 + b" b timestamp=1795288984s\n"
    out = logs.change_uuid_log(blob, U2, b"c", 1000)
    assert out == U2 + b" c timestamp=1795288985s\n"
    out = logs.change_uuid_log(out, U1, b"", 1000)
    assert out == U1 + b"  timestamp=1000s\n" + U2 + b" c timestamp=1795288985s\n"


@given(st.lists(uuid_lines, max_size=8))
def test_uuid_log_round_trip(lines: list[UuidLine]) -> None:
    kept = logs.compact_uuid_log(lines)
    text = logs.format_uuid_log(kept.values())
    assert logs.compact_uuid_log(logs.parse_uuid_log(text)) == kept


# --- new uuid-based and map ---------------------------------------------------


def test_field_log_rules() -> None:
    blob = b"5s annex.largefiles a\n5s annex.largefiles b\n4s x\n3s n1 \n"
    kept = logs.compact_field_log(logs.parse_field_log(blob))
    assert kept[b"annex.largefiles"].value == b"b"  # tie: last wins
    assert b"x" not in kept  # 'T FIELD' without a value is skipped
    assert kept[b"n1"].value == b""
    out = logs.change_field_log(blob, b"annex.largefiles", b"c", 1)
    assert out.splitlines() == [b"6s annex.largefiles c", b"3s n1 "]


@given(st.lists(field_lines, max_size=8))
def test_field_log_round_trip(lines: list[FieldLine]) -> None:
    kept = logs.compact_field_log(lines)
    text = logs.format_field_log(kept.values())
    assert logs.compact_field_log(logs.parse_field_log(text)) == kept


# --- single value -------------------------------------------------------------


def test_single_value_rules() -> None:
    lines = logs.parse_value_log(b"5s 2\n5s 10\n4s 7\nbad\n")
    assert logs.newest_value(lines) == ValueLine(Fraction(5), b"2")  # bytes order
    assert logs.newest_value(lines, order=int) == ValueLine(Fraction(5), b"10")
    assert logs.change_value_log(b"1795288912s 2\n", b"3", 1000) == b"1795288913s 3\n"
    assert logs.newest_value([]) is None


@given(clocks, values)
def test_single_value_round_trip(clock: Fraction, value: bytes) -> None:
    line = ValueLine(clock, value)
    assert logs.parse_value_log(logs.format_value_log(line)) == [line]


# --- any bytes: lines or skips; strict names file and line ---------------------

PARSERS = [logs.parse_presence, logs.parse_uuid_log, logs.parse_field_log, logs.parse_value_log]


@pytest.mark.parametrize("parse", PARSERS)
@given(blob=st.binary(max_size=200))
def test_any_bytes_never_raise(parse: object, blob: bytes) -> None:
    assert isinstance(parse(blob), list)  # type: ignore[operator]


@given(blob=st.lists(st.sampled_from([b"1s 1 u", b"x", b"\r", b"\n", b" ", b"2.5", b"s", b"0", b"X"])).map(b"".join))
def test_presence_on_structured_noise(blob: bytes) -> None:
    lines = logs.parse_presence(blob)
    kept = logs.compact_presence(lines)
    text = logs.format_presence(kept.values())
    assert logs.compact_presence(logs.parse_presence(text)) == kept


def test_strict_names_file_and_line() -> None:
    blob = b"1s 1 " + U1 + b"\r\n\r\n1s 7 " + U2 + b"\n"
    assert len(logs.parse_presence(blob)) == 1
    with pytest.raises(LogLineError) as e:
        logs.parse_presence(blob, "e7d/d01/K.log", strict=True)
    assert (e.value.file, e.value.lineno, e.value.line) == ("e7d/d01/K.log", 3, b"1s 7 " + U2)
    with pytest.raises(LogLineError) as e2:
        logs.parse_value_log(b"1s 2\nnope\n", "numcopies.log", strict=True)
    assert e2.value.lineno == 2 and "numcopies.log line 2" in str(e2.value)


# --- value encodings ----------------------------------------------------------


def test_remote_config_escaping() -> None:
    value = b"encryption=none name=my&32;dir type=directory x=a&38;b&10;c y=k=v"
    cfg = logs.parse_remote_config(value)
    assert cfg == {
        "encryption": "none", "name": "my dir", "type": "directory", "x": "a&b\nc", "y": "k=v"
    }
    assert logs.format_remote_config(cfg) == value


@given(st.dictionaries(st.text(min_size=1).filter(lambda k: "=" not in k), st.text()))
def test_remote_config_round_trip(cfg: dict[str, str]) -> None:
    assert logs.parse_remote_config(logs.format_remote_config(cfg)) == cfg


def test_description_and_groups() -> None:
    assert logs.format_description("two\nlines") == b"two\\nlines"
    assert logs.parse_description(b"two\\nlines") == "two\nlines"
    assert logs.format_groups({"b", "a"}) == b"a b"
    assert logs.format_groups(set()) == b""
    assert logs.parse_groups(b"a  b") == frozenset({"a", "b"})


# --- union merge --------------------------------------------------------------

blobs = st.lists(st.sampled_from([b"a", b"b", b"c", b"", b"1s 1 u", b"z\r"]), max_size=6).map(
    lambda ls: b"".join(x + b"\n" for x in ls)
)


def test_union_blob_examples() -> None:
    assert union_blob(b"b\na\n", b"c\n") == b"a\nb\nc\n"
    incoming = b"x\ny\n"
    assert union_blob(b"y\n", incoming) is incoming
    local = b"y\nx\n"
    assert union_blob(local, b"x\n") is local
    assert union_blob(b"a\n", b"a") == b"a"  # incoming side checked first


@given(blobs, blobs)
def test_union_blob_commutes_as_a_set(a: bytes, b: bytes) -> None:
    assert logs._line_set(union_blob(a, b)) == logs._line_set(union_blob(b, a))
    assert logs._line_set(union_blob(a, b)) == logs._line_set(a) | logs._line_set(b)


@given(blobs, blobs)
def test_union_blob_idempotent_and_reuses(a: bytes, b: bytes) -> None:
    u = union_blob(a, b)
    for side in (a, b):  # merging again adds nothing: one of the two blobs comes back
        again = union_blob(u, side)
        assert again is u or again is side
        assert logs._line_set(again) == logs._line_set(u)
    assert union_blob(a, a) is a
    if logs._line_set(b) >= logs._line_set(a):
        assert union_blob(a, b) is b
