"""Pairing codes: ``<nameplate>-<word>-<word>`` from the PGP word list (pairing.md 6.3).

Theory of operation
-------------------
A code is read aloud or typed, so it is made of words that sound unlike each
other: the PGP word list (``pgpwords.txt``, 256 two-syllable "even" words and
256 three-syllable "odd" words).  Words alternate even, odd, even, ... so a
dropped or swapped word is noticed at once (a word from the wrong list is a
bad code, not a wrong one).  Two words give 16 bits, three give 24.

The nameplate is a small number that tells the carrier which window the code
belongs to (it is published in DNS-SD, pairing.md 6.4); it is not secret, and
the secret part is the words.  The whole canonical code is the SPAKE2
password, so the key is bound to the nameplate as well.

Parsing is forgiving where people are (case, surrounding blanks, spaces or
several dashes between parts) and strict otherwise: anything else is a
``BadCode`` that says what is wrong.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from functools import cache
from importlib import resources

from core.errors import CoreError

NAMEPLATE_MAX = 999
WORDS_MIN, WORDS_MAX = 2, 3


class BadCode(CoreError, ValueError):
    """Text that is not a pairing code; says why, in words."""


@dataclass(frozen=True)
class WordLists:
    even: tuple[str, ...]
    odd: tuple[str, ...]


@cache
def word_lists() -> WordLists:
    """The two lists, in byte order, from the data file beside this module."""
    even: list[str] = []
    odd: list[str] = []
    text = resources.files("core.pairing").joinpath("pgpwords.txt").read_text("utf-8")
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        byte, e, o = line.split()
        if int(byte, 16) != len(even):
            raise RuntimeError(f"pgpwords.txt: byte {byte} out of order")
        even.append(e)
        odd.append(o)
    if len(even) != 256 or len(set(even) | set(odd)) != 512:
        raise RuntimeError("pgpwords.txt must hold 256 distinct even and 256 distinct odd words")
    return WordLists(tuple(even), tuple(odd))


@dataclass(frozen=True)
class Code:
    nameplate: int
    words: tuple[str, ...]

    def __str__(self) -> str:
        return "-".join((str(self.nameplate), *self.words))

    @property
    def password(self) -> bytes:
        """The SPAKE2 password: the canonical code (pairing.md 6.5 step 1)."""
        return str(self).encode("ascii")


def make_code(words: int = WORDS_MIN, nameplate: int | None = None) -> Code:
    """A fresh random code (``secrets``, never ``random``)."""
    if not WORDS_MIN <= words <= WORDS_MAX:
        raise ValueError(f"a code has {WORDS_MIN} or {WORDS_MAX} words")
    lists = word_lists()
    chosen = tuple((lists.even if i % 2 == 0 else lists.odd)[secrets.randbelow(256)]
                   for i in range(words))  # fmt: skip
    return Code(nameplate if nameplate is not None else 1 + secrets.randbelow(NAMEPLATE_MAX),
                chosen)


def parse_code(text: str) -> Code:
    """The code in ``text``, case and blanks forgiven.

    Raises:
        BadCode: not ``<number>-<word>-<word>[-<word>]`` with words from the
            right lists; the message says which part is wrong.
    """
    parts = [p for p in re.split(r"[\s\-]+", text.strip().lower()) if p]
    if not parts or not parts[0].isdecimal() or not parts[0].isascii():
        raise BadCode("a pairing code starts with a number, like 7-tracker-revenue")
    nameplate = int(parts[0])
    if not 1 <= nameplate <= NAMEPLATE_MAX:
        raise BadCode(f"the number of a pairing code is between 1 and {NAMEPLATE_MAX}")
    words = parts[1:]
    if not WORDS_MIN <= len(words) <= WORDS_MAX:
        raise BadCode(f"a pairing code has {WORDS_MIN} or {WORDS_MAX} words after the number, "
                      f"not {len(words)}")
    lists = word_lists()
    for i, word in enumerate(words):
        right, other = (lists.even, lists.odd) if i % 2 == 0 else (lists.odd, lists.even)
        if word not in right:
            hint = " (it belongs in another position: a word may be missing)" if word in other else ""
            raise BadCode(f"{word!r} is not a word of pairing codes{hint}")
    return Code(nameplate, tuple(words))
