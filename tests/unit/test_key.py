from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import BadKey
from core.repo.key import Key, extension, key_for_digest

HELLO = "SHA256E-s12--a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447.txt"


@pytest.mark.parametrize(
    "text",
    [
        HELLO,
        "SHA256-s1--2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881",
        "WORM-s1-m1795288851--a.tar.gz",
        "SHA256-s1048576-S262144-C2--aaaa",
        "URL--http://example.com/a,b",
        "FOO-s3--bar",
        "sha256e-s3--bar",
        "SHA256E--e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "XFOOE-s3--abc.x",
    ],
)
def test_round_trip(text: str) -> None:
    assert str(Key.parse(text)) == text


@pytest.mark.parametrize(
    "text,why",
    [
        ("SHA256E-m5-s0--abc", "out of order"),
        ("SHA256E-sx--abc", "not a decimal"),
        ("SHA256E-s-1--abc", "not a decimal"),
        ("SHA256E-q5--abc", "unknown field"),
        ("SHA256E-s5", "no '--'"),
        ("SHA256E-s5--", "empty name"),
        ("--abc", "empty backend"),
        ("SHA256E-s1--abc." + "x" * 64, "extension longer"),
        ("SHA256-s1--a/../../etc/passwd", "'/'"),
        ("SHA256-s1--a\nb", "control character"),
        ("SHA256-s1--" + "a" * 300, "longer than"),
        ("SHA256E-s01--abc", "leading zero"),
    ],
)
def test_refused(text: str, why: str) -> None:
    with pytest.raises(BadKey, match=why):
        Key.parse(text)


def test_extension_limit_boundary() -> None:
    Key.parse("SHA256E-s1--abc." + "x" * 63)
    Key.parse("SHA256-s1--abc." + "x" * 100)  # non-E backends have no limit


@pytest.mark.parametrize(
    "key,mixed,lower",
    [
        ("SHA256E-s0--e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "pX/ZJ", "f87/4d5"),
        (HELLO, "J7/0G", "e7d/d01"),
        ("SHA256-s1048576-S262144-C2--aaaa", "Pq/1j", "abc/786"),
        ("WORM-s5-m1700000000--my%file&x:y", "2p/kZ", "b35/839"),
        ("URL--http://example.com/a,b", "kV/j7", "bb7/bb2"),
    ],
)
def test_hashdirs(key: str, mixed: str, lower: str) -> None:
    k = Key.parse(key)
    assert (k.hashdir_mixed(), k.hashdir_lower()) == (mixed, lower)


def test_file_name_escaping() -> None:
    k = Key.parse("WORM-s5-m1700000000--my%file&x:y")
    assert k.file_name() == "WORM-s5-m1700000000--my&sfile&ax&cy"
    u = Key.parse("URL--http://example.com/a,b")
    assert u.file_name() == "URL--http&c%%example.com%a,b"
    assert Key.from_file_name(u.file_name()) == u


@pytest.mark.parametrize(
    "name,ext",
    [
        ("a.tar.gz", ".tar.gz"), ("x.y.z.w", ".z.w"), ("photo.jpeg", ".jpeg"),
        ("photo.jpeg5", ""), ("movie.verylongext", ""), ("a.b.verylong.gz", ".gz"),
        ("a.b-c.gz", ".gz"), ("f.ab.c-d", ".ab"), ("f.a_b", ""), ("f.1234.gz", ".1234.gz"),
        ("A.TXT", ".TXT"), ("we ird,name.JPEG", ".JPEG"), ("café.ñé", ".ñé"), ("f.日本", ""),
        (".bashrc", ""), ("foo.", ""), ("nodot", ""), ("weird.ta r", ""), ("..x.gz", ".gz"),
        ("a.b..c", ".c"), ("dir.d/file", ""),
    ],
)
def test_extension_rule(name: str, ext: str) -> None:
    assert extension(name) == ext


def test_extension_config() -> None:
    assert extension("a.b.verylong.gz", max_length=12) == ".verylong.gz"
    assert extension("a.tar.gz", max_count=1) == ".gz"


def test_key_for_digest() -> None:
    k = key_for_digest("SHA256E", "ab", 3, "sub/x.mp3")
    assert str(k) == "SHA256E-s3--ab.mp3"
    assert str(key_for_digest("SHA256", "ab", 3, "x.mp3")) == "SHA256-s3--ab"


@given(st.text(max_size=300))
def test_any_text_parses_or_bad_key(text: str) -> None:
    try:
        k = Key.parse(text)
    except BadKey:
        return
    assert str(k) == text
    name = k.file_name()
    assert "/" not in name and name not in (".", "..")
    assert Key.from_file_name(name) == k


keys = st.builds(
    Key,
    backend=st.sampled_from(["SHA256E", "SHA256", "MD5E", "WORM", "BLAKE2B256", "XYZ"]),
    name=st.text(st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/"),
                 min_size=1, max_size=40),
    size=st.none() | st.integers(0, 2**63),
    mtime=st.none() | st.integers(0, 2**40),
    chunk_size=st.none() | st.integers(1, 2**40),
    chunk_num=st.none() | st.integers(1, 2**20),
)


@given(keys)
def test_format_parse_round_trip(k: Key) -> None:
    try:
        parsed = Key.parse(str(k))
    except BadKey:
        return  # e.g. an over-long extension: refused, never mangled
    assert parsed == k
