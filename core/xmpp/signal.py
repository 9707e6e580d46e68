"""The three scheduling IQs of docs/xmpp-protocol.md as values: pure, no slixmpp.

Spec: xmpp-sync.md C.2 (control IQs), C.5 (scheduling); docs/xmpp-protocol.md
("Scheduling: advertise, request, push-open").

Rules kept here
---------------
* A control message is a ``<sync xmlns="urn:x-annexsync:sync:1">`` element in
  an IQ ``set`` to one full JID.  Its attributes: ``action`` (``advertise``,
  ``request``, ``push-open``), ``dev`` (the sender's device id, a canonical
  UUID), ``repo`` (the sender's repository uuid, canonical UUID), and per
  action ``refs`` + ``nonce`` (advertise) or ``sid`` (push-open).
* ``refs`` is ``name=sha`` tokens separated by single spaces: the current
  branch and ``git-annex``; names are git ref names (no space), a sha is 40
  or 64 lower-case hex digits; at most ``MAX_REFS``.
* An answer is an IQ ``result`` whose ``sync`` element repeats the action and
  carries ``answer``: ``want`` / ``uptodate`` (advertise), ``queued``
  (request), ``accepted`` (push-open).  A busy receiver answers push-open with
  the IQ error ``resource-constraint`` whose ``sync`` element carries
  ``retry-after`` (whole seconds).
* Everything is parsed strictly: any other value is a ``RemoteProtocolError``,
  which the adapter answers with ``bad-request`` (nothing else happens).
* The fields travel in clear (the encrypted envelope of C.4 is not built):
  the XMPP server sees device ids, repository uuids and ref shas.  Who may act
  is decided from the pairing records (``core.devices.pushes``), not from
  anything a message claims alone.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from core.errors import RemoteProtocolError

ADVERTISE = "advertise"
REQUEST = "request"
PUSH_OPEN = "push-open"
ACTIONS = (ADVERTISE, REQUEST, PUSH_OPEN)
MAX_REFS = 8
MAX_REF_NAME = 200
ATTRIBUTES = ("action", "dev", "repo", "refs", "nonce", "sid", "answer", "retry-after")

_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
_HEX128 = re.compile(r"[0-9a-f]{32}")
_REF_NAME = re.compile(r"[^\s\x00-\x1f\x7f=~^:?*\[\\]+")

Answer = Literal["want", "uptodate", "queued", "accepted"]
ANSWERS: dict[str, tuple[str, ...]] = {
    ADVERTISE: ("want", "uptodate"),
    REQUEST: ("queued",),
    PUSH_OPEN: ("accepted",),
}


def _uuid(value: str, what: str) -> str:
    try:
        canonical = str(uuid.UUID(value))
    except ValueError:
        raise RemoteProtocolError(f"bad {what} {value[:40]!r}") from None
    if canonical != value:
        raise RemoteProtocolError(f"{what} {value[:40]!r} is not a canonical uuid")
    return value


@dataclass(frozen=True)
class Control:
    """One received or sent control message; ``refs`` for advertise, ``sid`` for push-open."""

    action: str
    dev: str
    repo: str
    refs: tuple[tuple[str, str], ...] = ()
    nonce: str = ""
    sid: str = ""

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise RemoteProtocolError(f"unknown action {self.action[:40]!r}")
        _uuid(self.dev, "device id")
        _uuid(self.repo, "repository uuid")
        if self.action == ADVERTISE:
            if not _HEX128.fullmatch(self.nonce):
                raise RemoteProtocolError("advertise needs a 128-bit hex nonce")
            if not self.refs or len(self.refs) > MAX_REFS:
                raise RemoteProtocolError(f"advertise needs 1 to {MAX_REFS} refs")
            for name, sha in self.refs:
                if len(name) > MAX_REF_NAME or not _REF_NAME.fullmatch(name) or not _SHA.fullmatch(sha):
                    raise RemoteProtocolError(f"bad ref {name[:40]!r}")
        if self.action == PUSH_OPEN and not _HEX128.fullmatch(self.sid):
            raise RemoteProtocolError("push-open needs a 128-bit hex session id")

    @property
    def shas(self) -> tuple[str, ...]:
        return tuple(sha for _, sha in self.refs)


def format_control(c: Control) -> dict[str, str]:
    """The ``sync`` element's attributes for ``c``."""
    out = {"action": c.action, "dev": c.dev, "repo": c.repo}
    if c.action == ADVERTISE:
        out["refs"] = " ".join(f"{n}={s}" for n, s in c.refs)
        out["nonce"] = c.nonce
    if c.action == PUSH_OPEN:
        out["sid"] = c.sid
    return out


def _parse_refs(text: str) -> tuple[tuple[str, str], ...]:
    refs = []
    for token in text.split(" ") if text else ():
        name, eq, sha = token.rpartition("=")
        if not eq:
            raise RemoteProtocolError(f"bad ref token {token[:40]!r}")
        refs.append((name, sha))
    return tuple(refs)


def parse_control(attrs: Mapping[str, str]) -> Control:
    """A received ``sync`` element's attributes as a ``Control``.

    Raises:
        RemoteProtocolError: unknown action, a missing or malformed field.
    """
    action = attrs.get("action", "")
    return Control(
        action, attrs.get("dev", ""), attrs.get("repo", ""),
        refs=_parse_refs(attrs.get("refs", "")) if action == ADVERTISE else (),
        nonce=attrs.get("nonce", "") if action == ADVERTISE else "",
        sid=attrs.get("sid", "") if action == PUSH_OPEN else "",
    )  # fmt: skip


def format_answer(action: str, answer: str) -> dict[str, str]:
    if answer not in ANSWERS.get(action, ()):
        raise ValueError(f"{answer!r} does not answer {action!r}")
    return {"action": action, "answer": answer}


def parse_answer(action: str, attrs: Mapping[str, str]) -> str:
    """The ``answer`` of a result to our ``action``.

    Raises:
        RemoteProtocolError: another action, or an answer that action does not have.
    """
    answer = attrs.get("answer", "")
    if attrs.get("action") != action or answer not in ANSWERS[action]:
        raise RemoteProtocolError(f"bad answer {answer[:20]!r} to {action}")
    return answer


def parse_retry_after(text: str, default: float) -> float:
    """``retry-after`` of a busy answer: whole seconds, 1 to 3600; else ``default``."""
    return float(text) if text.isdigit() and 1 <= int(text) <= 3600 else default
