"""The push scheduler over a real prosody with TLS on loopback (issue 13).

Three devices, two on one account (laptop and desktop on alice, phone on
carol), each a real XmppLink + PushHub over its own git repository; the push
job moves git data between the repositories with real git (push_helpers).
Spec: xmpp-sync.md C.2, C.5-C.7, part B; docs/xmpp-protocol.md.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from core.xmpp import signal
from core.xmpp.signal import Control
from core.xmpp.signalling import PeerRefused
from tests.integration.push_helpers import Dev, git, make_devs, make_repos, run_dev
from tests.integration.xmpp_helpers import Relay, open_fds, until
from tests.xmpp_server import Prosody

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(90)]

NAMES = ["laptop", "desktop", "phone"]


async def _devices(server: Prosody, tmp_path: Path, names: list[str] = NAMES,
                   merge: bool = True) -> dict[str, Dev]:  # fmt: skip
    alice, carol = server.register("alice", "pw"), server.register("carol", "pw")
    accounts = {"laptop": alice, "desktop": alice, "phone": carol}
    repos = await make_repos(tmp_path, names)
    return make_devs(server, repos, {n: accounts[n] for n in names}, merge=merge)


@asynccontextmanager
async def running(*devs: Dev) -> AsyncIterator[dict[str, asyncio.Task[None]]]:
    async with asyncio.TaskGroup() as tg:
        tasks = {d.name: tg.create_task(run_dev(d), name=d.name) for d in devs}
        try:
            yield tasks
        finally:
            for t in tasks.values():
                t.cancel()


def sees(a: Dev, b: Dev) -> bool:
    return any(d.device_id == b.id and d.presence == "online" for d in a.link.buddies.devices())


async def all_see_all(devs: list[Dev]) -> None:
    await until(lambda: all(sees(a, b) for a in devs for b in devs if a is not b), 15, "presence")


def idle(devs: list[Dev]) -> bool:
    return all(not p.active for d in devs for p in d.hub.statuses())


# A stall is 120 s (B.14): everything after the commits must end well before that; the
# bound is not a speed figure (a slow disk took 20 s for the tips alone once)
STALL_BOUND = 90


@pytest.mark.timeout(STALL_BOUND + 60)
async def test_three_devices_commit_at_once_and_converge(xmpp_server: Prosody, tmp_path: Path) -> None:
    """Each device advertises after its commit; all three at once converge, none deadlocks
    (B.5: both sides of a pair push to each other at the same time), no stall (B.14)."""
    devs = await _devices(xmpp_server, tmp_path)
    ds = list(devs.values())
    async with running(*ds):
        await all_see_all(ds)
        await until(lambda: idle(ds), 10, "the first requests after connecting are answered")
        await asyncio.gather(*(d.commit(f"{d.name}.txt") for d in ds))
        want = {"README", "laptop.txt", "desktop.txt", "phone.txt"}
        files: dict[str, set[str]] = {}

        async def converged() -> bool:
            for d in ds:
                files[d.name] = await d.files()
            return all(f == want for f in files.values())

        # one bound from the commits to the end: a 120 s stall or a deadlock fails here
        end = asyncio.get_running_loop().time() + STALL_BOUND
        async with asyncio.timeout_at(end):
            while not await converged():
                await asyncio.sleep(0.05)
            await until(lambda: idle(ds), STALL_BOUND, "all pushes ended")
        for a in ds:  # every device pushed its commit to both others: advertise, want, push
            for b in ds:
                if a is not b:
                    assert a.done(b, "outgoing") >= 1, (a.name, b.name, a.job.log)
        outcomes = {p.outcome for d in ds for p in d.hub.statuses()}
        assert outcomes <= {"done", "refused"}, [p for d in ds for p in d.hub.statuses()]
        # and they end at one commit: tips left apart would give every later merge more
        # criss-cross bases (the soak's stall at round 17), merges of merges none at all
        async with asyncio.timeout_at(end):
            while len({await git(d.path, "rev-parse", "HEAD") for d in ds}) > 1:
                await asyncio.sleep(0.1)


async def test_answers_come_at_once_while_a_push_runs(xmpp_server: Prosody, tmp_path: Path) -> None:
    """B.8, B.35: the desktop's push job hangs; the phone's advertise to it is answered now,
    a second push-open from the laptop is answered busy now, and the laptop's push completes
    later once the desktop's job is released."""
    devs = await _devices(xmpp_server, tmp_path)
    laptop, desktop, phone = devs["laptop"], devs["desktop"], devs["phone"]
    async with running(laptop, desktop, phone):
        await all_see_all([laptop, desktop, phone])
        await until(lambda: idle([laptop, desktop, phone]), 10, "quiet")
        laptop.job.merge = False  # so the only push laptop -> desktop is the one below
        desktop.job.hold = asyncio.Event()
        await phone.commit("phone.txt")  # phone -> desktop: the desktop's incoming job hangs
        await until(lambda: desktop.job.running == 1, 10, "desktop busy with the phone's push")
        # the phone asks again while the desktop's job runs: answered at once (want or up to date)
        refs = (("main", await _head(phone)),)
        answer = await phone.hub.signals.send(desktop.link.jid or "", Control(
            signal.ADVERTISE, phone.id, phone.uuid, refs, uuid.uuid4().hex))  # fmt: skip
        assert answer in ("want", "uptodate")
        assert desktop.job.running == 1  # still busy: the answer did not wait for it
        await laptop.commit("laptop.txt")  # laptop -> desktop: the incoming lane is taken
        await until(lambda: any(p.outcome == "refused" and p.device_id == desktop.id
                                for p in laptop.hub.statuses()), 10, "laptop refused")  # fmt: skip
        desktop.job.hold.set()
        await until(lambda: laptop.done(desktop, "outgoing") >= 1, 20, "laptop's push later")
        await until(lambda: {"laptop.txt", "phone.txt"} <= _files_sync(desktop), 20, "merged")
        assert desktop.done(laptop, "incoming") >= 1 and desktop.done(phone, "incoming") >= 1


async def _head(d: Dev) -> str:
    return await git(d.path, "rev-parse", "HEAD")


async def test_device_online_late_gets_what_it_missed(xmpp_server: Prosody, tmp_path: Path) -> None:
    """C.5/B.18: nothing is sent to the phone while it is away; when it comes online it asks
    (request) and the laptop advertises: it receives the commit made meanwhile."""
    devs = await _devices(xmpp_server, tmp_path)
    laptop, desktop, phone = devs["laptop"], devs["desktop"], devs["phone"]
    async with running(laptop, desktop) as tasks:
        await all_see_all([laptop, desktop])
        await laptop.commit("while-away.txt")
        await until(lambda: "while-away.txt" in _files_sync(desktop), 15, "desktop got it")
        assert phone.job.log == [] and laptop.done(phone, "outgoing") == 0
        tasks["late"] = asyncio.create_task(run_dev(phone))
        try:
            await until(lambda: "while-away.txt" in _files_sync(phone), 20, "the phone got it")
            assert laptop.done(phone, "outgoing") + desktop.done(phone, "outgoing") >= 1
        finally:
            tasks["late"].cancel()
            await asyncio.gather(tasks["late"], return_exceptions=True)


def _files_sync(d: Dev) -> set[str]:
    import subprocess

    out = subprocess.run(["git", "-C", str(d.path), "ls-tree", "--name-only", "HEAD"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return set(out.split())


async def test_unknown_uuid_or_unpaired_jid_changes_nothing(xmpp_server: Prosody, tmp_path: Path) -> None:
    """B.25, B.26: not-authorized for a uuid that is not the device's, a device id that is not
    paired, and a paired device's ids claimed from another account; nothing runs or changes."""
    devs = await _devices(xmpp_server, tmp_path)
    laptop, desktop, phone = devs["laptop"], devs["desktop"], devs["phone"]
    eve_devs = await _eve(xmpp_server, tmp_path)
    eve = eve_devs["eve"]
    async with running(laptop, desktop, phone, eve):
        await all_see_all([laptop, desktop, phone])
        await until(lambda: idle([laptop, desktop, phone]) and bool(eve.link.jid), 10, "quiet")
        before = (laptop.hub.statuses(), list(laptop.job.log))
        target = laptop.link.jid or ""
        sha = await _head(laptop)
        forged = [
            (desktop, Control(signal.ADVERTISE, desktop.id, phone.uuid, (("main", sha),), "0" * 32)),
            (desktop, Control(signal.PUSH_OPEN, desktop.id, str(uuid.uuid4()), sid="1" * 32)),
            (desktop, Control(signal.REQUEST, str(uuid.uuid4()), desktop.uuid)),
            (eve, Control(signal.REQUEST, phone.id, phone.uuid)),  # phone's ids from eve's account
            (eve, Control(signal.PUSH_OPEN, desktop.id, desktop.uuid, sid="2" * 32)),  # desktop's
        ]
        for sender, control in forged:
            with pytest.raises(PeerRefused, match="not-authorized"):
                await sender.hub.signals.send(target, control)
        await asyncio.sleep(0.3)  # anything they started would show now
        assert (laptop.hub.statuses(), laptop.job.log) == before


async def _eve(server: Prosody, tmp_path: Path) -> dict[str, Dev]:
    """A device on a third account that laptop has not paired (it pairs with nobody)."""
    eve = server.register("eve", "pw")
    (tmp_path / "eve").mkdir()
    repos = await make_repos(tmp_path / "eve", ["eve"])
    return make_devs(server, repos, {"eve": eve})


@pytest.mark.slow  # a stress/soak run: tests/run runs it in the slow step
async def test_tasks_and_fds_stable_across_200_signalled_pushes(xmpp_server: Prosody,
                                                                tmp_path: Path) -> None:  # fmt: skip
    """B.30, B.11: 200 pushes laptop -> desktop (advertise, push-open, a real git push);
    the task and fd counts after them equal those after the first ten."""
    alice = xmpp_server.register("alice", "pw")
    repos = await make_repos(tmp_path, ["laptop", "desktop"])
    devs = make_devs(xmpp_server, repos, {"laptop": alice, "desktop": alice}, merge=False)
    laptop, desktop = devs["laptop"], devs["desktop"]
    counts: list[tuple[int, int]] = []
    async with running(laptop, desktop):
        await all_see_all([laptop, desktop])
        await until(lambda: idle([laptop, desktop]), 10, "quiet")
        for i in range(200):
            await laptop.commit("counter.txt", f"{i}\n")
            await until(lambda i=i: laptop.done(desktop, "outgoing") >= i + 1, 10, f"push {i}")  # type: ignore[misc]
            if i in (9, 199):
                await until(lambda: idle([laptop, desktop]), 10, "idle")
                await asyncio.sleep(0.2)
                counts.append((len(asyncio.all_tasks()), open_fds()))
        assert laptop.done(desktop, "outgoing") == 200
        assert desktop.job.log.count((laptop.id, "incoming", True)) == 200
    (tasks10, fds10), (tasks200, fds200) = counts
    assert tasks200 <= tasks10 and fds200 <= fds10 + 2, counts


async def test_connection_killed_mid_push_aborts_cleans_up_and_resumes(
        xmpp_server: Prosody, tmp_path: Path) -> None:  # fmt: skip
    """C.6, B.6, B.11, B.49: the laptop's connection dies while the desktop receives its push;
    the desktop's job ends at once (the laptop went offline), its cleanup runs, and after
    the laptop reconnects the commit arrives; nothing is left running."""
    alice = xmpp_server.register("alice", "pw")
    repos = await make_repos(tmp_path, ["laptop", "desktop"])
    async with Relay(xmpp_server.port) as relay:
        devs = make_devs(xmpp_server, repos, {"laptop": alice, "desktop": alice},
                         via={"laptop": relay.address})  # fmt: skip
        laptop, desktop = devs["laptop"], devs["desktop"]
        async with running(laptop, desktop):
            await all_see_all([laptop, desktop])
            await until(lambda: idle([laptop, desktop]), 10, "quiet")
            sessions = laptop.link.sessions
            desktop.job.hold = asyncio.Event()
            await laptop.commit("laptop.txt")
            await until(lambda: desktop.job.running == 1, 10, "the desktop receives")
            relay.cut()
            await until(lambda: desktop.job.running == 0, 10, "the desktop's job ended")
            ended = [p for p in desktop.hub.statuses() if p.direction == "incoming"]
            assert [(p.outcome, p.reason) for p in ended] == [("aborted", "the device went offline")]
            desktop.job.hold = None
            await until(lambda: laptop.link.sessions > sessions and sees(desktop, laptop), 15,
                        "the laptop is back")  # fmt: skip
            await until(lambda: "laptop.txt" in _files_sync(desktop), 20, "the commit arrived")
            await until(lambda: idle([laptop, desktop]), 10, "all ended")
            assert laptop.job.running == 0 and desktop.job.running == 0


async def test_sync_now_retries_a_device_in_back_off_at_once(xmpp_server: Prosody,
                                                             tmp_path: Path) -> None:  # fmt: skip
    """The person's "Sync now" (``Core.sync_now`` -> ``PushHub.sync_now``): the phone's
    git refused our push once (a pre-receive hook), so the laptop backs off 30 s
    (B.51); the hook gone, Sync now pushes at once instead of after the back-off."""
    alice, carol = xmpp_server.register("alice", "pw"), xmpp_server.register("carol", "pw")
    repos = await make_repos(tmp_path, ["laptop", "phone"])
    devs = make_devs(xmpp_server, repos, {"laptop": alice, "phone": carol})
    laptop, phone = devs["laptop"], devs["phone"]
    hook = phone.path / ".git" / "hooks" / "pre-receive"
    async with running(laptop, phone):
        await all_see_all([laptop, phone])
        await until(lambda: idle([laptop, phone]), 10, "quiet")
        hook.write_text("#!/bin/sh\necho 'not now' >&2\nexit 1\n")
        hook.chmod(0o755)
        await laptop.commit("late.txt")

        def failed() -> bool:
            return any(p.outcome == "failed" and p.direction == "outgoing"
                       for p in laptop.hub.statuses())  # fmt: skip

        await until(failed, 15, "the refused push")
        hook.unlink()
        await asyncio.sleep(1)  # the back-off holds: nothing is pushed by itself meanwhile
        assert "late.txt" not in _files_sync(phone)
        laptop.hub.sync_now(str(laptop.path))
        await until(lambda: "late.txt" in _files_sync(phone), 10, "pushed at once (back-off 30 s)")
