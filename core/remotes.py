"""Remotes: the places content and git history go to and come from.

Every remote, whatever carries it, offers the same small interface
(``Remote``): check presence, lock a copy while a drop relies on it, retrieve
into a verifying ``Incoming``, store, remove.  The kinds:

* ``path``: another repository on this machine (``remote.NAME.url`` is a path
  or ``file://`` URL) — built here;
* ``p2p``: the git-annex P2P protocol: every ssh URL (``git-annex-shell``
  by default, ``remote.NAME.annex-shell`` overrides, e.g. ``annexsync``),
  or the TCP listener with AUTH tokens — P2P issue;
* ``http``: ``annex+http`` p2phttp remotes (``remote.NAME.annexUrl``) — HTTP issue;
* ``xmpp``: buddies reached through XMPP (git push only) — XMPP issue;
* ``paired``: a paired device (``annexsync::paired:<device id>``), reached
  through XMPP (``core.devices.remote``); git reaches it while
  ``git_access`` holds its gate open;
* ``special``: directory, rsync, S3, external … found in remote.log; shown, and
  their copies counted from the logs; moving content comes later;
* ``cluster``: a git-annex cluster, reached through its gateway remote; the
  gateway's other proxied remotes (``origin-node1``) keep the gateway's kind
  and carry ``via`` (``core.proxied``, clusters.md 4.1).

``list_remotes`` finds them all from git config and remote.log; ``open_remote``
gives the ``Remote`` for those that can move content today.  A git remote
whose UUID is not in git config yet is asked once (``core.discovery``:
ssh ``configlist``, http ``<url>/config``), as git-annex does, and the answer
is cached there; ``annex-ignore`` remotes are not asked, and take part in
content moves only when named.

The shared types (``RemoteKind``, ``RemoteInfo``, ``Remote``, ``Advance``)
live in ``core.remotetypes`` so a kind's module imports them from there and
not from this factory (style.md 2, "one shape to avoid repeating").
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Iterator
from io import BufferedReader
from pathlib import Path
from urllib.parse import unquote, urlparse

from dulwich.config import StackedConfig

from core.errors import ContentMissing, RemoteRefused, RemoteUnavailable, RepoError
from core.remotetypes import PAIRED_PREFIX, Advance, Remote, RemoteInfo, RemoteKind
from core.repo.key import Key
from core.repo.objects import CHUNK, Incoming
from core.repo.repository import AnnexRepo, annex_uuid_at, config_value, parse_bool

logger = logging.getLogger(__name__)

__all__ = [
    "Advance", "Remote", "RemoteInfo", "RemoteKind", "close_remotes", "find_remote", "git_access",
    "list_remotes",
    "local_path", "open_remote",
]  # fmt: skip


def local_path(url: str, base: Path) -> Path | None:
    """The directory a remote URL names when it is on this machine."""
    if url.startswith("file://"):
        return Path(unquote(urlparse(url).path))
    if "://" in url or (":" in url.split("/", 1)[0] and not url.startswith("/")):
        return None  # ssh-style host:path or another scheme
    p = Path(url)
    return p if p.is_absolute() else (base / p).resolve()


def _cfg(cfg: StackedConfig, name: str, item: str) -> str | None:
    return config_value(cfg, (b"remote", name.encode()), item.encode())


def _flag(cfg: StackedConfig, name: str, item: str, default: bool) -> bool:
    return parse_bool(_cfg(cfg, name, item), default)


def _remote_names(cfg: StackedConfig) -> list[str]:
    names: list[str] = []
    for backend in cfg.backends:
        for section in backend.sections():
            if len(section) == 2 and section[0] == b"remote":
                name = section[1].decode()
                if name not in names:
                    names.append(name)
    return names


def _kind(
    cfg: StackedConfig, name: str, url: str | None, base: Path, annex_url: str | None
) -> RemoteKind:
    from core.discovery import is_ssh_url

    if annex_url or (url or "").startswith("annex+http"):
        return RemoteKind.HTTP
    if url and url.startswith("xmpp::"):
        return RemoteKind.XMPP
    if url and url.startswith(PAIRED_PREFIX):
        return RemoteKind.PAIRED
    if _cfg(cfg, name, "annex-type"):
        return RemoteKind.SPECIAL
    if url and (url.startswith("p2p-annex::") or url.startswith("tor-annex::")):
        return RemoteKind.P2P
    if url and (_cfg(cfg, name, "annex-shell") or is_ssh_url(url)):
        return RemoteKind.P2P
    if url and local_path(url, base) is not None:
        return RemoteKind.PATH
    return RemoteKind.GIT


class _Pool:
    """The remotes of one repository, listed once and opened on first use.

    Valid while git config and the git-annex branch are unchanged, so a long
    operation does not re-read config and re-open remotes for every key.
    """

    def __init__(self, stamp: tuple[int, bytes | None], infos: list[RemoteInfo],
                 stale: list[Remote] | None = None) -> None:  # fmt: skip
        self.stamp = stamp
        self.infos = infos
        self.opened: dict[str, Remote | RemoteUnavailable] = {}
        # remotes of an older state: an operation may still use them, so they
        # are closed with this pool (a paired device's holds a connection)
        self.stale: list[Remote] = stale or []

    def remotes(self) -> list[Remote]:
        return self.stale + [r for r in self.opened.values()
                             if not isinstance(r, RemoteUnavailable)]  # fmt: skip


_pools: weakref.WeakKeyDictionary[AnnexRepo, _Pool] = weakref.WeakKeyDictionary()


def _pool(repo: AnnexRepo) -> _Pool:
    stamp = repo.state_stamp()
    pool = _pools.get(repo)
    if pool is None or pool.stamp != stamp:
        pool = _pools[repo] = _Pool(stamp, _list_remotes(repo), pool.remotes() if pool else [])
    return pool


def close_remotes(repo: AnnexRepo) -> None:
    """Close the remotes opened for ``repo`` (connections, other repositories).

    Operations call this when they finish, so a session lives exactly as long
    as the operation that needed it.
    """
    pool = _pools.pop(repo, None)
    for remote in pool.remotes() if pool else ():
        try:
            remote.close()
        except Exception as e:  # noqa: BLE001 - closing must not mask the result
            logger.warning("closing %s: %s", remote.info.name, e)


def list_remotes(repo: AnnexRepo) -> list[RemoteInfo]:
    """Every remote: git remotes from config, special remotes from remote.log."""
    return list(_pool(repo).infos)


def _list_remotes(repo: AnnexRepo) -> list[RemoteInfo]:
    cfg = repo.git.get_config_stack()
    found = [_git_remote(repo, cfg, name) for name in _remote_names(cfg)]
    found += _proxied(repo, cfg, found)
    known = {r.uuid for r in found}
    for uuid, settings in repo.state.remotes().items():
        if uuid not in known:
            found.append(
                RemoteInfo(
                    name=settings.get("name", uuid),
                    uuid=uuid,
                    kind=RemoteKind.SPECIAL,
                    special_type=settings.get("type"),
                    sync=False,
                )
            )
    return sorted(found, key=lambda r: (r.cost, r.name))


def _git_remote(repo: AnnexRepo, cfg: StackedConfig, name: str) -> RemoteInfo:
    url = _cfg(cfg, name, "url")
    annex_url = _cfg(cfg, name, "annexurl")
    uuid = _cfg(cfg, name, "annex-uuid")
    ignore = _flag(cfg, name, "annex-ignore", False)
    path = local_path(url, repo.path) if url else None
    if uuid is None and path is not None:
        uuid = annex_uuid_at(path)  # git-annex caches this as annex-uuid
    elif uuid is None and url and not ignore and not _cfg(cfg, name, "annex-type"):
        from core.discovery import learn

        learned = learn(repo.path, name, url, _cfg(cfg, name, "annex-shell"),
                        config_value(cfg, b"http", b"sslcainfo"))  # fmt: skip
        uuid, annex_url = learned.uuid, annex_url or learned.annex_url
        ignore = learned.ignore is not None
    kind = _kind(cfg, name, url, repo.path, annex_url)
    cost = _cfg(cfg, name, "annex-cost")
    return RemoteInfo(
        name=name,
        uuid=uuid,
        kind=kind,
        url=url,
        cost=float(cost) if cost else _default_cost(url, repo.path),
        sync=_flag(cfg, name, "annex-sync", True),
        pull=_flag(cfg, name, "annex-pull", True),
        push=_flag(cfg, name, "annex-push", True),
        readonly=_flag(cfg, name, "annex-readonly", False),
        special_type=_cfg(cfg, name, "annex-type"),
        ignore=ignore,
    )


def _default_cost(url: str | None, base: Path) -> float:
    """git-annex's default: 100 for a repository on this machine, else 200."""
    return 100.0 if url and local_path(url, base) is not None else 200.0


# --- proxied remotes and clusters (issue 16; rules in core.proxied) ---------------


def _proxied(repo: AnnexRepo, cfg: StackedConfig, git_remotes: list[RemoteInfo]) -> list[RemoteInfo]:
    """The remotes the gateways among ``git_remotes`` offer (clusters.md 4.1)."""
    from core.proxied import proxied_remotes

    proxies = repo.state.proxies()
    if not proxies:
        return []
    clusters = repo.state.clusters()
    configured = set(_remote_names(cfg))
    out: list[RemoteInfo] = []
    for gw in git_remotes:
        lookup = _cfg(cfg, gw.name, "annex-config-uuid") or gw.uuid
        out += proxied_remotes(gw, lookup, proxies, clusters, configured,
                               _default_cost(gw.url, repo.path))  # fmt: skip
    return out


def _transport(repo: AnnexRepo, info: RemoteInfo) -> RemoteKind:
    """How ``info`` is reached: its own kind, or its gateway's for a proxied remote."""
    if info.via is None:
        return info.kind
    for gw in _pool(repo).infos:
        if gw.name == info.via:
            return gw.kind
    raise RemoteUnavailable(f"{info.name}: its gateway remote {info.via} is gone")


# --- end of proxied remotes ---------------------------------------------------------


def find_remote(repo: AnnexRepo, name_or_uuid: str) -> RemoteInfo:
    for r in list_remotes(repo):
        if name_or_uuid in (r.name, r.uuid):
            return r
    raise RepoError(f"there is no remote named {name_or_uuid!r}")


def open_remote(repo: AnnexRepo, info: RemoteInfo) -> Remote:
    """A ``Remote`` that can move content, opened once per repository state.

    Raises:
        RemoteUnavailable: the remote cannot be reached, or content access for
            its kind is not built yet.
    """
    opened = _pool(repo).opened
    if info.name not in opened:
        try:
            opened[info.name] = _open_remote(repo, info)
        except RemoteUnavailable as e:
            opened[info.name] = e
    found = opened[info.name]
    if isinstance(found, RemoteUnavailable):
        raise found
    return found


@contextlib.contextmanager
def git_access(repo: AnnexRepo, info: RemoteInfo) -> Iterator[None]:
    """What git needs to fetch from or push to ``info`` while the block runs:
    nothing for most kinds; a paired device's gate (``PairedRemote.git_gate``).

    Raises:
        RemoteUnavailable: a paired device cannot be reached.
    """
    if info.kind is not RemoteKind.PAIRED:
        yield
        return
    from core.devices.remote import PairedRemote

    remote = open_remote(repo, info)
    assert isinstance(remote, PairedRemote)
    with remote.git_gate():
        yield


def _open_remote(repo: AnnexRepo, info: RemoteInfo) -> Remote:
    kind = _transport(repo, info)
    if kind is RemoteKind.PATH and info.url:
        path = local_path(info.url, repo.path)
        assert path is not None
        return PathRemote(info, path, repo.uuid)
    if kind is RemoteKind.P2P and info.url:
        from core.p2p.remote import ssh_remote, tcp_remote

        cfg = repo.git.get_config_stack()
        if info.url.startswith("p2p-annex::"):
            return tcp_remote(info, repo.uuid, _cfg(cfg, info.name, "annexsync-p2p-authtoken"))
        if not info.url.startswith("tor-annex::"):
            return ssh_remote(info, repo.uuid, _cfg(cfg, info.config_name, "annex-shell"))
    if kind is RemoteKind.HTTP:
        from core.p2phttp.remote import http_remote

        return http_remote(repo, info)
    if info.kind is RemoteKind.PAIRED and info.url:
        from core.devices.remote import paired_remote

        return paired_remote(repo, info)
    raise RemoteUnavailable(
        f"{info.name}: moving content to {info.kind.value} remotes is not supported yet"
    )


class PathRemote:
    """A git-annex repository elsewhere on this machine."""

    def __init__(self, info: RemoteInfo, path: Path, local_uuid: str = "") -> None:
        self.local_uuid = local_uuid  # names our transfer in the target's locks
        try:
            self.repo = AnnexRepo.open(path)
        except RepoError as e:
            raise RemoteUnavailable(f"{info.name}: {e}") from e
        if info.uuid and info.uuid != self.repo.uuid:
            raise RemoteUnavailable(
                f"{info.name}: expected repository {info.uuid}, found {self.repo.uuid}"
            )
        self.info = RemoteInfo(**{**info.__dict__, "uuid": self.repo.uuid})

    def check_present(self, key: Key) -> bool:
        return self.repo.objects.has(key)

    @contextlib.contextmanager
    def lock_content(self, key: Key) -> Iterator[None]:
        with self.repo.objects.lock(key):
            yield

    def retrieve(self, key: Key, into: Incoming, advance: Advance) -> None:
        offset = into.open()
        with self.repo.objects.open(key) as f:
            _feed(f, offset, into, advance)

    def store(self, key: Key, source: Path, advance: Advance) -> tuple[str, ...]:
        from core.ops.files import follow_content

        if self.info.readonly:
            raise RemoteRefused(f"{self.info.name} is read-only")
        self.repo.require_writable()
        if not self.repo.objects.has(key):
            with self.repo.objects.incoming(key, self.local_uuid) as inc:
                offset = inc.open()
                with source.open("rb") as f:
                    _feed(f, offset, inc, advance)
                inc.commit()
                self.repo.keep_received(key)  # under the transfer lock, as every receiver
        else:
            self.repo.keep_received(key)  # or the content goes again: we still have it
        follow_content(self.repo, key, True)
        self.repo.branch.commit_or_keep()  # stored: a held lock or a full disk must not fail it
        return ()

    def remove(self, key: Key) -> tuple[str, ...]:
        from core.ops.files import follow_content

        self.repo.require_writable()
        if not self.repo.remove_content(key):
            raise ContentMissing(str(key), self.info.name)
        follow_content(self.repo, key, False)
        self.repo.branch.commit_or_keep()
        return ()

    def close(self) -> None:
        self.repo.close()


def _feed(f: BufferedReader, offset: int, into: Incoming, advance: Advance) -> None:
    """Copy ``f`` from ``offset`` into ``into`` through one reused buffer (a fresh
    1 MiB per read costs the allocator's page faults on every chunk), or in
    fresh chunks when ``into`` queues them for its threads (a big file)."""
    f.seek(offset)
    if into.queues_chunks:
        while chunk := f.read(CHUNK):
            into.write(chunk)
            advance(len(chunk))
        return
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while n := f.readinto(buf):
        into.write(view[:n])
        advance(n)
