"""core.secrets: only a real secret store is accepted (test-environment.md 4)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail
from keyring.backends.chainer import ChainerBackend
from keyrings.alt.file import PlaintextKeyring as RealPlaintext
from keyrings.alt.file_base import Keyring as FileKeyring

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


class Vault(MemoryKeyring):
    """An innocent name on a backend that says it should not be used."""

    priority = 0.1  # type: ignore[assignment]


class Store(RealPlaintext):  # type: ignore[misc]
    """keyrings.alt's file backend under an innocent name, claiming priority."""

    priority = 2  # type: ignore[assignment]


class Sealed(FileKeyring):  # type: ignore[misc]
    """Another file backend on keyrings.alt's base, with a reversible "cipher"."""

    priority = 2  # type: ignore[assignment]
    filename = "sealed.cfg"
    scheme = "rot13"
    version = "1"

    def encrypt(self, password: str, assoc: object = None) -> bytes:
        return bytes(reversed(password.encode()))

    def decrypt(self, password_encrypted: bytes, assoc: object = None) -> str:
        return bytes(reversed(password_encrypted)).decode()


class Wallet(ChainerBackend):
    """The chainer under an innocent name."""


def test_real_file_backend_chainer_and_low_priority_backends_are_refused(
    restore: None, tmp_path: Path
) -> None:
    """Refusal by what a backend is: keyrings.alt's real file backend, under its
    own name and under an innocent one with its priority raised; the chainer,
    also when subclassed; a low-priority backend with an innocent name."""
    real = RealPlaintext()
    store = Store()
    sealed = Sealed()
    for file_backed in (real, store, sealed):
        file_backed.file_path = str(tmp_path / "secrets.cfg")  # type: ignore[misc]
    plaintext_chain = Wallet()
    type(plaintext_chain).backends = [MemoryKeyring(), real]  # type: ignore[misc]
    for backend in (real, store, sealed, ChainerBackend(), plaintext_chain, Vault()):
        keyring.set_keyring(backend)
        with pytest.raises(secrets.SecretsUnavailable, match="Secret Service"):
            secrets.store("xmpp", "me@example.org", "s3cret")
    assert not (tmp_path / "secrets.cfg").exists()  # nothing was written anywhere
