"""The LAN carrier of pairing on loopback: the two-phase finish with messages
lost in transit, one attempt at a time, and DNS-SD only while the window is open.

Real TCP, a real Secret Service, real repositories (made by annexsync) and
real ``PairedStore`` records; a small frame-aware proxy loses chosen
messages and then stalls, as a network that went away would.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path

import pytest

from core.devices.identity import DeviceIdentity, load_or_create
from core.devices.paired import PairedStore
from core.pairing import result
from core.pairing.lan import Storage, discover, join, show
from core.pairing.machine import PairingFailed, PairingMachine, PairingWindow, Reason
from core.pairing.messages import Hello
from core.pairing.words import make_code
from core.repo.repository import AnnexRepo
from core.settings import Settings
from tests.conftest import git

STEP = 1.0  # the step timeout in these tests


class Side:
    def __init__(self, tmp: Path, name: str) -> None:
        self.config = tmp / name / "config"
        self.ident: DeviceIdentity = load_or_create(self.config, name)
        self.repo = tmp / name / "annex"
        AnnexRepo.init(self.repo, f"{name}'s annex").close()
        top, offer = result.repo_offer(self.repo)
        self.top = top
        self.hello: Hello = result.own_hello(self.ident, [offer], Settings())
        self.stores = 0

    def storage(self) -> Storage:
        def store(r: result.PairingResult) -> result.Stored:
            self.stores += 1
            return result.store(self.config, self.ident.device_id, r, [self.top])

        return Storage(store, lambda s: result.undo(self.config, self.ident.device_id, s))

    def records(self) -> list[object]:
        return list(PairedStore(self.config, self.ident.device_id).records())

    def remotes(self) -> str:
        return git(self.repo, "config", "--list")


@pytest.fixture
def sides(tmp_path: Path, real_keyring: object) -> tuple[Side, Side]:
    return Side(tmp_path, "laptop"), Side(tmp_path, "desk")


@contextlib.asynccontextmanager
async def lossy_proxy(target: int, lose: tuple[str, int] | None) -> AsyncIterator[int]:
    """A proxy to ``target`` that loses frame ``lose`` = (direction "s2j"/"j2s",
    index) and from then on forwards nothing (the sockets stay open)."""
    stalled = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, direction: str) -> None:
        index = 0
        with contextlib.suppress(asyncio.IncompleteReadError, OSError):
            while True:
                head = await src.readexactly(4)
                body = await src.readexactly(struct.unpack(">I", head)[0])
                if (direction, index) == lose:
                    stalled.set()
                if stalled.is_set():
                    continue
                dst.write(head + body)
                await dst.drain()
                index += 1
        if not stalled.is_set():
            dst.close()  # an honest end of stream passes through

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection("127.0.0.1", target)
        writers.extend((w, uw))
        async with asyncio.TaskGroup() as tg:
            tg.create_task(pump(r, uw, "j2s"))
            tg.create_task(pump(ur, w, "s2j"))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for w in writers:
            w.close()
        server.close()


async def pair_through(laptop: Side, desk: Side, lose: tuple[str, int] | None,
                       ) -> tuple[object, object]:  # fmt: skip
    """Run show (laptop) and join (desk) through the proxy; both outcomes."""
    code = make_code()
    window = PairingWindow(code, time.monotonic(), 20)
    listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    outcomes: list[object] = [None, None]

    async def shower() -> None:
        try:
            outcomes[0] = await show(window, laptop.hello, laptop.storage(), host="127.0.0.1",
                                     announce=False, step_timeout=STEP,
                                     on_listening=lambda h, p: listening.set_result(p))
        except PairingFailed as e:
            outcomes[0] = e

    async with asyncio.timeout(15), asyncio.TaskGroup() as tg:
        task = tg.create_task(shower())
        port = await listening
        async with lossy_proxy(port, lose) as proxy:
            try:
                outcomes[1] = await join(PairingMachine.joiner(code, desk.hello), desk.storage(),
                                         targets=[("127.0.0.1", proxy)], step_timeout=STEP)
            except PairingFailed as e:
                outcomes[1] = e
            if lose is None:
                await task
            else:
                await asyncio.sleep(STEP * 1.5)  # the shower's own step timeout
                task.cancel()  # the window would stay open for the next attempt
    return outcomes[0], outcomes[1]


def test_through_an_honest_proxy_both_sides_pair(sides: tuple[Side, Side]) -> None:
    laptop, desk = sides
    s, j = asyncio.run(pair_through(laptop, desk, None))
    assert isinstance(s, result.PairingResult) and isinstance(j, result.PairingResult)
    assert s.pair_secret == j.pair_secret
    assert len(laptop.records()) == len(desk.records()) == 1


@pytest.mark.parametrize("lose", [("j2s", 3), ("s2j", 3)], ids=["joiner-done", "shower-done"])
def test_a_lost_done_leaves_no_pairing_on_either_side(sides: tuple[Side, Side],
                                                      lose: tuple[str, int]) -> None:  # fmt: skip
    laptop, desk = sides
    _, j = asyncio.run(pair_through(laptop, desk, lose))
    assert isinstance(j, PairingFailed) and j.reason is Reason.PEER_GONE
    assert desk.stores == 1  # the joiner had stored, then undid
    assert laptop.stores == (1 if lose == ("s2j", 3) else 0)
    for side in sides:
        assert side.records() == [], side
        assert "annexsync::paired" not in side.remotes()
        peer = desk if side is laptop else laptop
        assert PairedStore(side.config, side.ident.device_id).secret(peer.ident.device_id) is None


def test_a_silent_caller_costs_no_attempt_and_a_second_caller_is_told_busy(
        sides: tuple[Side, Side]) -> None:  # fmt: skip
    laptop, desk = sides

    async def scenario() -> tuple[bytes, object]:
        code = make_code()
        window = PairingWindow(code, time.monotonic(), 20, max_attempts=1)
        listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        async with asyncio.timeout(15), asyncio.TaskGroup() as tg:
            shown = tg.create_task(show(window, laptop.hello, laptop.storage(), host="127.0.0.1",
                                        announce=False, step_timeout=STEP,
                                        on_listening=lambda h, p: listening.set_result(p)))
            port = await listening
            _, silent = await asyncio.open_connection("127.0.0.1", port)  # says nothing
            await asyncio.sleep(0.2)
            busy_r, busy_w = await asyncio.open_connection("127.0.0.1", port)
            await asyncio.sleep(0.2)
            busy_r2, busy_w2 = await asyncio.open_connection("127.0.0.1", port)
            told = await busy_r2.read(100)  # the queue holds one; the third caller is told
            busy_w.close()
            busy_w2.close()
            await asyncio.sleep(STEP * 2.5)  # the silent one and the queued one time out
            silent.close()
            joined = await join(PairingMachine.joiner(code, desk.hello), desk.storage(),
                                targets=[("127.0.0.1", port)], step_timeout=STEP)
            assert (await shown).peer.device_id == desk.ident.device_id
        return told, joined

    told, joined = asyncio.run(scenario())
    assert b'"why":"busy"' in told
    assert isinstance(joined, result.PairingResult)  # one attempt allowed, and still unused


async def failure(coro: Coroutine[object, object, object]) -> PairingFailed:
    with pytest.raises(PairingFailed) as e:
        await coro
    return e.value


def test_the_service_is_announced_only_while_the_window_is_open(sides: tuple[Side, Side]) -> None:
    laptop, _ = sides

    async def scenario() -> tuple[list[tuple[str, int]], int, list[tuple[str, int]]]:
        code = make_code()
        window = PairingWindow(code, time.monotonic(), 6)
        listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        async with asyncio.timeout(20), asyncio.TaskGroup() as tg:
            shown = tg.create_task(failure(show(window, laptop.hello, laptop.storage(),
                                                host="127.0.0.1",
                                                on_listening=lambda h, p: listening.set_result(p))))
            port = await listening
            during = await discover(code.nameplate, "127.0.0.1", timeout=5)
            other = await discover(code.nameplate % 999 + 1, "127.0.0.1", timeout=1)
            assert other == []  # another number is another window
            assert (await shown).reason is Reason.EXPIRED
        after = await discover(code.nameplate, "127.0.0.1", timeout=1.5)
        with pytest.raises(ConnectionRefusedError):  # the listener is gone with the window
            await asyncio.open_connection("127.0.0.1", port)
        return during, port, after

    during, port, after = asyncio.run(scenario())
    assert during == [("127.0.0.1", port)]
    assert after == []


def test_what_is_announced_holds_nothing_but_version_and_number(sides: tuple[Side, Side]) -> None:
    from zeroconf import IPVersion
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

    from core.pairing.lan import SERVICE_TYPE, announced

    async def scenario() -> dict[bytes, bytes | None]:
        async with announced(42, "127.0.0.1", 4242):
            zc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
            try:
                found: asyncio.Queue[str] = asyncio.Queue()
                browser = AsyncServiceBrowser(zc.zeroconf, SERVICE_TYPE,
                                              handlers=[lambda **kw: found.put_nowait(kw["name"])])
                async with asyncio.timeout(5):
                    name = await found.get()
                info = AsyncServiceInfo(SERVICE_TYPE, name)
                assert await info.async_request(zc.zeroconf, 3000)
                await browser.async_cancel()
                assert len(name.removesuffix("." + SERVICE_TYPE)) == 8  # random hex instance
                return dict(info.properties)
            finally:
                await zc.async_close()

    assert asyncio.run(scenario()) == {b"v": b"1", b"np": b"42"}


def test_undo_of_a_repairing_puts_the_earlier_pairing_back(sides: tuple[Side, Side]) -> None:
    laptop, desk = sides
    s, _ = asyncio.run(pair_through(laptop, desk, None))
    assert isinstance(s, result.PairingResult)
    store = PairedStore(laptop.config, laptop.ident.device_id)
    before = (store.records(), store.secret(desk.ident.device_id))
    again = result.PairingResult(s.role, s.peer, b"\x01" * 32)
    stored = result.store(laptop.config, laptop.ident.device_id, again, [laptop.top])
    assert store.secret(desk.ident.device_id).pair_secret == b"\x01" * 32  # type: ignore[union-attr]
    result.undo(laptop.config, laptop.ident.device_id, stored)
    assert (store.records(), store.secret(desk.ident.device_id)) == before
    assert f"annexsync::paired:{desk.ident.device_id}" in laptop.remotes()
