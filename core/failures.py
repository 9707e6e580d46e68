"""Why a remote (or any peer) failed, in a few short words.

Issue 18: the person saw git's multi-line text (or "refused our pushes" for
a DNS failure) where a short reason belongs.  ``classify`` turns the raw text
of a failure -- git's and ssh's stderr, curl's words as git relays them,
git-annex-shell's -- into one ``Failure``: a ``Reason`` (a few fixed
words, the same in ``annexsync status``, its JSON and the GUI) and the raw
text, kept for a details view.  Pure: no IO, tested on texts real git
produced against bad URLs on loopback (tests/unit/test_failures.py).

Each reason also says whether waiting may cure it (``transient``): a closed
port, a timeout, a route that is gone, a connection cut mid-way -- the
daemon then *waits* for the peer and re-probes it.  The rest (a name that
does not resolve, a refused login, a URL that is not a repository, a push
refused) needs the person, so health says *error* (``core.status``).

The table is ordered: the first rule whose hint appears wins.  git's generic
tail ("Could not read from remote repository ... correct access rights")
follows every ssh failure, so it matches nothing on its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

logger = logging.getLogger(__name__)

SHORT = 80  # a reason never grows a menu: unknown texts are cut to one short line


class Reason(Enum):
    """A failure's cause, as words shown to the person."""

    TIMED_OUT = "timed out"
    HOST_NOT_FOUND = "host not found"
    REFUSED = "connection refused"
    NETWORK = "network unreachable"
    AUTH = "authentication failed"
    NOT_ANNEX = "not a git-annex repository"
    NOT_REPOSITORY = "not a git repository"
    FOLDER_MISSING = "folder not found"
    REJECTED = "refused our changes"
    CONNECTION_LOST = "connection lost"
    OFFLINE = "device offline"  # a paired device not seen on XMPP (core.devices.remote)
    OTHER = "failed"


TRANSIENT = frozenset({Reason.TIMED_OUT, Reason.REFUSED, Reason.NETWORK,
                       Reason.CONNECTION_LOST, Reason.FOLDER_MISSING, Reason.OFFLINE})

_RULES: tuple[tuple[Reason, tuple[str, ...]], ...] = (
    (Reason.OFFLINE, ("is offline: not seen on xmpp", "went offline")),
    (Reason.HOST_NOT_FOUND, ("could not resolve", "name or service not known",
                             "temporary failure in name resolution", "nodename nor servname",
                             "no address associated with hostname", "unknown host")),
    (Reason.REFUSED, ("connection refused", "couldn't connect to server")),
    (Reason.NETWORK, ("network is unreachable", "no route to host", "host is down")),
    (Reason.TIMED_OUT, ("timed out", "timeout")),
    (Reason.AUTH, ("permission denied (", "authentication failed", "could not read username",
                   "could not read password", "returned error: 401", "returned error: 403",
                   "host key verification failed", "access denied")),
    (Reason.NOT_ANNEX, ("not a git-annex", "does not have git-annex installed",
                        "annex.uuid configuration")),
    (Reason.FOLDER_MISSING, ("folder not found",)),
    (Reason.NOT_REPOSITORY, ("does not appear to be a git repository", "not a git repository",
                             "' not found", "returned error: 404", "repository not found")),
    (Reason.REJECTED, ("[rejected]", "[remote rejected]", "refused our pushes",
                       "refused the push of", "non-fast-forward", "could not push to")),
    (Reason.CONNECTION_LOST, ("connection closed", "closed the connection", "connection reset",
                              "early eof", "hung up unexpectedly", "unexpected disconnect",
                              "broken pipe")),
)


@dataclass(frozen=True)
class Failure:
    reason: Reason
    detail: str  # the raw text, for a details view

    @property
    def transient(self) -> bool:
        """Waiting may cure it (the peer is waited for, not reported as an error)."""
        return self.reason in TRANSIENT

    @property
    def words(self) -> str:
        """The short reason shown everywhere: one line, at most ``SHORT`` characters."""
        if self.reason is not Reason.OTHER:
            return str(self.reason.value)
        return one_line(_first_meaningful(self.detail) or self.reason.value)


def classify(text: str) -> Failure:
    """The reason behind a failure's raw ``text`` (first rule of the table that matches)."""
    low = text.lower()
    for reason, hints in _RULES:
        if any(h in low for h in hints):
            return Failure(reason, text)
    return Failure(Reason.OTHER, text)


def one_line(text: str, limit: int = SHORT) -> str:
    """``text`` on one line, cut with an ellipsis past ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


_GENERIC = ("could not read from remote repository", "please make sure you have",
            "and the repository exists")


def _first_meaningful(text: str) -> str:
    for line in text.splitlines():
        s = line.strip()
        if s.lower().startswith("fatal: "):
            s = s[7:]
        if s and not any(g in s.lower() for g in _GENERIC):
            return s
    return ""


def error_text(error: BaseException) -> str:
    """The raw text of an exception for classification and details: git's whole stderr,
    which ``GitCommandError``'s message shortens to its last lines."""
    stderr = getattr(error, "stderr", None)
    if isinstance(stderr, str) and stderr.strip():
        first = str(error).splitlines()[0] if str(error) else ""
        return f"{first}\n{stderr.strip()}"
    return str(error)
