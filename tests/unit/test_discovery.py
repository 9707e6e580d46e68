"""core.discovery: which URLs are asked how, and configlist's output."""

from __future__ import annotations

import pytest

from core.discovery import is_http_url, is_ssh_url, parse_configlist


@pytest.mark.parametrize(
    ("url", "ssh"),
    [
        ("ssh://host/srv/repo", True),
        ("ssh://user@host:2222/~/repo", True),
        ("git+ssh://host/repo", True),
        ("host:repo", True),
        ("user@host:/srv/repo", True),
        ("/srv/repo", False),
        ("../repo", False),
        ("file:///srv/repo", False),
        ("http://host/repo.git", False),
        ("C:repo", False),  # a drive letter, not a host
        ("./a:b", False),
        ("xmpp::me@example.org", False),  # remote helpers, not ssh
        ("p2p-annex::annexsync-tcp:127.0.0.1:5000", False),
        ("annex::2a4f5c1e-1b6c-11ee-8f2d-7b2c3a1d9e01?type=directory", False),
    ],
)
def test_ssh_urls(url: str, ssh: bool) -> None:
    assert is_ssh_url(url) is ssh
    assert not (is_ssh_url(url) and is_http_url(url))


def test_configlist_output() -> None:
    out = "annex.uuid=0601e0b6-9bba-44d6-9b5b-8be2e1b00642\ncore.gcrypt-id=\n"
    assert parse_configlist(out) == {
        "annex.uuid": "0601e0b6-9bba-44d6-9b5b-8be2e1b00642",
        "core.gcrypt-id": "",
    }
    assert parse_configlist("annex.uuid=\n").get("annex.uuid") == ""
    assert parse_configlist("garbage\n") == {}
