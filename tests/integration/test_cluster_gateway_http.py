"""``annexsync p2phttp`` as the cluster gateway of real git-annex clients over HTTP
(clusters.md 5, 7, 10; issue 17).

The gateway repository and its three nodes are set up with real git-annex
(``cluster_support``); our p2phttp serves the gateway, the clients are real
git-annex with ``remote.origin.annexUrl`` pointing at it, and we reach the
nodes with our own ``p2pstdio``.  Each test starts its own server, so no
pooled node connection outlives a test.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import annex, git
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
from tests.integration.test_p2phttp_support import CLIENT_UUID, our_p2phttp

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with built_gateway(tmp_path_factory, "http") as g:
        yield g


@pytest.fixture
def served(gateway: Gateway) -> Iterator[Gateway]:
    """Our p2phttp serving the gateway for one test (``gateway.port`` set)."""
    with our_p2phttp(gateway.gw, "--wideopen", "-J4") as server:
        gateway.port = server.port
        yield gateway


def _client(g: Gateway, where: Path) -> Path:
    return clone_client(g, where, "http", ours=False)


def _success(out: str) -> bool:
    return bool(json.loads(out.splitlines()[-1])["success"])


def test_copy_get_drop_over_http(served: Gateway, tmp_path: Path) -> None:
    """Fan-out to every node, logs on both sides as a git-annex gateway
    writes them (clusters.md 2.4), get back, drop from every node."""
    g = served
    client = _client(g, tmp_path / "c")
    copy_get_drop(g, client, 'origin-mycluster')


def test_copy_get_drop_with_clusterjobs_one(gateway: Gateway, tmp_path: Path) -> None:
    """``--clusterjobs 1``: every request asks the nodes in groups of one, one
    group after the other; the outcome is the same as all at once."""
    with our_p2phttp(gateway.gw, "--wideopen", "-J2", "--clusterjobs", "1") as server:
        gateway.port = server.port
        copy_get_drop(gateway, _client(gateway, tmp_path / "c"), "origin-mycluster")


def test_node_down_and_node_failing_mid_put_over_http(served: Gateway, tmp_path: Path) -> None:
    """clusters.md 7 done better over HTTP: node1 moved away (unreachable),
    node3 refusing the data (``annex.diskreserve``: PUT-FROM, DATA, FAILURE);
    node2 completes; answers and both logs say exactly that."""
    g = served
    client = _client(g, tmp_path / "c")
    me = git(client, "config", "annex.uuid").strip()
    u1, u2, u3 = (g.uuids[n] for n in NODES)
    had = add_file(client, "had.txt")
    annex(client, "copy", "-q", "--to", "origin-mycluster", "had.txt")  # on all three
    key = add_file(client, "new.txt")
    away = g.root / "node1.away"
    (g.root / "node1").rename(away)
    git(g.root / "node3", "config", "annex.diskreserve", "1000000G")
    try:  # a server started now: node configuration is read when a node is first opened
        with our_p2phttp(g.gw, "--wideopen", "-J4") as fresh:
            git(client, "config", "remote.origin.annexurl",
                f"annex+http://127.0.0.1:{fresh.port}/git-annex/")  # fmt: skip
            annex(client, "copy", "-q", "--to", "origin-mycluster", "new.txt")
            assert logged_lines(client, key) == {me: "1", u2: "1"}
            assert logged_lines(g.gw, key) == {u2: "1"}
            assert content_path(g.root / "node3", key) is None

            # get falls back from node1 (first in cost order, unreachable) to node2
            annex(client, "drop", "-q", "--force", "had.txt")
            annex(client, "get", "-q", "--from", "origin-mycluster", "had.txt")
            assert content_path(client, had) is not None

            # a partial drop fails, and both sides log exactly what went
            out = annex(client, "drop", "--json", "--from", "origin-mycluster", "had.txt",
                        check=False)  # fmt: skip
            assert not _success(out)
            assert logged_lines(g.gw, had) == {u1: "1", u2: "0", u3: "0"}
            assert logged_lines(client, had) == {me: "1", u1: "1", u2: "0", u3: "0"}
    finally:
        away.rename(g.root / "node1")
        git(g.root / "node3", "config", "--unset", "annex.diskreserve")
    assert content_path(g.root / "node1", had) is not None  # it was never touched
    fsck_all(g, client)


def _post(g: Gateway, target: str, path: str, body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    url = f"http://127.0.0.1:{g.port}/git-annex/{target}/{path}"
    req = urllib.request.Request(url, data=body if body is not None else b"",
                                 headers=headers or {}, method="POST")  # fmt: skip
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, dict(resp.headers), resp.read()


def _get(g: Gateway, target: str, path: str) -> tuple[dict[str, str], bytes]:
    url = f"http://127.0.0.1:{g.port}/git-annex/{target}/{path}"
    with urllib.request.urlopen(url, timeout=30) as resp:
        return dict(resp.headers), resp.read()


class _Raw:
    """Raw API requests to the cluster of ``g`` about one new small file."""

    def __init__(self, g: Gateway) -> None:
        self.g = g
        self.cluster = g.uuids["mycluster"]
        self.nodes = [g.uuids[n] for n in NODES]
        self.data = f"raw {uuid.uuid4()}\n".encode()
        self.key = f"SHA256E-s{len(self.data)}--{hashlib.sha256(self.data).hexdigest()}.txt"
        self.q = f"key={self.key}&clientuuid={CLIENT_UUID}"

    def post(self, path: str, body: bytes | None = None, **headers: str) -> object:
        status, _, out = _post(self.g, self.cluster, path, body, headers)
        assert status == 200
        return json.loads(out)


def test_raw_http_answers(served: Gateway) -> None:
    """clusters.md 10's table, request by request, against our gateway."""
    g = served
    raw = _Raw(g)
    cluster, nodes, data, key, q, post = raw.cluster, raw.nodes, raw.data, raw.key, raw.q, raw.post

    assert post(f"v4/checkpresent?{q}") == {"present": False}
    assert _get(g, cluster, f"v4/key/{key}?clientuuid={CLIENT_UUID}")[1] == b""
    assert post(f"v4/putoffset?{q}") == {"offset": 0}
    short = {"X-git-annex-data-length": str(len(data))}
    # a body cut short (another key: its nodes may still be closing the cut
    # transfer, whose lock then refuses a retry for a moment, as git-annex's do)
    cut = f"SHA256E-s{len(data)}--{hashlib.sha256(data + b'x').hexdigest()}.txt"
    assert post(f"v4/put?key={cut}&clientuuid={CLIENT_UUID}", data[:-1], **short) == {
        "plusuuids": [], "stored": False}  # fmt: skip
    assert post(f"v4/put?{q}&associatedfile=r.txt", data, **short) == {
        "plusuuids": nodes, "stored": True}  # fmt: skip
    assert post(f"v4/putoffset?{q}") == {"alreadyhave": True, "plusuuids": nodes}
    assert post(f"v1/putoffset?{q}") == {"alreadyhave": True}
    assert post(f"v4/checkpresent?{q}") == {"present": True}
    headers, body = _get(g, cluster, f"v4/key/{key}?clientuuid={CLIENT_UUID}&offset=3")
    assert body == data[3:] and headers["X-git-annex-data-length"] == str(len(data) - 3)
    assert post(f"v4/lockcontent?{q}") == {"locked": False}
    stamp = post(f"v4/gettimestamp?clientuuid={CLIENT_UUID}")
    assert isinstance(stamp, dict) and isinstance(stamp["timestamp"], int)
    expired = stamp["timestamp"] - 1
    assert post(f"v4/remove-before?{q}&timestamp={expired}") == {"plusuuids": [],
                                                                  "removed": False}  # fmt: skip
    assert post(f"v4/checkpresent?{q}") == {"present": True}
    assert post(f"v4/remove?{q}") == {"plusuuids": nodes, "removed": True}
    assert post(f"v1/remove?{q}") == {"removed": True}
    assert logged_lines(g.gw, key) == dict.fromkeys(nodes, "0")
    for n in NODES:
        assert content_path(g.root / n, key) is None
    extra = g.uuids["extra"]  # a proxied local repository, served as it is
    assert json.loads(_post(g, extra, f"v4/checkpresent?{q}")[2]) == {"present": False}
    other = "ac111111-2222-8333-4444-555555555555"  # a cluster we are not a gateway of
    with pytest.raises(urllib.error.HTTPError) as e:
        _post(g, other, f"v4/checkpresent?{q}")
    assert e.value.code == 404


@contextlib.contextmanager
def _corrupted(g: Gateway, key: str, offsets: list[int]) -> Iterator[None]:
    """Every node's copy of ``key`` with the bytes at ``offsets`` flipped (same
    size, same file), put right again at the end."""
    saved = []
    for n in NODES:
        path = content_path(g.root / n, key)
        assert path is not None, n
        saved.append((path, path.read_bytes(), path.stat().st_mode))

    def write(path: Path, data: bytes, mode: int) -> None:
        path.chmod(mode | 0o200)
        path.write_bytes(data)
        path.chmod(mode)

    try:
        for path, data, mode in saved:
            bad = bytearray(data)
            for o in offsets:
                bad[o] ^= 0xFF
            write(path, bytes(bad), mode)
        yield
    finally:
        for path, data, mode in saved:
            write(path, data, mode)


def _partial(client: Path, key: str) -> Path:
    return client / ".git" / "annex" / "tmp" / key


def _only_in_the_cluster(g: Gateway, where: Path, name: str, data: bytes) -> tuple[Path, str]:
    """A client whose file ``name`` (``data``) went to the cluster and was dropped here."""
    client = _client(g, where)
    key = add_file(client, name, data)
    annex(client, "copy", "-q", "--to", "origin-mycluster", name)
    annex(client, "drop", "-q", "--force", name)
    return client, key


def test_get_resumed_from_an_offset(served: Gateway, tmp_path: Path) -> None:
    """A git-annex client resuming an interrupted get asks the ``key`` endpoint
    from the size of its partial file (p2phttp.md 5.2, ``offset``); the cluster
    path relays from there.  Every node's copy is wrong in bytes the client
    already holds, so only a transfer that starts at the offset verifies."""
    g = served
    data = os.urandom(300_000)
    client, key = _only_in_the_cluster(g, tmp_path / "c", "r.bin", data)
    half = len(data) // 2
    _partial(client, key).parent.mkdir(parents=True, exist_ok=True)
    _partial(client, key).write_bytes(data[:half])  # an interrupted get left this
    with _corrupted(g, key, [0, half - 1]):
        annex(client, "get", "-q", "--from", "origin-mycluster", "r.bin")
    assert (client / "r.bin").read_bytes() == data
    fsck_all(g, client)


def test_get_of_a_corrupted_copy_is_signalled_invalid(served: Gateway, tmp_path: Path) -> None:
    """A node whose copy is corrupted (same size): the gateway checks what it
    relays against the key and answers INVALID, so over HTTP the last byte is
    held back (p2phttp.md 5.2); the git-annex client keeps nothing, and gets
    the content once the copies are right again."""
    g = served
    data = os.urandom(100_000)
    client, key = _only_in_the_cluster(g, tmp_path / "c", "i.bin", data)
    cluster = g.uuids["mycluster"]
    with _corrupted(g, key, [len(data) // 2]):
        headers, body = _get(g, cluster, f"v4/key/{key}?clientuuid={CLIENT_UUID}")
        assert headers["X-git-annex-data-length"] == str(len(data))
        assert len(body) == len(data) - 1  # INVALID: the last byte held back
        out = annex(client, "get", "--json", "--from", "origin-mycluster", "i.bin", check=False)
        assert not _success(out), out
    assert content_path(client, key) is None
    assert not _partial(client, key).exists()  # nothing kept, not even for a resume
    annex(client, "get", "-q", "--from", "origin-mycluster", "i.bin")
    assert (client / "i.bin").read_bytes() == data
    fsck_all(g, client)


def test_a_put_from_past_its_open_offer_is_refused(served: Gateway) -> None:
    """A putoffset's open offer said "from 0"; a put of that key from offset 5
    (bytes no node holds) takes the offer over and is refused, with nothing
    kept at any node; a put from 0 after that stores the key everywhere."""
    g = served
    raw = _Raw(g)
    nodes, data, key, q, post = raw.nodes, raw.data, raw.key, raw.q, raw.post

    assert post(f"v4/putoffset?{q}") == {"offset": 0}
    assert post(f"v4/put?{q}&offset=5", data[5:],
                **{"X-git-annex-data-length": str(len(data) - 5)}) == {
        "plusuuids": [], "stored": False}  # fmt: skip
    for n in NODES:
        assert content_path(g.root / n, key) is None
        assert not (g.root / n / ".git" / "annex" / "tmp" / key).exists()
    assert post(f"v4/putoffset?{q}") == {"offset": 0}
    assert post(f"v4/put?{q}", data, **{"X-git-annex-data-length": str(len(data))}) == {
        "plusuuids": nodes, "stored": True}  # fmt: skip
    for n in NODES:
        assert content_path(g.root / n, key) is not None


def test_putoffset_probes_log_no_failure(gateway: Gateway, tmp_path: Path) -> None:
    """git-annex's client asks putoffset before each put: the gateway answers
    it with a PUT, which the put continues, or which every node agrees to
    abandon (DATA 0 + INVALID) when no put comes in time.  Their FAILUREs are
    that agreement, so the gateway's log stays quiet: a warning there means a
    node really failed."""
    g = gateway
    with our_p2phttp(g.gw, "--wideopen", "-J4") as server:
        g.port = server.port
        client = _client(g, tmp_path / "c")
        keys = [add_file(client, f"probe{i}.txt") for i in range(3)]
        annex(client, "copy", "-q", "--to", "origin-mycluster", ".")
        server.proc.terminate()
        server.proc.wait(30)
        assert server.proc.stderr is not None
        log = server.proc.stderr.read().decode()
    for key in keys:
        assert content_path(g.root / "node1", key) is not None
    assert "failed" not in log, log


def test_a_putoffset_offer_is_continued_by_its_put(gateway: Gateway, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """git-annex's client asks putoffset, then put, for every file: the put
    continues the PUT the putoffset opened, so each node is offered each key
    once, not twice (proxy's ``_Parked``).  An open offer no put comes for is
    abandoned once it is old: the nodes keep nothing of it, and a put of the
    key later opens a fresh one."""
    import asyncio

    from core.p2p import serving
    from core.p2phttp import proxy
    from core.p2phttp.auth import AuthPolicy
    from core.p2phttp.server import Settings
    from tests.integration.test_p2phttp_support import in_process

    g = gateway
    offered: list[str] = []
    offer = serving._offer

    def counted(repo: object, key: object, source: str) -> object:
        offered.append(str(key))
        return offer(repo, key, source)  # type: ignore[arg-type]

    monkeypatch.setattr(serving, "_offer", counted)
    cluster = g.uuids["mycluster"]

    async def main() -> None:
        settings = Settings(repositories=[g.gw], policy=AuthPolicy(wideopen=True), jobs=4)
        async with in_process(settings) as server:
            g.port = server.port
            client = await asyncio.to_thread(_client, g, tmp_path / "c")
            keys = [await asyncio.to_thread(add_file, client, f"o{i}.txt") for i in range(3)]
            await asyncio.to_thread(annex, client, "copy", "-q", "--to", "origin-mycluster", ".")
            assert sorted(offered) == sorted(keys * len(NODES))  # once per node, not twice
            for node in NODES:
                for key in keys:
                    assert content_path(g.root / node, key) is not None

            offered.clear()
            key = await asyncio.to_thread(add_file, client, "late.txt")
            q = f"key={key}&clientuuid={CLIENT_UUID}"
            _, _, out = await asyncio.to_thread(_post, g, cluster, f"v4/putoffset?{q}")
            assert json.loads(out) == {"offset": 0}
            park, proxy.PARK_SECONDS = proxy.PARK_SECONDS, 0.0
            try:
                await asyncio.to_thread(_post, g, cluster, f"v4/checkpresent?{q}")  # abandons it
            finally:
                proxy.PARK_SECONDS = park
            for node in NODES:
                partial = g.root / node / ".git" / "annex" / "tmp" / key
                assert not partial.exists()
                assert not list((g.root / node / ".git" / "annex" / "transfer").rglob(f"*{key}"))
            await asyncio.to_thread(annex, client, "copy", "-q", "--to", "origin-mycluster",
                                    "late.txt")  # fmt: skip
            assert sorted(offered) == [key] * (2 * len(NODES))  # the old offer, then a new one
            for node in NODES:
                assert content_path(g.root / node, key) is not None

    asyncio.run(main())
    fsck_all(g, _client(g, tmp_path / "check"))
