"""The cluster gateway's decisions (core.p2p.fanout; clusters.md 5.4-5.7, 7)."""

from __future__ import annotations

from core.p2p.fanout import (
    NodeResult,
    collected,
    offer_answer,
    put_answer,
    put_targets,
    read_candidates,
    remove_answer,
)
from core.p2p.messages import (
    AlreadyHave,
    AlreadyHavePlus,
    Error,
    Failure,
    FailurePlus,
    Success,
    SuccessPlus,
)

C = "ac000000-0000-8000-0000-000000000000"  # the cluster
N = ["n1", "n2", "n3"]  # node order = cost order


def test_reads_go_to_logged_nodes_in_cost_order() -> None:
    assert read_candidates(N, {"n3", "n1", "elsewhere"}) == ["n1", "n3"]
    assert read_candidates(N, set()) == []


def test_put_targets_wanting_then_lacking_then_all() -> None:
    """5.6 steps 1-3."""
    assert put_targets(N, {"n1"}, lambda n: n != "n3") == ["n2"]
    assert put_targets(N, {"n1"}, lambda n: False) == ["n2", "n3"]  # nobody wants: all lacking
    assert put_targets(N, set(N), lambda n: True) == N  # all have it: all nodes
    assert put_targets(N, set(), lambda n: True) == N


def test_offer_already_have_everywhere() -> None:
    got = [NodeResult("n1", already=True), NodeResult("n2", already=True, plus=(C,))]
    assert offer_answer(C, 4, got) == AlreadyHavePlus(("n1", "n2"))
    assert offer_answer(C, 1, got) == AlreadyHave()
    # one target wants data: PUT-FROM, and the already-haves are not reported
    assert offer_answer(C, 4, [*got, NodeResult("n3")]) is None
    # an unreachable target does not stop ALREADY-HAVE of the others
    down = NodeResult("n3", error="unreachable", reached=False)
    assert offer_answer(C, 4, [*got, down]) == AlreadyHavePlus(("n1", "n2"))


def test_put_answer_lists_only_what_was_stored() -> None:
    res = [NodeResult("n1", ok=True), NodeResult("n2", error="disk full"),
           NodeResult("n3", error="unreachable", reached=False)]  # fmt: skip
    assert put_answer(C, 4, res) == SuccessPlus(("n1",))  # even a single UUID (5.6 step 6)
    assert put_answer(C, 1, res) == Success()
    assert put_answer(C, 4, res[1:]) == Failure()
    # a node's own -PLUS (another gateway) is passed on, the cluster UUID never
    assert collected(C, [NodeResult("g2", ok=True, plus=(C, "n4"))]) == ("g2", "n4")


def test_remove_answers_follow_the_table() -> None:
    """5.7: all ok, partial (an unreachable node counts as failed), none, no nodes."""
    ok = [NodeResult(n, ok=True) for n in N]
    assert remove_answer(C, 4, ok) == SuccessPlus(tuple(N))
    assert remove_answer(C, 1, ok) == Success()
    partial = [*ok[:2], NodeResult("n3", error="unreachable", reached=False)]
    assert remove_answer(C, 4, partial) == FailurePlus(("n1", "n2"))
    assert remove_answer(C, 1, partial) == Error("unreachable")
    refused = [NodeResult(n) for n in N]
    assert remove_answer(C, 4, refused) == Failure()
    assert remove_answer(C, 4, [NodeResult("n1", error="content is locked")]) == Error(
        "content is locked")  # fmt: skip
    # a FAILURE-PLUS from a node still reports what it removed elsewhere
    assert remove_answer(C, 4, [NodeResult("g2", plus=("n4",))]) == FailurePlus(("n4",))
    assert remove_answer(C, 4, []) == Failure()
    # only the cluster's own UUID collected: no -PLUS form
    assert remove_answer(C, 4, [NodeResult(C, ok=True)]) == Success()
