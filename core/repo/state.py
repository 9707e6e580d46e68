"""Typed views over the git-annex branch, and the writers init/describe use.

Spec: repository-format.md 5.4 (file reference), 5.5 (location logs), 9.1
(numcopies/mincopies defaults).  Parsing and tie rules live in ``logs``; this
module only picks the family for each file and turns bytes into values.

Reads go through ``AnnexBranch.read`` (journal first, then branch), so they
see what git-annex has journalled but not committed.  They do not merge other
``*/git-annex`` refs: call ``AnnexBranch.merge_refs`` first when the answer
must match git-annex (7.1).  Writes go through ``AnnexBranch.change``, so they
join an open transaction (one lock hold for many writes) and are compacted
on write (7.3).  Clocks: ``now`` may be given; otherwise
``GIT_ANNEX_VECTOR_CLOCK`` if set (as git-annex does), else the time in whole
seconds (5.2).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from enum import Enum
from fractions import Fraction

from core.repo import clusters as cl
from core.repo import logs
from core.repo.branch import AnnexBranch
from core.repo.key import Key

logger = logging.getLogger(__name__)

WEB_UUID = "00000000-0000-0000-0000-000000000001"
BITTORRENT_UUID = "00000000-0000-0000-0000-000000000002"


class Trust(Enum):
    TRUSTED = "1"
    SEMITRUSTED = "?"
    UNTRUSTED = "0"
    DEAD = "X"


def parse_trust(value: bytes) -> Trust:
    """5.4: empty = trusted (legacy), unknown letter = semitrusted."""
    text = value.strip().decode("ascii", "replace")
    if not text:
        return Trust.TRUSTED
    try:
        return Trust(text)
    except ValueError:
        return Trust.SEMITRUSTED


def current_clock() -> Fraction:
    forced = os.environ.get("GIT_ANNEX_VECTOR_CLOCK")
    if forced:
        try:
            return logs.parse_clock(forced.encode())
        except ValueError:
            logger.warning("ignoring bad GIT_ANNEX_VECTOR_CLOCK %r", forced)
    return Fraction(int(time.time()))


def location_log_path(key: Key | str) -> str:
    """``<hashdir_lower>/<keyFile>.log`` (5.5)."""
    k = key if isinstance(key, Key) else Key.parse(key)
    return f"{k.hashdir_lower()}/{k.file_name()}.log"


def _text(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


def _int_or_none(value: bytes) -> int | None:
    text = value.strip()
    return int(text) if text.lstrip(b"-").isdigit() and text[:1] != b"+" else None


class AnnexState:
    def __init__(self, branch: AnnexBranch) -> None:
        self.branch = branch

    # --- generic --------------------------------------------------------------

    def _uuid_map(self, path: str) -> dict[str, bytes]:
        lines = logs.parse_uuid_log(self.branch.read(path) or b"", path)
        return {_text(u): x.value for u, x in logs.compact_uuid_log(lines).items()}

    def _field_map(self, path: str) -> dict[str, bytes]:
        lines = logs.parse_field_log(self.branch.read(path) or b"", path)
        return {_text(f): x.value for f, x in logs.compact_field_log(lines).items()}

    def _count(self, path: str) -> int:
        lines = [x for x in logs.parse_value_log(self.branch.read(path) or b"", path)
                 if _int_or_none(x.value) is not None]
        best = logs.newest_value(lines, order=lambda v: _int_or_none(v) or 0)
        n = _int_or_none(best.value) if best else None
        return max(1, n or 1)  # 9.1: default 1, values < 1 become 1

    # --- top-level files ------------------------------------------------------

    def descriptions(self) -> dict[str, str]:
        """uuid.log: uuid -> description."""
        return {u: logs.parse_description(v) for u, v in self._uuid_map("uuid.log").items()}

    def trust(self) -> dict[str, Trust]:
        """trust.log: uuid -> level; a UUID not listed is semitrusted."""
        return {u: parse_trust(v) for u, v in self._uuid_map("trust.log").items()}

    def trust_of(self, uuid: str) -> Trust:
        return self.trust().get(uuid, Trust.SEMITRUSTED)

    def groups(self) -> dict[str, frozenset[str]]:
        return {u: logs.parse_groups(v) for u, v in self._uuid_map("group.log").items()}

    def preferred_content(self) -> dict[str, str]:
        return {u: _text(v) for u, v in self._uuid_map("preferred-content.log").items()}

    def required_content(self) -> dict[str, str]:
        return {u: _text(v) for u, v in self._uuid_map("required-content.log").items()}

    def group_preferred_content(self) -> dict[str, str]:
        return {g: _text(v) for g, v in self._field_map("group-preferred-content.log").items()}

    def numcopies(self) -> int:
        return self._count("numcopies.log")

    def mincopies(self) -> int:
        return self._count("mincopies.log")

    def config(self) -> dict[str, str]:
        """config.log: repository-wide defaults (local git config overrides them)."""
        return {k: _text(v) for k, v in self._field_map("config.log").items()}

    def remotes(self) -> dict[str, dict[str, str]]:
        """remote.log: special remote uuid -> settings."""
        return {u: logs.parse_remote_config(v) for u, v in self._uuid_map("remote.log").items()}

    def clusters(self) -> cl.Clusters:
        """cluster.log: cluster uuid -> live node uuids (clusters.md 2.1)."""
        blob = self.branch.read(cl.CLUSTER_LOG)
        if not blob:
            return cl.Clusters()
        dead = [u for u, t in self.trust().items() if t is Trust.DEAD]
        return cl.parse_cluster_log(blob, dead)

    def proxies(self) -> dict[str, frozenset[cl.Proxied]]:
        """proxy.log: gateway uuid -> what it proxies (clusters.md 2.2)."""
        return cl.parse_proxy_log(self.branch.read(cl.PROXY_LOG) or b"")

    def set_cluster(self, cluster: str, nodes: Iterable[str],
                    now: Fraction | int | None = None) -> None:  # fmt: skip
        clock = current_clock() if now is None else now
        self.branch.change(cl.CLUSTER_LOG,
                           lambda old: cl.change_cluster_log(old, cluster, nodes, clock))

    def set_proxies(self, gateway: str, proxied: Iterable[cl.Proxied],
                    now: Fraction | int | None = None) -> None:  # fmt: skip
        clock = current_clock() if now is None else now
        self.branch.change(cl.PROXY_LOG,
                           lambda old: cl.change_proxy_log(old, gateway, proxied, clock))

    def maxsize(self) -> dict[str, int]:
        out = {u: _int_or_none(v) for u, v in self._field_map("maxsize.log").items()}
        return {u: n for u, n in out.items() if n is not None}

    # --- location logs (5.5) --------------------------------------------------

    def location_lines(self, key: Key | str) -> dict[str, logs.PresenceLine]:
        path = location_log_path(key)
        lines = logs.parse_presence(self.branch.read(path) or b"", path)
        return {_text(i): x for i, x in logs.compact_presence(lines).items()}

    def locations(self, key: Key | str) -> frozenset[str]:
        """UUIDs whose newest status for the key is present (1), plus the clusters.

        A cluster is never logged; it "has" a key when one of its live nodes
        is logged present, as every git-annex reader sees it (clusters.md 2.4).
        """
        logged = frozenset(u for u, x in self.location_lines(key).items() if x.present)
        return self.clusters().with_clusters(logged) if logged else logged

    def first_location(self, key: Key | str) -> str | None:
        """The UUID of the earliest "present" line of the key's location log: the
        repository where that content was first recorded (where it was added)."""
        path = location_log_path(key)
        lines = [x for x in logs.parse_presence(self.branch.read(path) or b"", path) if x.present]
        first = min(lines, key=lambda x: x.clock, default=None)
        return _text(first.info) if first else None

    def metadata(self, key: Key | str) -> dict[str, frozenset[str]]:
        """Current metadata of a key (5.4 ``.log.met``): case-folded field -> values."""
        path = location_log_path(key) + ".met"
        return logs.current_metadata(self.branch.read(path) or b"", path)

    def urls(self, key: Key | str) -> tuple[str, ...]:
        """URLs the key can be downloaded from (``.log.web``, a presence log)."""
        path = location_log_path(key) + ".web"
        lines = logs.parse_presence(self.branch.read(path) or b"", path)
        return tuple(sorted(_text(i) for i, x in logs.compact_presence(lines).items() if x.present))

    def key_known(self, key: Key | str) -> bool:
        return self.branch.read(location_log_path(key)) is not None

    def set_location(
        self, key: Key | str, uuid: str, present: bool, now: Fraction | int | None = None,
        *, immediately: bool = False,
    ) -> None:
        """Record that ``uuid`` has (or lost) the key; no change if already so (5.5).

        ``immediately``: into the journal now, even inside a transaction, so
        the caller can undo what the line would describe if it fails.

        Raises:
            DiskFull: (``immediately``) the line could not be written.
        """
        if cl.is_cluster_uuid(uuid):
            return  # never logged: readers derive it from the nodes (clusters.md 2.4)
        status = logs.PRESENT if present else logs.ABSENT
        clock = current_clock() if now is None else now
        self.branch.change(
            location_log_path(key),
            lambda old: logs.change_presence(old, uuid.encode(), status, clock),
            immediately,
        )

    # --- writers --------------------------------------------------------------

    def _set_uuid(self, path: str, uuid: str, value: bytes, now: Fraction | int | None) -> None:
        clock = current_clock() if now is None else now
        self.branch.change(path, lambda old: logs.change_uuid_log(old, uuid.encode(), value, clock))

    def set_description(self, uuid: str, description: str, now: Fraction | int | None = None) -> None:
        self._set_uuid("uuid.log", uuid, logs.format_description(description), now)

    def set_trust(self, uuid: str, level: Trust, now: Fraction | int | None = None) -> None:
        self._set_uuid("trust.log", uuid, level.value.encode(), now)

    def set_groups(
        self, uuid: str, groups: Iterable[str], now: Fraction | int | None = None
    ) -> None:
        self._set_uuid("group.log", uuid, logs.format_groups(groups), now)

    def set_preferred_content(
        self, uuid: str, expression: str, now: Fraction | int | None = None
    ) -> None:
        self._set_uuid("preferred-content.log", uuid, expression.encode(), now)

    def _set_count(self, path: str, n: int, now: Fraction | int | None) -> None:
        if n < 1:
            raise ValueError(f"{path}: {n} is below 1")
        clock = current_clock() if now is None else now
        self.branch.change(path, lambda old: logs.change_value_log(old, b"%d" % n, clock))

    def set_numcopies(self, n: int, now: Fraction | int | None = None) -> None:
        self._set_count("numcopies.log", n, now)

    def set_mincopies(self, n: int, now: Fraction | int | None = None) -> None:
        self._set_count("mincopies.log", n, now)
