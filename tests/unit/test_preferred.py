"""Unit tests for core.repo.preferred (spec 10, 11)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ExpressionError
from core.repo.key import Key
from core.repo.preferred import (
    STANDARD_GROUPS,
    Context,
    Copies,
    Present,
    is_large,
    matches,
    parse,
    parse_or_present,
    parse_size,
    tokenize,
    wants_drop,
    wants_get,
)

KEY = Key.parse("SHA256E-s3--98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be4.txt")
A, B, C, D = "uuid-a", "uuid-b", "uuid-c", "uuid-d"


def m(expr: str, path: str | None = "x", size: int | None = 0, **kw: object) -> bool:
    parsed = parse(expr)
    assert parsed is not None
    return matches(parsed.tree, Context(path=path, size=size, **kw))  # type: ignore[arg-type]


# --- tokens and structure -----------------------------------------------------


def test_tokenize_parentheses_are_tokens() -> None:
    assert tokenize("(include=*.c)or(not\tinclude=*.h)") == [
        "(", "include=*.c", ")", "or", "(", "not", "include=*.h", ")"]


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_is_not_configured(text: str) -> None:
    assert parse(text) is None
    assert wants_get(text, Context()) is False
    assert wants_get(text, Context(), unset=True) is True
    assert wants_drop(text, Context()) is True
    assert wants_drop(text, Context(), unset=True) is False


@pytest.mark.parametrize(
    ("expr", "path", "want"),
    [
        ("include=*.c or include=*.h and include=a*", "b.h", False),  # (c or h) and a*
        ("include=*.c or include=*.h and include=a*", "a.h", True),
        ("include=a* or ( include=b* ) and include=*.c", "a.h", False),
        ("include=a* or ( include=b* and include=*.c )", "a.h", True),
        ("not include=a* or include=*.c", "a.c", True),  # not binds to one operand
        ("not include=a* or include=*.c", "a.h", False),
        ("include=a* include=*.c", "a.h", False),  # implicit and
        ("include=a* include=*.c", "a.c", True),
        ("include=a* not include=*.c", "a.h", True),
        ("not ( include=a* or include=*.c", "b.h", True),  # missing ")"
        ("not ( include=a* or include=*.c", "a.h", False),
        ("( include=a* ) ) or include=*.c", "b.c", True),  # stray ")" skipped
        ("or include=*.c", "x.h", True),  # missing operand is "anything"
        ("include=*.c or", "x.h", True),
        ("include=*.c and", "x.h", False),
        ("not", "x", False),
        ("not not include=*.c", "x.c", True),
        ("not and include=*.c", "x.h", True),  # not (anything and c)
        ("include=*.c and or include=y*", "yz", False),  # c and (anything or y)
        ("()", "x", True),
        ("not ( )", "x", False),
        ("not ) ( include=*.c and", "x", True),
        ("exclude=b* or or ) not", "b.h", True),
        ("nothing not ) or", "x", False),
    ],
)
def test_left_to_right(expr: str, path: str, want: bool) -> None:
    assert m(expr, path) is want


@pytest.mark.parametrize(
    "expr",
    ["foo", "ANYTHING", "anything=3", "NOT anything", "anything OR nothing", "smallerthan=0.5 kb",
     "largerthan", "copies=x", "copies=+1", "copies=1.5", "copies=a:b:1", "approxlackingcopies=x",
     "metadata=_a=b", "metadata=a b", "balanced", "lackingcopies=g:x"],
)
def test_refused(expr: str) -> None:
    with pytest.raises(ExpressionError) as info:
        parse(expr)
    assert info.value.expression == expr
    assert info.value.why


def test_unparsable_acts_as_present() -> None:
    parsed = parse_or_present("include=*.txt or foo")
    assert parsed is not None and parsed.tree == Present()
    ctx = Context(path="a.txt", key=KEY, uuid=A, holders=frozenset({A}))
    assert wants_get("foo", ctx) and not wants_drop("foo", ctx)
    ctx = Context(path="a.txt", key=KEY, uuid=A, holders=frozenset({B}))
    assert not wants_get("foo", ctx) and wants_drop("foo", ctx)


# --- globs (10.3) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("glob", "path", "want"),
    [
        ("*.mp3", "sub/dir/n.mp3", True),
        ("x?c", "x/c", True),
        ("*.C", "a.c", False),
        ("a/b", "a//b", True),
        ("a//b", "a/b", False),
        ("archive/*", "archive/x/y", True),
        ("*/archive/*", "archive/x", False),
        ("*/archive/*", "d/archive/x", True),
        ("[ab]x", "bx", True),
        ("[!ab]x", "bx", False),
        ("[!ab]x", "cx", True),
        ("[^ab]x", "^x", True),
        ("[[:space:]]x", " x", True),
        ("[[:alpha:][:digit:]]x", "5x", True),
        ("[[:alpha:]]", "é", False),
        ("[[:foo:]]", "f", False),
        ("[a-c]x", "bx", True),
        ("[a-]", "-", True),
        ("[]]", "]", True),
        ("[!]]", "a", True),
        ("a[/]x", "a/x", True),
        ("[", "[", False),  # git-annex cannot compile it: never matches
        ("[z-a]", "b", False),
        ("a]", "a]", True),
        ("\\*", "\\a", True),  # backslash is an ordinary character
        ("\\*", "*", False),
        ("a+b|{1}.", "a+b|{1}.", True),  # regex characters are literal
        ("*", "a\nb", True),
        ("?", "é", True),
        ("", "", True),
    ],
)
def test_glob(glob: str, path: str, want: bool) -> None:
    assert m(f"include={glob}", path) is want


def test_exclude_and_no_path() -> None:
    assert m("exclude=*.c", "a.h") and not m("exclude=*.c", "a.c")
    assert not m("exclude=[", "a")
    assert not m("include=*", None) and not m("exclude=x", None)
    assert m("include", "") and not m("include", "include")


# --- sizes (10.3) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1mb", 10**6), ("1MB", 10**6), ("1m", 10**6), ("1megabyte", 10**6), ("1MEGABYTES", 10**6),
        ("1MiB", 2**20), ("1mib", 2**20), ("1Mi", 2**20), ("1mebibytes", 2**20),
        ("1000kB", 10**6), ("1k", 1000), ("1kilobytes", 1000), ("1KiB", 1024), ("1ki", 1024),
        ("0.001gb", 10**6), ("1.5kib", 1536), ("1.33333kb", 1333), ("1g", 10**9),
        ("1gibibytes", 2**30), ("1ti", 2**40), ("1t", 10**12), ("2petabytes", 2 * 10**15),
        ("1", 1), ("1b", 1), ("1Bytes", 1), ("1BYTE", 1), ("0", 0), ("007", 7),
        ("1.5b", 2), ("2.5b", 2), ("0.5b", 0), ("1.0000005mb", 1000001),  # float, half to even
        ("1e6", 10**6), ("1e+3", 1000), ("1e-1", 0), ("0x10", 16), ("0X1f", 31), ("0o17", 15),
        ("-1", -1), ("1.", 1), ("1,000,000", 1), ("1mb1", 10**6), ("1k.5", 1000),
        ("1e", 10**18), ("1.5e3kb", 1500000),
    ],
)
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize(
    "text", ["", "mb", ".5", "+1", "--1", "1kbytes", "1KiBs", "1mbs", "1ib", "1x", "1kbx",
             "1mbmb", "1ri", "1qib", "1bit", "1e400", "NaN", "Infinity", "٣"],
)
def test_parse_size_refused(text: str) -> None:
    with pytest.raises(ExpressionError):
        parse_size(text)


def test_size_terms_are_strict() -> None:
    assert not m("largerthan=1mb", size=1_000_000)
    assert m("largerthan=1mb", size=1_000_001)
    assert not m("largerthan=1MiB", size=1_000_001)
    assert m("smallerthan=1kb", size=999) and not m("smallerthan=1kb", size=1000)


def test_size_prefers_key_and_missing_size() -> None:
    keyless = Key.parse("SHA256E--abc.c")
    assert m("largerthan=2", key=KEY, size=1)  # the key's size wins
    assert not m("largerthan=2", key=keyless, size=None)
    assert m("smallerthan=2", key=keyless, size=None)


# --- key and location terms ---------------------------------------------------


def ctx(holders: set[str], **kw: object) -> Context:
    base: dict[str, object] = {"path": "a.txt", "key": KEY, "uuid": A, "holders": frozenset(holders)}
    base.update(kw)
    return Context(**base)  # type: ignore[arg-type]


def ev(expr: str, c: Context) -> bool:
    parsed = parse(expr)
    assert parsed is not None
    return matches(parsed.tree, c)


def test_anything_nothing_present() -> None:
    assert ev("anything", ctx(set())) and not ev("nothing", ctx({A}))
    assert ev("present", ctx({A})) and not ev("present", ctx({B}))


def test_unstable_negation_never_matches() -> None:
    for expr in ["not present", "not present or anything", "anything or not present",
                 "not ( nothing and present )"]:
        assert not wants_get(expr, ctx({A})) and not wants_get(expr, ctx({B}))
        assert wants_drop(expr, ctx({A}))
    assert wants_get("not ( not present )", ctx({A}))
    assert not wants_get("not ( not present )", ctx({B}))


def test_copies() -> None:
    trust = {B: "untrusted", C: "dead", D: "trusted"}
    c = ctx({A, B, C, D}, trust=trust, groups={A: frozenset({"g"}), B: frozenset({"g"})})
    assert ev("copies=3", c) and not ev("copies=4", c)  # dead not counted
    assert ev("copies=0", ctx(set())) and ev("copies=-1", ctx(set()))
    assert ev("copies=g:2", c) and not ev("copies=g:3", c)
    assert ev("copies=semitrusted:1", c) and not ev("copies=semitrusted:2", c)
    assert ev("copies=semitrusted+:2", c) and not ev("copies=semitrusted+:3", c)
    assert ev("copies=untrusted+:3", c) and ev("copies=dead:1", c)
    assert ev("copies=trusted:1", c) and not ev("copies=foo+:1", c)
    two, zero_two = parse("copies=trusted+:2"), parse("copies=trusted+:02")
    assert two is not None and zero_two is not None and two.tree == zero_two.tree
    parsed = parse("copies=untrusted+:1")
    assert parsed is not None and parsed.tree == Copies(1, trust="untrusted", or_higher=True)
    assert not ev("copies=2", ctx({A, B}, cluster_uuids=frozenset({B})))


def test_inallgroup() -> None:
    groups = {A: frozenset({"g"}), B: frozenset({"g", "h"})}
    assert ev("inallgroup=g", ctx({A, B}, groups=groups))
    assert not ev("inallgroup=g", ctx({A}, groups=groups))
    assert ev("inallgroup=empty", ctx(set(), groups=groups))


def test_lacking_copies() -> None:
    c = ctx({A, B}, trust={B: "untrusted"}, numcopies=3, file_numcopies=2)
    assert ev("approxlackingcopies=2", c) and not ev("approxlackingcopies=3", c)
    assert ev("lackingcopies=1", c) and not ev("lackingcopies=2", c)
    assert ev("approxlackingcopies=0", ctx({A}))


@pytest.mark.parametrize(
    ("key", "secure"),
    [("SHA256E-s3--abc.c", True), ("SHA256-s3--abc", True), ("SHA512-s3--a", True),
     ("SHA3_256-s3--abc", True), ("BLAKE2B256E-s3--abc", True), ("BLAKE3_256-s3--abc", True),
     ("SKEIN256-s3--abc", True), ("SHA1-s3--abc", False), ("MD5-s3--abc", False),
     ("WORM-s3--abc", False), ("XXH3-s3--abc", False)],
)
def test_securehash(key: str, secure: bool) -> None:
    assert ev("securehash", ctx(set(), key=Key.parse(key))) is secure
    assert not ev("securehash", ctx(set(), key=None))


def test_inbackend() -> None:
    assert ev("inbackend=SHA256E", ctx(set()))
    assert not ev("inbackend=SHA256", ctx(set())) and not ev("inbackend=sha256e", ctx(set()))


# --- want get / want drop (10.5) ----------------------------------------------


def test_drop_removes_self_from_locations() -> None:
    assert wants_get("copies=1", ctx({A})) and wants_drop("copies=1", ctx({A}))
    assert wants_drop("copies=2", ctx({A, B}))  # 2 copies left only if 3 exist
    assert not wants_drop("copies=2", ctx({A, B, C}))
    assert not wants_drop("present", ctx({A}))  # present looks at actual presence
    assert wants_drop("present", ctx({B}))
    assert not wants_drop("include=*.txt", ctx({A})) and wants_drop("include=*.dat", ctx({A}))


def test_standard_groups() -> None:
    groups = {A: frozenset({"client"}), B: frozenset({"archive"})}
    c = ctx({A}, path="archive/c.txt", groups=groups)
    assert wants_get("standard", c)  # no archive copy yet
    c2 = ctx({A, B}, path="archive/c.txt", groups=groups)
    assert not wants_get("standard", c2) and wants_drop("standard", c2)
    assert wants_get("standard", ctx({A, B}, path="d.txt", groups=groups))
    assert wants_get("standard", ctx(set(), groups={A: frozenset({"backup"})}))
    assert not wants_get("standard", ctx({A}, groups={A: frozenset({"unwanted"})}))
    assert wants_get("standard", ctx(set(), groups={A: frozenset({"source"})}))
    assert not wants_get("standard", ctx({B}, groups={A: frozenset({"source"})}))


@pytest.mark.parametrize("groups", [{}, {A: frozenset({"client", "archive"})}])
def test_standard_unusable_acts_as_present(groups: dict[str, frozenset[str]]) -> None:
    assert wants_get("standard", ctx({A}, groups=groups))
    assert not wants_get("standard", ctx({B}, groups=groups))
    assert not wants_drop("standard", ctx({A}, groups=groups))


def test_standard_expressions_parse() -> None:
    for name, text in STANDARD_GROUPS.items():
        if name != "public":
            assert parse(text) is not None


def test_groupwanted() -> None:
    gw = {"archive": "include=b*", "client": "include=a*"}
    one = ctx(set(), path="b.dat", groups={A: frozenset({"archive", "x"})}, group_wanted=gw)
    assert wants_get("groupwanted", one)
    both = ctx(set(), path="b.dat", groups={A: frozenset({"archive", "client"})}, group_wanted=gw)
    assert not wants_get("groupwanted", both)  # two candidates: acts as present
    bad = ctx({A}, groups={A: frozenset({"g"})}, group_wanted={"g": "groupwanted"})
    assert wants_get("groupwanted", bad) and not wants_drop("groupwanted", bad)


# --- largefiles (11) ----------------------------------------------------------


def test_is_large() -> None:
    assert is_large("largerthan=100kb", "a.bin", 100_001)
    assert not is_large("largerthan=100kb", "a.bin", 100_000)
    assert not is_large("(largerthan=100kb)and(not(include=*.c))", "a.c", 10**6)
    assert is_large("", "a", 0)
    for expr in ["present", "copies=1", "securehash", "standard", "mimetype=text/plain"]:
        with pytest.raises(ExpressionError):
            is_large(expr, "a", 1)


# --- never another exception --------------------------------------------------

_WORDS = st.sampled_from(
    ["and", "or", "not", "(", ")", "include=", "exclude=", "largerthan=", "smallerthan=",
     "copies=", "inallgroup=", "approxlackingcopies=", "lackingcopies=", "inbackend=",
     "present", "anything", "nothing", "securehash", "standard", "groupwanted", "[", "*", ":",
     "+", "1", "kb", "0x", "e", "."]
)
_TEXT = st.one_of(st.text(), st.lists(st.one_of(_WORDS, st.text(max_size=4))).map("".join),
                  st.lists(_WORDS).map(" ".join))


@given(_TEXT, st.text(max_size=8), st.integers(-1, 10**7))
def test_any_text_parses_or_raises_expression_error(text: str, path: str, size: int) -> None:
    try:
        parsed = parse(text)
    except ExpressionError:
        parsed = None
    c = ctx({A, B}, path=path, size=size, groups={A: frozenset({"client"})})
    if parsed is not None:
        wants_get(parsed, c)
        wants_drop(parsed, c)
    wants_get(text, c)
    try:
        is_large(text, path, size)
    except ExpressionError:
        pass


@given(st.text())
def test_parse_size_only_expression_error(text: str) -> None:
    try:
        assert isinstance(parse_size(text), int)
    except ExpressionError:
        pass


@given(st.lists(st.sampled_from(["include=a*", "include=*.c", "and", "or", "not"]), max_size=8),
       st.sampled_from(["a.c", "b.c", "a.h"]))
def test_left_fold_without_parentheses(words: list[str], path: str) -> None:
    """Reference model: fold left; a missing operand is anything."""
    def value(i: int) -> tuple[bool, int]:
        if i >= len(words):
            return True, i
        w = words[i]
        if w in ("and", "or"):
            right, j = value(i + 1)
            return (True or right) if w == "or" else right, j
        if w == "not":
            right, j = value(i + 1)
            return not right, j
        return m(w, path), i + 1

    acc, i = True, 0
    while i < len(words):
        w = words[i]
        right, i = value(i + 1) if w in ("and", "or", "not") else (m(w, path), i + 1)
        acc = acc or right if w == "or" else acc and (not right if w == "not" else right)
    if words:
        assert m(" ".join(words), path) is acc
