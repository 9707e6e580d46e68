"""Secrets (XMPP password, tokens) through the OS keyring, never in plain files.

Theory of operation
-------------------
``keyring`` picks a backend once per process.  We accept it only when it is a
real secret store: a backend whose priority is at least 1 and which is not
the ``fail``/``null`` backend or a plaintext one (``keyrings.alt``'s
``PlaintextKeyring`` has priority 0.5 and writes base64 to a file -- the trap
test-environment.md section 4 warns about).  For the chainer backend every
chained backend must pass.  Anything else raises ``SecretsUnavailable`` with a
text naming the fix, so the caller can keep the secret for the session only.

keyring is blocking (D-Bus round trips): async callers run these functions via
``asyncio.to_thread``.
"""

from __future__ import annotations

import logging

import keyring
import keyring.errors
from keyring.backend import KeyringBackend
from keyring.backends.chainer import ChainerBackend

from core.errors import CoreError

logger = logging.getLogger(__name__)

SERVICE_PREFIX = "annexsync"
# matched against every class a backend derives from; keyrings.alt.file_base is the
# base of all of keyrings.alt's file backends (plain text, or encrypted behind a prompt)
_REFUSED_NAMES = ("plaintext", "fail", "null", "uncrypted", "encryptedfile", "keyrings.alt.file")


class SecretsUnavailable(CoreError):
    """No acceptable secret store; the secret was not stored anywhere."""

    def __init__(self, backend: str, why: str) -> None:
        super().__init__(
            f"cannot keep secrets safely: {why} (keyring backend {backend}); start a "
            "Secret Service such as gnome-keyring or KWallet, then try again"
        )
        self.backend = backend
        self.why = why


def _describe(b: KeyringBackend) -> str:
    return f"{type(b).__module__}.{type(b).__name__}"


def _refusal(b: KeyringBackend) -> str | None:
    """Why ``b`` is no secret store, judged by what it is, not what it is called.

    Every class it derives from counts: a subclass of keyrings.alt's
    ``PlaintextKeyring`` under an innocent name, with its priority raised,
    still writes plain text.
    """
    names = [f"{c.__module__}.{c.__qualname__}".lower() for c in type(b).__mro__]
    if any(word in name for name in names for word in _REFUSED_NAMES):
        return "it stores nothing or stores secrets in plain text"
    try:
        priority = float(b.priority)
    except Exception:  # noqa: BLE001 - a backend whose priority raises is not viable
        return "it is not usable here"
    if priority < 1:
        return f"its priority {priority:g} marks it as unsafe or unusable"
    return None


def backend() -> KeyringBackend:
    """The keyring backend, if it is a safe one.

    Raises:
        SecretsUnavailable: the backend is absent, failing, or plaintext.
    """
    b = keyring.get_keyring()
    if isinstance(b, ChainerBackend):  # whatever the subclass is called
        members = list(b.backends)
        if not members:
            raise SecretsUnavailable(_describe(b), "no secret store is available")
        for member in members:
            why = _refusal(member)
            if why:
                raise SecretsUnavailable(_describe(member), why)
        return b
    why = _refusal(b)
    if why:
        raise SecretsUnavailable(_describe(b), why)
    return b


def _service(service: str) -> str:
    return service if service.startswith(SERVICE_PREFIX) else f"{SERVICE_PREFIX}:{service}"


def store(service: str, name: str, secret: str) -> None:
    """Keep ``secret`` in the keyring.

    Raises:
        SecretsUnavailable: no safe store, or the store refused.
    """
    b = backend()
    try:
        b.set_password(_service(service), name, secret)
    except keyring.errors.KeyringError as e:
        raise SecretsUnavailable(_describe(b), f"the store refused: {e}") from e


def get(service: str, name: str) -> str | None:
    """The stored secret, or None when there is none.

    Raises:
        SecretsUnavailable: no safe store, or it could not be read (locked).
    """
    b = backend()
    try:
        return b.get_password(_service(service), name)
    except keyring.errors.KeyringError as e:
        raise SecretsUnavailable(_describe(b), f"the store could not be read: {e}") from e


def delete(service: str, name: str) -> None:
    """Forget a secret; forgetting one that is not there is not an error.

    Raises:
        SecretsUnavailable: no safe store.
    """
    b = backend()
    try:
        b.delete_password(_service(service), name)
    except keyring.errors.PasswordDeleteError:
        pass
    except keyring.errors.KeyringError as e:
        raise SecretsUnavailable(_describe(b), f"the store refused: {e}") from e
