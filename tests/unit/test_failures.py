"""``core.failures.classify`` on texts real git produced against bad URLs.

Every failure is made here, on loopback or against names that cannot resolve
(``.invalid`` is reserved, RFC 6761: the resolver answers without the
network): a closed loopback port, an HTTP server on loopback answering 401,
404 or nothing, a missing path, a listener that never speaks (git's timeout).
The only texts not produced are ssh's own login refusal (no sshd here), given
verbatim from OpenSSH.
"""

from __future__ import annotations

import http.server
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import gitops
from core.errors import GitCommandError
from core.failures import Reason, classify, error_text, one_line


def _git_error(cwd: Path, *args: str, timeout: float = 20) -> str:
    """git's stderr for a command that must fail, as the daemon sees it."""
    env_cmd = ["git", "-c", "core.sshCommand=ssh -o BatchMode=yes -o ConnectTimeout=5", *args]
    p = subprocess.run(env_cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                       env={"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "PATH": "/usr/bin:/bin",
                            "HOME": str(cwd)})
    assert p.returncode != 0, p
    return p.stderr


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


class _Answer(http.server.BaseHTTPRequestHandler):
    code = 404

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(self.server.code)  # type: ignore[attr-defined]
        if self.server.code == 401:  # type: ignore[attr-defined]
            self.send_header("WWW-Authenticate", 'Basic realm="x"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_answering() -> Iterator[callable]:  # type: ignore[valid-type]
    servers: list[http.server.HTTPServer] = []

    def start(code: int) -> int:
        srv = http.server.HTTPServer(("127.0.0.1", 0), _Answer)
        srv.code = code  # type: ignore[attr-defined]
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return int(srv.server_address[1])

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def test_ssh_unknown_host(tmp_path: Path) -> None:
    text = _git_error(tmp_path, "ls-remote", "ssh://nohost.invalid/srv/x")
    assert "Could not resolve hostname" in text
    f = classify(text)
    assert f.reason is Reason.HOST_NOT_FOUND and not f.transient
    assert f.words == "host not found" and f.detail == text


def test_ssh_closed_loopback_port(tmp_path: Path) -> None:
    text = _git_error(tmp_path, "ls-remote", f"ssh://127.0.0.1:{_closed_port()}/srv/x")
    f = classify(text)
    assert f.reason is Reason.REFUSED and f.transient and f.words == "connection refused"


def test_http_unknown_host_and_closed_port(tmp_path: Path) -> None:
    assert classify(_git_error(tmp_path, "ls-remote", "http://nohost.invalid/x")).reason \
        is Reason.HOST_NOT_FOUND
    text = _git_error(tmp_path, "ls-remote", f"http://127.0.0.1:{_closed_port()}/x")
    assert classify(text).reason is Reason.REFUSED


def test_http_login_refused_and_not_a_repository(tmp_path: Path, http_answering) -> None:  # type: ignore[no-untyped-def]
    text = _git_error(tmp_path, "ls-remote", f"http://127.0.0.1:{http_answering(401)}/x")
    assert classify(text).reason is Reason.AUTH, text
    text = _git_error(tmp_path, "ls-remote", f"http://127.0.0.1:{http_answering(404)}/x")
    assert classify(text).reason is Reason.NOT_REPOSITORY, text


def test_path_that_is_no_repository(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    text = _git_error(tmp_path, "ls-remote", str(tmp_path / "plain"))
    assert classify(text).reason is Reason.NOT_REPOSITORY, text


def test_git_timeout_through_gitops(tmp_path: Path) -> None:
    """A listener that accepts and never speaks: ssh waits for its banner, gitops' timeout ends it."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    try:
        with pytest.raises(GitCommandError) as info:
            gitops.run_git(tmp_path, ["ls-remote", f"ssh://127.0.0.1:{port}/x"], timeout=1.5)
    finally:
        srv.close()
    f = classify(error_text(info.value))
    assert f.reason is Reason.TIMED_OUT and f.transient


def test_push_rejected_by_a_real_remote(tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    subprocess.run(["git", "-C", str(bare), "config", "receive.denyNonFastForwards", "true"],
                   check=True)
    for name in ("one", "two"):
        w = tmp_path / name
        subprocess.run(["git", "clone", "-q", str(bare), str(w)], check=True, capture_output=True)
        (w / "f").write_text(name)
        subprocess.run(["git", "-C", str(w), "add", "f"], check=True)
        subprocess.run(["git", "-C", str(w), "commit", "-qm", name], check=True)
    subprocess.run(["git", "-C", str(tmp_path / "one"), "push", "-q", "origin", "HEAD:main"],
                   check=True, capture_output=True)
    text = _git_error(tmp_path / "two", "push", "origin", "HEAD:main")
    assert classify(text).reason is Reason.REJECTED, text


def test_gitcommanderror_keeps_the_line_that_matters() -> None:
    """GitCommandError's message keeps git's last three lines -- ssh's reason comes first."""
    stderr = ("ssh: Could not resolve hostname h.invalid: Name or service not known\n"
              "fatal: Could not read from remote repository.\n\n"
              "Please make sure you have the correct access rights\nand the repository exists.\n")
    e = GitCommandError(["fetch", "origin"], 128, stderr)
    assert "resolve" not in str(e)
    assert classify(error_text(e)).reason is Reason.HOST_NOT_FOUND


def test_openssh_login_refusal_and_unknown_texts() -> None:
    ssh = ("git@127.0.0.1: Permission denied (publickey).\r\n"
           "fatal: Could not read from remote repository.\n")
    assert classify(ssh).reason is Reason.AUTH
    other = classify("fatal: Could not read from remote repository.\n\nPlease make sure you have "
                     "the correct access rights\nand the repository exists.\n" + "x" * 300)
    assert other.reason is Reason.OTHER
    assert "\n" not in other.words and len(other.words) <= 80


def test_one_line() -> None:
    assert one_line("a\n  b\tc") == "a b c"
    assert one_line("y" * 100, 10) == "y" * 9 + "…"


def test_a_paired_device_offline_is_waited_for() -> None:
    f = classify("desk is offline: not seen on XMPP within 5 s")
    assert f.reason is Reason.OFFLINE and f.transient and f.words == "device offline"
