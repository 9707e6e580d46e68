"""``annex+http`` remotes behind the synchronous ``core.remotes.Remote``.

Spec: the reference notes p2phttp.md sections 2 (annexUrl, UUID discovery),
5.10-5.11 (locks), 6 (credentials), 7 (fallback).

Theory of operation
-------------------
As ``core.p2p.remote.P2PRemote`` does for P2P sessions, ``HttpRemote`` runs
an async ``P2PHttpClient`` on a private ``asyncio.Runner`` owned by the
remote, in the caller's thread; the one ``aiohttp.ClientSession`` lives on
that loop and is closed by ``close`` (or the finalizer).  Callers inside a
running loop (the GUI) should use ``P2PHttpClient`` directly.

``lock_content`` takes ``lockcontent`` and starts the ``keeplocked`` request
before yielding; the request's task is suspended with the loop between
``Runner.run`` calls while its TCP connection stays open, so the server keeps
the lock for as long as the context lasts.  Leaving the context sends
``{"unlock":true}``.  The lock is registered with the P2P remotes' registry
of held proofs, so a ``remove`` meanwhile (from this or a P2P remote) uses
``gettimestamp`` + ``remove-before`` as git-annex does (spec 5.7).

TLS: certificates are verified against the system store, which honours
``SSL_CERT_FILE``, plus git's ``http.sslCAInfo`` when set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import aiohttp

from core.errors import PartialRemoval, RemoteRefused, RemoteUnavailable
from core.p2p.remote import LOCK_PROOF_SECONDS, earliest_lock_expiry
from core.p2p.remote import _hold as hold_proof  # one registry for every kind of lock
from core.p2p.remote import _release as release_proof
from core.p2phttp.client import (
    Credentials,
    Endpoint,
    KeptLock,
    KeyringOrGit,
    P2PHttpClient,
    discover_uuid,
)
from core.remotes import Advance, RemoteInfo
from core.repo.key import Key
from core.repo.objects import Incoming
from core.repo.repository import AnnexRepo, config_value

logger = logging.getLogger(__name__)

T = TypeVar("T")
CONNECTIONS = 8


def client_ssl_context(cafile: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if cafile:
        ctx.load_verify_locations(cafile)
    return ctx


class HttpRemote:
    """A ``core.remotes.Remote`` over the P2P HTTP API."""

    def __init__(
        self,
        info: RemoteInfo,
        our_uuid: str,
        endpoint: Endpoint,
        *,
        credentials: Credentials | None = None,
        cafile: str | None = None,
        io_timeout: float = 300.0,
    ) -> None:
        self.info = info
        self.our_uuid = our_uuid
        self.endpoint = endpoint
        self.credentials = credentials
        self.cafile = cafile
        self.io_timeout = io_timeout
        self._runner = asyncio.Runner()
        self._state: dict[str, object] = {}
        self._client: P2PHttpClient | None = None
        self._finalizer = weakref.finalize(self, _shutdown, self._runner, self._state)

    def _run(self, coro: Awaitable[T]) -> T:
        async def wrapped() -> T:
            return await coro

        return self._runner.run(wrapped())

    async def _open(self) -> P2PHttpClient:
        if self._client is not None:
            return self._client
        connector = aiohttp.TCPConnector(limit=CONNECTIONS,
                                         ssl=client_ssl_context(self.cafile))  # fmt: skip
        session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        self._state["session"] = session
        uuid = self.info.uuid
        if uuid is None and self.info.url and self.info.url.startswith(("http:", "https:")):
            uuid, _ = await discover_uuid(session, self.info.url, self.io_timeout)
            if uuid:
                self.info = replace(self.info, uuid=uuid)
        if not uuid:
            raise RemoteUnavailable(
                f"{self.info.name}: unknown repository UUID (set remote.{self.info.name}.annex-uuid)"
            )
        self._client = P2PHttpClient(session, self.endpoint, uuid, self.our_uuid,
                                     credentials=self.credentials,
                                     io_timeout=self.io_timeout)  # fmt: skip
        return self._client

    def _call(self, fn: Callable[[P2PHttpClient], Awaitable[T]]) -> T:
        async def go() -> T:
            return await fn(await self._open())

        return self._run(go())

    # --- Remote ----------------------------------------------------------------

    def check_present(self, key: Key) -> bool:
        return self._call(lambda c: c.check_present(key))

    @contextlib.contextmanager
    def lock_content(self, key: Key) -> Iterator[None]:
        taken = time.monotonic()
        lock_id = self._call(lambda c: c.lock(key))
        if lock_id is None:
            raise RemoteRefused(f"{self.info.name}: could not lock {key}")
        kept = self._call(lambda c: _start(c, lock_id))
        held = hold_proof(taken + LOCK_PROOF_SECONDS)
        try:
            yield
        finally:
            release_proof(held)
            self._run(kept.release())

    def retrieve(self, key: Key, into: Incoming, advance: Advance) -> None:
        self._call(lambda c: c.get(key, into, advance))

    def store(self, key: Key, source: Path, advance: Advance) -> tuple[str, ...]:
        if self.info.readonly:
            raise RemoteRefused(f"{self.info.name} is read-only")
        return self._call(lambda c: c.put(key, source, advance))

    def remove(self, key: Key) -> tuple[str, ...]:
        def go(c: P2PHttpClient) -> Awaitable[tuple[bool, tuple[str, ...]]]:
            return _remove(c, key)

        removed, plus = self._call(go)
        if not removed:
            raise PartialRemoval(f"{self.info.name}: could not remove {key}", plus)
        return plus

    def close(self) -> None:
        self._finalizer()


async def _start(client: P2PHttpClient, lock_id: str) -> KeptLock:
    kept = client.keep_locked(lock_id)
    await kept.start()
    return kept


async def _remove(client: P2PHttpClient, key: Key) -> tuple[bool, tuple[str, ...]]:
    """Plain remove, or remove-before while a lock proves a copy (spec 5.7)."""
    expiry = earliest_lock_expiry()
    if expiry is not None:
        now = await client.timestamp()
        if now is not None:
            left = int(expiry - time.monotonic())
            if left <= 0:
                return False, ()
            return await client.remove_plus(key, before=now + left)
    return await client.remove_plus(key)


def _shutdown(runner: asyncio.Runner, state: dict[str, object]) -> None:
    session = state.pop("session", None)
    if asyncio._get_running_loop() is not None:
        return  # from the garbage collector inside another loop: nothing safe to do
    with contextlib.suppress(Exception):
        if isinstance(session, aiohttp.ClientSession):
            runner.run(session.close())
    with contextlib.suppress(Exception):
        runner.close()


# --- building from git config ------------------------------------------------------


def _cfg(repo: AnnexRepo, section: bytes | tuple[bytes, bytes], name: str) -> str | None:
    return config_value(repo.git.get_config_stack(), section, name.encode())


def credential_url(annex_url: str, git_url: str | None) -> str:
    """Where credentials are looked up (spec 6): the git URL on the same host."""
    real = annex_url.removeprefix("annex+")
    if git_url and git_url.startswith(("http://", "https://")):
        if urlsplit(git_url).hostname == urlsplit(real).hostname:
            return git_url
    return real


def http_remote(repo: AnnexRepo, info: RemoteInfo) -> HttpRemote:
    """The ``annex+http`` remote ``info`` (remote.NAME.annexUrl or an annex+http URL).

    Raises:
        RemoteUnavailable: no usable annex+http URL.
    """
    annex_url = _cfg(repo, (b"remote", info.config_name.encode()), "annexurl") or info.url or ""
    endpoint = Endpoint.parse(annex_url)
    git_url = info.url if info.url and not info.url.startswith("annex+") else None
    creds = KeyringOrGit(credential_url(annex_url, git_url), cwd=repo.path)
    cafile = _cfg(repo, b"http", "sslcainfo")
    return HttpRemote(info, repo.uuid, endpoint, credentials=creds, cafile=cafile)


__all__ = ["HttpRemote", "client_ssl_context", "credential_url", "http_remote"]
