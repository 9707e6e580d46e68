"""core.secrets refuses keyrings.alt's real file backends, chainers and
low-priority backends by what they are, not by their names (issue 10).

keyrings.alt is not in the test extra: installed in the venv, keyring's chainer
would pick it up in every subprocess and annexsync (rightly) refuses that chain,
which breaks the CLI tests that use a private Secret Service.  So ``tests/run``
installs it apart, in ``.venv/keyrings-alt``, and this module imports it from
there and takes the directory off ``sys.path`` again, so that keyring's backend
discovery never sees it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import keyring
import pytest
from keyring.backends.chainer import ChainerBackend

from core import secrets
from tests.unit.test_daemon_secrets import MemoryKeyring
from tests.unit.test_daemon_secrets import restore as restore  # noqa: F401, F811 - fixture

ALT = str(Path(__file__).resolve().parents[2] / ".venv" / "keyrings-alt")
sys.path.insert(0, ALT)
try:
    pytest.importorskip("keyrings.alt", reason="tests/run installs keyrings.alt apart")
    from keyrings.alt.file import PlaintextKeyring as RealPlaintext
    from keyrings.alt.file_base import Keyring as FileKeyring
finally:
    sys.path.remove(ALT)


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
