"""Our server in process: bad input, lock lifetime, and a bounded load test.

Bad input gets the right status, nothing partial or unverified lands under a
key, and the server keeps serving.  The load test sends thousands of requests
(with locks, cut uploads and dropped keeplocked connections among them) and
then checks that tasks, file descriptors and locks are back where they were.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import aiohttp
import pytest

from core.p2p.serving import COMMIT_LATEST
from core.p2phttp.auth import AuthPolicy, User, format_basic
from core.p2phttp.server import LOCKS, REPOS, Settings
from core.repo.key import Key
from core.repo.repository import AnnexRepo
from core.repo.state import location_log_path
from tests.integration.test_p2phttp_support import (
    CLIENT_UUID,
    fd_count,
    in_process,
    lookupkey,
    make_server_repo,
)

pytestmark = pytest.mark.interop  # make_server_repo runs git-annex

Q = f"clientuuid={CLIENT_UUID}"
DATA = os.urandom(200_000)
DKEY = f"SHA256E-s{len(DATA)}--{hashlib.sha256(DATA).hexdigest()}.bin"


@pytest.fixture
def served(tmp_path: Path) -> tuple[Path, str, str]:
    repo = tmp_path / "srv"
    uuid = make_server_repo(repo, {"a.txt": b"hello world\n"})
    return repo, uuid, lookupkey(repo, "a.txt")


async def _raw(port: int, request: bytes, read: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        if not read:
            return b""
        async with asyncio.timeout(30):
            return await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()


def _nothing_under(repo: Path, key: str) -> bool:
    with AnnexRepo.open(repo) as r:
        return not r.objects.has(Key.parse(key))


@pytest.mark.asyncio
async def test_bad_input(served: tuple[Path, str, str]) -> None:
    repo, uuid, k12 = served
    users = {"alice": User("alice", "pw")}
    settings = Settings(repositories=[repo], policy=AuthPolicy(users=users, authenv_http=True,
                                                               unauth_readonly=True))  # fmt: skip
    async with in_process(settings) as server, aiohttp.ClientSession() as s:
        base = f"http://127.0.0.1:{server.port}/git-annex/{uuid}"
        alice = {"Authorization": format_basic("alice", "pw")}

        async def status(method: str, url: str, **kw: object) -> int:
            async with s.request(method, url, **kw) as r:  # type: ignore[arg-type]
                await r.read()
                return r.status

        cases = {
            f"{base}/v4/checkpresent?key=..%2F..%2Fconfig&{Q}": 400,
            f"{base}/v4/checkpresent?key=SHA256E-s1--x%2F..%2F..&{Q}": 400,
            f"{base}/v4/checkpresent?key=SHA256E-s1--%0Aevil&{Q}": 400,
            f"{base}/v4/checkpresent?key=SHA256E-s01--x&{Q}": 400,
            f"{base}/v4/checkpresent?key=[YWJj&{Q}": 400,
            f"{base}/v4/checkpresent?key={'A' * 5000}--x&{Q}": 400,
            f"http://127.0.0.1:{server.port}/git-annex/nope/v4/checkpresent?key={k12}&{Q}": 404,
            f"http://127.0.0.1:{server.port}/git-annex/../../v4/checkpresent?key={k12}&{Q}": 404,
            f"{base}/v9/checkpresent?key={k12}&{Q}": 404,
            f"{base}/v99999999999/checkpresent?key={k12}&{Q}": 404,
            f"{base}/v4/remove-before?key={k12}&{Q}&timestamp=-1": 400,
            f"{base}/v4/remove-before?key={k12}&{Q}&timestamp=1_0": 400,
        }
        for url, want in cases.items():
            assert await status("POST", url) == want, url
        assert await status("GET", f"{base}/v4/key/..%2F..%2F..%2Fetc%2Fpasswd?{Q}") == 400
        assert await status("GET", f"{base}/key/%2E%2E") in (400, 404)  # the client may normalise
        # auth: wrong password, unknown scheme
        put = f"{base}/v4/put?key={DKEY}&{Q}"
        hdr = {"X-git-annex-data-length": str(len(DATA))}
        assert await status("POST", put, data=DATA,
                            headers={**hdr, "Authorization": format_basic("alice", "bad")}) == 403  # fmt: skip
        assert await status("POST", put, data=DATA, headers=hdr) == 401
        assert await status("POST", put, data=DATA,
                            headers={**hdr, "Authorization": "Digest x"}) == 400  # fmt: skip
        # wrong lengths: nothing under the key
        for body, length in ((DATA[:-1], len(DATA)), (DATA + b"x", len(DATA)),
                             (DATA[:-1] + b"x", len(DATA)), (DATA, len(DATA) + 5)):  # fmt: skip
            async with s.post(put, data=body,
                              headers={**alice, "X-git-annex-data-length": str(length)}) as r:  # fmt: skip
                assert r.status == 200
                assert (await r.json())["stored"] is False
            assert _nothing_under(repo, DKEY)
        assert await status("POST", put, data=DATA,
                            headers={**alice, "X-git-annex-data-length": "-5"}) == 400  # fmt: skip
        # a truncated chunked body: the connection drops mid-upload
        head = (f"POST /git-annex/{uuid}/v4/put?key={DKEY}&{Q} HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: {alice['Authorization']}\r\nX-git-annex-data-length: {len(DATA)}\r\n"
                "Transfer-Encoding: chunked\r\n\r\n").encode()  # fmt: skip
        await _raw(server.port, head + b"%x\r\n" % 70000 + DATA[:70000] + b"\r\n", read=False)
        # and a Content-Length body cut short
        head2 = (f"POST /git-annex/{uuid}/v4/put?key={DKEY}&{Q} HTTP/1.1\r\nHost: x\r\n"
                 f"Authorization: {alice['Authorization']}\r\nX-git-annex-data-length: {len(DATA)}\r\n"
                 f"Content-Length: {len(DATA)}\r\n\r\n").encode()  # fmt: skip
        await _raw(server.port, head2 + DATA[:1000], read=False)
        await asyncio.sleep(0.3)
        assert _nothing_under(repo, DKEY)
        async with s.post(f"{base}/v4/putoffset?key={DKEY}&{Q}", headers=alice) as r:
            offset = (await r.json())["offset"]
        assert 0 <= offset <= len(DATA)  # what earlier short bodies left
        async with s.post(f"{put}&offset={offset}", data=DATA[offset:],
                          headers={**alice, "X-git-annex-data-length": str(len(DATA) - offset)}) as r:  # fmt: skip
            assert (await r.json())["stored"] is True
        assert not _nothing_under(repo, DKEY)
        # garbage on the wire, then still serving
        await _raw(server.port, b"\x00\x01garbage\r\n\r\n")
        async with s.get(f"{base}/v4/key/{k12}?{Q}") as r:
            assert await r.read() == b"hello world\n"


@pytest.mark.asyncio
async def test_puts_are_journaled_before_the_reply_and_committed_while_serving(
        served: tuple[Path, str, str]) -> None:  # fmt: skip
    """Each stored key's line is in the journal (which git-annex reads) when
    the reply comes; the committer moves the lines into the branch once they
    settle, while the server still runs, in fewer commits than requests."""
    repo, uuid, _ = served
    datas = [os.urandom(1000) + bytes([i]) for i in range(6)]
    keys = [f"SHA256E-s{len(d)}--{hashlib.sha256(d).hexdigest()}.bin" for d in datas]
    settings = Settings(repositories=[repo], policy=AuthPolicy(wideopen=True), jobs=4)
    with AnnexRepo.open(repo) as r:
        tip = r.branch.tip()
    async with in_process(settings) as server, aiohttp.ClientSession() as s:
        base = f"http://127.0.0.1:{server.port}/git-annex/{uuid}/v4"
        for key, data in zip(keys, datas, strict=True):
            async with s.post(f"{base}/put?key={key}&{Q}", data=data,
                              headers={"X-git-annex-data-length": str(len(data))}) as resp:  # fmt: skip
                assert (await resp.json())["stored"] is True
            with AnnexRepo.open(repo) as r:  # the line is there for every reader
                assert uuid in r.state.locations(Key.parse(key))
        async with asyncio.timeout(COMMIT_LATEST + 20):
            while True:
                with AnnexRepo.open(repo) as r:
                    if not r.branch.journal_files():
                        break
                await asyncio.sleep(0.1)
        with AnnexRepo.open(repo) as r:
            commits, at = 0, r.branch.tip()
            while at != tip:
                commits += 1
                (at,) = r.git.object_store[at].parents
            tree = r.git.object_store[r.branch.tip()].tree
            for key in keys:  # in the branch itself now
                log = r.branch.read_tree_file(tree, location_log_path(key))
                assert f" 1 {uuid}" in (log or b"").decode()
    assert 1 <= commits < len(keys)


@pytest.mark.asyncio
async def test_a_put_is_logged_under_its_transfer_lock(served: tuple[Path, str, str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The location line is written while the PUT still holds git-annex's
    transfer lock, the order every receiver keeps: a line that cannot be
    written gives the content up, and no other transfer of the key may have
    found it present and answered "stored" in between."""
    from core.p2p.serving import ServedRepo
    from core.repo import transfers
    from core.repo.lockpool import LockBusy, hold

    repo, uuid, _ = served
    held: list[bool] = []
    keep = ServedRepo.keep

    def checking_keep(self: ServedRepo, key: Key) -> None:
        for p in transfers.lock_paths(self.repo.gitdir, transfers.DOWNLOAD, CLIENT_UUID, key):
            try:
                with hold(p, exclusive=True, create=False):
                    held.append(False)
            except FileNotFoundError:  # released: the last holder deletes the file
                held.append(False)
            except LockBusy:
                held.append(True)
        keep(self, key)

    monkeypatch.setattr(ServedRepo, "keep", checking_keep)
    settings = Settings(repositories=[repo], policy=AuthPolicy(wideopen=True))
    async with in_process(settings) as server, aiohttp.ClientSession() as s:
        base = f"http://127.0.0.1:{server.port}/git-annex/{uuid}/v4"
        async with s.post(f"{base}/put?key={DKEY}&{Q}", data=DATA,
                          headers={"X-git-annex-data-length": str(len(DATA))}) as resp:  # fmt: skip
            assert (await resp.json())["stored"] is True
    assert held == [True, True]  # both of a download's locks
    with AnnexRepo.open(repo) as r:
        assert uuid in r.state.locations(Key.parse(DKEY))


@pytest.mark.asyncio
async def test_lock_expires_without_keeplocked(served: tuple[Path, str, str]) -> None:
    repo, uuid, k12 = served
    settings = Settings(repositories=[repo], policy=AuthPolicy(wideopen=True), lock_seconds=1.0)
    async with in_process(settings) as server, aiohttp.ClientSession() as s:
        base = f"http://127.0.0.1:{server.port}/git-annex/{uuid}/v4"
        async with s.post(f"{base}/lockcontent?key={k12}&{Q}") as r:
            assert (await r.json())["locked"] is True
        async with s.post(f"{base}/remove?key={k12}&{Q}") as r:
            assert r.status == 500
        await asyncio.sleep(2.5)
        async with s.post(f"{base}/remove?key={k12}&{Q}") as r:
            assert (await r.json())["removed"] is True


@pytest.mark.asyncio
async def test_load_no_leaks(served: tuple[Path, str, str]) -> None:
    repo, uuid, k12 = served
    settings = Settings(repositories=[repo], policy=AuthPolicy(wideopen=True), jobs=4)
    async with in_process(settings) as server:
        app = server.runner.app
        base = f"http://127.0.0.1:{server.port}/git-annex/{uuid}/v4"
        fds_before = fd_count()
        tasks_before = len(asyncio.all_tasks())
        conn = aiohttp.TCPConnector(limit=32)
        async with aiohttp.ClientSession(connector=conn) as s:

            async def one(i: int) -> None:
                kind = i % 8
                if kind in (0, 1, 2):
                    async with s.post(f"{base}/checkpresent?key={k12}&{Q}") as r:
                        assert (await r.json())["present"] is True
                elif kind in (3, 4):
                    async with s.get(f"{base}/key/{k12}?{Q}") as r:
                        assert await r.read() == b"hello world\n"
                elif kind == 5:
                    async with s.post(f"{base}/lockcontent?key={k12}&{Q}") as r:
                        lock_id = (await r.json())["lockid"]

                    async def body():  # type: ignore[no-untyped-def]
                        yield b'{"unlock":false}\n'
                        yield b'{"unlock":true}\n'

                    async with s.post(f"{base}/keeplocked?lockid={lock_id}&{Q}", data=body()) as r:
                        assert (await r.json())["locked"] is False
                elif kind == 6:
                    async with s.post(f"{base}/putoffset?key={DKEY}&{Q}") as r:
                        await r.read()
                else:
                    async with s.post(f"{base}/gettimestamp?{Q}") as r:
                        assert "timestamp" in await r.json()

            total = 3000
            sem = asyncio.Semaphore(64)

            async def bounded(i: int) -> None:
                async with sem:
                    await one(i)

            async with asyncio.timeout(240):
                await asyncio.gather(*(bounded(i) for i in range(total)))
            # some dropped keeplocked connections and cut uploads
            for _ in range(20):
                async with s.post(f"{base}/lockcontent?key={k12}&{Q}") as r:
                    lock_id = (await r.json())["lockid"]
                await _raw(server.port, (
                    f"POST /git-annex/{uuid}/v4/keeplocked?lockid={lock_id} HTTP/1.1\r\n"
                    "Host: x\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n{\"unlock\":false}\n\r\n"
                ).encode(), read=False)  # fmt: skip
        await asyncio.sleep(0.5)
        for _ in range(50):
            if len(app[LOCKS]) == 0:
                break
            await asyncio.sleep(0.1)
        assert len(app[LOCKS]) == 0
        for sv in app[REPOS].all():
            assert not sv.served._held, "content locks left"
            assert sv.workers._value == 4
        assert fd_count() <= fds_before + 2
        assert len(asyncio.all_tasks()) <= tasks_before + 1
        with AnnexRepo.open(repo) as r:
            assert r.objects.has(Key.parse(k12))
