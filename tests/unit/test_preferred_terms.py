"""Pure checks of the repository terms and the metadata log (spec 5.4, 10.2).

The same rules run against real git-annex in
tests/integration/test_preferred_terms.py; these pin the corner cases.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.repo.logs import current_metadata
from core.repo.preferred import (
    Context,
    fallback_reason,
    matches,
    parse,
    parse_group_limit,
    wants_drop,
    wants_get,
)

A, B, C = "uuid-a", "uuid-b", "uuid-c"


def m(expr: str, ctx: Context) -> bool:
    parsed = parse(expr)
    assert parsed is not None
    return matches(parsed.tree, ctx)


def test_metadata_log_newest_mention_wins() -> None:
    log = (b"1s tag +a +b year +2019 title +!dHdvIHdvcmRz\n"
           b"3s Tag -a\n"
           b"2s tag +a other +x\n"
           b"garbage line\n")
    meta = current_metadata(log)
    assert meta["tag"] == {"b"}  # "-a" at 3s beats "+a" at 2s, field names fold case
    assert meta["title"] == {"two words"}
    assert meta["year"] == {"2019"} and meta["other"] == {"x"}
    assert meta["lastchanged"] == {"1970-01-01@00-00-03"}
    assert meta["tag-lastchanged"] == {"1970-01-01@00-00-03"}
    assert meta["year-lastchanged"] == {"1970-01-01@00-00-01"}


def test_metadata_field_with_every_value_unset_is_gone() -> None:
    meta = current_metadata(b"1s tag +a\n2s tag -a\n")
    assert "tag" not in meta and "tag-lastchanged" not in meta
    assert meta["lastchanged"] == {"1970-01-01@00-00-02"}
    assert current_metadata(b"") == {}


@given(st.binary(max_size=200))
def test_metadata_log_reader_takes_any_bytes(blob: bytes) -> None:
    assert isinstance(current_metadata(blob), dict)


def test_metadata_terms() -> None:
    ctx = Context(path="f", metadata={"tag": frozenset({"Foo", "x/y"}), "n": frozenset({"10"}),
                                      "word": frozenset({"abc"})})
    assert m("metadata=TAG=foo", ctx) and m("metadata=tag=x/y", ctx) and m("metadata=tag=x?y", ctx)
    assert m("metadata=n>9", ctx) and not m("metadata=n<9", ctx) and m("metadata=n<=10.0", ctx)
    assert m("metadata=word>9", ctx)  # not a number: text order, "abc" > "9"
    assert not m("metadata=tag", ctx) and not m("metadata=none=*", ctx)


def test_group_limits() -> None:
    assert parse_group_limit("+a+b-c") == ((True, "a"), (True, "b"), (False, "c"))
    assert parse_group_limit("a-b") == ((True, "a"), (False, "b"))
    groups = {A: frozenset({"g1"}), B: frozenset({"g1", "g2"}), C: frozenset({"g3"})}
    ctx = Context(holders=frozenset({A, B, C}), groups=groups, numcopies=3)
    assert m("copies=+g1+g3=3", ctx) and not m("copies=g1-g2=2", ctx) and m("copies=-g2=2", ctx)
    assert m("lackingcopies=g3:2", ctx) and not m("lackingcopies=g1:2", ctx)


def test_only_in_group() -> None:
    groups = {A: frozenset({"g"}), B: frozenset({"g"}), C: frozenset({"h"})}
    assert m("onlyingroup=g", Context(holders=frozenset({A}), groups=groups))
    assert not m("onlyingroup=g", Context(holders=frozenset({A, C}), groups=groups))
    assert not m("onlyingroup=g", Context(holders=frozenset(), groups=groups))
    assert not m("onlyingroup=none", Context(holders=frozenset({A}), groups=groups))


def test_inpreferreddir_is_the_innermost_directory() -> None:
    # the live answers of git annex matchexpression inpreferreddir --file F
    live = {"public/sub/z": False, "public/x": True, "a/public/x": True, "a/publicx/y": False,
            "public": False, "x/public/": True, "p/public/q/r": False}
    assert {p: m("inpreferreddir", Context(path=p)) for p in live} == live
    assert m("inpreferreddir", Context(path="www/i.html", preferred_dir="www"))


def test_unevaluable_acts_as_present_and_says_why() -> None:
    here = Context(path="f", holders=frozenset({A}), uuid=A)
    away = Context(path="f", holders=frozenset({B}), uuid=A)
    for expr in ("balanced=g", "include=* or sizebalanced=g:2", "fullybalanced=g"):
        assert wants_get(expr, here) and not wants_get(expr, away)
        assert not wants_drop(expr, here)
        assert f"cannot evaluate {expr.split()[-1]!r}" in (fallback_reason(expr, here) or "")
    # an unstable negation never matches, which needs no evaluation
    assert not wants_get("not balanced=g", away) and fallback_reason("not balanced=g", away) is None
    assert fallback_reason("nonsense", here) == "unknown or unsupported term 'nonsense'"
    assert fallback_reason("include=*", here) is None and fallback_reason("", here) is None


def test_unused_is_false_for_files_and_unknown_for_bare_keys() -> None:
    assert not m("unused", Context(path="f"))
    assert wants_get("unused", Context(holders=frozenset({A}), uuid=A))  # present fallback
    assert not wants_get("unused", Context(holders=frozenset({B}), uuid=A))


def test_url_globs_the_web_log_without_downloader_prefix() -> None:
    ctx = Context(urls=("http://e.org/a/b.mp4", "yt:https://v.example/watch"))
    assert m("url=http://e.org/*", ctx) and m("url=*a?b.mp4", ctx)
    assert m("url=https://v.example/*", ctx) and not m("url=yt:*", ctx)
    assert not m("url=HTTP*", ctx) and not m("url=*", Context())


def test_dead_repositories_hold_nothing_for_group_terms() -> None:
    groups = {A: frozenset({"g"}), B: frozenset({"g"})}
    dead_b = Context(holders=frozenset({A, B}), groups=groups, trust={B: "dead"})
    assert not m("inallgroup=g", dead_b)
    assert m("onlyingroup=g", dead_b) and not m("copies=g:2", dead_b)
