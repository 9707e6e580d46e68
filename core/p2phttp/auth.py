"""Users, permissions and the access decision of ``p2phttp`` (spec section 6).

Pure: ``AuthPolicy.decide`` maps (action class, Authorization header, is the
connection HTTPS) to an ``Access`` or an ``HttpError`` (401 with the Basic
challenge, 403, or 400 for a malformed header).  Users come from the
environment as git-annex reads them (spec 3):
``GIT_ANNEX_P2PHTTP_PASSWORD_<user>`` and ``GIT_ANNEX_P2PHTTP_PERMISSIONS_<user>``
(``readonly`` / ``appendonly``; anything else or unset: read-write).  User
names are case-sensitive; passwords are compared in constant time.

Rules (spec 6):

1. Credentials count only when logins are enabled for the connection type
   (``--authenv`` on HTTPS, ``--authenv-http`` on either) and match a user.
2. Otherwise the request is anonymous: ``--wideopen`` read-write, else
   ``--unauth-appendonly`` append-only, else ``--unauth-readonly`` read-only,
   else refused with 401.
3. read-write may do anything; append-only anything but remove; read-only
   may read, and anonymous read-only may also lock unless
   ``--unauth-nolocking``.  An authenticated read-only user cannot lock
   (git-annex's behaviour, kept for interop: spec pitfall 9).
4. Refusal: 401 with the challenge when no credentials were sent and logins
   are possible on this connection, 403 otherwise (wrong password included,
   so a client does not loop on prompts).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.p2p.state import Mode
from core.p2phttp.models import REALM_CHALLENGE, Action, HttpError

logger = logging.getLogger(__name__)

PASSWORD_PREFIX = "GIT_ANNEX_P2PHTTP_PASSWORD_"
PERMISSIONS_PREFIX = "GIT_ANNEX_P2PHTTP_PERMISSIONS_"


@dataclass(frozen=True)
class User:
    name: str
    password: str
    mode: Mode = Mode.READ_WRITE


def users_from_env(env: Mapping[str, str] | None = None) -> dict[str, User]:
    """The users defined in the environment (spec 3)."""
    e = os.environ if env is None else env
    users: dict[str, User] = {}
    for var, password in e.items():
        if not var.startswith(PASSWORD_PREFIX) or len(var) == len(PASSWORD_PREFIX):
            continue
        name = var[len(PASSWORD_PREFIX):]
        perm = e.get(PERMISSIONS_PREFIX + name, "")
        mode = {"readonly": Mode.READ_ONLY, "appendonly": Mode.APPEND_ONLY}.get(
            perm, Mode.READ_WRITE
        )
        users[name] = User(name, password, mode)
    return users


@dataclass(frozen=True)
class Access:
    mode: Mode
    user: str | None  # None: anonymous


@dataclass(frozen=True)
class AuthPolicy:
    users: Mapping[str, User] = field(default_factory=dict)
    authenv: bool = False
    authenv_http: bool = False
    wideopen: bool = False
    unauth_readonly: bool = False
    unauth_appendonly: bool = False
    unauth_nolocking: bool = False

    def logins_enabled(self, https: bool) -> bool:
        return self.authenv_http or (self.authenv and https)

    def anonymous_mode(self) -> Mode | None:
        if self.wideopen:
            return Mode.READ_WRITE
        if self.unauth_appendonly:
            return Mode.APPEND_ONLY
        if self.unauth_readonly:
            return Mode.READ_ONLY
        return None

    def decide(self, action: Action, authorization: str | None, https: bool) -> Access:
        """Who the request acts as, if it may do ``action``.

        Raises:
            HttpError: 400 malformed Authorization, 401 (with the challenge),
                403 not permitted.
        """
        creds = parse_basic(authorization) if authorization is not None else None
        logins = self.logins_enabled(https)
        if creds is not None and logins:
            user = self.users.get(creds[0])
            if user is not None and creds[1] is not None and hmac.compare_digest(
                user.password.encode(), creds[1].encode("utf-8", "surrogateescape")
            ):
                if allowed(user.mode, action, anonymous=False, nolocking=False):
                    return Access(user.mode, user.name)
                raise HttpError(403)
        anon = self.anonymous_mode()
        if anon is None:
            raise HttpError(401, headers={"WWW-Authenticate": REALM_CHALLENGE})
        if allowed(anon, action, anonymous=True, nolocking=self.unauth_nolocking):
            return Access(anon, None)
        if creds is None and logins:
            raise HttpError(401, headers={"WWW-Authenticate": REALM_CHALLENGE})
        raise HttpError(403)


def allowed(mode: Mode, action: Action, *, anonymous: bool, nolocking: bool) -> bool:
    """Rule 3 of the module docstring."""
    if mode is Mode.READ_WRITE:
        return True
    if mode is Mode.APPEND_ONLY:
        return action is not Action.REMOVE
    if action is Action.READ:
        return True
    return action is Action.LOCK and anonymous and not nolocking


def parse_basic(header: str) -> tuple[str, str | None]:
    """(user, password) from ``Authorization: Basic ...``.

    Credentials without a ``:`` are well-formed but match no user (password
    None): git-annex answers them as a failed login (401), not 400 (checked
    against 10.20261026).

    Raises:
        HttpError: 400, not a well-formed Basic header (spec 6).
    """
    scheme, _, value = header.strip().partition(" ")
    bad = HttpError(400, "Error parsing header Authorization failed: invalid basic auth header")
    if scheme.lower() != "basic":
        raise bad
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8", "surrogateescape")
    except (binascii.Error, ValueError):
        raise bad from None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else (decoded, None)


def format_basic(user: str, password: str) -> str:
    raw = f"{user}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


__all__ = [
    "PASSWORD_PREFIX", "PERMISSIONS_PREFIX", "Access", "AuthPolicy", "User", "allowed",
    "format_basic", "parse_basic", "users_from_env",
]  # fmt: skip
