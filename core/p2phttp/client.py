"""An aiohttp client for the git-annex P2P HTTP API.

Spec: the reference notes p2phttp.md sections 2.1 (URLs), 4 (encodings), 5
(endpoints), 6 (credentials), 7 (version fallback), 9 (pitfalls).

Theory of operation
-------------------
``Endpoint.parse`` turns an ``annex+http(s)`` URL into the origin and path
prefix the git-annex client would use (spec 2.1 table, default port 9417).
``P2PHttpClient`` runs one operation per HTTP request over a shared
``aiohttp.ClientSession`` (one per remote, style 5):

- Versions: each operation tries the highest version it exists in, at most
  the highest that worked before, and moves down **only on 404** (spec 7.1);
  when every version says 404 the server lacks the endpoint or does not
  serve that UUID (``RemoteUnavailable``).
- Credentials: on 401 the ``Credentials`` source is asked (keyring through
  ``core.secrets``, then ``git credential fill``), the request is retried
  once with Basic auth and the credential is approved or rejected (spec 6).
  Credentials that worked are sent up front afterwards.  403 is "not
  permitted" (``RemoteRefused``), never a new prompt.
- Downloads (``get``) stream into an ``Incoming`` from the offset it already
  holds (resume) and check the received length against
  ``X-git-annex-data-length``: a body that ends cleanly but short means the
  server saw the content change, so what arrived is discarded; a connection
  cut keeps it for resume (spec 5.2, pitfalls 1-3).  An empty answer for a
  key that is not empty is ``ContentMissing``.
- Uploads (``put``) ask ``putoffset`` first (v1+), then stream the file from
  that offset, holding back the last byte until the file is checked
  unchanged; a change sends one byte less so the server refuses it (5.9).
- Locks: ``lock`` returns a lock id; ``KeptLock`` holds the ``keeplocked``
  request open with a streamed body until ``release`` sends
  ``{"unlock":true}``; ``abort`` (or cancellation) drops the connection,
  which also releases the server's lock (spec 5.11).

Errors keep "could not reach" (``RemoteUnavailable``) apart from "said no"
(``RemoteRefused``); malformed replies are ``RemoteProtocolError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from core.errors import (
    ContentMissing,
    CoreError,
    RemoteError,
    RemoteProtocolError,
    RemoteRefused,
    RemoteUnavailable,
)
from core.p2phttp import models as m
from core.p2phttp.auth import format_basic
from core.repo.key import Key
from core.repo.objects import Incoming

logger = logging.getLogger(__name__)

CHUNK = 1 << 20
Advance = Callable[[int], None]
KEEPLOCKED_START_TIMEOUT = 60.0
RELEASE_TIMEOUT = 30.0
CREDENTIAL_TIMEOUT = 300.0


# --- URLs (spec 2.1) -------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """Where the API lives: ``origin`` (scheme://host:port) and a path prefix."""

    origin: str
    prefix: str

    @classmethod
    def parse(cls, annex_url: str) -> Endpoint:
        """Raises: RemoteUnavailable, not an ``annex+http(s)`` URL."""
        url = annex_url.removeprefix("annex+")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RemoteUnavailable(f"{annex_url!r} is not an annex+http(s) URL")
        host = parts.hostname
        if ":" in host:
            host = f"[{host}]"
        port = parts.port or m.DEFAULT_PORT
        path = parts.path
        if path in ("", "/git-annex", "/git-annex/"):
            prefix = ""
        elif path == "/":
            prefix = "/"  # git-annex asks for //git-annex/... here (spec 2.1)
        else:
            prefix = path.rstrip("/")
        return cls(f"{parts.scheme}://{host}:{port}", prefix)

    @property
    def https(self) -> bool:
        return self.origin.startswith("https:")

    def url(self, server_uuid: str, tail: str, query: Mapping[str, str | None]) -> URL:
        """The request URL, percent-encoded exactly once (values via ``quote_param``)."""
        q = "&".join(f"{k}={m.quote_param(v)}" for k, v in query.items() if v is not None)
        path = f"{self.prefix}/git-annex/{m.quote_param(server_uuid)}/{tail}"
        return URL(f"{self.origin}{path}" + (f"?{q}" if q else ""), encoded=True)


# --- credentials (spec 6) -----------------------------------------------------------


class Credentials(Protocol):
    async def fill(self) -> tuple[str, str] | None: ...

    async def approve(self, user: str, password: str) -> None: ...

    async def reject(self, user: str, password: str) -> None: ...


KEYRING_SERVICE = "p2phttp"


def store_in_keyring(url: str, user: str, password: str) -> None:
    """Keep a p2phttp credential for ``url`` in the OS keyring (never plaintext).

    Raises:
        SecretsUnavailable: no safe keyring.
    """
    from core import secrets

    secrets.store(KEYRING_SERVICE, url, f"{user}:{password}")


class KeyringOrGit:
    """Credentials from the keyring (``core.secrets``), else ``git credential``.

    ``url`` is what the credential is stored under: the git remote's URL when
    it is on the same host as the annexUrl, else the annex URL (spec 6).
    """

    def __init__(self, url: str, *, cwd: Path | None = None, use_keyring: bool = True) -> None:
        self.url = url
        self.cwd = cwd
        self.use_keyring = use_keyring
        self._from_git = False

    async def fill(self) -> tuple[str, str] | None:
        if self.use_keyring:
            found = await asyncio.to_thread(_keyring_get, self.url)
            if found is not None:
                self._from_git = False
                return found
        out = await self._git("fill", "")
        if out is None:
            return None
        fields = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        if "username" not in fields or "password" not in fields:
            return None
        self._from_git = True
        return fields["username"], fields["password"]

    async def approve(self, user: str, password: str) -> None:
        if self._from_git:
            await self._git("approve", f"username={user}\npassword={password}\n")

    async def reject(self, user: str, password: str) -> None:
        if self._from_git:
            await self._git("reject", f"username={user}\npassword={password}\n")

    async def _git(self, action: str, extra: str) -> str | None:
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        text = f"protocol={parts.scheme}\nhost={host}\n"
        if parts.path.strip("/"):
            text += f"path={parts.path.strip('/')}\n"
        text += extra + "\n"
        env = dict(os.environ)
        if not sys.stdin.isatty():
            env["GIT_TERMINAL_PROMPT"] = "0"

        def run() -> str | None:
            try:
                p = subprocess.run(["git", "credential", action], input=text, text=True,
                                   capture_output=True, cwd=self.cwd, env=env,
                                   timeout=CREDENTIAL_TIMEOUT)  # fmt: skip
            except (OSError, subprocess.TimeoutExpired) as e:
                logger.info("git credential %s: %s", action, e)
                return None
            return p.stdout if p.returncode == 0 else None

        return await asyncio.to_thread(run)


def _keyring_get(url: str) -> tuple[str, str] | None:
    try:
        from core import secrets

        value = secrets.get(KEYRING_SERVICE, url)
    except (CoreError, ImportError) as e:
        logger.debug("keyring not used for %s: %s", url, e)
        return None
    if not value or ":" not in value:
        return None
    user, _, password = value.partition(":")
    return user, password


# --- the client ------------------------------------------------------------------------


class P2PHttpClient:
    """One remote repository served over the API (see the module docstring).

    Args:
        session: the shared aiohttp session (the caller owns and closes it).
        endpoint: from ``Endpoint.parse``.
        server_uuid: the served repository's UUID (there is no way to ask, 2.2).
        client_uuid: our repository's UUID.
        credentials: asked on 401; None means anonymous only.
        io_timeout: longest wait for a reply or for the next body chunk.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoint: Endpoint,
        server_uuid: str,
        client_uuid: str,
        *,
        credentials: Credentials | None = None,
        io_timeout: float = 300.0,
    ) -> None:
        self.session = session
        self.endpoint = endpoint
        self.server_uuid = server_uuid
        self.client_uuid = client_uuid
        self.credentials = credentials
        self.io_timeout = io_timeout
        self.top_version = max(m.API_VERSIONS)
        self._auth: tuple[str, str] | None = None
        self._approved = False
        self._timeout = aiohttp.ClientTimeout(total=None, connect=io_timeout,
                                              sock_connect=io_timeout, sock_read=io_timeout)  # fmt: skip

    # --- plumbing ---------------------------------------------------------------------

    def versions(self, op: m.Op) -> list[int]:
        return [v for v in m.API_VERSIONS if v <= self.top_version and v in m.VERSIONS[op]]

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        h = dict(extra or {})
        if self._auth is not None:
            h["Authorization"] = format_basic(*self._auth)
        return h

    @contextlib.asynccontextmanager
    async def _request(
        self,
        method: str,
        op: m.Op,
        query: Mapping[str, str | None],
        *,
        key: Key | None = None,
        headers: Mapping[str, str] | None = None,
        body: Callable[[], object] | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> AsyncIterator[tuple[int, aiohttp.ClientResponse]]:
        """The first response that is not a 404, with the version it used.

        Raises:
            RemoteUnavailable: unreachable, or 404 at every version.
            RemoteRefused: 401 without usable credentials, 403, 400, 500.
        """
        for version in self.versions(op):
            tail = f"v{version}/{op.value}"
            if key is not None and op is m.Op.KEY:
                tail += "/" + m.quote_param(str(key))
            q = dict(query)
            if key is not None and op is not m.Op.KEY:
                q = {"key": str(key), **q}
            url = self.endpoint.url(self.server_uuid, tail, {**q, "clientuuid": self.client_uuid})
            resp = await self._send(method, url, headers, body, timeout)
            try:
                if resp.status == 404:
                    continue
                await self._check(resp, op)
                if version < self.top_version:
                    logger.info("%s: using API version %d", self.endpoint.origin, version)
                    self.top_version = version
                yield version, resp
                return
            finally:
                resp.release()
        self.top_version = max(m.API_VERSIONS)
        raise RemoteUnavailable(
            f"{self.endpoint.origin}: the P2P HTTP server does not serve {self.server_uuid} "
            f"or is missing the {op.value} endpoint"
        )

    async def _send(self, method: str, url: URL, headers: Mapping[str, str] | None,
                    body: Callable[[], object] | None,
                    timeout: aiohttp.ClientTimeout | None) -> aiohttp.ClientResponse:  # fmt: skip
        for attempt in (1, 2):
            try:
                resp = await self.session.request(
                    method, url, headers=self._headers(headers),
                    data=body() if body is not None else None,
                    timeout=timeout or self._timeout,
                )  # fmt: skip
            except (aiohttp.ClientConnectionError, TimeoutError) as e:
                raise RemoteUnavailable(f"{self.endpoint.origin}: {e or type(e).__name__}") from e
            if resp.status != 401 or attempt == 2 or not await self._login(resp):
                return resp
            resp.release()
        raise AssertionError("unreachable")

    async def _login(self, resp: aiohttp.ClientResponse) -> bool:
        """After a 401: find credentials to retry with; False when there are none."""
        if self.credentials is None:
            return False
        if self._auth is not None:  # they worked before, and no longer do
            await self.credentials.reject(*self._auth)
            self._auth = None
            self._approved = False
            return False
        found = await self.credentials.fill()
        if found is None:
            return False
        self._auth = found
        return True

    async def _check(self, resp: aiohttp.ClientResponse, op: m.Op) -> None:
        if resp.status == 200:
            if self._auth is not None and not self._approved and self.credentials is not None:
                self._approved = True
                await self.credentials.approve(*self._auth)
            return
        text = ""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                text = (await resp.content.read(1000)).decode("utf-8", "replace").strip()
        where = f"{self.endpoint.origin} {op.value}"
        if resp.status == 401:
            if self._auth is not None and self.credentials is not None:
                await self.credentials.reject(*self._auth)
                self._auth = None
            raise RemoteRefused(f"{where}: authentication required")
        if resp.status == 403:
            raise RemoteRefused(f"{where}: not permitted")
        if resp.status in (502, 503):
            raise RemoteUnavailable(f"{where}: {resp.status} {text}")
        raise RemoteRefused(f"{where}: {resp.status} {text}")

    async def _json(self, method: str, op: m.Op, query: Mapping[str, str | None],
                    key: Key | None = None) -> tuple[int, m.Json]:  # fmt: skip
        async with self._request(method, op, query, key=key) as (version, resp):
            async with asyncio.timeout(self.io_timeout):
                raw = await resp.content.read(1 << 16)
            return version, m.load(raw, op.value)

    # --- operations (spec 5) -------------------------------------------------------------

    async def check_present(self, key: Key) -> bool:
        _, body = await self._json("POST", m.Op.CHECKPRESENT, {}, key)
        return m.field_bool(body, "present", "checkpresent")

    async def timestamp(self) -> int | None:
        """The server's clock (spec 5.6), or None when it is older than v3."""
        if not self.versions(m.Op.GETTIMESTAMP):
            return None
        try:
            _, body = await self._json("POST", m.Op.GETTIMESTAMP, {})
        except RemoteUnavailable:
            return None
        return m.field_int(body, "timestamp", "gettimestamp")

    async def remove(self, key: Key, before: int | None = None) -> bool:
        """``remove`` or ``remove-before`` (spec 5.5, 5.7); 500 (locked) is False."""
        return (await self.remove_plus(key, before))[0]

    async def remove_plus(self, key: Key, before: int | None = None) -> tuple[bool, tuple[str, ...]]:
        """As ``remove``, with the ``plusuuids`` that lost the key too (clusters.md 4.3)."""
        op = m.Op.REMOVE if before is None else m.Op.REMOVE_BEFORE
        query = {} if before is None else {"timestamp": str(before)}
        try:
            _, body = await self._json("POST", op, query, key)
        except RemoteRefused as e:
            if " 500 " in str(e):
                logger.info("remove %s refused: %s", key, e)
                return False, ()
            raise
        return m.field_bool(body, "removed", op.value), tuple(m.plus_uuids(body))

    async def lock(self, key: Key) -> str | None:
        """``lockcontent``: the lock id, or None when the server could not lock."""
        _, body = await self._json("POST", m.Op.LOCKCONTENT, {}, key)
        if not m.field_bool(body, "locked", "lockcontent"):
            return None
        lock_id = body.get("lockid")
        if not isinstance(lock_id, str) or not lock_id:
            raise RemoteProtocolError(f"lockcontent: no lockid in {body!r}")
        return lock_id

    def keep_locked(self, lock_id: str) -> KeptLock:
        return KeptLock(self, lock_id)

    async def put_offset(self, key: Key) -> m.PutOffset:
        if not self.versions(m.Op.PUTOFFSET):
            return m.PutOffset(0)  # v0: no putoffset, start at 0 (spec 5.8)
        _, body = await self._json("POST", m.Op.PUTOFFSET, {}, key)
        return m.parse_putoffset(body)

    async def put(self, key: Key, source: Path, advance: Advance,
                  associated_file: str | None = None) -> tuple[str, ...]:  # fmt: skip
        """Store ``key`` from ``source`` (spec 5.8, 5.9); the extra UUIDs stored to.

        Raises:
            RemoteRefused: ``stored:false`` or a refusal.
            RemoteUnavailable: the connection failed.
        """
        where = await self.put_offset(key)
        if where.offset is None:
            return where.plus
        offset = where.offset
        f = await asyncio.to_thread(source.open, "rb")
        try:
            size = os.fstat(f.fileno()).st_size
            if offset > size:
                offset = 0
            length = size - offset
            query = {"associatedfile": associated_file, "offset": str(offset)}
            headers = {"Content-Type": m.OCTET_STREAM, m.DATA_LENGTH: str(length)}
            async with self._request(
                "POST", m.Op.PUT, query, key=key, headers=headers,
                body=lambda: _file_body(f, offset, length, advance),
            ) as (_, resp):  # fmt: skip
                async with asyncio.timeout(self.io_timeout):
                    body = m.load(await resp.content.read(1 << 16), "put")
        finally:
            await asyncio.to_thread(f.close)
        if not m.field_bool(body, "stored", "put"):
            raise RemoteRefused(f"{self.endpoint.origin}: put {key}: not stored")
        return tuple(m.plus_uuids(body))

    async def get(self, key: Key, into: Incoming, advance: Advance,
                  associated_file: str | None = None) -> None:  # fmt: skip
        """Download ``key`` into ``into`` from what it holds (spec 5.2).

        Raises:
            ContentMissing: the server has no content for it.
            RemoteError: the content changed while sent (discarded).
            RemoteUnavailable: the connection broke (what arrived is kept).
        """
        offset = await asyncio.to_thread(into.open)
        query = {"associatedfile": associated_file, "offset": str(offset) if offset else None}
        headers = {"Accept": m.OCTET_STREAM}
        async with self._request("GET", m.Op.KEY, query, key=key, headers=headers) as (_, resp):
            length = m.parse_data_length(resp.headers.get(m.DATA_LENGTH))
            got = await _receive(resp, into, advance)
        if got != length:
            await asyncio.to_thread(into.discard)
            raise RemoteError(
                f"{key} changed on {self.endpoint.origin} while it was sent "
                f"({got} of {length} bytes)"
            )
        if length == 0 and offset == 0 and key.size != 0:
            raise ContentMissing(str(key), self.endpoint.origin)


async def _receive(resp: aiohttp.ClientResponse, into: Incoming, advance: Advance) -> int:
    got = 0
    buf = bytearray()
    try:
        async for chunk in resp.content.iter_chunked(CHUNK):
            buf += chunk
            got += len(chunk)
            if len(buf) >= CHUNK:
                await asyncio.to_thread(into.write, bytes(buf))
                advance(len(buf))
                buf.clear()
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError) as e:
        if buf:
            await asyncio.to_thread(into.write, bytes(buf))
        raise RemoteUnavailable(f"download cut short after {got} bytes: {e}") from e
    if buf:
        await asyncio.to_thread(into.write, bytes(buf))
        advance(len(buf))
    return got


async def _file_body(f: BinaryIO, offset: int, length: int,
                     advance: Advance) -> AsyncIterator[bytes]:  # fmt: skip
    """The upload body; one byte less when the file changed meanwhile (5.9)."""
    before = os.fstat(f.fileno())
    await asyncio.to_thread(f.seek, offset)
    left = length - 1
    while left > 0:
        chunk = await asyncio.to_thread(f.read, min(CHUNK, left))
        if not chunk:
            return  # shrank: the short body tells the server
        left -= len(chunk)
        yield chunk
        advance(len(chunk))
    if length <= 0:
        return
    after = os.fstat(f.fileno())
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        logger.info("%s changed while being sent", f.name)
        return
    last = await asyncio.to_thread(f.read, 1)
    if last:
        yield last
        advance(1)


class KeptLock:
    """A ``keeplocked`` request held open until ``release`` (spec 5.11).

    Use ``start`` once the lock was taken; ``release`` ends it cleanly,
    ``abort`` drops the connection (the server releases then too).
    """

    def __init__(self, client: P2PHttpClient, lock_id: str) -> None:
        self.client = client
        self.lock_id = lock_id
        self._sent = asyncio.Event()
        self._unlock = asyncio.Event()
        self._task: asyncio.Task[bool] | None = None

    async def start(self) -> None:
        """Raises: RemoteUnavailable, the request could not be started in time."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="keeplocked")
        sent = asyncio.ensure_future(self._sent.wait())
        try:
            async with asyncio.timeout(KEEPLOCKED_START_TIMEOUT):
                await asyncio.wait({sent, self._task}, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            await self.abort()
            raise RemoteUnavailable(f"{self.client.endpoint.origin}: keeplocked did not start") from None
        finally:
            sent.cancel()
        if self._task.done():
            self._task.result()  # raises what ended it
            raise RemoteUnavailable(f"{self.client.endpoint.origin}: keeplocked ended at once")

    async def _body(self) -> AsyncIterator[bytes]:
        yield m.unlock_line(False)
        self._sent.set()
        await self._unlock.wait()
        yield m.unlock_line(True)

    async def _run(self) -> bool:
        headers = {"Content-Type": m.JSON_CONTENT_TYPE, "Connection": "Keep-Alive",
                   "Keep-Alive": "timeout=1200"}  # fmt: skip
        no_read_limit = aiohttp.ClientTimeout(total=None, sock_connect=self.client.io_timeout)
        async with self.client._request(
            "POST", m.Op.KEEPLOCKED, {"lockid": self.lock_id}, headers=headers,
            body=self._body, timeout=no_read_limit,
        ) as (_, resp):  # fmt: skip
            raw = await resp.content.read(1 << 16)
        return m.field_bool(m.load(raw, "keeplocked"), "locked", "keeplocked")

    async def release(self) -> None:
        """Send ``{"unlock":true}`` and wait (bounded) for the answer."""
        task = self._task
        if task is None:
            return
        self._unlock.set()
        try:
            async with asyncio.timeout(RELEASE_TIMEOUT):
                await task
        except (CoreError, aiohttp.ClientError, TimeoutError) as e:
            logger.info("keeplocked %s: %s", self.lock_id, e)
        finally:
            await self.abort()

    async def abort(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def discover_uuid(session: aiohttp.ClientSession, git_url: str,
                        timeout: float = 60.0) -> tuple[str | None, str | None]:  # fmt: skip
    """(annex.uuid, annex.url) from ``<git url>/config`` over HTTP (spec 2.1)."""
    from dulwich.config import ConfigFile

    url = git_url.rstrip("/") + "/config"
    try:
        async with asyncio.timeout(timeout), session.get(url) as resp:
            if resp.status != 200:
                return None, None
            raw = await resp.content.read(1 << 20)
    except (aiohttp.ClientError, TimeoutError) as e:
        logger.info("%s: %s", url, e)
        return None, None
    try:
        import io

        cfg = ConfigFile.from_file(io.BytesIO(raw))
    except Exception:  # noqa: BLE001 - not a git config file
        return None, None

    def get(name: bytes) -> str | None:
        try:
            v = cfg.get(b"annex", name)
        except KeyError:
            return None
        return v.decode() if isinstance(v, bytes) else None

    return get(b"uuid"), get(b"url")


__all__ = [
    "KEYRING_SERVICE", "Credentials", "Endpoint", "KeptLock", "KeyringOrGit", "P2PHttpClient",
    "discover_uuid", "store_in_keyring",
]  # fmt: skip
