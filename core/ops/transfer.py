"""get, copy and drop: moving content between this repository and remotes.

Spec: repository-format.md 5.5 (location logs after a transfer), 9 (when a
drop is safe).

Content that arrives is always verified (``Incoming``) before it is kept,
and kept only once its location line is in the journal
(``AnnexRepo.keep_received``: a full disk gives the content up again, the
remote still has it).  A file that fails (a full disk, an unreachable
remote) is reported in its outcome; the other files go on.  Content is
written by one transfer at a time: ``Incoming`` holds git-annex's download
transfer lock, ``copy_key_to`` its upload lock (``repo/transfers.py``); a busy
lock fails the transfer with ``TransferBusy`` as git-annex fails it.
``get`` and ``copy`` take ``jobs`` (``-J``): the keys are spread over that
many workers, each with its own sessions (``core.ops.jobs``).
Drops follow git-annex's rules: the repository losing its copy needs enough
*verified* copies elsewhere — trusted ones on the log's word, semitrusted ones
only while this process holds a lock on them (or, for remotes that cannot
lock, after a fresh presence check) — and never removes content that is
required content.  The locks are held until the content is gone.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from core.errors import (
    CoreError,
    DropRefused,
    ExpressionError,
    PartialRemoval,
    RemoteError,
)
from core.ops.files import AnnexedFile, annexed_files, depopulate_unlocked, populate_unlocked
from core.ops.jobs import SharedProgress, run_jobs
from core.ops.receiving import Receivers, receive_key
from core.progress import NullProgress, Progress
from core.remotes import (
    Remote,
    RemoteInfo,
    RemoteKind,
    close_remotes,
    find_remote,
    list_remotes,
    open_remote,
)
from core.repo import transfers
from core.repo.clusters import is_cluster_uuid
from core.repo.key import Key
from core.repo.preferred import wants_get
from core.repo.repository import AnnexRepo, trust_levels

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    path: str
    key: Key
    ok: bool
    note: str = ""


# --- copying ------------------------------------------------------------------


def _sources(repo: AnnexRepo, key: Key, only: str | None) -> list[Remote]:
    """Remotes that should have ``key``, cheapest first."""
    holders = repo.state.locations(key)
    out: list[Remote] = []
    for info in list_remotes(repo):
        if only is not None and only not in (info.name, info.uuid):
            continue
        if only is None and (info.uuid not in holders or info.ignore):
            continue
        with contextlib.suppress(RemoteError):
            out.append(open_remote(repo, info))
    return out


def get_key(repo: AnnexRepo, key: Key, progress: Progress, source: str | None = None) -> str:
    """Fetch ``key`` into this repository. Returns a note for the user.

    Raises:
        TransferBusy: another transfer is bringing ``key`` here (whatever its
            source, so no other source is tried).
        DiskReserveError, DiskFull: no room for it here (no other source tried).
        RemoteError: no source could provide it.
    """
    if repo.objects.has(key):
        return "already present"
    repo.require_writable()
    name, inc = receive_key(key, _sources(repo, key, source), repo.objects.incoming,
                            lambda n: progress.advance(0, n))
    with inc:  # still under the transfer lock, as every receiver
        repo.keep_received(key)
    return f"from {name}"


def copy_key_to(repo: AnnexRepo, key: Key, remote: Remote, progress: Progress) -> str:
    if remote.check_present(key):
        repo.state.set_location(key, _uuid(remote), True)
        return "already there"
    path = repo.objects.find(key)
    if path is None:
        raise RemoteError(f"{key}: content not present here")
    with repo.objects.lock(key), transfers.upload(repo.gitdir, _uuid(remote), key):
        plus = remote.store(key, path, lambda n: progress.advance(0, n))
    _log_fanout(repo, key, remote, plus, True)
    return f"to {remote.info.name}"


def _log_fanout(repo: AnnexRepo, key: Key, remote: Remote, also: Iterable[str],
                present: bool) -> None:  # fmt: skip
    """Log the remote and every other repository its answer named (clusters.md 4.3).

    For a cluster the remote's own line is a no-op (``set_location``): its
    nodes, named in the -PLUS list, are what the log records.
    """
    uuid = _uuid(remote)
    repo.state.set_location(key, uuid, present)
    for other in also:
        if other != uuid:
            repo.state.set_location(key, other, present)


def _uuid(remote: Remote) -> str:
    if remote.info.uuid is None:
        raise RemoteError(f"{remote.info.name}: unknown repository uuid")
    return remote.info.uuid


# --- dropping -----------------------------------------------------------------


@dataclass
class _Verified:
    uuids: set[str]
    strong: set[str]  # trusted or locked: counts for mincopies


def _verify_copies(
    repo: AnnexRepo,
    key: Key,
    exclude: str,
    stack: contextlib.ExitStack,
) -> _Verified:
    """Copies of ``key`` outside ``exclude`` we can vouch for (spec 9.2).

    Locks taken are held in ``stack`` until the caller's drop is done.
    """
    trust = trust_levels(repo)
    found = _Verified(set(), set())
    candidates = {u for u in repo.state.locations(key) - _losing(repo, exclude)
                  if not is_cluster_uuid(u)}  # fmt: skip
    for uuid in sorted(candidates):
        level = trust.get(uuid, "semitrusted")
        if level in ("untrusted", "dead"):
            continue
        if level == "trusted":
            found.uuids.add(uuid)
            found.strong.add(uuid)
    if repo.uuid != exclude and repo.uuid not in found.uuids and repo.objects.has(key):
        with contextlib.suppress(CoreError):
            stack.enter_context(repo.objects.lock(key))
            found.uuids.add(repo.uuid)
            found.strong.add(repo.uuid)
    for info in list_remotes(repo):
        if info.uuid is None or info.uuid in found.uuids or info.ignore:
            continue
        if info.uuid not in candidates or trust.get(info.uuid) in ("untrusted", "dead"):
            continue
        try:
            remote = open_remote(repo, info)
            stack.enter_context(remote.lock_content(key))
        except CoreError as e:
            logger.info("cannot verify %s on %s: %s", key, info.name, e)
            continue
        found.uuids.add(info.uuid)
        found.strong.add(info.uuid)
    return found


def _losing(repo: AnnexRepo, uuid: str) -> frozenset[str]:
    """The repositories a drop from ``uuid`` takes the content from: a cluster
    drop removes from every node, so none of them proves a copy (clusters.md 4.5)."""
    return frozenset({uuid}) | repo.state.clusters().nodes.get(uuid, frozenset())


def _check_required(repo: AnnexRepo, key: Key, files: list[AnnexedFile], uuid: str) -> None:
    """Required content is binding: never drop what ``uuid`` requires (spec 9.3)."""
    required = repo.state.required_content().get(uuid)
    if not required:
        return
    paths: list[str | None] = [f.path for f in files] or [None]
    for path in paths:
        try:
            wanted = wants_get(required, repo.match_context(key, path, uuid))
        except ExpressionError:
            raise DropRefused(str(key), "its required content expression cannot be parsed") from None
        if wanted:
            raise DropRefused(str(key), "it is required content of that repository")


def _check_drop(repo: AnnexRepo, key: Key, files: list[AnnexedFile], uuid: str,
                stack: contextlib.ExitStack) -> None:
    numcopies = repo.state.numcopies()
    mincopies = repo.state.mincopies()
    _check_required(repo, key, files, uuid)
    found = _verify_copies(repo, key, uuid, stack)
    need = max(numcopies, mincopies) if uuid == repo.uuid else numcopies
    if len(found.uuids) < need:
        raise DropRefused(
            str(key),
            f"could only verify the existence of {len(found.uuids)} out of {need} necessary copies",
        )
    if len(found.strong) < mincopies:
        raise DropRefused(str(key), f"fewer than mincopies ({mincopies}) locked or trusted copies")


def drop_key(repo: AnnexRepo, key: Key, files: list[AnnexedFile], remote_name: str | None) -> str:
    """Drop ``key`` here, or from a remote, when it is safe (spec 9.3)."""
    with contextlib.ExitStack() as stack:
        if remote_name is None:
            if not repo.objects.has(key):
                return "not present"
            repo.require_writable()
            _check_drop(repo, key, files, repo.uuid, stack)
            repo.remove_content(key)
            depopulate_unlocked(repo, files)
            return "dropped"
        remote = open_remote(repo, find_remote(repo, remote_name))
        if not remote.check_present(key):
            repo.state.set_location(key, _uuid(remote), False)
            return "not present there"
        _check_drop(repo, key, files, _uuid(remote), stack)
        try:
            plus = remote.remove(key)
        except PartialRemoval as e:  # FAILURE-PLUS: failed, but these did remove
            for other in e.removed:
                repo.state.set_location(key, other, False)
            raise
        _log_fanout(repo, key, remote, plus, False)
        return f"dropped from {remote.info.name}"


# --- commands over files ------------------------------------------------------


Act = Callable[[AnnexRepo, AnnexedFile, Progress], str]


def _run(repo: AnnexRepo, what: str, files: list[AnnexedFile], progress: Progress,
         act: Act, jobs: int = 1,
         ahead: contextlib.AbstractContextManager[object] | None = None) -> list[Outcome]:  # fmt: skip
    """``act`` on every file, on ``jobs`` workers (``core.ops.jobs``); one outcome per file.

    One item per key: the files sharing a key go to one worker, one after the
    other, so no two workers ever move the same content.  With one job the
    whole run is one journal transaction, as before; with more, each worker's
    log line is a transaction of its own (the journal lock, held by one
    thread for the whole run, would shut the others out).  ``ahead`` (what a
    one-job ``act`` hands work to: ``Receivers``) is closed inside the
    transaction, before the remotes it uses.
    """
    total = sum(f.key.size or 0 for f in files)
    progress.start(what, len(files), total)
    per_key: dict[Key, list[int]] = {}
    for i, f in enumerate(files):
        per_key.setdefault(f.key, []).append(i)

    def work(r: AnnexRepo, indexes: list[int], p: Progress) -> list[tuple[int, Outcome]]:
        out = []
        for i in indexes:
            f = files[i]
            try:
                out.append((i, Outcome(f.path, f.key, True, act(r, f, p))))
            except (CoreError, OSError) as e:
                out.append((i, Outcome(f.path, f.key, False, _reason(e))))
            p.advance(1, 0, f.path)
        return out

    try:
        if jobs == 1:
            with repo.branch.transaction(), ahead or contextlib.nullcontext():
                done = run_jobs(repo, list(per_key.values()), work, 1, progress)
        else:
            list_remotes(repo)  # UUIDs not yet known are learned here once, not per worker
            done = run_jobs(repo, list(per_key.values()), work, jobs, progress)
    finally:
        try:
            repo.branch.commit(pack=True)  # a command's one commit: maybe many lines
        except CoreError as e:  # the journal keeps every line for the next commit
            logger.warning("could not commit the git-annex branch: %s", e)
        close_remotes(repo)
        progress.finish()
    outcomes = dict(pair for group in done for pair in group)
    return [outcomes[i] for i in range(len(files))]


def _reason(e: CoreError | OSError) -> str:
    """An error in words: an OSError by what failed, without errno noise."""
    if isinstance(e, OSError) and e.strerror:
        where = f" ({e.filename})" if e.filename else ""
        return f"{e.strerror}{where}"
    return str(e)


def _by_key(files: Iterable[AnnexedFile]) -> dict[Key, list[AnnexedFile]]:
    """Annexed files by key (files sharing content)."""
    by_key: dict[Key, list[AnnexedFile]] = {}
    for f in files:
        by_key.setdefault(f.key, []).append(f)
    return by_key


def get(repo: AnnexRepo, paths: Iterable[str] = (), source: str | None = None,
        progress: Progress | None = None, jobs: int = 1) -> list[Outcome]:
    """Get the content of ``paths`` on ``jobs`` workers (``-J``).  With one job
    (the default), files from path remotes are still received a few at once,
    ahead of the file being handled (``core.ops.receiving``)."""
    p: Progress = progress or NullProgress()
    files = list(annexed_files(repo, paths))
    by_key = _by_key(annexed_files(repo))
    receivers = None
    if jobs == 1:
        p = SharedProgress(p)
        receivers = Receivers(repo, (f.key for f in files), p,
                              sources=lambda key: _sources(repo, key, source),
                              get_key=lambda key: get_key(repo, key, p, source))

    def act(r: AnnexRepo, f: AnnexedFile, p: Progress) -> str:
        note = receivers.get_key(f.key) if receivers is not None else get_key(r, f.key, p, source)
        populate_unlocked(r, by_key[f.key])  # every file using the key, as git-annex
        return note

    return _run(repo, "get", files, p, act, jobs, receivers)


def copy(repo: AnnexRepo, paths: Iterable[str] = (), to: str | None = None,
         source: str | None = None, progress: Progress | None = None,
         jobs: int = 1) -> list[Outcome]:  # fmt: skip
    if (to is None) == (source is None):
        raise CoreError("copy needs exactly one of --to or --from")
    if source is not None:
        return get(repo, paths, source, progress, jobs)
    p = progress or NullProgress()
    assert to is not None
    open_remote(repo, find_remote(repo, to))  # an unknown or unreachable remote fails here, once
    files = [f for f in annexed_files(repo, paths) if repo.objects.has(f.key)]

    def act(r: AnnexRepo, f: AnnexedFile, p: Progress) -> str:
        return copy_key_to(r, f.key, open_remote(r, find_remote(r, to)), p)

    return _run(repo, "copy", files, p, act, jobs)


def drop(repo: AnnexRepo, paths: Iterable[str] = (), source: str | None = None,
         progress: Progress | None = None) -> list[Outcome]:
    p = progress or NullProgress()
    files = list(annexed_files(repo, paths))
    by_key = _by_key(annexed_files(repo))
    return _run(repo, "drop", files, p, lambda r, f, _p: drop_key(r, f.key, by_key[f.key], source))


# --- content sync (git annex sync --content, spec 8.2 step 5) -------------------


def _wanted(repo: AnnexRepo, key: Key, path: str, uuid: str, expr: str | None) -> bool:
    """Preferred content of ``uuid``; with none configured, sync --content wants all."""
    if not expr:
        return True
    try:
        return wants_get(expr, repo.match_context(key, path, uuid))
    except ExpressionError:
        return repo.objects.has(key) if uuid == repo.uuid else False


def sync_content(repo: AnnexRepo, remotes: Sequence[RemoteInfo], progress: Progress) -> None:
    """Get what this repository wants, send each remote what it wants.

    Only remotes that can move content take part; the others are skipped with
    a log line.  Drops of unwanted content are left to ``drop`` for now.
    """
    preferred = repo.state.preferred_content()
    usable: list[Remote] = []
    for info in remotes:
        if info.ignore or info.kind in (RemoteKind.GIT, RemoteKind.XMPP):
            continue  # annex-ignore, or no annex there: git only
        try:
            usable.append(open_remote(repo, info))
        except CoreError as e:
            logger.warning("content sync skips %s: %s", info.name, e)
    files = list(annexed_files(repo))
    by_key = _by_key(files)
    progress.start("sync content", len(files), None)
    with repo.branch.transaction():
        for f in files:
            if not repo.objects.has(f.key) and _wanted(repo, f.key, f.path, repo.uuid,
                                                     preferred.get(repo.uuid)):
                try:
                    get_key(repo, f.key, progress)
                    populate_unlocked(repo, by_key[f.key])
                except CoreError as e:  # e.g. a backend we cannot verify: said per file
                    logger.warning("%s: could not get: %s", f.path, e)
            if repo.objects.has(f.key):
                for remote in usable:
                    uuid = remote.info.uuid or ""
                    if uuid in repo.state.locations(f.key) or remote.info.readonly:
                        continue
                    if _wanted(repo, f.key, f.path, uuid, preferred.get(uuid)):
                        try:
                            copy_key_to(repo, f.key, remote, progress)
                        except CoreError as e:
                            logger.warning("%s: could not send to %s: %s", f.path, remote.info.name, e)
            progress.advance(1, 0, f.path)
    repo.branch.commit()
    close_remotes(repo)
    progress.finish()
