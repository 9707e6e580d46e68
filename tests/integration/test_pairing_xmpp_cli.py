"""Two annexsync processes pair through a real prosody from the command line.

``pair show --xmpp [FRIEND]`` and ``pair join --xmpp``: own devices on one
account, then two accounts that become contacts.  Each device has its own
HOME and config directory and logs in with ``annexsync xmpp login`` (the
password goes to the keyring); the repositories are made by real git-annex.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import os
import re
import subprocess
from pathlib import Path

import pytest

from core.settings import load_settings, save_settings
from tests.conftest import git
from tests.integration.test_pairing_cli import (
    CODE_LINE,
    Device,
    assert_paired,
    device,
    finish,
    noise_session,
    read_until,
)
from tests.xmpp_server import Prosody

pytestmark = pytest.mark.interop


@pytest.fixture
def devices(tmp_path: Path, real_keyring: object) -> tuple[Device, Device]:
    laptop = device(tmp_path, "laptop")
    return laptop, device(tmp_path, "desk", laptop.repo)


def login(dev: Device, server: Prosody, user: str) -> str:
    jid = f"{user}@localhost"
    done = dev.run("xmpp", "login", jid, "--password-stdin", "--server", server.server,
                   "--ca-file", str(server.cert), stdin="pw\n")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return jid


def start_show(dev: Device, *extra: str) -> tuple[subprocess.Popen[str], str]:
    proc = dev.popen("pair", "show", "--repo", str(dev.repo), "--timeout", "30", *extra)
    code = read_until(proc, CODE_LINE)
    read_until(proc, re.compile(r"^waiting over XMPP as "))
    return proc, code


def test_own_devices_pair_over_xmpp_then_friends_on_two_accounts(
        devices: tuple[Device, Device], xmpp_server: Prosody, tmp_path: Path) -> None:  # fmt: skip
    laptop, desk = devices
    for user in ("alice", "bob"):
        xmpp_server.register(user, "pw")
    login(laptop, xmpp_server, "alice")
    login(desk, xmpp_server, "alice")
    proc, code = start_show(laptop, "--xmpp")
    joined = desk.run("pair", "join", "--repo", str(desk.repo), "--xmpp", stdin=code + "\n")
    rc, out, err = finish(proc)
    assert (joined.returncode, rc) == (0, 0), joined.stdout + joined.stderr + out + err
    assert "paired with device laptop" in joined.stdout and "paired with device desk" in out
    assert_paired(laptop, desk)
    assert [r.own for r in desk.store().records()] == [True]  # the same account: own device
    assert asyncio.run(noise_session(laptop, desk)) == (b"ping!", b"hello")

    # a friend: bob's device, on another account, becomes alice's contact
    friend = device(tmp_path, "friend", laptop.repo)
    login(friend, xmpp_server, "bob")
    laptop.run("pair", "forget", "desk")
    proc, code = start_show(laptop, "--xmpp", "bob@localhost")
    joined = friend.run("pair", "join", "--repo", str(friend.repo), "--xmpp", stdin=code + "\n")
    rc, out, err = finish(proc)
    assert (joined.returncode, rc) == (0, 0), joined.stdout + joined.stderr + out + err
    assert "paired with device friend" in out
    assert_paired(laptop, friend)
    assert [r.own for r in laptop.store().records()] == [False]  # a friend's device
    assert [r.own for r in friend.store().records()] == [False]


def test_a_wrong_code_over_xmpp_is_said_in_words_and_nothing_is_stored(
        devices: tuple[Device, Device], xmpp_server: Prosody) -> None:  # fmt: skip
    laptop, desk = devices
    xmpp_server.register("alice", "pw")
    login(laptop, xmpp_server, "alice")
    login(desk, xmpp_server, "alice")
    proc, code = start_show(laptop, "--xmpp")
    np, first, second = code.split("-")
    wrong = f"{np}-{first}-{'adroitness' if second != 'adroitness' else 'adviser'}"
    joined = desk.run("pair", "join", "--repo", str(desk.repo), "--xmpp", stdin=wrong + "\n")
    proc.kill()
    finish(proc)
    assert joined.returncode == 1
    assert "not paired: the code did not match" in joined.stdout, joined.stdout + joined.stderr
    assert laptop.store().records() == desk.store().records() == []


def test_no_account_and_a_bad_friend_address_are_said_in_words(devices: tuple[Device, Device],
                                                              xmpp_server: Prosody) -> None:  # fmt: skip
    laptop, _ = devices
    done = laptop.run("pair", "show", "--repo", str(laptop.repo), "--xmpp")
    assert done.returncode == 1 and "no XMPP account is set up here" in done.stderr, done.stderr
    xmpp_server.register("alice", "pw")
    login(laptop, xmpp_server, "alice")
    done = laptop.run("pair", "show", "--repo", str(laptop.repo), "--xmpp", "not a jid")
    assert done.returncode == 1 and "is not an XMPP address" in done.stderr, done.stdout + done.stderr


def _share(dev: Device) -> None:
    """The daemon shares the repository the pairing offered (login kept the account)."""
    s = load_settings(dev.config)
    save_settings(dev.config, dataclasses.replace(s, repositories=(str(dev.repo),)))


def _both_ways(a: Device, b: Device) -> None:
    """Both daemons run (in this process, each with its own config dir): a file
    written on one side arrives, with its content, on the other, and one back."""
    from core.api import Core
    from core.devices.remote import LoopThread
    from tests.integration.paired_helpers import FAST, has_content, head_files, wait

    running: list[tuple[Core, LoopThread, concurrent.futures.Future[None]]] = []
    try:
        for dev in (a, b):
            _share(dev)
            thread = LoopThread(f"daemon {dev.name}")
            core = Core(dev.config, timings=FAST)
            running.append((core, thread,
                            asyncio.run_coroutine_threadsafe(core.run(), thread.loop)))
        for (src, dst), name in (((a, b), "there.bin"), ((b, a), "back.bin")):
            data = os.urandom(50_000)
            (src.repo / name).write_bytes(data)  # the daemon adds and commits it
            wait(lambda: name in head_files(dst.repo) and has_content(dst.repo, name),  # noqa: B023
                 40, f"{name} with its content on {dst.name}")  # fmt: skip
            wait(lambda: (dst.repo / name).read_bytes() == data, 10, f"{name} filled in")  # noqa: B023
    finally:
        for core, thread, fut in running:
            thread.run(core.stop(), 30)
            fut.result(30)
            thread.stop()


def _first_commit(dev: Device) -> None:
    (dev.repo / "README").write_text("shared\n")
    git(dev.repo, "add", "README")
    git(dev.repo, "commit", "-q", "-m", "start")


@pytest.mark.slow  # 40-60 s: every git operation over XMPP opens its own visitor connection
@pytest.mark.timeout(180)
@pytest.mark.parametrize("friend", [False, True], ids=["own-account", "two-accounts"])
def test_paired_over_xmpp_from_the_command_line_they_sync_both_ways(
        tmp_path: Path, real_keyring: object, xmpp_server: Prosody, friend: bool) -> None:  # fmt: skip
    """``pair show --xmpp`` / ``pair join CODE --xmpp``, then nothing but the two
    daemons: the repositories have no other remote, so what arrives came over XMPP."""
    laptop = device(tmp_path, "laptop")
    _first_commit(laptop)
    desk = device(tmp_path, "desk", laptop.repo)
    git(desk.repo, "remote", "remove", "origin")
    xmpp_server.register("alice", "pw")
    login(laptop, xmpp_server, "alice")
    if friend:
        xmpp_server.register("bob", "pw")
    login(desk, xmpp_server, "bob" if friend else "alice")
    proc, code = start_show(laptop, "--xmpp", *(["bob@localhost"] if friend else []))
    joined = desk.run("pair", "join", code, "--repo", str(desk.repo), "--xmpp")
    rc, out, err = finish(proc)
    assert (joined.returncode, rc) == (0, 0), joined.stdout + joined.stderr + out + err
    assert [r.own for r in desk.store().records()] == [not friend]
    _both_ways(laptop, desk)


def test_a_window_shown_on_the_lan_and_xmpp_at_once_serves_both(
        devices: tuple[Device, Device], xmpp_server: Prosody) -> None:  # fmt: skip
    """``pair show --lan --xmpp``: one window, one code, on both carriers.  A
    wrong code over the LAN costs one of its attempts; the right code over XMPP
    then pairs, and the window is used up on both."""
    laptop, desk = devices
    xmpp_server.register("alice", "pw")
    login(laptop, xmpp_server, "alice")
    login(desk, xmpp_server, "alice")
    proc = laptop.popen("pair", "show", "--repo", str(laptop.repo), "--timeout", "30", "--lan",
                        "--xmpp", "--interface", "127.0.0.1", "--no-announce")  # fmt: skip
    code = read_until(proc, CODE_LINE)
    where = read_until(proc, re.compile(r"^listening on ")).removeprefix("listening on ")
    read_until(proc, re.compile(r"^waiting over XMPP as "))
    np, first, second = code.split("-")
    wrong = f"{np}-{first}-{'adroitness' if second != 'adroitness' else 'adviser'}"
    refused = desk.run("pair", "join", wrong, "--host", where, "--repo", str(desk.repo))
    assert refused.returncode == 1 and "the code did not match" in refused.stdout, refused.stdout
    joined = desk.run("pair", "join", code, "--repo", str(desk.repo), "--xmpp")
    rc, out, err = finish(proc)
    assert (joined.returncode, rc) == (0, 0), joined.stdout + joined.stderr + out + err
    assert "attempt failed: the code did not match" in err and "(2 left)" in err, err
    assert "paired with device desk" in out
    assert_paired(laptop, desk)
