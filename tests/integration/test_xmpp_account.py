"""The XMPP account on the command line: checked before stored, password only in the keyring.

Real prosody with TLS on loopback, a real Secret Service (B.55: never a plain
file).  Wrong password, untrusted certificate, no TLS, unreachable server:
a clear error and nothing stored.  Through a running instance as well.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest

from core.cli import main
from core.settings import load_settings
from core.xmpp.account import PASSWORD_SERVICE
from tests.xmpp_server import Prosody, free_port, prosody

pytestmark = pytest.mark.timeout(60)
SERVICE = f"annexsync:{PASSWORD_SERVICE}"


def login(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, config_dir: Path,
          jid: str, password: str, *extra: str) -> tuple[int, str]:  # fmt: skip
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    code = main(["--config-dir", str(config_dir), "xmpp", "login", jid, "--password-stdin", *extra])
    out = capsys.readouterr()
    return code, out.out + out.err


def nothing_stored(config_dir: Path, jid: str, password: str) -> None:
    assert load_settings(config_dir).xmpp_account is None
    assert keyring.get_password(SERVICE, jid) is None
    for f in config_dir.rglob("*") if config_dir.exists() else ():
        if f.is_file():
            assert password.encode() not in f.read_bytes(), f


@pytest.fixture
def accounts(xmpp_server: Prosody) -> Prosody:
    xmpp_server.register("alice", "right-pw")
    xmpp_server.register("bob", "bobs-pw")
    return xmpp_server


def test_login_stores_only_after_it_worked(accounts: Prosody, real_keyring: object, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    d = tmp_path / "cfg"
    where = ("--server", accounts.server, "--ca-file", str(accounts.cert))
    code, text = login(capsys, monkeypatch, d, "alice@localhost", "wrong-pw", *where)
    assert code == 1 and "refused the password" in text, text
    nothing_stored(d, "alice@localhost", "wrong-pw")

    code, text = login(capsys, monkeypatch, d, "alice@localhost", "right-pw",
                       "--server", accounts.server)  # fmt: skip
    assert code == 1 and "certificate is not trusted" in text, text
    nothing_stored(d, "alice@localhost", "right-pw")

    code, text = login(capsys, monkeypatch, d, "alice@localhost", "right-pw",
                       "--server", f"127.0.0.1:{free_port()}", "--ca-file", str(accounts.cert))
    assert code == 1 and "cannot reach" in text, text
    nothing_stored(d, "alice@localhost", "right-pw")

    code, text = login(capsys, monkeypatch, d, "alice@localhost", "right-pw", *where)
    assert code == 0, text
    s = load_settings(d)
    assert (s.xmpp_account, s.xmpp_server, s.xmpp_ca_file) == (
        "alice@localhost", accounts.server, str(accounts.cert))
    assert keyring.get_password(SERVICE, "alice@localhost") == "right-pw"
    for f in d.rglob("*"):  # B.55: the password is in no file of the config dir
        if f.is_file():
            assert b"right-pw" not in f.read_bytes(), f

    # another address: the old address's password goes
    code, text = login(capsys, monkeypatch, d, "bob@localhost", "bobs-pw", *where)
    assert code == 0, text
    assert keyring.get_password(SERVICE, "alice@localhost") is None
    assert keyring.get_password(SERVICE, "bob@localhost") == "bobs-pw"

    assert main(["--config-dir", str(d), "xmpp", "logout"]) == 0
    assert keyring.get_password(SERVICE, "bob@localhost") is None
    assert load_settings(d).xmpp_account is None


def test_a_server_without_tls_gets_no_password(tmp_path: Path, real_keyring: object,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    with prosody(tmp_path / "plain", tls=False) as server:
        server.register("alice", "right-pw")
        code, text = login(capsys, monkeypatch, tmp_path / "cfg", "alice@localhost", "right-pw",
                           "--server", server.server)  # fmt: skip
    assert code == 1 and "no encrypted login" in text, text
    nothing_stored(tmp_path / "cfg", "alice@localhost", "right-pw")


def test_no_safe_keyring_means_no_login(accounts: Prosody, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    code, text = login(capsys, monkeypatch, tmp_path / "cfg", "alice@localhost", "right-pw",
                       "--server", accounts.server, "--ca-file", str(accounts.cert))
    assert code == 1 and "cannot keep secrets safely" in text, text
    assert load_settings(tmp_path / "cfg").xmpp_account is None


@pytest.fixture
def running_core(tmp_path: Path, real_keyring: object) -> Iterator[Path]:
    """A real ``Core`` running in a thread with its own loop (the CLI talks to its socket)."""
    from core.api import Core
    from core.daemon.timings import Timings
    from core.instance import request

    d = tmp_path / "daemon"
    loop = asyncio.new_event_loop()
    core = Core(d, timings=Timings(xmpp_backoff_first=0.05, xmpp_backoff_most=0.4))
    thread = threading.Thread(target=loop.run_until_complete, args=(core.run(),), daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if request(d, {"op": "status"}, 1) is not None:
                break
            threading.Event().wait(0.01)
        yield d
    finally:
        asyncio.run_coroutine_threadsafe(core.stop(), loop)  # run() returns, the thread ends
        thread.join(20)
        assert not thread.is_alive()
        loop.close()


def test_login_and_buddies_through_the_running_instance(accounts: Prosody, running_core: Path,
                                                        capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    d = running_core
    code, text = login(capsys, monkeypatch, d, "alice@localhost", "wrong-pw",
                       "--server", accounts.server, "--ca-file", str(accounts.cert))
    assert code == 1 and "refused the password" in text, text
    nothing_stored(d, "alice@localhost", "wrong-pw")
    code, text = login(capsys, monkeypatch, d, "alice@localhost", "right-pw",
                       "--server", accounts.server, "--ca-file", str(accounts.cert))
    assert code == 0, text
    assert keyring.get_password(SERVICE, "alice@localhost") == "right-pw"
    state = ""
    for _ in range(500):
        assert main(["--config-dir", str(d), "xmpp", "buddies", "--json"]) == 0
        state = json.loads(capsys.readouterr().out)["xmpp"]["state"]
        if state == "online":
            break
        threading.Event().wait(0.02)
    assert state == "online"
    assert main(["--config-dir", str(d), "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["xmpp"]["account"] == "alice@localhost" and "password" not in json.dumps(status)


@pytest.mark.asyncio
async def test_the_command_line_alone_logs_in_and_lists_buddies(accounts: Prosody, tmp_path: Path,
                                                                real_keyring: object) -> None:
    """The installed ``annexsync`` as a process, no instance running; the password on stdin."""
    import subprocess
    import sys

    from tests.integration.xmpp_helpers import config, link, until

    exe = str(Path(sys.executable).parent / "annexsync")
    d = str(tmp_path / "cli")
    login = await asyncio.to_thread(
        subprocess.run, [exe, "--config-dir", d, "xmpp", "login", "alice@localhost",
                         "--password-stdin", "--server", accounts.server,
                         "--ca-file", str(accounts.cert)],
        input="right-pw\n", capture_output=True, text=True, timeout=60)  # fmt: skip
    assert login.returncode == 0, login.stderr
    desk = link(config(accounts, "alice@localhost", "right-pw"), "desk")
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(desk.run())
        await until(lambda: desk.state.value == "online", 10)
        out = await asyncio.to_thread(
            subprocess.run, [exe, "--config-dir", d, "xmpp", "buddies", "--json"],
            capture_output=True, text=True, timeout=60)  # fmt: skip
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout)
        assert data["xmpp"]["state"] == "online"
        assert [(x["name"], x["presence"], x["paired"]) for x in data["devices"]] == [
            ("desk", "online", False)]
        task.cancel()
