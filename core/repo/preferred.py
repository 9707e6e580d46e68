"""Preferred-content and annex.largefiles expressions: parse, then evaluate.

Spec: repository-format.md section 10 (preferred content), 11 (largefiles),
9.2 (how copies are counted) and 12.11 (the interop check).  Pure: no I/O.
Globs and sizes (10.3) live in ``patterns``.

Theory of operation
-------------------
``parse`` turns text into an immutable tree of frozen dataclasses.  Tokens are
whitespace-separated words, and ``(`` / ``)`` are always tokens of their own
(10.1).  There is no precedence: every operator combines everything read so far
with the one operand that follows it, strictly left to right, so
``A or B and C`` is ``(A or B) and C``.  The operand after ``and``, ``or`` or
``not`` is read the same way, starting from "anything", which is why a missing
operand counts as ``anything`` (``A or`` matches everything, ``not`` alone
matches nothing) and ``not ( A )`` negates the group.  Two operands side by side
are joined by ``and``.  A missing ``)`` is tolerated and a stray one at top
level is ignored.  These corner cases follow real git-annex 10.20261026.

A term is ``name=value`` (split at the first ``=``) or a bare word; a known
name written without ``=`` gets an empty value (``include`` matches only an
empty path; ``largerthan`` is a bad size).  Unknown terms, bad numbers and bad
sizes raise ``ExpressionError``.  Where the expression is someone's preferred
content, such an error is never guessed at: the expression acts as ``present``
(10.2, last paragraph) -- see ``parse_or_present``.

Repository terms follow git-annex 10.20261026 (checked term by term against
``git annex matchexpression``): ``metadata=`` reads the key's current
metadata (case-insensitive field and glob; ``<``/``>`` compare as numbers
when both sides are numbers); ``onlyingroup=`` wants a copy in the group and
none outside; ``inpreferreddir`` compares only the file's innermost
directory with the repository's ``preferreddir``; ``copies=`` and
``lackingcopies=`` take ``GROUP:N`` and ``+G1+G2-G3=N``; ``url=`` globs the
key's web log.  Terms that need what we do not track (``balanced=`` and its
family: repository sizes) parse as ``Unevaluable``; an expression holding one acts as
``present``, and ``fallback_reason`` says so for status and CLI.

``standard`` and ``groupwanted`` depend on the repository's groups, so they
stay terms in the tree and are expanded at evaluation time; when the
repository is in no standard group or several (or in no group with a
group-preferred-content expression, or several), the whole expression is
unusable and acts as ``present`` too.  An expression holding ``present``
under an odd number of ``not`` never matches at all (unstable negation).

Evaluation answers one question for one (file, key): ``wants_get`` evaluates
with the current locations; ``wants_drop`` evaluates as if the repository no
longer had the content (10.5) and negates.  Real git-annex removes the
repository from the locations for ``copies``, ``inallgroup`` and the lacking
counts, but ``present`` still looks at actual presence -- which is what lets
a ``present`` fallback want neither gets nor drops.
"""

from __future__ import annotations

import logging
import operator
import posixpath
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Union

from core.errors import ExpressionError
from core.repo.key import Key
from core.repo.patterns import compile_glob, parse_size

logger = logging.getLogger(__name__)

__all__ = [
    "And", "Const", "Context", "Copies", "Expression", "Glob", "GroupWanted", "InAllGroup",
    "InBackend", "InPreferredDir", "Lacking", "MetaData", "Node", "Not", "OnlyInGroup", "Or",
    "Present", "SecureHash", "Size", "Standard", "STANDARD_GROUPS", "TRUST_LEVELS", "Unevaluable",
    "Unused", "Url", "fallback_reason", "is_large", "matches", "parse", "parse_or_present",
    "parse_group_limit", "parse_size", "tokenize", "wants_drop", "wants_get",
]

TRUST_LEVELS = ("dead", "untrusted", "semitrusted", "trusted")  # lowest first


# --- the tree -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Const:
    """``anything`` / ``nothing``; also a missing operand (``anything``)."""

    value: bool


@dataclass(frozen=True, slots=True)
class Glob:
    """``include=GLOB`` (``exclude`` when ``negate``).  ``regex`` is None for a
    glob git-annex cannot compile (unclosed ``[``, reversed range): never matches."""

    pattern: str
    negate: bool
    regex: re.Pattern[str] | None = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Size:
    limit: int
    larger: bool  # largerthan when True, smallerthan when False


@dataclass(frozen=True, slots=True)
class Present:
    pass


# ``+g1+g2-g3``: (include?, group) pairs; a repository passes when it is in one
# of the included groups (or none is named) and in none of the excluded ones.
GroupLimit = tuple[tuple[bool, str], ...]


@dataclass(frozen=True, slots=True)
class Copies:
    """``copies=N``, ``copies=GROUP:N``, ``copies=LEVEL:N``, ``copies=LEVEL+:N``,
    ``copies=+G1+G2-G3=N`` (``limit``)."""

    count: int
    group: str | None = None
    trust: str | None = None
    or_higher: bool = False
    limit: GroupLimit | None = None


@dataclass(frozen=True, slots=True)
class InAllGroup:
    group: str


@dataclass(frozen=True, slots=True)
class OnlyInGroup:
    """``onlyingroup=GROUP``: some copy in GROUP and none outside it."""

    group: str


@dataclass(frozen=True, slots=True)
class Lacking:
    """``approxlackingcopies=N`` (``approx``) or ``lackingcopies=N``; with
    ``GROUP:N`` or ``+G1-G2=N`` only copies in those groups count."""

    count: int
    approx: bool
    group: str | None = None
    limit: GroupLimit | None = None


@dataclass(frozen=True, slots=True)
class MetaData:
    """``metadata=FIELD=GLOB`` (case-insensitive glob) or ``FIELD<N``, ``<=``,
    ``>``, ``>=`` (numbers when both sides are numbers, else text order)."""

    name: str  # case-folded, as field names are case-insensitive
    op: str
    value: str
    regex: re.Pattern[str] | None = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Url:
    """``url=GLOB``: a URL recorded for the key (``.log.web``), case-sensitive."""

    pattern: str
    regex: re.Pattern[str] | None = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class InPreferredDir:
    """``inpreferreddir``: the file's parent directory is the remote's
    ``preferreddir`` (remote.log, default ``public``)."""


@dataclass(frozen=True, slots=True)
class Unused:
    """``unused``: never true for a file that is in the tree."""


@dataclass(frozen=True, slots=True)
class Unevaluable:
    """A term git-annex evaluates but we cannot (repository sizes, URL logs):
    the expression acts as ``present`` (10.2), said in status and CLI."""

    term: str
    unstable: bool  # under ``not`` the whole expression never matches


@dataclass(frozen=True, slots=True)
class SecureHash:
    pass


@dataclass(frozen=True, slots=True)
class InBackend:
    backend: str


@dataclass(frozen=True, slots=True)
class Standard:
    pass


@dataclass(frozen=True, slots=True)
class GroupWanted:
    pass


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


@dataclass(frozen=True, slots=True)
class And:
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Or:
    left: Node
    right: Node


Node = Union[  # noqa: UP007 - a runtime alias used before the classes are complete
    Const, Glob, Size, Present, Copies, InAllGroup, OnlyInGroup, Lacking, MetaData, Url,
    InPreferredDir, Unused, Unevaluable, SecureHash, InBackend, Standard, GroupWanted,
    Not, And, Or,
]

ANY = Const(True)
PRESENT_FALLBACK = Present()


@dataclass(frozen=True, slots=True)
class Expression:
    """A parsed expression and the text it came from; ``problem`` says why it
    acts as ``present`` when it did not parse (10.2)."""

    text: str
    tree: Node
    problem: str | None = None


# --- tokens and structure (10.1) ----------------------------------------------


def tokenize(text: str) -> list[str]:
    """Whitespace-separated words, with every ``(`` and ``)`` a token of its own."""
    return [t for t in re.split(r"\s+|([()])", text) if t]


def _join_and(left: Node, right: Node) -> Node:
    if left == ANY:
        return right
    return And(left, right)


class _Parser:
    """Left-to-right reader; see the module header for the rules."""

    def __init__(self, text: str, largefiles: bool) -> None:
        self.text = text
        self.largefiles = largefiles
        self.tokens = tokenize(text)
        self.pos = 0
        self.depth = 0  # open groups; a ")" at depth 0 is stray and skipped everywhere

    def top(self) -> Node:
        acc: Node = ANY
        while self.pos < len(self.tokens):
            if self.tokens[self.pos] == ")":  # stray close: ignored
                self.pos += 1
                continue
            acc = self.unit(acc)
        return acc

    def group(self) -> Node:
        acc: Node = ANY
        while self.pos < len(self.tokens) and self.tokens[self.pos] != ")":
            acc = self.unit(acc)
        self.pos += 1  # past ")" (or past the end: a missing ")" is tolerated)
        return acc

    def operand(self) -> Node:
        while self.depth == 0 and self.pos < len(self.tokens) and self.tokens[self.pos] == ")":
            self.pos += 1
        if self.pos >= len(self.tokens) or self.tokens[self.pos] == ")":
            return ANY
        return self.unit(ANY)

    def unit(self, acc: Node) -> Node:
        tok = self.tokens[self.pos]
        self.pos += 1
        if tok == "and":
            return _join_and(acc, self.operand())
        if tok == "or":
            return Or(acc, self.operand())
        if tok == "not":
            return _join_and(acc, Not(self.operand()))
        if tok == "(":
            self.depth += 1
            inner = self.group()
            self.depth -= 1
            return _join_and(acc, inner)
        return _join_and(acc, _term(self.text, tok, self.largefiles))


def parse(text: str, *, largefiles: bool = False) -> Expression | None:
    """Parse an expression; None when it is empty ("not configured").

    With ``largefiles`` only the file terms of section 11 are allowed.

    Raises:
        ExpressionError: an unknown term, a bad number, size or glob value.
    """
    if not text.strip():
        return None
    return Expression(text, _Parser(text, largefiles).top())


def parse_or_present(text: str) -> Expression | None:
    """Parse a preferred-content expression; an unparsable one acts as ``present`` (10.2)."""
    try:
        return parse(text)
    except ExpressionError as e:
        logger.info("%s; treating it as 'present'", e)
        return Expression(text, PRESENT_FALLBACK, e.why)


# --- terms (10.2) -------------------------------------------------------------

_FILE_TERMS = frozenset({"include", "exclude", "largerthan", "smallerthan", "anything", "nothing"})
_BARE: dict[str, Node] = {
    "anything": Const(True), "nothing": Const(False), "present": Present(),
    "securehash": SecureHash(), "standard": Standard(), "groupwanted": GroupWanted(),
    "inpreferreddir": InPreferredDir(), "unused": Unused(),
}
# Known to git-annex, not evaluable here; the balanced family's negation is unstable.
_UNEVALUABLE = {"balanced": True, "fullybalanced": True, "sizebalanced": True,
                "fullysizebalanced": True}
_NUMBER = re.compile(r"-?[0-9]+")


def _term(text: str, tok: str, largefiles: bool) -> Node:
    name, sep, value = tok.partition("=")
    if largefiles and name not in _FILE_TERMS:
        raise ExpressionError(text, f"{tok!r} is not allowed in annex.largefiles")
    if name in _BARE and not sep:
        return _BARE[name]
    if name in ("include", "exclude"):
        return Glob(value, name == "exclude", compile_glob(value))
    if name in ("largerthan", "smallerthan"):
        return Size(_size(text, value), name == "largerthan")
    if name == "copies":
        return _copies(text, value)
    if name in ("approxlackingcopies", "lackingcopies"):
        return _lacking(text, value, name)
    if name == "inallgroup":
        return InAllGroup(value)
    if name == "onlyingroup":
        return OnlyInGroup(value)
    if name == "inbackend":
        return InBackend(value)
    if name == "metadata":
        return _metadata(text, value)
    if name == "url":
        return Url(value, compile_glob(value, filepath=False))
    if name in _UNEVALUABLE and sep:
        return Unevaluable(tok, _UNEVALUABLE[name])
    raise ExpressionError(text, f"unknown or unsupported term {tok!r}")


def _count(text: str, value: str, what: str) -> int:
    if not _NUMBER.fullmatch(value):
        raise ExpressionError(text, f"bad number {value!r} for {what}")
    return int(value)


def _copies(text: str, value: str) -> Copies:
    parts = value.split(":")
    if len(parts) == 2:
        where, number = parts
        count = _count(text, number, "copies")
        level, plus = (where[:-1], True) if where.endswith("+") else (where, False)
        if level in TRUST_LEVELS:  # a group named like a trust level reads as the level
            return Copies(count, trust=level, or_higher=plus)
        return Copies(count, group=where)
    limit, number = _split_limit(value)
    return Copies(_count(text, number, "copies"), limit=limit)


def _lacking(text: str, value: str, name: str) -> Lacking:
    parts = value.split(":")
    approx = name.startswith("approx")
    if len(parts) == 2:
        return Lacking(_count(text, parts[1], name), approx, group=parts[0])
    limit, number = _split_limit(value)
    return Lacking(_count(text, number, name), approx, limit=limit)


def _split_limit(value: str) -> tuple[GroupLimit | None, str]:
    """``+G1+G2-G3=N`` -> (group limit, N); a value with no single ``=`` has no limit."""
    parts = value.split("=")
    if len(parts) != 2:
        return None, value
    return parse_group_limit(parts[0]), parts[1]


def parse_group_limit(text: str) -> GroupLimit:
    """``G1+G2-G3``: a name after ``-`` is excluded, any other included."""
    return tuple((sign != "-", name)
                 for sign, name in re.findall(r"([+-]?)([^+-]*)", text) if name)


_FIELD = re.compile(r"[^\W_][\w.-]*")  # alphanumeric first, then alphanumerics or _-.


def _metadata(text: str, value: str) -> MetaData:
    m = re.match(r"([^=<>]*)(<=|>=|[=<>]?)(.*)", value, re.DOTALL)
    assert m is not None
    name, op, want = m.groups()
    if not _FIELD.fullmatch(name):
        raise ExpressionError(text, f"illegal metadata field name {name!r}")
    if not op:  # a field alone matches an empty value, as git-annex reads it
        op, want = "=", ""
    regex = compile_glob(want, filepath=False, ignore_case=True) if op == "=" else None
    return MetaData(name.casefold(), op, want, regex)

def _size(text: str, value: str) -> int:
    try:
        return parse_size(value)
    except ExpressionError as e:
        raise ExpressionError(text, e.why) from None


# --- evaluation (10.5) --------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What an expression is evaluated against, for one file and key.

    ``size`` is used when the key has no size (and is the file's size for
    largefiles).  ``holders`` are the repositories with the content (location
    log); ``uuid`` is the repository whose expression this is.  Trust levels
    missing from ``trust`` are ``semitrusted``.  ``group_wanted`` maps a group
    to its group-preferred-content expression.  ``file_numcopies`` is the
    numcopies of this file (gitattributes included), for ``lackingcopies``.
    ``metadata`` is the key's current metadata (case-folded field -> values,
    derived ``lastchanged`` fields included); ``preferred_dir`` the
    ``preferreddir`` of repository ``uuid``; ``urls`` the key's ``.log.web``
    entries.
    """

    path: str | None = None
    key: Key | None = None
    size: int | None = None
    holders: frozenset[str] = frozenset()
    uuid: str = ""
    trust: Mapping[str, str] = field(default_factory=dict)
    groups: Mapping[str, frozenset[str]] = field(default_factory=dict)
    group_wanted: Mapping[str, str] = field(default_factory=dict)
    numcopies: int = 1
    file_numcopies: int | None = None
    cluster_uuids: frozenset[str] = frozenset()
    present_holders: frozenset[str] | None = None  # set by wants_drop: actual holders
    metadata: Mapping[str, frozenset[str]] = field(default_factory=dict)
    preferred_dir: str = "public"
    urls: Collection[str] = ()

    def trust_of(self, uuid: str) -> str:
        return self.trust.get(uuid, "semitrusted")

    def counted(self) -> frozenset[str]:
        return self.holders - self.cluster_uuids

    def key_size(self) -> int | None:
        if self.key is not None and self.key.size is not None:
            return self.key.size
        return self.size


def _in_groups(ctx: Context, uuid: str, group: str | None, limit: GroupLimit | None) -> bool:
    """Does ``uuid`` pass a ``GROUP:`` or ``+G1-G2=`` restriction (none: yes)?"""
    groups = ctx.groups.get(uuid, frozenset())
    if group is not None:
        return group in groups
    if limit is None:
        return True
    included = [g for inc, g in limit if inc]
    return (not included or any(g in groups for g in included)) and not any(
        g in groups for inc, g in limit if not inc)


def _copies_match(node: Copies, ctx: Context) -> bool:
    holders = ctx.counted()
    if node.trust is not None:
        rank = TRUST_LEVELS.index(node.trust)
        levels = TRUST_LEVELS[rank:] if node.or_higher else (node.trust,)
        n = sum(1 for u in holders if ctx.trust_of(u) in levels)
    else:
        live = [u for u in holders if ctx.trust_of(u) != "dead"]
        n = sum(1 for u in live if _in_groups(ctx, u, node.group, node.limit))
    return n >= node.count


def _lacking_match(node: Lacking, ctx: Context) -> bool:
    good = sum(1 for u in ctx.counted() if ctx.trust_of(u) in ("semitrusted", "trusted")
               and _in_groups(ctx, u, node.group, node.limit))
    wanted = ctx.numcopies if node.approx or ctx.file_numcopies is None else ctx.file_numcopies
    return wanted - good >= node.count


def _only_in_group_match(node: OnlyInGroup, ctx: Context) -> bool:
    members = {u for u, gs in ctx.groups.items() if node.group in gs}
    live = {u for u in ctx.holders if ctx.trust_of(u) != "dead"}
    return bool(members and live & members and live <= members)


_NUMBER_TEXT = re.compile(r"\s*-?\s*[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\s*")
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _metadata_match(node: MetaData, ctx: Context) -> bool:
    values = ctx.metadata.get(node.name, frozenset())
    if node.regex is not None:
        return any(node.regex.fullmatch(v) for v in values)
    cmp = _COMPARE[node.op]
    for v in values:
        if _NUMBER_TEXT.fullmatch(v) and _NUMBER_TEXT.fullmatch(node.value):
            if cmp(float(v.replace(" ", "")), float(node.value.replace(" ", ""))):
                return True
        elif cmp(v, node.value):
            return True
    return False


def _url_of(logged: str) -> str:
    """A ``.log.web`` entry without its downloader prefix (``yt:``, ``quvi:``, ``:``)."""
    prefix, sep, rest = logged.partition(":")
    return rest if sep and prefix in ("yt", "quvi", "") else logged


def _in_preferred_dir(ctx: Context) -> bool:
    """The directory part of the path, split the way git-annex splits it: every
    component but the last keeps its trailing ``/``, so only the innermost
    directory can equal a plain name."""
    if ctx.path is None:
        return False
    parts = re.findall(r"[^/]*/+|[^/]+", posixpath.dirname(ctx.path) or ".")
    return ctx.preferred_dir in parts


def _present_match(ctx: Context) -> bool:
    holders = ctx.holders if ctx.present_holders is None else ctx.present_holders
    return ctx.uuid in holders


_SECURE_PREFIXES = ("SHA224", "SHA256", "SHA384", "SHA512", "SHA3_", "SKEIN", "BLAKE2", "BLAKE3")


def _leaf_match(node: Node, ctx: Context) -> bool:  # noqa: C901 - one dispatch table
    if isinstance(node, Const):
        return node.value
    if isinstance(node, Glob):
        if ctx.path is None or node.regex is None:
            return False
        return (node.regex.fullmatch(ctx.path) is not None) != node.negate
    if isinstance(node, Size):
        size = ctx.key_size()
        if size is None:
            return not node.larger
        return size > node.limit if node.larger else size < node.limit
    if isinstance(node, Present):
        return _present_match(ctx)
    if isinstance(node, Copies):
        return _copies_match(node, ctx)
    if isinstance(node, InAllGroup):  # dead repositories hold nothing (keyLocations)
        members = {u for u, gs in ctx.groups.items() if node.group in gs}
        return members <= {u for u in ctx.holders if ctx.trust_of(u) != "dead"}
    if isinstance(node, OnlyInGroup):
        return _only_in_group_match(node, ctx)
    if isinstance(node, Lacking):
        return _lacking_match(node, ctx)
    if isinstance(node, MetaData):
        return _metadata_match(node, ctx)
    if isinstance(node, InPreferredDir):
        return _in_preferred_dir(ctx)
    if isinstance(node, Url):
        return node.regex is not None and any(node.regex.fullmatch(_url_of(u)) for u in ctx.urls)
    if isinstance(node, Unused):
        if ctx.path is None:
            raise ExpressionError("unused", "cannot tell whether a key is unused")
        return False
    if isinstance(node, SecureHash):
        return ctx.key is not None and ctx.key.hash_backend.startswith(_SECURE_PREFIXES)
    if isinstance(node, InBackend):
        return ctx.key is not None and ctx.key.backend == node.backend
    raise ExpressionError(repr(node), "must be expanded or refused before matching")


def matches(tree: Node, ctx: Context) -> bool:
    """Evaluate an expanded tree (no ``standard``/``groupwanted`` left)."""
    if isinstance(tree, And):
        return matches(tree.left, ctx) and matches(tree.right, ctx)
    if isinstance(tree, Or):
        return matches(tree.left, ctx) or matches(tree.right, ctx)
    if isinstance(tree, Not):
        return not matches(tree.child, ctx)
    return _leaf_match(tree, ctx)


def _unstable(tree: Node, negated: bool = False) -> bool:
    """``present`` (or a balanced term) under an odd number of ``not``: the
    whole expression never matches."""
    if isinstance(tree, (And, Or)):
        return _unstable(tree.left, negated) or _unstable(tree.right, negated)
    if isinstance(tree, Not):
        return _unstable(tree.child, not negated)
    return negated and (isinstance(tree, Present)
                        or (isinstance(tree, Unevaluable) and tree.unstable))


def _unevaluable(tree: Node) -> str | None:
    """The first term we cannot evaluate, if any."""
    if isinstance(tree, (And, Or)):
        return _unevaluable(tree.left) or _unevaluable(tree.right)
    if isinstance(tree, Not):
        return _unevaluable(tree.child)
    return tree.term if isinstance(tree, Unevaluable) else None


# --- standard groups (10.4) ---------------------------------------------------

_NA = "not (copies=archive:1 or copies=smallarchive:1)"
_CLIENT = f"(include=* and ((exclude=*/archive/* and exclude=archive/*) or ({_NA}))) or approxlackingcopies=1"
_ARCHIVE = f"({_NA}) or approxlackingcopies=1"
STANDARD_GROUPS: dict[str, str] = {
    "client": _CLIENT,
    "transfer": f"(not (inallgroup=client and copies=client:2) and ({_CLIENT})) or approxlackingcopies=1",
    "backup": "anything",
    "incrementalbackup": "((not copies=backup:1) and (not copies=incrementalbackup:1)) or approxlackingcopies=1",
    "smallarchive": f"((include=*/archive/* or include=archive/*) and ({_ARCHIVE})) or approxlackingcopies=1",
    "archive": _ARCHIVE,
    "source": "not (copies=1)",
    "manual": f"present and ({_CLIENT})",
    "public": "inpreferreddir",
    "unwanted": "not anything",
}


def _single(names: set[str], what: str, text: str) -> str:
    if len(names) != 1:
        raise ExpressionError(text, f"repository is in {len(names)} {what}, not exactly one")
    return names.pop()


def expand(expr: Expression, ctx: Context) -> Node:
    """Replace ``standard`` and ``groupwanted`` by the expressions they stand for.

    Raises:
        ExpressionError: the repository has no single standard group / group
            with a wanted expression, or that expression does not parse.
    """
    return _expand(expr.tree, ctx, expr.text, nested=False)


def _expand(tree: Node, ctx: Context, text: str, nested: bool) -> Node:
    if isinstance(tree, (And, Or)):
        left = _expand(tree.left, ctx, text, nested)
        right = _expand(tree.right, ctx, text, nested)
        return And(left, right) if isinstance(tree, And) else Or(left, right)
    if isinstance(tree, Not):
        return Not(_expand(tree.child, ctx, text, nested))
    if isinstance(tree, (Standard, GroupWanted)) and nested:
        raise ExpressionError(text, "standard/groupwanted inside a group expression")
    groups = set(ctx.groups.get(ctx.uuid, frozenset()))
    if isinstance(tree, Standard):
        sub = STANDARD_GROUPS[_single(groups & set(STANDARD_GROUPS), "standard groups", text)]
    elif isinstance(tree, GroupWanted):
        sub = ctx.group_wanted[_single(groups & set(ctx.group_wanted), "groups with groupwanted", text)]
    else:
        return tree
    parsed = parse(sub)
    return _expand(parsed.tree, ctx, text, nested=True) if parsed else ANY


def _usable(parsed: Expression, ctx: Context) -> tuple[Node, str | None]:
    """The tree to evaluate, and why it is the ``present`` fallback (10.2) if it is."""
    if parsed.problem is not None:
        return PRESENT_FALLBACK, parsed.problem
    try:
        tree = expand(parsed, ctx)
    except ExpressionError as e:
        return PRESENT_FALLBACK, e.why
    if _unstable(tree):
        return Const(False), None
    term = _unevaluable(tree)
    if term is not None:
        return PRESENT_FALLBACK, f"annexsync cannot evaluate {term!r}"
    return tree, None


def fallback_reason(expr: str | Expression | None, ctx: Context) -> str | None:
    """Why this preferred-content expression acts as ``present`` here, or None
    when it is evaluated as written (or not configured).  For status and CLI."""
    parsed = parse_or_present(expr) if isinstance(expr, str) else expr
    return None if parsed is None else _usable(parsed, ctx)[1]


def _decide(expr: str | Expression | None, ctx: Context) -> bool | None:
    """Evaluate a preferred-content expression; None when it is not configured."""
    parsed = parse_or_present(expr) if isinstance(expr, str) else expr
    if parsed is None:
        return None
    tree, _ = _usable(parsed, ctx)
    try:
        return matches(tree, ctx)
    except ExpressionError as e:  # a term that needs what this context lacks
        logger.info("%s; treating it as 'present'", e)
        return matches(PRESENT_FALLBACK, ctx)


def wants_get(expr: str | Expression | None, ctx: Context, *, unset: bool = False) -> bool:
    """Does repository ``ctx.uuid`` want this content (10.5)?

    ``unset`` is the answer when no expression is configured: git-annex's
    ``find --want-get-by`` says no, ``sync --content`` acts as if yes.
    An unparsable or unusable expression acts as ``present``.
    """
    decided = _decide(expr, ctx)
    return unset if decided is None else decided


def wants_drop(expr: str | Expression | None, ctx: Context, *, unset: bool = False) -> bool:
    """Would ``ctx.uuid`` drop this content: its expression is false as if it had
    no copy (10.5).  The caller must still check numcopies (9.3) and every
    other file using the key.  ``unset`` as in ``wants_get``."""
    dropped = replace(ctx, holders=ctx.holders - {ctx.uuid}, present_holders=ctx.holders)
    decided = _decide(expr, dropped)
    return (not unset) if decided is None else not decided


def is_large(expr: str | Expression | None, path: str, size: int) -> bool:
    """annex.largefiles (11): is this file large (annexed)?  An unset expression
    gives True, the ``git annex add`` default.

    Raises:
        ExpressionError: the expression does not parse or uses a non-file term.
    """
    parsed = parse(expr, largefiles=True) if isinstance(expr, str) else expr
    if parsed is None:
        return True
    return matches(parsed.tree, Context(path=path, size=size))
