"""cluster.log and proxy.log parsing (core.repo.clusters), on logs real git-annex wrote.

The logs below were written by git-annex 10.20261026 (``initcluster``,
``updatecluster``, a union merge of two gateways' branches), spec clusters.md 2.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.repo import clusters as c

CLUSTER = "ac65f247-cf26-81e1-8d32-7ed136e64be1"
GW = "4fba39f6-8686-40b5-84f7-c18233556d4e"
N1, N2, N3 = ("694f9db8-34a4-4aa5-b7ad-0abd68b55438", "0848bc0b-886b-42e8-90e9-742b68341b6d",
              "b294b656-eb1e-4d70-9fb9-feccc3adb00e")  # fmt: skip
EXTRA = "c8a3354b-3666-4672-bbe3-f0d0406cf545"

# written by `git annex updatecluster` in a gateway with three nodes
CLUSTER_LOG = f"1796566874s {CLUSTER} {N2} {N1} {N3}\n".encode()
PROXY_LOG = (f"1796566874s {GW} {N2}:node2 {N1}:node1 {CLUSTER}:mycluster {N3}:node3 "
             f"{EXTRA}:extra\n").encode()  # fmt: skip
# spec 2: the same cluster twice after a union merge; the later line wins
MERGED = (b"1795288271s ac40b16a-4075-8b45-9ea1-c98e69aae4c7 4b1b7bd4-1 53f3fff7-2\n"
          b"1795288341s ac40b16a-4075-8b45-9ea1-c98e69aae4c7 4b1b7bd4-1 53f3fff7-2 658e7bce-3\n")


def test_cluster_uuid_test_is_the_two_byte_comparison() -> None:
    assert c.is_cluster_uuid(CLUSTER)
    assert not c.is_cluster_uuid(GW)
    assert not c.is_cluster_uuid("ac65f247-cf26-41e1-8d32-7ed136e64be1")  # v4 starting "ac"
    assert not c.is_cluster_uuid("ab65f247-cf26-81e1-8d32-7ed136e64be1")
    assert c.is_cluster_uuid("ac3456789012348")  # no other structure is checked
    assert not c.is_cluster_uuid("ac") and not c.is_cluster_uuid(None)


@given(st.uuids(version=4))
def test_new_cluster_uuids_pass_the_test_and_v4_never_does(u: object) -> None:
    assert c.is_cluster_uuid(c.new_cluster_uuid(str(u)))
    assert not c.is_cluster_uuid(str(u))


def test_cluster_log_from_git_annex() -> None:
    got = c.parse_cluster_log(CLUSTER_LOG)
    assert got.nodes == {CLUSTER: frozenset({N1, N2, N3})}
    assert got.clusters_of(N1) == {CLUSTER}
    assert got.with_clusters({N1, EXTRA}) == {N1, EXTRA, CLUSTER}
    assert got.with_clusters({EXTRA}) == {EXTRA}


def test_union_merged_lines_newest_wins() -> None:
    got = c.parse_cluster_log(MERGED)
    assert got.nodes["ac40b16a-4075-8b45-9ea1-c98e69aae4c7"] == {"4b1b7bd4-1", "53f3fff7-2",
                                                                 "658e7bce-3"}  # fmt: skip
    tie = MERGED.replace(b"1795288341s", b"1795288271s")
    assert len(c.parse_cluster_log(tie).nodes["ac40b16a-4075-8b45-9ea1-c98e69aae4c7"]) == 3


def test_empty_cluster_non_cluster_keys_and_dead_nodes() -> None:
    blob = (f"1795288457s ac0811e3-1b69-8e0a-a604-8de8d6402e36 \n"
            f"1795288457s {GW} {N1}\n"
            f"1795288457s {CLUSTER} {N1} {N2}\n"
            "garbage line\n").encode()  # fmt: skip
    got = c.parse_cluster_log(blob, dead=[N2])
    assert got.nodes == {"ac0811e3-1b69-8e0a-a604-8de8d6402e36": frozenset(),
                         CLUSTER: frozenset({N1})}  # fmt: skip
    assert got.with_clusters({N2}) == {N2}  # a dead node does not make the cluster have it


def test_cluster_log_written_as_git_annex_writes_it() -> None:
    assert c.change_cluster_log(None, CLUSTER, {N3, N1, N2}, 1796566874) == CLUSTER_LOG
    empty = c.change_cluster_log(None, CLUSTER, (), 5)
    assert empty == f"5s {CLUSTER} \n".encode()  # the trailing space (2.1)
    assert c.parse_cluster_log(empty).nodes == {CLUSTER: frozenset()}
    again = c.change_cluster_log(CLUSTER_LOG, CLUSTER, {N1}, 1796566874)
    assert again == f"1796566875s {CLUSTER} {N1}\n".encode()  # clock skew: previous + 1


def test_proxy_log_from_git_annex() -> None:
    got = c.parse_proxy_log(PROXY_LOG)
    assert got == {GW: frozenset({c.Proxied(N1, "node1"), c.Proxied(N2, "node2"),
                                  c.Proxied(N3, "node3"), c.Proxied(CLUSTER, "mycluster"),
                                  c.Proxied(EXTRA, "extra")})}  # fmt: skip
    assert c.change_proxy_log(None, GW, got[GW], 1796566874) == PROXY_LOG


def test_proxy_names_git_would_not_take_are_dropped() -> None:
    blob = f"1s {GW} {N1}:ok.name {N2}:-dash {N3}:.dot {EXTRA}:bad/slash nocolon {N1}:\n"
    got = c.parse_proxy_log(blob.encode())
    assert got == {GW: frozenset({c.Proxied(N1, "ok.name")})}


def test_same_uuid_under_two_names() -> None:
    got = c.parse_proxy_log(f"1s {GW} {N1}:n1 {N1}:n2\n".encode())
    assert got[GW] == {c.Proxied(N1, "n1"), c.Proxied(N1, "n2")}


def test_clusters_are_never_copies() -> None:
    assert c.count_copies([CLUSTER, N1, N2, N1]) == 2


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_skip(blob: bytes) -> None:
    c.parse_cluster_log(blob)
    c.parse_proxy_log(blob)
