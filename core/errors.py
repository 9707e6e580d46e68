"""The error tree of the sync core.

One root, ``CoreError``; one sub-root per subsystem.  The text of every error is
written for the person who sees it; the facts (key, path, line, expected and
got) are attributes as well, so callers need not parse messages.
"""

from __future__ import annotations

from pathlib import Path


class CoreError(Exception):
    """Root of every error the core raises on purpose."""


# --- repository layer ---------------------------------------------------------


class RepoError(CoreError):
    """Something about a repository or its content."""


class NotARepository(RepoError):
    def __init__(self, path: Path | str, why: str = "not a git repository") -> None:
        super().__init__(f"{path}: {why}")
        self.path = Path(path)


class UnsupportedRepository(RepoError):
    """A repository we can read at most, and must not write (spec 13.9)."""

    def __init__(self, path: Path | str, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path = Path(path)
        self.why = why


class BadKey(RepoError):
    """A key string that git-annex would not accept, or that is unsafe as a path."""

    def __init__(self, text: str, why: str) -> None:
        shown = text if len(text) <= 120 else text[:117] + "..."
        super().__init__(f"bad key {shown!r}: {why}")
        self.text = text
        self.why = why


class LogLineError(RepoError):
    """A line of a git-annex branch log we cannot accept where it must be valid."""

    def __init__(self, file: str, lineno: int, line: bytes, why: str) -> None:
        super().__init__(f"{file} line {lineno}: {why}: {line[:80]!r}")
        self.file = file
        self.lineno = lineno
        self.line = line
        self.why = why


class ContentVerifyError(RepoError):
    """Content whose hash or size does not match its key; it was not stored."""

    def __init__(self, key: str, expected: str, got: str) -> None:
        super().__init__(f"content of {key} did not verify: expected {expected}, got {got}")
        self.key = key
        self.expected = expected
        self.got = got


class UnverifiableBackend(RepoError):
    """Content of a key whose hash we cannot compute: refused before any byte moves.

    Keeping it unverified would break "content is never stored unless its hash
    checked out"; fetching it only to throw it away wastes the transfer.
    """

    def __init__(self, key: str, backend: str, known: bool) -> None:
        what = ("no well-kept library computes this git-annex hash" if known
                else "unknown backend")
        super().__init__(f"{key}: cannot verify content of backend {backend} ({what}), "
                         "so it is not transferred; use git-annex for this file")
        self.key = key
        self.backend = backend


class ContentMissing(RepoError):
    def __init__(self, key: str, where: str) -> None:
        super().__init__(f"{key}: content not present in {where}")
        self.key = key
        self.where = where


class TransferBusy(RepoError):
    """Another transfer of the key holds git-annex's transfer lock (any process)."""

    MESSAGE = "transfer already in progress, or unable to take transfer lock"

    def __init__(self, key: str) -> None:
        super().__init__(f"{key}: {self.MESSAGE}")
        self.key = key


class DiskReserveError(RepoError):
    def __init__(self, path: Path, needed: int, free: int, reserve: int) -> None:
        super().__init__(
            f"not enough free space in {path}: need {needed} bytes plus "
            f"annex.diskreserve {reserve}, have {free}"
        )
        self.needed = needed
        self.free = free
        self.reserve = reserve


class DiskFull(RepoError):
    """The disk ran out of space (or quota) while writing there; the write
    was undone, so nothing half-written is left behind."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"no space left on the disk of {path}")
        self.path = path


class DropRefused(RepoError):
    """A drop that would go below numcopies/mincopies or break required content."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"not dropping {key}: {why}")
        self.key = key
        self.why = why


class ExpressionError(RepoError):
    """A preferred-content or largefiles expression we cannot parse."""

    def __init__(self, expression: str, why: str) -> None:
        super().__init__(f"bad expression {expression!r}: {why}")
        self.expression = expression
        self.why = why


class GitLockHeld(RepoError):
    """A git lock file (``index.lock``, ``refs/heads/X.lock`` ...) stayed held.

    The text says what to do, for a person: another git process may still be
    at work; if none is, the file is left over from a crash and may go.
    """

    def __init__(self, lock: str, waited: float, removed_after: float | None = None) -> None:
        where = lock.split("/.git/")[0] if "/.git/" in lock else str(lock).rsplit("/", 1)[0]
        text = (f"{lock} stayed locked for {waited:.1f} s: another git process seems to be "
                f"running in {where}; if none is, remove {lock} and try again")
        if removed_after is not None:
            text += (f" (annexsync removes it by itself once no process has had it open "
                     f"for {removed_after:.0f} s)")
        super().__init__(text)
        self.lock = lock
        self.waited = waited


class MergeConflict(RepoError):
    def __init__(self, paths: list[str]) -> None:
        super().__init__("merge conflict not resolved in: " + ", ".join(paths))
        self.paths = paths


# --- remotes ------------------------------------------------------------------


class RemoteError(CoreError):
    """A remote could not be reached or refused a request."""


class RemoteUnavailable(RemoteError):
    """Could not reach the remote (as opposed to: the remote said no)."""


class RemoteRefused(RemoteError):
    """The remote answered, and the answer was no."""


class PartialRemoval(RemoteRefused):
    """A cluster removal that failed, though some nodes did remove (FAILURE-PLUS).

    ``removed`` names them: the caller logs them absent all the same
    (clusters.md 4.3).
    """

    def __init__(self, text: str, removed: tuple[str, ...]) -> None:
        super().__init__(text)
        self.removed = removed


# --- wire protocols -----------------------------------------------------------


class ProtocolError(CoreError):
    """A protocol rule was broken; raised only by sans-IO protocol code.

    ``error_hint`` is the text of the ``ERROR`` line to send to the peer before
    closing (P2P spec section 8), or None when nothing should be sent (an
    overlong line, say).  After a protocol error the machine that raised it is
    terminal.
    """

    def __init__(self, why: str, error_hint: str | None = None) -> None:
        super().__init__(why)
        self.why = why
        self.error_hint = error_hint

    @property
    def error_line(self) -> bytes | None:
        """The ``ERROR`` line to send, LF included, or None."""
        if self.error_hint is None:
            return None
        return b"ERROR " + self.error_hint.encode("utf-8", "surrogateescape") + b"\n"


class LocalProtocolError(ProtocolError):
    """We tried to break the protocol: a bug in the caller."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol (or sent bytes we cannot parse)."""


# --- running git --------------------------------------------------------------


class GitCommandError(RepoError):
    """The git binary failed, or did not finish in time (``returncode`` None)."""

    def __init__(self, args: list[str], returncode: int | None, stderr: str) -> None:
        what = "timed out" if returncode is None else f"failed ({returncode})"
        detail = stderr.strip().splitlines()[-3:] if stderr.strip() else []
        super().__init__(f"git {' '.join(args)} {what}" + "".join("\n  " + d for d in detail))
        self.command = args
        self.returncode = returncode
        self.stderr = stderr


class GitMissing(GitCommandError):
    """No ``git`` program on PATH: merging, fetching and pushing need it."""

    def __init__(self, args: list[str]) -> None:
        RepoError.__init__(self, "git is not installed (no git program on PATH): install git "
                                 "(on Debian or Ubuntu: sudo apt install git), then try again")
        self.command = args
        self.returncode = None
        self.stderr = ""


class MergeFailed(GitCommandError):
    """git could not merge a branch and changed nothing (say, merge.ff=only,
    or local changes in the way).  Shown to the user until a later merge
    from the same place succeeds."""

    def __init__(self, ref: str, args: list[str], returncode: int | None, stderr: str) -> None:
        super().__init__(args, returncode, stderr)
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        said = [line for line in lines if line.startswith(("fatal:", "error:"))]
        reason = (said or lines or [f"git merge failed ({returncode})"])[0]
        self.ref = ref
        self.reason = reason.removeprefix("fatal: ").removeprefix("error: ")
        self.args = (f"could not merge {ref}: {self.reason}",)


# --- encrypted sessions (core/session) ----------------------------------------


WRONG_DEVICE_REASON = "the session was meant for another device"


def refusal_text(who: str, reason: str, *, by_peer: bool) -> str:
    """How a refused session reads, for the log, the status and the CLI."""
    if by_peer and reason == WRONG_DEVICE_REASON:  # a stale address: not a trust problem
        return f"{who}'s address answered as another device (its address may have changed)"
    if by_peer:
        return f"{who} no longer trusts this device: {reason}"
    return f"refused a session from {who}: {reason}"


class SessionRefused(RemoteError):
    """A session handshake failed: the other device could not prove the
    pairing (unknown device, wrong static key, wrong pair secret), or it said
    we could not.  A security event: logged on ``annexsync.security`` and
    shown in the status; it names the device, never a secret.

    Attributes:
        peer_device_id: the device at the other end (as it named itself).
        reason: why, in words for a person.
        by_peer: True when the other device refused us.
    """

    def __init__(self, peer_device_id: str, reason: str, *, by_peer: bool = False,
                 name: str | None = None) -> None:  # fmt: skip
        who = name or f"device {peer_device_id}"  # its name, where the caller knows it
        super().__init__(refusal_text(who, reason, by_peer=by_peer))
        self.peer_device_id = peer_device_id
        self.reason = reason
        self.by_peer = by_peer
