"""What a cluster gateway decides: which nodes, and the answer from their outcomes.

Pure (no I/O): the gateway adapter (``core.p2p.gateway``) asks these
functions and does what they say.  Spec: clusters.md 5.3-5.7 and 7.

Rules, each from the spec:

- **Reads** (CHECKPRESENT, GET, 5.4/5.5) go only to nodes the gateway's own
  location log says have the key.  git-annex picks one at random among the
  cheapest and never tries another; we try them in cost order and fall back
  to the next when one cannot be reached or fails (section 7 "what our
  gateway should do").  No candidate: CHECKPRESENT answers FAILURE and GET
  sends ``DATA 0`` + INVALID without asking anyone.
- **PUT targets** (5.6): the nodes not logged present that want the key;
  if none wants it, every node not logged present; if all are logged
  present, all nodes.
- **PUT answer** (5.6 steps 2, 6): every reached target already had it:
  ``ALREADY-HAVE-PLUS`` of them; else ``SUCCESS-PLUS`` of what was stored
  (v2+, even a single UUID; the cluster's own UUID is left out), plain
  ``SUCCESS`` below v2, ``FAILURE`` when nothing was stored.  A node that
  failed or could not be reached is simply not listed: the client logs
  exactly the nodes that hold the content.  (git-annex 10.20261026 fails
  the whole request when a node cannot be opened, section 7; we do not.)
- **REMOVE answer** (5.7): ``SUCCESS-PLUS`` of every node (plus the UUIDs
  they reported) when all succeeded; ``FAILURE-PLUS`` of what was removed
  when some failed -- an unreachable node counts as failed, so a partial
  removal is always reported and logged; nothing removed: the first
  ERROR text, else FAILURE.  Below v2, no lists: SUCCESS, or the first
  ERROR, else FAILURE.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from core.p2p.messages import (
    AlreadyHave,
    AlreadyHavePlus,
    Error,
    Failure,
    FailurePlus,
    Message,
    Success,
    SuccessPlus,
)

PLUS_SINCE = 2  # the -PLUS replies exist from protocol version 2


@dataclass(frozen=True)
class NodeResult:
    """What one node did with one request.

    ``ok``: it stored (PUT) or removed (REMOVE) the key; ``already``: it
    answered ALREADY-HAVE to a PUT; ``plus``: the UUIDs its -PLUS reply
    named; ``error``: why it failed, in words (an ERROR text, a broken or
    unopenable connection); ``reached``: False when it could not be talked to.
    """

    node: str
    ok: bool = False
    already: bool = False
    plus: tuple[str, ...] = ()
    error: str | None = None
    reached: bool = True


def read_candidates(nodes: Sequence[str], present: Iterable[str]) -> list[str]:
    """Nodes logged present, in ``nodes``' (cost) order: try each in turn."""
    have = set(present)
    return [n for n in nodes if n in have]


def put_targets(nodes: Sequence[str], present: Iterable[str],
                wants: Callable[[str], bool]) -> list[str]:  # fmt: skip
    """The nodes a PUT goes to (5.6 steps 1-3), in ``nodes``' order."""
    have = set(present)
    lacking = [n for n in nodes if n not in have]
    wanting = [n for n in lacking if wants(n)]
    return wanting or lacking or list(nodes)


def collected(cluster: str, results: Iterable[NodeResult]) -> tuple[str, ...]:
    """The UUIDs that stored (PUT) or removed (REMOVE) the key: each node that
    succeeded plus every -PLUS list, in node order, once each, never
    ``cluster`` (5.6 step 6, 5.7).  The gateway logs these; the client learns them."""
    out: list[str] = []
    for r in results:
        for u in ((r.node,) if r.ok else ()) + r.plus:
            if u != cluster and u not in out:
                out.append(u)
    return tuple(out)


def offer_answer(cluster: str, version: int, results: Sequence[NodeResult]) -> Message | None:
    """The reply to a PUT before data: ALREADY-HAVE(-PLUS) when every reached
    target already had the key, None when some node wants data (PUT-FROM)."""
    reached = [r for r in results if r.reached and r.error is None]
    if not reached or not all(r.already for r in reached):
        return None
    if version < PLUS_SINCE:
        return AlreadyHave()
    return AlreadyHavePlus(tuple(u for u in (r.node for r in reached) if u != cluster))


def no_taker(results: Sequence[NodeResult]) -> Error:
    """The reply to a PUT no node took (none answered, or none wants it): FAILURE
    is no reply to PUT, so one ERROR line fails the request and the session goes
    on (p2p-protocol §8; git-annex closes the connection here, 5.6 step 2)."""
    why = "; ".join(f"{r.node}: {r.error}" for r in results if r.error)
    return Error(f"no cluster node took the content ({why or 'none wants it'})")


def put_answer(cluster: str, version: int, results: Sequence[NodeResult]) -> Message:
    """The reply after the data (5.6 step 6)."""
    stored = collected(cluster, results)
    if not stored:
        return Failure()
    return SuccessPlus(stored) if version >= PLUS_SINCE else Success()


def remove_answer(cluster: str, version: int, results: Sequence[NodeResult]) -> Message:
    """The reply to REMOVE / REMOVE-BEFORE (5.7's table)."""
    if not results:
        return Failure()
    removed = collected(cluster, results)
    first_error = next((r.error for r in results if not r.ok and r.error), None)
    all_ok = all(r.ok for r in results)
    if version < PLUS_SINCE:
        if all_ok:
            return Success()
        return Error(first_error) if first_error else Failure()
    if all_ok:
        return SuccessPlus(removed) if removed else Success()
    if removed:
        return FailurePlus(removed)
    return Error(first_error) if first_error else Failure()


def describe(results: Iterable[NodeResult], names: dict[str, str]) -> list[str]:
    """One line per node that did not succeed, for the log and stderr."""
    out = []
    for r in results:
        if r.ok or r.already:
            continue
        what = "unreachable" if not r.reached else "failed"
        out.append(f"{names.get(r.node, r.node)}: {what}: {r.error or 'refused'}")
    return out


__all__ = ["PLUS_SINCE", "NodeResult", "collected", "describe", "offer_answer", "put_answer",
           "put_targets", "read_candidates", "remove_answer"]  # fmt: skip
