"""Pure conflict resolution (spec 8.4): variant names and per-path plans.

The expected names were produced by git-annex 10.20261026 resolving real
conflicts (``git annex sync`` between two clones editing the same files).
"""

from __future__ import annotations

import posixpath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.ops.conflicts import (
    MODE_EXEC,
    MODE_FILE,
    MODE_LINK,
    Placement,
    Side,
    original_name,
    original_names,
    plan,
    side_key,
    variant_name,
)
from core.repo.key import Key
from core.repo.pointer import format_pointer, link_target

H = "913e164e5d72e79a3ad7632b062d50e458c495262bbf389bdb668a94b5cf2113"

LIVE = [
    ("doc.txt", "SHA256E-s15--c2b1cce9f1c73bbaf4d5f3a6fb1affac515652efeac85b1d279221bad2587695.txt",
     "doc.variant-1c30.txt"),
    ("README", "SHA256E-s14--d513cf4f7e4c218f91d95976b9428971e7746d12027e669577b0febe1a255966",
     "README.variant-482b"),
    ("sub/a.tar.gz",
     "SHA256E-s20--19b0605f9cc570b728306053d4d5bad21b4c3089e88517e1b2f0ccf038a02e8a.tar.gz",
     "sub/a.tar.variant-9f29.gz"),
    (".a.b", "SHA256E-s12--91ebb7c6cbcc06c1c2b98617189955a515a85cbfdf773a1bfe929fa8b4009fc5.b",
     ".a.variant-5560.b"),
    # a name that is all extension: git-annex glues the marker to the directory
    (".bashrc", "SHA256E-s15--4f9fd30ddf320a63ddb6ad41dd6c21a4e51fef2577cdda6345a59c8970cc6ce3",
     "..variant-436a.bashrc"),
    ("sub/.hidden", f"SHA256E-s19--{H}", "sub.variant-0e66.hidden"),
    # already a variant: the whole keyFile is used
    ("x.variant-1234.txt",
     "SHA256E-s26--95c1cf45fc1f2572bb970830c145096120ece7d442577c209b298810adbaa8f9.txt",
     "x.variant-1234.variant-SHA256E-s26--"
     "95c1cf45fc1f2572bb970830c145096120ece7d442577c209b298810adbaa8f9.txt.txt"),
]


@pytest.mark.parametrize(("path", "key", "expected"), LIVE)
def test_variant_names_match_git_annex(path: str, key: str, expected: str) -> None:
    assert variant_name(path, Key.parse(key)) == expected


# Names that are all extension are left out: their variants are ambiguous by name alone
# (``sub/.hidden`` and ``sub.hidden`` both give ``sub.variant-XXXX.hidden``).
@pytest.mark.parametrize(("path", "key", "expected"),
                         [c for c in LIVE if ".variant-" not in c[0]
                          and c[0].rpartition("/")[2].rpartition(".")[0]])
def test_original_name_inverts_variant_name(path: str, key: str, expected: str) -> None:
    assert original_name(expected) == path


@pytest.mark.parametrize(("path", "key", "expected"), [c for c in LIVE if ".variant-" not in c[0]])
def test_original_names_include_the_path(path: str, key: str, expected: str) -> None:
    """Names that are all extension are ambiguous; the right one is always a candidate."""
    assert path in original_names(expected)


def test_spec_example() -> None:
    key = Key.parse(f"SHA256E-s10--{H}.txt")
    name = variant_name("dir/doc.txt", key)
    assert name.startswith("dir/doc.variant-") and name.endswith(".txt")
    assert len(name) == len("dir/doc.variant-XXXX.txt")


names = st.text(st.sampled_from("ab.xyz_-"), min_size=1, max_size=12).filter(
    lambda n: n not in (".", "..") and ".variant-" not in n
)


@given(st.lists(names, min_size=1, max_size=3), st.integers(0, 10**9))
def test_variant_is_deterministic_and_keeps_extension(parts: list[str], size: int) -> None:
    path = "/".join(parts)
    key = Key.parse(f"SHA256E-s{size}--{H}")
    a, b = variant_name(path, key), variant_name(path, key)
    assert a == b
    name = parts[-1]
    ext = "." + name.rpartition(".")[2] if "." in name else ""
    assert a.endswith(ext)
    assert ".variant-" in a
    if name.rpartition(".")[0] or "." not in name:
        assert posixpath.dirname(a) == posixpath.dirname(path)
        assert original_name(a) == path


# --- plans --------------------------------------------------------------------

K1 = Key.parse(f"SHA256E-s1--{H}.txt")
K2 = Key.parse(f"SHA256E-s2--{H}.txt")


def locked(key: Key) -> Side:
    return Side(MODE_LINK, b"1" * 40, key)


def unlocked(key: Key, mode: int = MODE_FILE) -> Side:
    return Side(mode, b"2" * 40, key)


PLAIN = Side(MODE_FILE, b"3" * 40, None)


def test_both_annexed_different_keys_gives_two_variants() -> None:
    p = plan("d/doc.txt", locked(K1), unlocked(K2, MODE_EXEC))
    assert p is not None
    assert p.keep is None
    v1, v2 = variant_name("d/doc.txt", K1), variant_name("d/doc.txt", K2)
    assert p.place == (
        Placement(v1, MODE_LINK, link_target(K1, v1).encode(), K1),
        Placement(v2, MODE_EXEC, format_pointer(K2), K2),
    )
    assert p.keys == {K1, K2}


def test_same_key_both_locked_keeps_symlink() -> None:
    p = plan("doc.txt", locked(K1), locked(K1))
    assert p is not None
    assert p.place == (Placement("doc.txt", MODE_LINK, link_target(K1, "doc.txt").encode(), K1),)


@pytest.mark.parametrize(
    ("ours", "theirs", "mode"),
    [
        (locked(K1), unlocked(K1), MODE_FILE),
        (unlocked(K1), unlocked(K1, MODE_EXEC), MODE_EXEC),
    ],
)
def test_same_key_unlocked_wins(ours: Side, theirs: Side, mode: int) -> None:
    p = plan("doc.txt", ours, theirs)
    assert p is not None
    assert p.place == (Placement("doc.txt", mode, format_pointer(K1), K1),)


def test_one_side_annexed_other_keeps_path() -> None:
    p = plan("doc.txt", PLAIN, locked(K2))
    assert p is not None
    assert p.keep == PLAIN
    assert [x.path for x in p.place] == [variant_name("doc.txt", K2), "doc.txt"]


def test_annexed_against_deletion_leaves_only_the_variant() -> None:
    p = plan("doc.txt", unlocked(K1), None)
    assert p is not None and p.keep is None
    assert [x.path for x in p.place] == [variant_name("doc.txt", K1)]


def test_neither_annexed_is_not_resolved() -> None:
    assert plan("doc.txt", PLAIN, PLAIN) is None
    assert plan("doc.txt", PLAIN, None) is None


def test_variant_link_depth_follows_variant_path() -> None:
    p = plan("sub/.hidden", locked(K1), locked(K2))
    assert p is not None
    top = p.place[0]
    assert "/" not in top.path  # sub.variant-XXXX.hidden lives one level up
    assert top.data.startswith(b".git/annex/objects/")


def test_side_key() -> None:
    assert side_key(MODE_LINK, link_target(K1, "a/b").encode()) == K1
    assert side_key(MODE_FILE, format_pointer(K1)) == K1
    assert side_key(MODE_FILE, b"hello\n") is None
    assert side_key(MODE_LINK, b"elsewhere") is None


def test_distinct_type_halves_are_joined() -> None:
    # git split a file/symlink conflict: ours at doc.txt~HEAD, theirs at doc.txt
    sides = {
        "doc.txt": (None, locked(K2)),
        "doc.txt~HEAD": (unlocked(K1), None),
        "other.txt": (unlocked(K1), locked(K2)),
        "a~b": (PLAIN, PLAIN),  # a real name with a tilde stays on its own
    }
    from core.ops.conflicts import pair_renamed

    joined = pair_renamed(sides)
    assert joined["doc.txt"] == (unlocked(K1), locked(K2), ("doc.txt~HEAD",))
    assert "doc.txt~HEAD" not in joined
    assert joined["other.txt"] == (unlocked(K1), locked(K2), ())
    assert joined["a~b"] == (PLAIN, PLAIN, ())
