"""Clusters as a person sees them: the nodes, what each holds, which answer,
and for one file where its copies are and whether dropping it here is safe.

Spec: clusters.md 2.4 (locations: a cluster is present where a node is),
4.1 (a client's cluster and node remotes), 4.4-4.5 (counting, drops), 3.1
(a gateway's own clusters); issue 17 (status, the cluster view).

Blocking (git, the location logs, probes over the network): callers run it
in a thread.  Two kinds of clusters are shown for a repository:

- clusters it uses through a gateway remote (``origin-mycluster``): the
  nodes are the proxied node remotes, probed through the gateway;
- clusters it is the gateway of (``annex.cluster.NAME``): the nodes are its
  own remotes configured as nodes and recorded in cluster.log.

Keys and bytes per node come from the location logs of the files in the
current tree (what ``whereis`` reads), so they say what the logs believe,
not what a node has on disk.  A probe asks the node CHECKPRESENT of a key
nobody has (the empty file's): any answer means reachable.

The per-file answer uses the one drop-safety check (``core.ops.transfer``,
spec 9.2-9.3, clusters.md 4.5): it locks copies on the nodes as a drop
would, then releases them, so "safe to drop here" is exactly what a drop
would decide now.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from core import failures
from core.errors import CoreError, DropRefused
from core.ops.files import annexed_files
from core.proxied import nodes_of
from core.remotes import close_remotes, list_remotes, open_remote
from core.remotetypes import RemoteInfo, RemoteKind
from core.repo.clusters import count_copies, is_cluster_uuid
from core.repo.key import Key
from core.repo.repository import AnnexRepo
from core.status import ClusterStatus, NodeStatus

logger = logging.getLogger(__name__)

# SHA256E of the empty content: a question every node can answer (clusters.md 5.4)
PROBE_KEY = Key.parse("SHA256E-s0--e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


@dataclass(frozen=True)
class _Cluster:
    name: str
    uuid: str
    via: str | None
    nodes: tuple[RemoteInfo, ...]


def _clusters(repo: AnnexRepo) -> list[_Cluster]:
    """Clusters used through a gateway, then those this repository is the gateway of."""
    from core.ops.clustersetup import _nodes, my_clusters

    table = repo.state.clusters()
    remotes = list_remotes(repo)
    proxied = [r for r in remotes if r.via is not None]
    out = [_Cluster(c.name, c.uuid or "", c.via, tuple(nodes_of(c, proxied, table)))
           for c in proxied if c.kind is RemoteKind.CLUSTER]  # fmt: skip
    configured = _nodes(repo, repo.git.get_config_stack())
    for name, uuid in sorted(my_clusters(repo).items()):
        recorded = table.nodes.get(uuid, frozenset())
        nodes = sorted((r for r in configured.get(name, []) if r.uuid in recorded),
                       key=lambda r: (r.cost, r.name))  # fmt: skip
        out.append(_Cluster(name, uuid, None, tuple(nodes)))
    return out


def _holdings(repo: AnnexRepo, uuids: set[str]) -> dict[str, tuple[int, int]]:
    """uuid -> (keys, bytes) logged present, over the keys of the current tree;
    "" -> the keys on at least one of ``uuids``."""
    counts = {u: [0, 0] for u in (*uuids, "")}
    seen: set[Key] = set()
    for f in annexed_files(repo):
        if f.key in seen:
            continue
        seen.add(f.key)
        size = f.key.size or 0
        present = repo.state.locations(f.key) & uuids
        for u in (*present, *(("",) if present else ())):
            counts[u][0] += 1
            counts[u][1] += size
    return {u: (k, b) for u, (k, b) in counts.items()}


def probe(repo: AnnexRepo, info: RemoteInfo) -> str | None:
    """None when the node answers; else why not, in the short words
    ``core.failures`` gives every failing peer."""
    try:
        open_remote(repo, info).check_present(PROBE_KEY)
    except (CoreError, OSError) as e:
        raw = str(e) or type(e).__name__
        logger.info("%s: probe of cluster node %s failed: %s", repo.path, info.name, raw)
        return failures.classify(raw).words
    return None


def cluster_statuses(path: str, *, probe_nodes: bool) -> tuple[ClusterStatus, ...]:
    """The clusters of the repository at ``path`` (module docstring)."""
    with AnnexRepo.open(path, auto_init=False) as repo:
        try:
            return _statuses(repo, probe_nodes)
        finally:
            close_remotes(repo)


def _statuses(repo: AnnexRepo, probe_nodes: bool) -> tuple[ClusterStatus, ...]:
    clusters = _clusters(repo)
    if not clusters:
        return ()
    all_nodes = {n.uuid or "" for c in clusters for n in c.nodes}
    held = _holdings(repo, all_nodes)
    out = []
    for c in clusters:
        nodes = []
        for n in c.nodes:
            why = probe(repo, n) if probe_nodes else None
            keys, size = held.get(n.uuid or "", (0, 0))
            reach = (why is None) if probe_nodes else None
            nodes.append(NodeStatus(n.name, n.uuid or "", reach, keys, size, why))
        mine = {n.uuid or "" for n in c.nodes}
        keys, size = _holdings(repo, mine)[""] if len(clusters) > 1 else held[""]
        out.append(ClusterStatus(c.name, c.uuid, c.via, tuple(nodes), keys, size))
    return tuple(out)


# --- one file -----------------------------------------------------------------------


@dataclass(frozen=True)
class Copy:
    uuid: str
    name: str  # the remote's name, "here", or the description
    node_of: str | None = None  # the cluster it is a node of, if any


@dataclass(frozen=True)
class FileCopies:
    """Where one file's content is and whether a drop here is safe now."""

    path: str
    key: str
    copies: tuple[Copy, ...]
    count: int  # as git-annex counts: clusters are shown, never counted (4.4)
    numcopies: int
    here: bool
    safe_to_drop: bool
    reason: str  # why (not), in words


def file_copies(path: str, file: str) -> FileCopies:
    """The cluster view's per-file answer (module docstring).

    Raises:
        CoreError: not a repository, or ``file`` is not an annexed file.
    """
    with AnnexRepo.open(path, auto_init=False) as repo:
        try:
            return _file_copies(repo, file)
        finally:
            close_remotes(repo)


def _file_copies(repo: AnnexRepo, file: str) -> FileCopies:
    from core.ops.transfer import _check_drop  # the one drop-safety check (spec 9.3)

    found = list(annexed_files(repo, [str(repo.path / file)]))  # relative to the folder
    if not found:
        raise CoreError(f"{file} is not an annexed file")
    f = found[0]
    locations = repo.state.locations(f.key)
    copies = _named(repo, sorted(locations, key=lambda u: (not is_cluster_uuid(u), u)))
    here = repo.objects.has(f.key)
    numcopies = repo.state.numcopies()
    if not here:
        safe, reason = False, "the content is not here"
    else:
        with contextlib.ExitStack() as stack:
            try:
                _check_drop(repo, f.key, found, repo.uuid, stack)
                safe, reason = True, f"numcopies {numcopies}: enough other copies verified"
            except DropRefused as e:
                safe, reason = False, e.why
    return FileCopies(f.path, str(f.key), tuple(copies), count_copies(locations), numcopies,
                      here, safe, reason)  # fmt: skip


def _named(repo: AnnexRepo, uuids: Sequence[str]) -> Iterable[Copy]:
    names = {r.uuid: r.name for r in list_remotes(repo) if r.uuid}
    descriptions = repo.state.descriptions()
    table = repo.state.clusters()
    for u in uuids:
        name = "here" if u == repo.uuid else names.get(u) or descriptions.get(u) or u
        clusters = table.clusters_of(u)
        of = names.get(next(iter(sorted(clusters))), None) if clusters else None
        yield Copy(u, name, of)


__all__ = ["PROBE_KEY", "Copy", "FileCopies", "cluster_statuses", "file_copies", "probe"]
