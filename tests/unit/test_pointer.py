from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.repo.key import Key
from core.repo.pointer import format_pointer, link_target, parse_link_target, parse_pointer

K = Key.parse("SHA256E-s12--a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447.txt")


def test_pointer_round_trip() -> None:
    p = format_pointer(K)
    assert p == b"/annex/objects/" + str(K).encode() + b"\n"
    assert parse_pointer(p) == K
    assert parse_pointer(p.rstrip(b"\n")) == K
    assert parse_pointer(p.replace(b"\n", b"\r\n")) == K


def test_not_pointers() -> None:
    p = format_pointer(K)
    assert parse_pointer(p + b"junk") is None
    assert parse_pointer(p + b"junk\n") is None
    assert parse_pointer(p + b"/annex/more\n") == K
    assert parse_pointer(b"hello") is None
    assert parse_pointer(p + b"x" * 40000) is None


def test_link_target() -> None:
    assert link_target(K, "a.txt") == f".git/annex/objects/J7/0G/{K}/{K}"
    assert link_target(K, "d/e/a.txt") == f"../../.git/annex/objects/J7/0G/{K}/{K}"
    assert link_target(K, "a.txt", hash_lower=True).startswith(".git/annex/objects/e7d/d01/")
    assert parse_link_target(link_target(K, "d/a.txt")) == K
    assert parse_link_target("/etc/passwd") is None


@given(st.binary(max_size=400))
def test_any_bytes(data: bytes) -> None:
    key = parse_pointer(data)
    assert key is None or isinstance(key, Key)
