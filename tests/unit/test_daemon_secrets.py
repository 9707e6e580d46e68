"""core.secrets: only a real secret store is accepted (test-environment.md 4)."""

from __future__ import annotations

from collections.abc import Iterator

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail

from core import secrets


class MemoryKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.store.pop((service, username), None)


class PlaintextKeyring(MemoryKeyring):
    """Stands in for keyrings.alt's file backend: priority 0.5."""

    priority = 0.5  # type: ignore[assignment]


@pytest.fixture
def restore() -> Iterator[None]:
    before = keyring.get_keyring()
    yield
    keyring.set_keyring(before)


def test_safe_backend_round_trip(restore: None) -> None:
    mem = MemoryKeyring()
    keyring.set_keyring(mem)
    secrets.store("xmpp", "me@example.org", "s3cret")
    assert secrets.get("xmpp", "me@example.org") == "s3cret"
    assert ("annexsync:xmpp", "me@example.org") in mem.store
    secrets.delete("xmpp", "me@example.org")
    secrets.delete("xmpp", "me@example.org")  # twice is fine
    assert secrets.get("xmpp", "me@example.org") is None


@pytest.mark.parametrize("backend", [fail.Keyring(), PlaintextKeyring()])
def test_unsafe_backends_are_refused(restore: None, backend: KeyringBackend) -> None:
    keyring.set_keyring(backend)
    with pytest.raises(secrets.SecretsUnavailable, match="Secret Service"):
        secrets.store("xmpp", "me@example.org", "s3cret")
    with pytest.raises(secrets.SecretsUnavailable):
        secrets.get("xmpp", "me@example.org")
    if isinstance(backend, MemoryKeyring):
        assert backend.store == {}  # nothing was written anywhere

