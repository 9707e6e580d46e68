"""annexsync as the cluster gateway of real git-annex clients (clusters.md 5, 7, 13.2).

The gateway repository and its three nodes are set up with real git-annex
(``cluster_support``); the clients are real git-annex over the fake ssh,
with ``remote.origin.annex-shell = annexsync``, so every ``p2pstdio``
(the cluster's included) is served by our ``annexsync p2pstdio``, and we
reach the nodes with our own ``p2pstdio``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import RemoteRefused
from core.p2p import Payload, client
from core.p2p.events import PayloadEnd
from core.p2p.gateway import ClusterTarget, GatewaySession, Node, cluster_target
from core.p2p.machine import server as server_machine
from core.p2p.messages import (
    AlreadyHave,
    AlreadyHavePlus,
    AuthSuccess,
    Bypass,
    CheckPresent,
    Data,
    Error,
    Failure,
    Get,
    GetTimestamp,
    LockContent,
    NotifyChange,
    Put,
    PutFrom,
    Remove,
    RemoveBefore,
    Success,
    SuccessPlus,
    Timestamp,
    Valid,
    Version,
)
from core.p2p.remote import P2PClient
from core.p2p.runtime import Channel
from core.p2p.serving import ServedRepo
from core.p2p.transport import Link, open_subprocess
from core.repo.key import Key
from core.repo.repository import AnnexRepo
from tests.conftest import annex, git, run
from tests.integration.cluster_support import (
    NODES,
    Gateway,
    add_file,
    built_gateway,
    clone_client,
    content_path,
    copy_get_drop,
    fsck_all,
    logged_lines,
)
from tests.integration.test_p2p_support import RawPeer, joined

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with built_gateway(tmp_path_factory, "ours", ssh=True) as g:
        yield g


def _client(g: Gateway, where: Path) -> Path:
    c = clone_client(g, where, "ssh", ours=False)
    git(c, "config", "remote.origin.annex-shell", "annexsync")
    return c


def _gateway_lines(g: Gateway, key: str) -> dict[str, str]:
    return logged_lines(g.gw, key)


def test_copy_get_drop_through_our_gateway(gateway: Gateway, tmp_path: Path) -> None:
    """13.2-2/4/5: fanout to every node, logs on both sides, get back, drop from all."""
    g = gateway
    client = _client(g, tmp_path / "c")
    copy_get_drop(g, client, 'origin-mycluster')


def _status(out: str) -> bool:
    return bool(json.loads(out.splitlines()[-1])["success"])


def test_node_down_and_node_failing_mid_put(gateway: Gateway, tmp_path: Path) -> None:
    """7 done better: the other nodes complete, answers and logs say what happened.

    node1 is moved away (unreachable), node3 refuses the PUT after taking the
    data (``annex.diskreserve`` too large: PUT-FROM, DATA, then FAILURE).
    """
    g = gateway
    client = _client(g, tmp_path / "c")
    me = git(client, "config", "annex.uuid").strip()
    u1, u2, u3 = (g.uuids[n] for n in NODES)
    had = add_file(client, "had.txt")
    annex(client, "copy", "-q", "--to", "origin-mycluster", "had.txt")  # on all three
    key = add_file(client, "new.txt")
    away = g.root / "node1.away"
    (g.root / "node1").rename(away)
    git(g.root / "node3", "config", "annex.diskreserve", "1000000G")
    try:
        annex(client, "copy", "-q", "--to", "origin-mycluster", "new.txt")
        assert logged_lines(client, key) == {me: "1", u2: "1"}
        assert _gateway_lines(g, key) == {u2: "1"}
        assert content_path(g.root / "node3", key) is None

        # get falls back from node1 (first in cost order, unreachable) to node2
        annex(client, "drop", "-q", "--force", "had.txt")
        annex(client, "get", "-q", "--from", "origin-mycluster", "had.txt")
        assert content_path(client, had) is not None

        # a partial drop: FAILURE-PLUS of what went; both sides log exactly that
        out = annex(client, "drop", "--json", "--from", "origin-mycluster", "had.txt", check=False)
        assert not _status(out)
        assert logged_lines(client, had) == {me: "1", u1: "1", u2: "0", u3: "0"}
        assert _gateway_lines(g, had) == {u1: "1", u2: "0", u3: "0"}
    finally:
        away.rename(g.root / "node1")
        git(g.root / "node3", "config", "--unset", "annex.diskreserve")
    assert content_path(g.root / "node1", had) is not None  # it was never touched
    fsck_all(g, client)


def _peer(g: Gateway, target: str, version: int) -> RawPeer:
    peer = RawPeer(["annexsync", "p2pstdio", str(g.gw), str(uuid.uuid4()), "--uuid", target])
    peer.conn = client(max_version=version)
    assert peer.until_our_turn() == [AuthSuccess(target)]
    assert peer.request(Version(version)) == [Version(version)]
    return peer


def _content() -> tuple[Key, bytes]:
    data = f"raw {uuid.uuid4()}\n".encode()
    return Key.parse(f"SHA256E-s{len(data)}--{hashlib.sha256(data).hexdigest()}.txt"), data


def test_raw_protocol_answers(gateway: Gateway) -> None:
    """13.2-7: the exchanges of 5.5-5.10, v4 and v1."""
    g = gateway
    cluster, nodes = g.uuids["mycluster"], tuple(g.uuids[n] for n in NODES)
    key, data = _content()
    peer = _peer(g, cluster, 4)
    try:
        peer.write(Bypass(("someone",)))  # no reply
        assert peer.request(Put(b"r.txt", key)) == [PutFrom(0)]
        assert peer.request(Data(len(data)), Payload(data), Valid()) == [SuccessPlus(nodes)]
        assert peer.request(Put(b"r.txt", key)) == [AlreadyHavePlus(nodes)]
        assert peer.request(CheckPresent(key)) == [Success()]
        assert joined(peer.request(Get(3, b"r.txt", key))) == [
            Data(len(data) - 3), Payload(data[3:]), PayloadEnd(True)]  # fmt: skip
        peer.write(Success())
        assert peer.request(LockContent(key)) == [Failure()]  # 5.9
        assert peer.request(Remove(key)) == [SuccessPlus(nodes)]
        assert peer.request(CheckPresent(key)) == [Failure()]  # the log says nowhere
        assert peer.request(Get(0, b"r.txt", key)) == [Data(0), PayloadEnd(False)]
        peer.write(Failure())
        assert peer.request(NotifyChange()) == [Error("protocol error")]  # 5.10
        assert peer.close() == 1
    finally:
        peer.proc.kill()
    assert _gateway_lines(g, str(key)) == dict.fromkeys(nodes, "0")

    peer = _peer(g, cluster, 1)  # below v2: no lists (5.6, 5.7)
    try:
        assert peer.request(Put(b"r.txt", key)) == [PutFrom(0)]
        assert peer.request(Data(len(data)), Payload(data), Valid()) == [Success()]
        assert peer.request(Put(b"r.txt", key)) == [AlreadyHave()]
        assert peer.request(Remove(key)) == [Success()]
        assert peer.close() == 0
    finally:
        peer.proc.kill()


def test_remove_before_needs_a_gettimestamp_first(gateway: Gateway) -> None:
    """5.8 done safer: a REMOVE-BEFORE deadline is in the gateway's clock, and
    only the connection's last GETTIMESTAMP tells each node's.  Without one no
    node is asked (git-annex would pass the deadline on unchanged, a time in
    no node's clock) and the content stays; after one, every node removes."""
    g = gateway
    cluster, nodes = g.uuids["mycluster"], tuple(g.uuids[n] for n in NODES)
    key, data = _content()
    peer = _peer(g, cluster, 4)
    try:
        assert peer.request(Put(b"t.txt", key)) == [PutFrom(0)]
        assert peer.request(Data(len(data)), Payload(data), Valid()) == [SuccessPlus(nodes)]
        assert peer.request(RemoveBefore(10**12, key)) == [
            Error("REMOVE-BEFORE without its GETTIMESTAMP")]
        for n in NODES:
            assert content_path(g.root / n, str(key)) is not None, n
        (stamp,) = peer.request(GetTimestamp())
        assert isinstance(stamp, Timestamp)
        assert peer.request(RemoveBefore(stamp.timestamp + 600, key)) == [SuccessPlus(nodes)]
        assert peer.close() == 0
    finally:
        peer.proc.kill()
    for n in NODES:
        assert content_path(g.root / n, str(key)) is None, n
    assert _gateway_lines(g, str(key)) == dict.fromkeys(nodes, "0")


def test_notifychange_to_a_proxied_repository_is_a_protocol_error(gateway: Gateway) -> None:
    """5.10 for a proxied remote (``extra``, served as it is): ``ERROR protocol
    error`` and exit 1, as git-annex's proxy answers (not "not available")."""
    peer = _peer(gateway, gateway.uuids["extra"], 4)
    try:
        assert peer.request(NotifyChange()) == [Error("protocol error")]
        assert peer.close() == 1
    finally:
        peer.proc.kill()


def test_unknown_uuid_refused(gateway: Gateway) -> None:
    """5.1: a UUID the gateway does not proxy (here, a cluster it is not a gateway of)."""
    other = "ac111111-2222-8333-4444-555555555555"
    out = run(["annexsync", "p2pstdio", str(gateway.gw), str(uuid.uuid4()), "--uuid", other],
              gateway.gw, check=False, input="")  # fmt: skip
    assert out.returncode == 1 and out.stdout == ""
    assert f"expected repository UUID {other}" in out.stderr


def test_another_repository_where_a_proxied_one_was_is_refused(gateway: Gateway) -> None:
    """5.1: ``extra``'s path now holds another repository (its UUID is not the
    one asked for): refused with both UUIDs, nothing served."""
    g = gateway
    extra, away = g.root / "extra", g.root / "extra.away"
    extra.rename(away)
    try:
        git(g.root, "init", "-q", str(extra))
        annex(extra, "init", "-q", "impostor")
        out = run(["annexsync", "p2pstdio", str(g.gw), str(uuid.uuid4()), "--uuid",
                   g.uuids["extra"]], g.gw, check=False, input="")  # fmt: skip
        assert out.returncode == 1 and out.stdout == ""
        assert (f"expected repository UUID {g.uuids['extra']} but found UUID "
                f"{git(extra, 'config', 'annex.uuid').strip()}") in out.stderr  # fmt: skip
    finally:
        run(["rm", "-rf", str(extra)], g.root)
        away.rename(extra)


def test_a_remote_no_longer_proxied_is_not_served(gateway: Gateway) -> None:
    """5.1: proxy.log still lists ``extra`` and node1, but git config no longer
    has the gateway proxy them (``annex-proxy`` off; node1 a node of a cluster
    this gateway is not): refused, as git-annex-shell refuses."""
    g = gateway

    def refused(name: str) -> None:
        out = run(["annexsync", "p2pstdio", str(g.gw), str(uuid.uuid4()), "--uuid",
                   g.uuids[name]], g.gw, check=False, input="")  # fmt: skip
        assert out.returncode == 1 and out.stdout == "", name
        assert f"not configured to proxy for repository {g.uuids[name]}" in out.stderr

    git(g.gw, "config", "remote.extra.annex-proxy", "false")
    git(g.gw, "config", "remote.node1.annex-cluster-node", "othercluster")
    try:
        refused("extra")
        refused("node1")
    finally:
        git(g.gw, "config", "remote.extra.annex-proxy", "true")
        git(g.gw, "config", "remote.node1.annex-cluster-node", "mycluster")
    assert _peer(g, g.uuids["extra"], 4).close() == 0  # served again


def test_proxied_nodes_lock_and_extra(gateway: Gateway, tmp_path: Path) -> None:
    """13.2-6/9: a drop proven by locking nodes through us; a proxied non-cluster remote."""
    g = gateway
    client = _client(g, tmp_path / "c")
    key = add_file(client, "p.txt")
    annex(client, "copy", "-q", "--to", "origin-mycluster", "p.txt")
    annex(client, "numcopies", "2")
    annex(client, "drop", "-q", "p.txt")  # locks two origin-node* (LOCKCONTENT through us)
    assert content_path(client, key) is None
    annex(client, "get", "-q", "p.txt")

    extra = g.uuids["extra"]
    annex(client, "copy", "-q", "--to", "origin-extra", "p.txt")
    assert content_path(g.root / "extra", key) is not None
    assert logged_lines(client, key)[extra] == "1"
    annex(client, "drop", "-q", "--force", "p.txt")
    annex(client, "get", "-q", "--from", "origin-extra", "p.txt")
    annex(client, "drop", "-q", "--from", "origin-extra", "p.txt")
    assert content_path(g.root / "extra", key) is None
    assert logged_lines(client, key)[extra] == "0"
    annex(client, "numcopies", "1")
    fsck_all(g, client)
    annex(g.root / "extra", "fsck", "-q")


def test_node_preferred_content_from_a_client_sync(gateway: Gateway, tmp_path: Path) -> None:
    """13.2-3: ``wanted origin-node3 nothing`` synced from a client steers the next PUT."""
    g = gateway
    client = _client(g, tmp_path / "c")
    key = add_file(client, "w.txt")
    u1, u2, u3 = (g.uuids[n] for n in NODES)
    annex(client, "wanted", "origin-node3", "nothing")
    try:
        annex(client, "sync", "-q", "--no-content", "origin")
        annex(client, "copy", "-q", "--to", "origin-mycluster", "w.txt")
        me = git(client, "config", "annex.uuid").strip()  # merged from the client's sync
        assert _gateway_lines(g, key) == {me: "1", u1: "1", u2: "1"}
        assert content_path(g.root / "node3", key) is None
    finally:
        annex(client, "wanted", "origin-node3", "anything")
        annex(client, "sync", "-q", "--no-content", "origin")
    fsck_all(g, client)


@pytest.mark.parametrize("warm", [False, True], ids=["nodes-opened-by-this-put", "nodes-open"])
def test_node_connection_dies_mid_put(gateway: Gateway, warm: bool) -> None:
    """A node that ends its session in the middle of DATA (its transfer lock is
    held elsewhere, so its p2pstdio exits at DATA) leaves the PUT; the others
    complete and the answer and the gateway's log name only them.  ``warm``:
    a first PUT opened every node, so this one is sent to each in turn and
    the replies read in turn (``_exchange_each``), not by a task per node."""
    g = gateway
    u1, u2, u3 = (g.uuids[n] for n in NODES)
    key, data = _content()
    with AnnexRepo.open(g.root / "node3") as node3, node3.objects.incoming(key, g.uuids["gw"]) as inc:
        inc.open()  # git-annex's transfer lock on node3, as a second transfer holds it
        peer = _peer(g, g.uuids["mycluster"], 4)
        try:
            if warm:
                first, first_data = _content()
                assert peer.request(Put(b"w.txt", first)) == [PutFrom(0)]
                assert peer.request(Data(len(first_data)), Payload(first_data),
                                    Valid()) == [SuccessPlus((u1, u2, u3))]  # fmt: skip
            assert peer.request(Put(b"d.txt", key)) == [PutFrom(0)]
            assert peer.request(Data(len(data)), Payload(data), Valid()) == [SuccessPlus((u1, u2))]
            # the session goes on without node3
            assert peer.request(CheckPresent(key)) == [Success()]
            assert peer.close() == 0
        finally:
            peer.proc.kill()
    assert _gateway_lines(g, str(key)) == {u1: "1", u2: "1"}
    assert content_path(g.root / "node3", str(key)) is None
    for n in ("node1", "node2"):
        annex(g.root / n, "fsck", "-q", "--key", str(key))


def test_a_silent_node_costs_one_bounded_wait(gateway: Gateway, tmp_path: Path) -> None:
    """A node that never greets (a process that just sleeps) is given up after
    ``open_timeout`` (5 s: the real nodes are Python processes that must greet
    within it too, on a loaded machine); the PUT completes on the others."""
    g = gateway
    u1, u2, u3 = (g.uuids[n] for n in NODES)
    key, data = _content()
    source = tmp_path / "src"
    source.write_bytes(data)

    async def scenario() -> tuple[str, ...]:
        a, b = socket.socketpair()
        sr, sw = await asyncio.open_connection(sock=a)
        cr, cw = await asyncio.open_connection(sock=b)
        with AnnexRepo.open(g.gw) as repo:
            served = ServedRepo(repo)
            found = cluster_target(repo, g.uuids["mycluster"])
            assert found is not None
            silent = Node(u3, "node3", lambda: open_subprocess(["sleep", "30"]))
            target = ClusterTarget(found.uuid, (*found.nodes[:2], silent))
            session = GatewaySession(served, Channel(server_machine(), sr, sw, peer="client"),
                                     target, open_timeout=5.0)  # fmt: skip
            async with asyncio.timeout(20), asyncio.TaskGroup() as tg:
                tg.create_task(session.run(greet=True))
                c = await P2PClient.connect(Link(cr, cw, "gateway"), our_uuid=str(uuid.uuid4()),
                                            expect_uuid=target.uuid)  # fmt: skip
                try:
                    return await c.put(key, source, lambda n: None, b"s.txt")
                finally:
                    await c.aclose()
            served.flush()

    assert asyncio.run(scenario()) == (u1, u2)
    assert _gateway_lines(g, str(key)) == {u1: "1", u2: "1"}


def test_a_put_no_node_takes_is_refused_in_words_and_the_session_goes_on(
        gateway: Gateway, tmp_path: Path) -> None:
    """Every node silent: FAILURE is no reply to PUT (the gateway used to break its
    own session sending it); one ERROR line names each node's reason, nothing is
    logged, and the same session still answers the next request."""
    g = gateway
    key, data = _content()
    source = tmp_path / "src"
    source.write_bytes(data)

    async def scenario() -> tuple[str, bool]:
        a, b = socket.socketpair()
        sr, sw = await asyncio.open_connection(sock=a)
        cr, cw = await asyncio.open_connection(sock=b)
        with AnnexRepo.open(g.gw) as repo:
            found = cluster_target(repo, g.uuids["mycluster"])
            assert found is not None
            silent = tuple(Node(n.uuid, n.name, lambda: open_subprocess(["sleep", "30"]))
                           for n in found.nodes)
            session = GatewaySession(ServedRepo(repo), Channel(server_machine(), sr, sw,
                                     peer="client"), ClusterTarget(found.uuid, silent),
                                     open_timeout=0.5)  # fmt: skip
            async with asyncio.timeout(20), asyncio.TaskGroup() as tg:
                tg.create_task(session.run(greet=True))
                c = await P2PClient.connect(Link(cr, cw, "gateway"), our_uuid=str(uuid.uuid4()),
                                            expect_uuid=found.uuid)  # fmt: skip
                try:
                    with pytest.raises(RemoteRefused) as refused:
                        await c.put(key, source, lambda n: None, b"s.txt")
                    return str(refused.value), await c.check_present(key)
                finally:
                    await c.aclose()

    words, present = asyncio.run(scenario())
    assert "no cluster node took the content" in words
    assert all(f"{g.uuids[n]}: unreachable" in words for n in NODES), words
    assert present is False
    assert _gateway_lines(g, str(key)) == {}


def test_drop_from_cluster_with_remove_before(gateway: Gateway, tmp_path: Path) -> None:
    """13.2-5, the REMOVE-BEFORE variant: the client proves the copy on
    origin-extra by a lock through us, then GETTIMESTAMP + REMOVE-BEFORE to the
    cluster, which we translate to each node's clock (5.8)."""
    g = gateway
    client = _client(g, tmp_path / "c")
    key = add_file(client, "t.txt")
    annex(client, "copy", "-q", "--to", "origin-mycluster", "t.txt")
    annex(client, "copy", "-q", "--to", "origin-extra", "t.txt")
    annex(client, "drop", "-q", "t.txt")  # the local copy goes: extra and nodes remain
    out = annex(client, "drop", "--from", "origin-mycluster", "t.txt")
    assert "(locking origin-extra...) ok" in out, out
    nodes = g.node_uuids()
    assert _gateway_lines(g, key) == dict.fromkeys(nodes, "0")
    for n in NODES:
        assert content_path(g.root / n, key) is None, n
    assert content_path(g.root / "extra", key) is not None
    fsck_all(g, client)
