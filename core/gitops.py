"""Every call of the git binary, and the work-tree commit built with dulwich.

Spec: repository-format.md 3.3/3.5 (filters and hooks must never run), 8.2
(fetch, merge, push as ``git annex sync`` does them), 8.4 (merge options).

Theory of operation
-------------------
git is the natural tool for fetching, pushing and three-way merging a work
tree, so those run the binary; nothing else in the core spawns git.  Each
invocation gets ``-c core.hooksPath=<empty dir>`` and empties the three
``filter.annex.*`` settings, so neither git-annex's hooks and filter nor ours
run (3.5).  With the filter off, git sees an unlocked file by its *pointer*
blob only: a checkout writes the pointer text, and a work-tree file holding
the content looks modified unless its index stat matches.  Hence two rules
the callers follow:

* after any index write that stats a content-holding unlocked file, call
  ``settle_index`` so the entry is not "racily clean" (git would compare the
  content with the pointer blob and call it modified, then smudge the entry);
* after a merge, the caller replaces pointer text with content (sync.py).

Commits of the work tree are built as objects (tree from the index, parents
HEAD plus any merge heads) and HEAD's branch is moved with compare-and-swap:
no pre-commit, commit-msg or post-commit hook, no auto-gc.

Identity: neither kind of commit may fail because nobody told git who we are
(``core.repo.identity``).  Commits built as objects take
``commit_identity``; ``git merge`` checks the identity before it changes
anything, so a merge that fails is retried once after ``ensure_identity``
did what git-annex's ``ensureCommit`` does.

Every subprocess has a timeout; ``GIT_TERMINAL_PROMPT=0`` and a closed stdin
keep a credential prompt from hanging a sync.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dulwich.index import IndexEntry
from dulwich.objects import Commit, ObjectID
from dulwich.refs import Ref
from dulwich.repo import Repo

from core import gitlock
from core.errors import GitCommandError, GitMissing, MergeFailed
from core.repo.identity import commit_identity, login_name

logger = logging.getLogger(__name__)

LOCAL_TIMEOUT = 300.0  # merges and local plumbing
NETWORK_TIMEOUT = 1800.0  # fetch and push: large first transfers take a while
MERGE_FILES = ("MERGE_HEAD", "MERGE_MSG", "MERGE_MODE", "AUTO_MERGE")

_EMPTY_HOOKS = Path(tempfile.gettempdir()) / f"annexsync-no-hooks-{os.getuid()}"


def _safety_options() -> list[str]:
    _EMPTY_HOOKS.mkdir(mode=0o700, exist_ok=True)
    return [
        "-c", f"core.hooksPath={_EMPTY_HOOKS}",
        "-c", "filter.annex.process=",
        "-c", "filter.annex.smudge=",
        "-c", "filter.annex.clean=",
        # p2p-annex:: remotes go through annexsync's remote helper (core.p2p.tunnel),
        # which speaks to our listener directly and to other networks as git-annex does
        "-c", "url.annexsync::.insteadOf=p2p-annex::",
    ]


def run_git(
    cwd: Path,
    args: Sequence[str],
    timeout: float = LOCAL_TIMEOUT,
    check: bool = True,
    stdin: bytes = b"",
) -> subprocess.CompletedProcess[bytes]:
    """Run ``git <args>`` in ``cwd`` with hooks and the annex filter disabled.

    ``stdin`` is written to git's standard input, which is then closed.
    A git that found one of its lock files held is run again once the lock
    is free (``core.gitlock``).

    Raises:
        GitCommandError: non-zero exit (with ``check``) or timeout.
        GitLockHeld: a lock file stayed held.
    """
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    cmd = ["git", *_safety_options(), *args]
    waiter = gitlock.Waiter()
    while True:
        logger.debug("running git %s in %s", " ".join(args), cwd)
        try:
            proc = subprocess.run(
                cmd, cwd=cwd, env=env, input=stdin, capture_output=True, timeout=timeout
            )
        except subprocess.TimeoutExpired as e:
            raise GitCommandError(list(args), None, _text(e.stderr or b"")) from e
        except FileNotFoundError as e:  # no git at all, or cwd is gone (that stays itself)
            if shutil.which("git") is None:
                raise GitMissing(list(args)) from e
            raise
        lock = gitlock.lock_in_git_message(_text(proc.stderr)) if proc.returncode else None
        if lock is None or not _inside(lock, cwd):
            break  # a remote's lock (relayed by push) is the remote's business
        waiter.wait(lock)  # git takes its locks before it changes anything
    if check and proc.returncode != 0:
        raise GitCommandError(list(args), proc.returncode, _text(proc.stderr))
    return proc


def _inside(path: Path, top: Path) -> bool:
    return os.path.realpath(path).startswith(os.path.realpath(top) + os.sep)


def _text(data: bytes | str) -> str:
    return data if isinstance(data, str) else data.decode("utf-8", "replace")


# --- attributes ---------------------------------------------------------------


def check_attr(
    top: Path, paths: Sequence[bytes], names: Sequence[str]
) -> dict[bytes, dict[str, str]]:
    """The gitattributes ``names`` of each of ``paths`` (repository-relative bytes).

    Read with ``git check-attr -z --stdin`` as git-annex reads them
    (Annex/CheckAttr.hs): git resolves ``.gitattributes`` files, macros and
    ``info/attributes``.  An attribute that is unspecified is left out.

    Raises:
        GitCommandError: git could not answer.
    """
    if not paths:
        return {}
    out = run_git(
        top, ["check-attr", "-z", "--stdin", *names], stdin=b"".join(p + b"\0" for p in paths)
    ).stdout
    fields = out.split(b"\0")
    found: dict[bytes, dict[str, str]] = {p: {} for p in paths}
    for i in range(0, len(fields) - 2, 3):
        path, name, value = fields[i : i + 3]
        if value != b"unspecified":
            found.setdefault(path, {})[name.decode()] = value.decode("utf-8", "surrogateescape")
    return found


# --- network ------------------------------------------------------------------


def fetch(top: Path, remote: str, refspecs: Sequence[str] = ()) -> None:
    """``git fetch <remote> [refspecs]`` (8.2 step 3).

    Raises:
        GitCommandError: the remote could not be fetched.
    """
    run_git(top, ["fetch", "--quiet", remote, *refspecs], NETWORK_TIMEOUT)


@dataclass(frozen=True)
class PushedRef:
    """One line of ``git push --porcelain``: destination ref and outcome."""

    ref: str
    ok: bool
    summary: str


def parse_push_porcelain(out: str) -> list[PushedRef]:
    """``<flag>\\t<src>:<dst>\\t<summary>`` lines; flag ``!`` means rejected."""
    refs = []
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or len(parts[0]) != 1 or ":" not in parts[1]:
            continue
        refs.append(PushedRef(parts[1].rsplit(":", 1)[1], parts[0] != "!", parts[2]))
    return refs


def push(top: Path, remote: str, refspecs: Sequence[str]) -> dict[str, bool]:
    """Push; return destination ref -> accepted.  Never raises for a rejection.

    A refspec the remote never reported on counts as not accepted.

    Raises:
        GitCommandError: git failed and reported no ref at all: the remote was
            never reached (its stderr says why: issue 18, ``core.failures``).
    """
    args = ["push", "--porcelain", remote, *refspecs]
    proc = run_git(top, args, NETWORK_TIMEOUT, check=False)
    result = {_dest(spec): False for spec in refspecs}
    reported = parse_push_porcelain(_text(proc.stdout))
    for pushed in reported:
        result[pushed.ref] = pushed.ok
    if proc.returncode != 0:
        if not reported:
            raise GitCommandError(args, proc.returncode, _text(proc.stderr))
        # The remote was reached and refused some refs.  Its stderr repeats a long hint
        # (a non-bare remote: "refusing to update checked out branch", a dozen lines)
        # on every push: one line per refused ref is what the log keeps (issue 19).
        for pushed in reported:
            if not pushed.ok:
                logger.info("push to %s: %s refused %s", remote, pushed.ref, pushed.summary)
        logger.debug("push to %s: %s", remote, _text(proc.stderr).strip())
    return result


def _dest(refspec: str) -> str:
    dst = refspec.lstrip("+").rsplit(":", 1)[-1]
    return dst if dst.startswith("refs/") else "refs/heads/" + dst


# --- merging the work tree ----------------------------------------------------


def merge(top: Path, ref: str, directory_renames: bool = False) -> list[str]:
    """``git merge --no-edit --allow-unrelated-histories <ref>`` in the work tree.

    Returns the conflicted paths ([] when the merge committed).  Renames
    across directories stay off unless the user configured them (8.4).

    Raises:
        MergeFailed: the merge failed without conflicts (say, local
            changes would be overwritten); nothing was changed.
    """
    opts = [] if directory_renames else ["-c", "merge.directoryRenames=false"]
    args = [*opts, "merge", "--no-edit", "--allow-unrelated-histories", ref]
    proc = run_git(top, args, check=False)
    if proc.returncode != 0 and ensure_identity(top):
        proc = run_git(top, args, check=False)
    if proc.returncode == 0:
        return []
    paths = conflicted_paths(top)
    if not paths:
        raise MergeFailed(ref, args, proc.returncode, _text(proc.stderr) + _text(proc.stdout))
    return paths


def ensure_identity(top: Path) -> bool:
    """git-annex's ``ensureCommit`` (see ``core.repo.identity``): True when it set one.

    Asks git whether it knows who commits; if not, sets whichever of the
    repository's ``user.name``/``user.email`` is missing to the login name,
    so the committing command can run again.  A configured value is never
    replaced.
    """
    idents = ("GIT_AUTHOR_IDENT", "GIT_COMMITTER_IDENT")
    if all(run_git(top, ["var", v], check=False).returncode == 0 for v in idents):
        return False
    changed = False
    for name in ("user.name", "user.email"):
        if not run_git(top, ["config", "--get", name], check=False).stdout.strip():
            run_git(top, ["config", name, login_name()])
            changed = True
    if changed:
        logger.info("%s: git knows no identity; set user.name/user.email to %s as git-annex "
                    "does", top, login_name())
    return changed


def fast_forward(top: Path, commit: bytes, ref: str | None = None) -> None:
    """``git merge --ff-only <commit>``: move HEAD's branch and the work tree forward.

    Used for a merge commit built as an object (sync's settled merges, 8.2);
    git checks the work tree as for any merge.  ``ref`` names what is being
    merged, for the error.

    Raises:
        MergeFailed: ``commit`` does not descend from HEAD, or local
            changes would be overwritten; nothing was changed.
    """
    args = ["merge", "--ff-only", "--no-edit", commit.decode("ascii")]
    proc = run_git(top, args, check=False)
    if proc.returncode != 0:
        raise MergeFailed(ref or args[-1], args, proc.returncode, _text(proc.stderr))


def make_commit(git: Repo, tree: bytes, parents: Sequence[bytes], message: str) -> bytes:
    """Store a commit object (no ref moves) and return its id."""
    commit = _new_commit(git, ObjectID(tree), [ObjectID(p) for p in parents], message)
    gitlock.add_object(git, commit)
    return bytes(commit.id)


def conflicted_paths(top: Path) -> list[str]:
    out = run_git(top, ["diff", "--name-only", "--diff-filter=U", "-z"]).stdout
    return sorted({p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p})


def merge_in_progress(gitdir: Path) -> bool:
    return (gitdir / "MERGE_HEAD").exists()


def merge_heads(gitdir: Path) -> list[bytes]:
    try:
        text = (gitdir / "MERGE_HEAD").read_bytes()
    except FileNotFoundError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip()]


def clear_merge_state(gitdir: Path) -> None:
    for name in MERGE_FILES:
        try:
            (gitdir / name).unlink()
        except FileNotFoundError:
            pass


# --- committing the work tree (8.2 step 1, 8.4) -------------------------------


def commit_index(git: Repo, message: str, parents_extra: Sequence[bytes] = ()) -> bytes | None:
    """Commit the index to HEAD's branch without hooks; None if nothing changed.

    ``parents_extra`` are merge heads; a merge commit is made even when the
    tree did not change.

    The index is read under ``index.lock`` and the lock is held until the
    branch moved, as ``git commit`` does, so nobody stages meanwhile.

    Raises:
        GitCommandError: HEAD is detached, or its branch moved meanwhile.
        GitLockHeld: ``index.lock`` or the branch's lock stayed held.
    """
    with gitlock.locked_index(git) as index:
        tree = index.commit(git.object_store)
        head_ref, head = _head(git)
        if head is not None and not parents_extra and _tree_of(git, head) == tree:
            return None
        parents = [ObjectID(p) for p in [head, *parents_extra] if p is not None]
        commit = _new_commit(git, tree, parents, message)
        gitlock.add_object(git, commit)
        moved = gitlock.retrying(lambda: git.refs.set_if_equals(head_ref, head, commit.id))
    if not moved:
        raise GitCommandError(["commit"], 1, f"{head_ref.decode()} moved during commit")
    return bytes(commit.id)


def _head(git: Repo) -> tuple[Ref, ObjectID | None]:
    chain, sha = git.refs.follow(Ref(b"HEAD"))
    if len(chain) < 2:
        raise GitCommandError(["commit"], 1, "HEAD is detached; check out a branch first")
    return chain[-1], sha


def _tree_of(git: Repo, commit_id: bytes) -> bytes:
    obj = git.object_store[ObjectID(commit_id)]
    assert isinstance(obj, Commit)
    return bytes(obj.tree)


def _new_commit(git: Repo, tree: ObjectID, parents: list[ObjectID], message: str) -> Commit:
    config = git.get_config_stack()
    now = int(time.time())
    offset = -time.timezone if time.localtime(now).tm_isdst == 0 else -time.altzone
    c = Commit()
    c.tree = tree
    c.parents = parents
    c.author = commit_identity(config, "AUTHOR")
    c.committer = commit_identity(config, "COMMITTER")
    c.author_time = c.commit_time = now
    c.author_timezone = c.commit_timezone = offset
    c.encoding = b"UTF-8"
    # a message naming a path keeps the path's bytes, as ``git commit -m`` would
    c.message = os.fsencode(message) + (b"" if message.endswith("\n") else b"\n")
    return c


# --- index hygiene ------------------------------------------------------------


def settle_index(index: gitlock.LockedIndex, top: Path, paths: Iterable[bytes]) -> None:
    """Write the index so that git trusts the stat of ``paths`` (module header).

    git treats an entry whose mtime is not older than the index file as
    "racily clean" and compares contents, which for an unlocked file with
    content present (filter off) reads as modified.  So: wait until the clock
    has passed the newest such mtime, re-check each stat, and write again.
    An entry whose file changed meanwhile gets size 0, which git reads as
    modified -- the truth.  The wait (up to a second) happens after
    ``index.lock`` is released, so git and git-annex are not kept out
    meanwhile; the second write takes the lock again (``core.gitlock``).
    """
    paths = [p for p in paths if p in index and isinstance(index[p], IndexEntry)]
    index.write()
    if not paths:
        return
    newest = max(_mtime(e) for p in paths if isinstance(e := index[p], IndexEntry))
    if newest < index.written_mtime():
        return
    index.after_release(lambda: _resettle(index.git, top, paths, newest))


def _resettle(git: Repo, top: Path, paths: Sequence[bytes], newest: int) -> None:
    time.sleep(max(0.0, newest + 1 - time.time()) + 0.01)
    with gitlock.locked_index(git) as index:
        for p in paths:
            entry = index[p] if p in index else None
            if not isinstance(entry, IndexEntry):
                continue
            try:
                st = os.lstat(top / os.fsdecode(p))
            except FileNotFoundError:
                continue
            if (int(st.st_mtime), st.st_size, st.st_ino) != (_mtime(entry), entry.size, entry.ino):
                index[p] = dataclasses.replace(entry, size=0)
        index.write()


def _mtime(entry: IndexEntry) -> int:
    m = entry.mtime
    return int(m[0]) if isinstance(m, tuple) else int(m)
