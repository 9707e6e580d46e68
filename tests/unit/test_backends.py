"""BLAKE2bp/sp dealing is independent of how the stream is cut (spec 1.2).

``git annex calckey`` pins the digests (tests/integration/test_backends.py);
here any cut of the same bytes must give the digest of a single update, as a
download arrives in chunks of whatever size the transport delivers.
"""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from core.repo.key import HASHERS


@given(st.integers(0, 5000), st.integers(0, 2**32), st.lists(st.integers(1, 1500), max_size=8),
       st.sampled_from(["BLAKE2BP512", "BLAKE2SP256"]))
def test_any_cut_gives_the_same_digest(size: int, seed: int, cuts: list[int], backend: str) -> None:
    data = random.Random(seed).randbytes(size)  # st.binary stays too short to fill stripes
    whole = HASHERS[backend]()
    whole.update(data)
    pieces = HASHERS[backend]()
    pos = 0
    for n in cuts:
        pieces.update(data[pos:pos + n])
        pos += n
    pieces.update(data[pos:])
    small = HASHERS[backend]()  # 64-byte updates never make a whole stripe: block by block
    for i in range(0, len(data), 64):
        small.update(data[i:i + 64])
    assert pieces.hexdigest() == whole.hexdigest() == small.hexdigest()
    assert pieces.hexdigest() == pieces.hexdigest()  # reading the digest changes nothing
