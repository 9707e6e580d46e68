"""whereis and info: what the logs say, in git-annex's terms.

Spec: repository-format.md 5.4 (info lists every known repository by trust,
omits dead ones; whereis shows ``description [remotename]``), 5.5 (reading
location logs: dead repositories removed, untrusted listed apart).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from core.ops.files import annexed_files
from core.remotes import RemoteKind, find_remote, list_remotes
from core.repo.clusters import count_copies, is_cluster_uuid
from core.repo.key import Key
from core.repo.preferred import Context, fallback_reason
from core.repo.repository import AnnexRepo, trust_levels

WEB_UUID = "00000000-0000-0000-0000-000000000001"
BITTORRENT_UUID = "00000000-0000-0000-0000-000000000002"
SPECIAL_DESCRIPTIONS = {WEB_UUID: "web", BITTORRENT_UUID: "bittorrent"}


@dataclass(frozen=True)
class Copy:
    uuid: str
    description: str
    here: bool
    remote: str | None

    def label(self) -> str:
        """``description [remote]`` as git-annex 10.20261026 prints it (checked).

        A remote whose description is empty or its own name (as ``initremote``
        leaves a special remote) is ``[name]``; this repository is
        ``description [here]``, or ``here`` without a description.
        """
        if self.here:
            return f"{self.description} [here]" if self.description else "here"
        if self.remote is None:
            return self.description
        if not self.description or self.description == self.remote:
            return f"[{self.remote}]"
        return f"{self.description} [{self.remote}]"

    def json_description(self) -> str:
        """git-annex's JSON: the label, but this repository's bare description."""
        return self.description if self.here else self.label()


@dataclass(frozen=True)
class Whereis:
    path: str
    key: Key
    copies: tuple[Copy, ...]
    untrusted: tuple[Copy, ...] = field(default=())

    @property
    def count(self) -> int:
        """Copies, as git-annex counts them: a cluster is shown, never counted (4.4)."""
        return count_copies(c.uuid for c in self.copies)

    def json(self) -> dict[str, object]:
        def one(c: Copy) -> dict[str, object]:
            return {"uuid": c.uuid, "description": c.json_description(), "here": c.here}

        return {
            "command": "whereis",
            # JSON is UTF-8: a name that is not shows U+FFFD, as in git-annex's
            "file": os.fsencode(self.path).decode("utf-8", "replace"),
            "key": str(self.key),
            "whereis": [one(c) for c in self.copies],
            "untrusted": [one(c) for c in self.untrusted],
            "success": True,
        }


def _remote_names(repo: AnnexRepo) -> dict[str, str]:
    return {r.uuid: r.name for r in list_remotes(repo) if r.uuid}


def _description(descriptions: dict[str, str], uuid: str) -> str:
    return descriptions.get(uuid) or SPECIAL_DESCRIPTIONS.get(uuid, "")


def _listed_order(uuid: str) -> tuple[bool, str]:
    """git-annex lists clusters first (they are prepended to the locations), then by UUID."""
    return not is_cluster_uuid(uuid), uuid


def whereis(repo: AnnexRepo, paths: Iterable[str] = ()) -> list[Whereis]:
    descriptions = repo.state.descriptions()
    trust = trust_levels(repo)
    names = _remote_names(repo)
    out = []
    for f in annexed_files(repo, paths):
        good: list[Copy] = []
        untrusted: list[Copy] = []
        for uuid in sorted(repo.state.locations(f.key), key=_listed_order):
            level = trust.get(uuid, "semitrusted")
            if level == "dead":
                continue
            c = Copy(uuid, _description(descriptions, uuid), uuid == repo.uuid, names.get(uuid))
            (untrusted if level == "untrusted" else good).append(c)
        out.append(Whereis(f.path, f.key, tuple(good), tuple(untrusted)))
    return out


@dataclass(frozen=True)
class RepoSummary:
    uuid: str
    description: str
    trust: str
    here: bool


@dataclass(frozen=True)
class Info:
    repositories: tuple[RepoSummary, ...]
    local_keys: int
    local_bytes: int
    annexed_files: int
    numcopies: int
    mincopies: int
    wanted_fallbacks: tuple[str, ...] = ()  # see ``Wanted.fallback_text``

    def json(self) -> dict[str, object]:
        groups: dict[str, list[dict[str, object]]] = {
            "trusted repositories": [],
            "semitrusted repositories": [],
            "untrusted repositories": [],
        }
        for r in self.repositories:
            groups[f"{r.trust} repositories"].append(
                {"uuid": r.uuid, "description": r.description, "here": r.here}
            )
        return {
            **groups,
            "local annex keys": self.local_keys,
            "local annex size": self.local_bytes,
            "annexed files in working tree": self.annexed_files,
            "numcopies": self.numcopies,
            "mincopies": self.mincopies,
            **({"preferred content treated as present": list(self.wanted_fallbacks)}
               if self.wanted_fallbacks else {}),
            "command": "info",
            "success": True,
        }


def info(repo: AnnexRepo) -> Info:
    descriptions = repo.state.descriptions()
    trust = trust_levels(repo)
    uuids = set(descriptions) | {WEB_UUID, BITTORRENT_UUID} | set(repo.state.remotes())
    uuids |= {r.uuid for r in list_remotes(repo) if r.uuid}
    repos = []
    for uuid in sorted(uuids):
        level = trust.get(uuid, "semitrusted")
        if level == "dead":
            continue
        repos.append(RepoSummary(uuid, _description(descriptions, uuid), level, uuid == repo.uuid))
    keys = list(repo.objects.keys())
    return Info(
        repositories=tuple(repos),
        local_keys=len(keys),
        local_bytes=sum(k.size or 0 for k in keys),
        annexed_files=sum(1 for _ in annexed_files(repo)),
        numcopies=repo.state.numcopies(),
        mincopies=repo.state.mincopies(),
        wanted_fallbacks=tuple(w.fallback_text() for w in wanted(repo) if w.fallback),
    )


# --- one remote (git annex info REMOTE; clusters.md 4.1) ------------------------


def _location(url: str | None) -> str:
    """git-annex shows an scp-style ssh URL as ``ssh://host/path`` (``~`` for relative)."""
    if not url or "://" in url or url.startswith("/"):
        return url or ""
    host, sep, path = url.partition(":")
    if not sep or "/" in host:
        return url
    return f"ssh://{host}{path if path.startswith('/') else '/~/' + path}"


def remote_info(repo: AnnexRepo, name: str) -> list[tuple[str, str]]:
    """``git annex info REMOTE --fast``: the fields, in git-annex's order and words.

    A gateway names the cluster it serves and what else it proxies; a
    cluster says so (clusters.md 4.1).

    Raises:
        RepoError: no remote of that name.
    """
    remotes = list_remotes(repo)
    r = find_remote(repo, name)
    label = Copy(r.uuid or "", _description(repo.state.descriptions(), r.uuid or ""), False,
                 r.name).label()  # fmt: skip
    out = [("uuid", r.uuid or ""), ("description", label),
           ("trust", trust_levels(repo).get(r.uuid or "", "semitrusted")), ("remote", r.name),
           ("cost", f"{r.cost:.1f}"), ("type", r.special_type or "git")]  # fmt: skip
    if r.kind is not RemoteKind.SPECIAL:
        out += [("repository location", _location(r.url)),
                ("proxied", "true" if r.via else "false")]  # fmt: skip
    if r.kind is RemoteKind.CLUSTER:
        out.append(("cluster", "true"))
    # in the order git-annex keeps its proxy set: by UUID, then name
    offered = sorted((x for x in remotes if x.via == r.name), key=lambda x: (x.uuid or "", x.name))
    clusters = [x.name for x in offered if x.kind is RemoteKind.CLUSTER]
    if clusters:
        out.append(("gateway to cluster", " ".join(clusters)))
    others = [x.name for x in offered if x.kind is not RemoteKind.CLUSTER]
    if others:
        out.append(("proxying", " ".join(others)))
    return out


# --- preferred content (spec 10) ----------------------------------------------


@dataclass(frozen=True)
class Wanted:
    """One repository's preferred content expression, and whether we can evaluate it."""

    uuid: str
    description: str
    expression: str
    fallback: str | None  # why it acts as "present" (10.2); None: evaluated as written

    def fallback_text(self) -> str:
        """The one sentence status, ``info``, ``wanted`` and ``sync --content`` show."""
        return (f'preferred content of {self.description} ("{self.expression}") cannot be '
                f'evaluated ({self.fallback}); treated as "present": nothing is fetched '
                "for it or dropped from it")

    def json(self) -> dict[str, object]:
        return {"uuid": self.uuid, "description": self.description,
                "expression": self.expression, "treated as present": self.fallback}


def wanted(repo: AnnexRepo) -> list[Wanted]:
    """Every repository with a preferred content expression (preferred-content.log).

    Whether an expression is usable depends on the repository, not the file:
    it parses, names terms we evaluate, and ``standard``/``groupwanted`` find
    exactly one group (10.4), so one check per repository says it.
    """
    st = repo.state
    descriptions = st.descriptions()
    ctx = Context(groups=st.groups(), group_wanted=st.group_preferred_content())
    out = []
    for uuid, expr in sorted(st.preferred_content().items()):
        if expr.strip():
            reason = fallback_reason(expr, replace(ctx, uuid=uuid))
            out.append(Wanted(uuid, _description(descriptions, uuid), expr, reason))
    return out
