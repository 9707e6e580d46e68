"""The XMPP carrier of pairing against a real prosody with TLS on loopback.

Real accounts, a real Secret Service, real repositories and ``PairedStore``
records (``Side`` of the LAN tests).  Own devices on one account, friends on
two accounts that become contacts during the flow, and the refusals: a wrong
code, a stranger's JID, a replayed or foreign IQ -- nothing stored.
"""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import pytest
import slixmpp
from slixmpp.exceptions import IqError

from core.pairing import xmpp as carrier
from core.pairing.machine import PairingFailed, PairingMachine, PairingWindow, Reason
from core.pairing.words import Code, make_code
from core.xmpp.client import XmppConfig, _open
from tests.integration.test_pairing_lan import Side
from tests.integration.xmpp_helpers import config
from tests.xmpp_server import Prosody

STEP = 3.0
FIND = 5.0


@pytest.fixture
def sides(tmp_path: Path, real_keyring: object) -> tuple[Side, Side]:
    return Side(tmp_path, "laptop"), Side(tmp_path, "desk")


@pytest.fixture
def accounts(xmpp_server: Prosody) -> dict[str, XmppConfig]:
    return {who: config(xmpp_server, xmpp_server.register(who, "pw"))
            for who in ("alice", "bob", "carol")}  # fmt: skip


def other_code(code: Code) -> Code:
    while (wrong := make_code(nameplate=code.nameplate)) == code:
        pass
    return wrong


async def pair(shower: Side, show_cfg: XmppConfig, joiner: Side, join_cfg: XmppConfig, *,
               friend: str | None = None, join_friend: str | None = None,
               code: Code | None = None, typed: Code | None = None,
               window_s: float = 30.0) -> list[object]:  # fmt: skip
    """Show and join at once; the outcome of each (result or exception)."""
    code = code or make_code()
    window = PairingWindow(code, time.monotonic(), window_s, max_attempts=1)
    listening = asyncio.Event()

    async def show() -> object:
        return await carrier.show(window, shower.hello, shower.storage(), show_cfg, friend=friend,
                                  on_listening=lambda _: listening.set(), step_timeout=STEP)

    async def join() -> object:
        async with asyncio.timeout(10):
            await listening.wait()
        machine = PairingMachine.joiner(typed or code, joiner.hello)
        return await carrier.join(machine, joiner.storage(), join_cfg, friend=join_friend,
                                  find_timeout=FIND, step_timeout=STEP)  # fmt: skip

    async with asyncio.timeout(30):
        return list(await asyncio.gather(show(), join(), return_exceptions=True))


def test_own_devices_on_one_account_pair_with_the_code(
        sides: tuple[Side, Side], accounts: dict[str, XmppConfig]) -> None:  # fmt: skip
    laptop, desk = sides
    shown, joined = asyncio.run(pair(laptop, accounts["alice"], desk, accounts["alice"]))
    assert not isinstance(shown, BaseException), shown
    assert not isinstance(joined, BaseException), joined
    assert shown.peer.device_id == desk.ident.device_id  # type: ignore[attr-defined]
    assert joined.peer.device_id == laptop.ident.device_id  # type: ignore[attr-defined]
    assert shown.pair_secret == joined.pair_secret  # type: ignore[attr-defined]
    assert len(laptop.records()) == len(desk.records()) == 1


def test_friends_become_contacts_and_pair(
        sides: tuple[Side, Side], accounts: dict[str, XmppConfig]) -> None:  # fmt: skip
    laptop, desk = sides
    shown, joined = asyncio.run(pair(laptop, accounts["alice"], desk, accounts["bob"],
                                     friend=accounts["bob"].jid))  # fmt: skip
    assert not isinstance(shown, BaseException), shown
    assert not isinstance(joined, BaseException), joined
    assert len(laptop.records()) == len(desk.records()) == 1
    assert asyncio.run(roster_of(accounts["bob"])).get("alice@localhost") == "both"


async def roster_of(cfg: XmppConfig) -> dict[str, str]:
    client = await _open(cfg, "annexsync-check", None)
    try:
        await client.get_roster(timeout=5)
        return {str(j): client.client_roster[j]["subscription"] for j in client.client_roster}
    finally:
        await client.shutdown()


def test_a_wrong_code_over_xmpp_is_refused_and_nothing_is_stored(
        sides: tuple[Side, Side], accounts: dict[str, XmppConfig]) -> None:  # fmt: skip
    laptop, desk = sides
    code = make_code()
    shown, joined = asyncio.run(pair(laptop, accounts["alice"], desk, accounts["alice"],
                                     code=code, typed=other_code(code)))  # fmt: skip
    assert isinstance(joined, PairingFailed) and joined.reason is Reason.WRONG_CODE, joined
    assert isinstance(shown, PairingFailed) and shown.reason is Reason.TOO_MANY_ATTEMPTS, shown
    assert laptop.records() == desk.records() == []
    assert laptop.stores == desk.stores == 0


def test_a_strangers_jid_finds_no_window_and_is_refused(
        sides: tuple[Side, Side], accounts: dict[str, XmppConfig]) -> None:  # fmt: skip
    """The shower chose bob: carol, even with the right code, gets nothing; nothing
    is stored, and the roster offer to bob is withdrawn when the window ends."""
    laptop, desk = sides
    shown, joined = asyncio.run(pair(laptop, accounts["alice"], desk, accounts["carol"],
                                     friend=accounts["bob"].jid,
                                     join_friend=accounts["alice"].jid,
                                     window_s=FIND + 1))  # fmt: skip
    assert isinstance(joined, PairingFailed) and joined.reason is Reason.NO_WINDOW, joined
    assert isinstance(shown, PairingFailed) and shown.reason is Reason.EXPIRED, shown
    assert laptop.records() == desk.records() == []
    assert "bob@localhost" not in asyncio.run(roster_of(accounts["alice"]))
    assert "alice@localhost" not in asyncio.run(roster_of(accounts["carol"]))  # her offer, too


async def raw_frames(show_cfg: XmppConfig, sender_cfg: XmppConfig, laptop: Side,
                     desk: Side) -> dict[str, str | None]:  # fmt: skip
    """A window for the own account; ``sender_cfg`` sends hand-made IQs to it.
    Returns the error condition (None: accepted) of each."""
    code = make_code()
    window = PairingWindow(code, time.monotonic(), 8.0)
    where: asyncio.Queue[str] = asyncio.Queue()
    outcomes: dict[str, str | None] = {}
    sender = await _open(sender_cfg, "annexsync-raw", None)
    pake = PairingMachine.joiner(code, desk.hello)
    pake.start()
    first = pake.data_to_send()

    async def send(label: str, to: str, sid: str, seq: int, data: bytes) -> None:
        iq = sender.make_iq_set(ito=to)
        iq["annexsync_pair"]["sid"], iq["annexsync_pair"]["seq"] = sid, str(seq)
        iq["annexsync_pair"].xml.text = base64.b64encode(data).decode()
        try:
            await iq.send(timeout=5)
            outcomes[label] = None
        except IqError as e:
            outcomes[label] = e.iq["error"]["condition"]

    async def ask(label: str, to: str, np: int) -> None:
        iq = sender.make_iq_get(ito=to)
        iq["annexsync_pair"]["np"] = str(np)
        try:
            await iq.send(timeout=5)
            outcomes[label] = None
        except IqError as e:
            outcomes[label] = e.iq["error"]["condition"]

    async def probe() -> None:
        to = await where.get()
        await ask("probe", to, code.nameplate)
        await send("first", to, "a1", 0, first)
        await send("replayed", to, "a1", 0, first)  # the same IQ again
        await send("skipped", to, "a1", 5, b"x")
        await asyncio.sleep(STEP + 1)  # the attempt times out: sid a1 is spent
        await send("other run", to, "a1", 1, first)
        await send("spent sid reopened", to, "a1", 0, first)

    try:
        async with asyncio.TaskGroup() as tg:
            shower = tg.create_task(carrier.show(window, laptop.hello, laptop.storage(), show_cfg,
                                                 on_listening=where.put_nowait, step_timeout=STEP))
            await probe()
            shower.cancel()
    finally:
        await sender.shutdown()
    return outcomes


def test_replayed_and_foreign_iqs_are_refused_and_nothing_is_stored(
        sides: tuple[Side, Side], accounts: dict[str, XmppConfig]) -> None:  # fmt: skip
    laptop, desk = sides
    got = asyncio.run(raw_frames(accounts["alice"], accounts["alice"], laptop, desk))
    assert got == {"probe": None, "first": None, "replayed": "unexpected-request", "skipped": "unexpected-request",
                   "other run": "item-not-found", "spent sid reopened": "item-not-found"}
    stranger = asyncio.run(raw_frames(accounts["alice"], accounts["carol"], laptop, desk))
    assert set(stranger.values()) == {"not-authorized"}
    assert laptop.records() == desk.records() == []
    assert laptop.stores == 0
    assert slixmpp  # the IQs above were real stanzas through prosody
