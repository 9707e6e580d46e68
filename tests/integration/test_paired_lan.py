"""Two annexsync instances pair over the LAN carrier on loopback and then sync
through each other's TCP listener, encrypted, with no XMPP account (issue 14).

Each device is its own set of processes with its own HOME and config
directory (``test_pairing_cli``'s pattern), sharing one real Secret Service.
``p2p_listen`` is set before pairing, so each hello carries the listener's
address and each record has it (``Transports.lan``); each daemon serves its
listener (``annexsync daemon``), which tells paired devices' Noise sessions
from git-annex peers' AUTH by the first bytes (``core.p2p.sniff``).  The
command line reaches the other device through the ``annexsync::paired:``
remote (``PairedRemote``), which picks the LAN because it answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.settings import Settings, save_settings
from tests.conftest import annex, git
from tests.integration.test_pairing_cli import Device, device, finish, start_show

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]
TOKEN = "feedfacefeedface"


def free_ports(n: int) -> tuple[int, ...]:
    """``n`` distinct free ports (held together while picked: two picks one after
    the other can be the same port, and then one daemon would answer for both)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return tuple(int(s.getsockname()[1]) for s in socks)


def run_in(dev: Device, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``annexsync ARGS`` as ``dev``, in its repository."""
    return subprocess.run(["annexsync", *args], env=dev.env(), text=True, capture_output=True,
                          timeout=timeout, cwd=dev.repo)  # fmt: skip


def wait(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def head_files(repo: Path) -> set[str]:
    return set(git(repo, "ls-tree", "-r", "--name-only", "HEAD").split())


def commit_file(repo: Path, name: str, data: bytes) -> None:
    (repo / name).write_bytes(data)
    annex(repo, "add", "-q", name)
    git(repo, "commit", "-q", "-m", f"add {name}", check=False)  # the daemon may commit first
    wait(lambda: name in head_files(repo), 10, f"{name} committed")


def arrived(repo: Path, name: str, data: bytes) -> None:
    # the receiving daemon merges when its repository's worker is free: it may be
    # in its own sync with the other device (one lock per repository), slow under load
    wait(lambda: name in head_files(repo) and (repo / name).exists(), 60, f"{name} in {repo}")
    assert (repo / name).read_bytes() == data
    annex(repo, "fsck", "--quiet", name)


@pytest.fixture
def lan_devices(tmp_path: Path, real_keyring: object) -> Iterator[tuple[Device, Device, int, int]]:
    laptop = device(tmp_path, "laptop")
    (laptop.repo / "README").write_text("shared\n")
    git(laptop.repo, "add", "README")
    git(laptop.repo, "commit", "-q", "-m", "start")
    desk = device(tmp_path, "desk", laptop.repo)
    git(desk.repo, "remote", "remove", "origin")  # what arrives came through the listener
    ports = free_ports(2)
    for dev, port in zip((laptop, desk), ports, strict=True):
        save_settings(dev.config, Settings(repositories=(str(dev.repo),),
                                           p2p_listen=f"127.0.0.1:{port}"))  # fmt: skip
    yield laptop, desk, *ports


def daemon(dev: Device, port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(["annexsync", "--config-dir", str(dev.config), "daemon",
                             str(dev.repo)], env=dev.env(), text=True, cwd=dev.home,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    wait(lambda: answers(port) or proc.poll() is not None, 20, f"{dev.name}'s listener")
    assert proc.poll() is None, proc.communicate()
    return proc


def lan_sessions(dev: Device) -> list[dict[str, object]]:
    out = subprocess.run(["annexsync", "--config-dir", str(dev.config), "status", "--json"],
                         env=dev.env(), text=True, capture_output=True, timeout=30)  # fmt: skip
    return [s for s in json.loads(out.stdout)["sessions"] if s.get("transport") == "lan"]


def test_paired_over_the_lan_they_sync_both_ways_through_the_listener(
        lan_devices: tuple[Device, Device, int, int]) -> None:  # fmt: skip
    laptop, desk, laptop_port, desk_port = lan_devices
    proc, code, where = start_show(laptop, "--timeout", "30", "--no-announce")
    joined = desk.run("pair", "join", code, "--host", where, "--repo", str(desk.repo))
    rc, out, err = finish(proc)
    assert (joined.returncode, rc) == (0, 0), joined.stdout + joined.stderr + out + err
    (rec,) = desk.store().records()
    assert rec.transports.lan == (f"127.0.0.1:{laptop_port}",) and rec.transports.xmpp is None
    daemons = [daemon(laptop, laptop_port), daemon(desk, desk_port)]
    try:
        big = os.urandom(2_000_000)
        commit_file(laptop.repo, "big.bin", big)
        synced = run_in(laptop, "sync", "--content")
        assert synced.returncode == 0, synced.stdout + synced.stderr
        arrived(desk.repo, "big.bin", big)
        small = os.urandom(30_000)
        commit_file(desk.repo, "small.bin", small)
        synced = run_in(desk, "sync", "--content")
        assert synced.returncode == 0, synced.stdout + synced.stderr
        arrived(laptop.repo, "small.bin", small)
        # every incoming session desk could identify is laptop's (a daemon's probe
        # may still be in its handshake, not yet named, when the status is read)
        served = [s for s in lan_sessions(desk)
                  if s["direction"] == "incoming" and s["device_id"] is not None]
        assert served and {s["device"] for s in served} == {"laptop"}, served

        # a git-annex peer's plain AUTH still works on the same port
        creds = laptop.repo / ".git" / "annex" / "creds"
        creds.mkdir(parents=True, exist_ok=True)
        (creds / "p2pauth").write_text(f"{TOKEN}\n")
        with socket.create_connection(("127.0.0.1", laptop_port), timeout=10) as s:
            s.sendall(f"AUTH {git(desk.repo, 'config', 'annex.uuid').strip()} {TOKEN}\n".encode())
            assert s.recv(200).startswith(b"AUTH-SUCCESS ")

        # laptop forgets desk: desk's next attempt is refused, in words
        assert laptop.run("pair", "forget", "desk").returncode == 0
        commit_file(desk.repo, "late.txt", b"late\n")
        late = run_in(desk, "sync", "--content")
        assert late.returncode != 0
        assert "laptop no longer trusts this device" in late.stdout + late.stderr, (
            late.stdout + late.stderr)
        assert "late.txt" not in head_files(laptop.repo)
    finally:
        for p in daemons:
            p.terminate()
        for p in daemons:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def test_the_daemons_sync_with_a_paired_lan_device_by_themselves(
        lan_devices: tuple[Device, Device, int, int]) -> None:  # fmt: skip
    """No command runs after pairing: each daemon's probe finds the other's
    listener answering, so the device joins its remotes; a file written on one
    side arrives, with its content, on the other."""
    import asyncio

    from core.api import Core
    from core.devices.remote import LoopThread
    from tests.integration.paired_helpers import FAST, has_content

    laptop, desk, laptop_port, desk_port = lan_devices
    proc, code, where = start_show(laptop, "--timeout", "30", "--no-announce")
    joined = desk.run("pair", "join", code, "--host", where, "--repo", str(desk.repo))
    assert (joined.returncode, finish(proc)[0]) == (0, 0), joined.stdout + joined.stderr
    running: list[tuple[Core, LoopThread, object]] = []
    try:
        for dev, port in ((laptop, laptop_port), (desk, desk_port)):
            thread = LoopThread(f"daemon {dev.name}")
            core = Core(dev.config, timings=FAST)
            running.append((core, thread,
                            asyncio.run_coroutine_threadsafe(core.run(), thread.loop)))
            wait(lambda port=port: answers(port), 20, f"{dev.name}'s listener")  # type: ignore[misc]
        data = os.urandom(200_000)
        (laptop.repo / "new.bin").write_bytes(data)  # laptop's daemon adds and commits it
        wait(lambda: "new.bin" in head_files(desk.repo) and has_content(desk.repo, "new.bin"),
             40, "the new file and its content on desk")  # fmt: skip
        # an unlocked file's pointer is filled in just after the content lands
        wait(lambda: (desk.repo / "new.bin").read_bytes() == data, 10, "new.bin filled in")
        annex(desk.repo, "fsck", "--quiet", "new.bin")
        desk_core = running[1][0]
        assert any(s.transport == "lan" for s in desk_core.status.sessions)
    finally:
        for core, thread, fut in running:
            thread.run(core.stop(), 30)
            fut.result(30)  # type: ignore[attr-defined]
            thread.stop()


def test_pairing_while_the_daemons_run_syncs_at_once(
        lan_devices: tuple[Device, Device, int, int]) -> None:  # fmt: skip
    """Both daemons already run when the devices pair: ``annexsync pair`` tells
    each running instance (``devices-changed`` on the instance socket), which
    reads the new record and remotes at once -- not at its next records refresh
    (set to ten minutes here) -- so a file written next arrives on the other side."""
    import asyncio
    import dataclasses

    from core.api import Core
    from core.devices.remote import LoopThread
    from tests.integration.paired_helpers import FAST, has_content

    laptop, desk, laptop_port, desk_port = lan_devices
    slow = dataclasses.replace(FAST, devices_refresh=600.0)
    running: list[tuple[Core, LoopThread, object]] = []
    try:
        for dev, port in ((laptop, laptop_port), (desk, desk_port)):
            thread = LoopThread(f"daemon {dev.name}")
            core = Core(dev.config, timings=slow)
            running.append((core, thread,
                            asyncio.run_coroutine_threadsafe(core.run(), thread.loop)))
            wait(lambda port=port: answers(port), 20, f"{dev.name}'s listener")  # type: ignore[misc]
        proc, code, where = start_show(laptop, "--timeout", "30", "--no-announce")
        joined = desk.run("pair", "join", code, "--host", where, "--repo", str(desk.repo))
        assert (joined.returncode, finish(proc)[0]) == (0, 0), joined.stdout + joined.stderr
        data = os.urandom(100_000)
        (laptop.repo / "after.bin").write_bytes(data)  # laptop's daemon adds and commits it
        wait(lambda: "after.bin" in head_files(desk.repo) and has_content(desk.repo, "after.bin"),
             40, "the file written after pairing, with its content, on desk")  # fmt: skip
    finally:
        for core, thread, fut in running:
            thread.run(core.stop(), 30)
            fut.result(30)  # type: ignore[attr-defined]
            thread.stop()
