"""Two real annexsync processes pair over loopback through the command line.

Each device is its own process with its own HOME and config directory; both
use one real Secret Service (gnome-keyring on a private D-Bus; entries carry
the device id, pairing.md 6.2).  The repositories are made by real
git-annex.  After pairing, the stored records of both sides build a Noise
session (``core.session``) that must open: the proof that the keys agree.
DNS-SD runs bound to 127.0.0.1, so nothing leaves loopback.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.devices.identity import load_identity, load_or_create
from core.devices.paired import PairedStore
from core.session.machine import PeerCredentials
from core.session.stream import accept_session, connect_session
from core.settings import Settings, save_settings
from tests.conftest import annex, git

pytestmark = pytest.mark.interop  # the shared repositories are made by git-annex
CODE_LINE = re.compile(r"^\d+(-[a-z]+){2,3}$")


@dataclass
class Device:
    name: str
    home: Path
    config: Path
    repo: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "HOME": str(self.home), "XDG_CONFIG_HOME": str(self.home / ".config"),
                "ANNEXSYNC_CONFIG_DIR": str(self.config)}  # fmt: skip

    def run(self, *args: str, stdin: str = "", timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["annexsync", *args], env=self.env(), input=stdin, text=True,
                              capture_output=True, timeout=timeout, cwd=self.home)  # fmt: skip

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(["annexsync", *args], env=self.env(), text=True, cwd=self.home,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip

    def store(self) -> PairedStore:
        ident = load_identity(self.config)
        assert ident is not None
        return PairedStore(self.config, ident.device_id)


def device(tmp_path: Path, name: str, origin: Path | None = None) -> Device:
    home = tmp_path / name
    home.mkdir()
    shutil.copy(Path(os.environ["HOME"]) / ".gitconfig", home / ".gitconfig")
    repo = home / "annex"
    if origin is None:
        repo.mkdir()
        git(repo, "init", "-q")
    else:
        git(home, "clone", "-q", str(origin), str(repo))
    annex(repo, "init", "-q", f"{name}'s annex")
    load_or_create(home / "config", name)  # named after its role, not the host
    return Device(name, home, home / "config", repo)


@pytest.fixture
def devices(tmp_path: Path, real_keyring: object) -> tuple[Device, Device]:
    laptop = device(tmp_path, "laptop")
    return laptop, device(tmp_path, "desk", laptop.repo)


def read_until(proc: subprocess.Popen[str], pattern: re.Pattern[str], timeout: float = 15,
               seen: list[str] | None = None) -> str:  # fmt: skip
    """The next stdout line of ``proc`` matching ``pattern`` (read by a thread, bounded);
    the lines before it go to ``seen``."""
    assert proc.stdout is not None
    seen = [] if seen is None else seen
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = pool.submit(proc.stdout.readline).result(deadline - time.monotonic())
            except concurrent.futures.TimeoutError:
                proc.kill()  # unblocks the reading thread
                break
            if not line:
                break
            seen.append(line)
            if pattern.search(line.strip()):
                return line.strip()
    proc.kill()
    raise AssertionError(f"no line matching {pattern.pattern} in {seen}: {proc.communicate()}")


def start_show(dev: Device, *extra: str, interface: str | None = "127.0.0.1",
               ) -> tuple[subprocess.Popen[str], str, str]:  # fmt: skip
    where = ("--interface", interface) if interface else ()
    proc = dev.popen("pair", "show", "--repo", str(dev.repo), *where, *extra)
    code = read_until(proc, CODE_LINE)
    shown: list[str] = []
    where = read_until(proc, re.compile(r"^listening on "), seen=shown)
    assert any("▄" in line for line in shown)  # the code as a QR code, too
    return proc, code, where.removeprefix("listening on ")


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out, err


def uuid_of(repo: Path) -> str:
    return git(repo, "config", "annex.uuid").strip()


def assert_paired(a: Device, b: Device) -> None:
    """Records, keyring secrets and git remotes on both sides, and they agree."""
    ida, idb = (load_identity(d.config) for d in (a, b))
    assert ida is not None and idb is not None
    for me, peer, peer_id in ((a, b, idb), (b, a, ida)):
        (record,) = me.store().records()
        assert (record.device_id, record.name) == (peer_id.device_id, peer_id.name)
        assert [(r.path, r.peer_uuid) for r in record.repos] == [
            (str(me.repo.resolve()), uuid_of(peer.repo))]
        secret = me.store().secret(peer_id.device_id)
        assert secret is not None and secret.peer_static_pub == peer_id.public_key
        remotes = git(me.repo, "config", "--get-regexp", r"^remote\..*\.(url|annex-uuid)$")
        assert f"annexsync::paired:{peer_id.device_id}" in remotes
        assert uuid_of(peer.repo) in remotes
        for f in [*me.config.rglob("*"), me.repo / ".git" / "config"]:  # only in the keyring
            data = f.read_bytes() if f.is_file() else b""
            assert secret.pair_secret not in data and secret.pair_secret.hex().encode() not in data
    sa, sb = a.store().secret(idb.device_id), b.store().secret(ida.device_id)
    assert sa is not None and sb is not None and sa.pair_secret == sb.pair_secret


async def noise_session(a: Device, b: Device) -> tuple[bytes, bytes]:
    """A session from the stored records of both sides, over TCP on loopback."""
    ida, idb = load_identity(a.config), load_identity(b.config)
    assert ida is not None and idb is not None

    def creds(me: Device, ident: object, peer_id: str) -> PeerCredentials:
        secret = me.store().secret(peer_id)
        assert secret is not None
        return PeerCredentials(ident.device_id, ident.private_key(), peer_id,  # type: ignore[attr-defined]
                               secret.peer_static_pub, secret.pair_secret)

    server_creds = creds(b, idb, ida.device_id)
    got: asyncio.Queue[bytes] = asyncio.Queue()

    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        s = await accept_session(r, w, lambda peer: server_creds if peer == ida.device_id else None)
        await got.put(await s.reader.readexactly(5))
        s.writer.write(b"hello")
        await s.writer.drain()
        await s.aclose()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(10):
            r, w = await asyncio.open_connection("127.0.0.1", port)
            s = await connect_session(r, w, creds(a, ida, idb.device_id))
            s.writer.write(b"ping!")
            await s.writer.drain()
            answer = await s.reader.readexactly(5)
            await s.aclose()
            return await got.get(), answer
    finally:
        server.close()


def test_two_processes_pair_by_dns_sd_on_loopback_and_then_open_a_session(
        devices: tuple[Device, Device]) -> None:  # fmt: skip
    laptop, desk = devices
    proc, code, _ = start_show(laptop, "--timeout", "30")
    joined = desk.run("-v", "pair", "join", "--repo", str(desk.repo), "--interface", "127.0.0.1",
                      stdin=code + "\n")  # the code on stdin: not in the process list
    rc, out, err = finish(proc)
    assert (joined.returncode, rc) == (0, 0), joined.stdout + joined.stderr + out + err
    secret = laptop.store().secret(desk.store().own_id)
    assert secret is not None and "paired with laptop" in joined.stderr  # -v: it logs
    for said in (out, err, joined.stdout, joined.stderr):  # logs and outcomes: no secret
        assert secret.pair_secret.hex() not in said
    assert code not in joined.stdout + joined.stderr  # the joiner does not echo the code
    assert "paired with device laptop" in joined.stdout
    assert "paired with device desk" in out
    assert_paired(laptop, desk)
    assert asyncio.run(noise_session(laptop, desk)) == (b"ping!", b"hello")
    listed = json.loads(desk.run("pair", "list", "--json").stdout)
    assert [d["name"] for d in listed] == ["laptop"]
    assert json.loads(laptop.run("devices", "--json").stdout)[0]["name"] == "desk"


def test_pairing_with_host_and_no_announcement(devices: tuple[Device, Device]) -> None:
    laptop, desk = devices
    save_settings(laptop.config, Settings(pairing_interface="127.0.0.1"))  # the setting
    proc, code, where = start_show(laptop, "--timeout", "30", "--no-announce", interface=None)
    assert where.startswith("127.0.0.1:")
    joined = desk.run("pair", "join", code, "--host", where, "--repo", str(desk.repo))
    rc, out, err = finish(proc)
    assert (joined.returncode, rc) == (0, 0), joined.stdout + joined.stderr + out + err
    assert_paired(laptop, desk)
    assert asyncio.run(noise_session(desk, laptop)) == (b"ping!", b"hello")
    again = desk.run("pair", "join", code, "--host", where, "--repo", str(desk.repo))
    assert again.returncode == 1 and "no pairing window" in again.stdout  # single use


def other_code(code: str) -> str:
    from core.pairing.words import parse_code, word_lists

    c = parse_code(code)
    odd = word_lists().odd
    wrong = odd[(odd.index(c.words[1]) + 1) % 256]
    return f"{c.nameplate}-{c.words[0]}-{wrong}"


def test_wrong_codes_are_refused_counted_and_close_the_window(devices: tuple[Device, Device]) -> None:
    laptop, desk = devices
    proc, code, where = start_show(laptop, "--timeout", "30", "--no-announce")
    for _ in range(3):
        joined = desk.run("pair", "join", other_code(code), "--host", where, "--repo", str(desk.repo))
        assert joined.returncode == 1
        assert "not paired: the code did not match" in joined.stdout, joined.stdout + joined.stderr
    rc, out, err = finish(proc)
    assert rc == 1 and "too many wrong codes" in out, out + err
    assert err.count("annexsync: attempt failed: the code did not match") == 3
    late = desk.run("pair", "join", code, "--host", where, "--repo", str(desk.repo))
    assert late.returncode == 1 and "no pairing window" in late.stdout  # the right code, too late
    for d in devices:
        assert d.store().records() == []
        assert "annexsync::paired" not in git(d.repo, "config", "--list")


def test_an_expired_window_is_refused(devices: tuple[Device, Device]) -> None:
    laptop, desk = devices
    proc, code, where = start_show(laptop, "--timeout", "1", "--no-announce")
    rc, out, err = finish(proc)
    assert rc == 1 and "the pairing window expired" in out, out + err
    joined = desk.run("pair", "join", code, "--host", where, "--repo", str(desk.repo))
    assert joined.returncode == 1 and "not paired: no pairing window" in joined.stdout
    for d in devices:
        assert d.store().records() == []


def test_a_bad_code_is_said_in_words(devices: tuple[Device, Device]) -> None:
    _, desk = devices
    joined = desk.run("pair", "join", "7-revenue-tracker", "--host", "127.0.0.1:9")
    assert joined.returncode == 1 and "another position" in joined.stderr


def test_forget_removes_record_secret_and_remote(devices: tuple[Device, Device]) -> None:
    laptop, desk = devices
    proc, code, where = start_show(laptop, "--timeout", "30", "--no-announce")
    assert desk.run("pair", "join", code, "--host", where, "--repo", str(desk.repo)).returncode == 0
    assert finish(proc)[0] == 0
    ida = load_identity(laptop.config)
    assert ida is not None
    out = desk.run("forget", "laptop")  # the name for `pair forget`
    assert out.returncode == 0 and "forgot laptop" in out.stdout
    assert desk.store().records() == [] and desk.store().secret(ida.device_id) is None
    assert "annexsync::paired" not in git(desk.repo, "config", "--list")
    assert "no paired devices" in desk.run("pair", "list").stdout
