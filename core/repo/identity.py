"""Who our commits are by -- never a reason for a commit or a merge to fail.

git refuses to commit when it finds no identity: no ``user.name`` and
``user.email`` in its config or environment, and an address it cannot
auto-detect (no GECOS name, or a host name without a domain: "unable to
auto-detect email address (got 'me@host.(none)')").  git-annex never lets
that stop it (``Annex/Environment.hs``): without a GECOS name it sets
``GIT_AUTHOR_NAME``/``GIT_COMMITTER_NAME`` to the login name, and a commit
that fails anyway is run again after it set the repository's ``user.name``
and ``user.email`` to the login name (``ensureCommit``).

We do the same, in two places:

* commits we build as objects (dulwich: the work tree in ``core.gitops``, the
  git-annex branch in ``core.repo.branch``) take their identity from
  ``commit_identity``: dulwich's rules (environment, config, then the passwd
  entry and the host name -- it never insists on a domain), and the login
  name when even those find nothing, so building a commit cannot fail;
* ``git merge`` runs the binary, which checks the identity before it touches
  anything; when it fails and git says it knows no identity, ``core.gitops``
  sets the missing ``user.name``/``user.email`` of the repository to
  ``login_name()`` and merges again, as ``ensureCommit`` does.
"""

from __future__ import annotations

import os
import pwd

from dulwich.config import Config
from dulwich.repo import DefaultIdentityNotFound, get_user_identity

UNKNOWN = "unknown"  # git-annex's name when even the login name is unknown


def login_name() -> str:
    """The login name: the usual variables, else the passwd entry, else ``unknown``."""
    for var in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        value = os.environ.get(var)
        if value:
            return value
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return UNKNOWN


def commit_identity(config: Config, kind: str) -> bytes:
    """``Name <email>`` for a commit we build; ``kind`` is AUTHOR or COMMITTER."""
    try:
        return get_user_identity(config, kind=kind)
    except DefaultIdentityNotFound:  # no passwd entry and no login variable
        name = _config_str(config, b"name") or login_name()
        email = _config_str(config, b"email") or login_name()
        return f"{name} <{email}>".encode()


def _config_str(config: Config, name: bytes) -> str | None:
    try:
        value = config.get((b"user",), name)
    except KeyError:
        return None
    return value.decode("utf-8", "replace") if value else None
