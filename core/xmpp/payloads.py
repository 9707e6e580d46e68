"""What we put into XMPP stanzas, and how we read it back: pure, no slixmpp.

Spec: xmpp-sync.md C.1 (identity and presence), B.18-B.22, B.32, B.48.

Rules kept here
---------------
* Our resource is ``annexsync-<first 8 hex of the device id>``: stable across
  reconnects, so peers recognise a device (C.1).
* Every presence we send is built by ``presence_fields`` alone (B.33): show
  ``xa`` (``dnd`` while paused), priority -1 so the server never routes
  bare-JID chat to us (the person's chat client keeps its messages), a
  status text naming the app.  Nothing else goes into presence (B.41, B.53).
* A resource is worth asking "are you one of ours?" only if its name has our
  prefix and its priority is negative (``is_candidate``): so the person's chat
  client on the same account never receives an IQ of ours.  It *is* one of
  ours only when its disco#info lists ``FEATURE``.
* Control travels as IQs to one full JID (B.48: IQ errors come back, message
  carbons never copy IQs).  The only control payload so far is ``Hello``
  (which device is behind a resource); it is parsed strictly.
* Logs name JIDs shortened (B.32): ``shorten``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from core.errors import RemoteProtocolError

FEATURE = "urn:x-annexsync:sync:1"
NAMESPACE = FEATURE
RESOURCE_PREFIX = "annexsync-"
PRIORITY = -1
STATUS_TEXT = "annexsync (file sync, not a chat client)"
MAX_NAME = 64
DEFAULT_PORT = 5222
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def resource_name(device_id: str) -> str:
    return RESOURCE_PREFIX + device_id.replace("-", "")[:8]


VISITOR_PREFIX = "annexsync.visit-"


def visitor_resource(device_id: str, token: str) -> str:
    """The resource of a short-lived connection of a command (``annexsync get``
    and friends) of device ``device_id``: not ``annexsync-``, so no peer asks
    it who it is and it never replaces the device's daemon in a buddy list;
    ``token`` (random) keeps two commands apart."""
    return f"{VISITOR_PREFIX}{device_id.replace('-', '')[:8]}-{token}"


def is_visitor(resource: str) -> bool:
    return resource.startswith(VISITOR_PREFIX)


def presence_fields(paused: bool = False) -> dict[str, str | int]:
    """The one place presence is built (B.33)."""
    return {"show": "dnd" if paused else "xa", "priority": PRIORITY, "status": STATUS_TEXT}


def is_candidate(resource: str, priority: int) -> bool:
    """Whether a resource may be one of ours (worth a disco query); see the header."""
    return resource.startswith(RESOURCE_PREFIX) and priority < 0


@dataclass(frozen=True)
class Hello:
    """Who is behind a resource: the answer to ``<sync action="hello"/>``."""

    device_id: str
    name: str

    def __post_init__(self) -> None:
        try:
            canonical = str(uuid.UUID(self.device_id))
        except ValueError:
            raise RemoteProtocolError(f"bad device id {self.device_id[:40]!r}") from None
        if canonical != self.device_id:
            raise RemoteProtocolError(f"device id {self.device_id!r} is not in canonical form")
        if not self.name or len(self.name) > MAX_NAME or _CONTROL.search(self.name):
            raise RemoteProtocolError("bad device name")


def format_hello(h: Hello) -> dict[str, str]:
    return {"action": "hello", "dev": h.device_id, "name": h.name}


def parse_hello(attrs: Mapping[str, str]) -> Hello:
    """The attributes of a ``sync`` element answering hello.

    Raises:
        RemoteProtocolError: another action, or a bad id or name.
    """
    if attrs.get("action") != "hello":
        raise RemoteProtocolError(f"expected a hello, got {attrs.get('action')!r}")
    return Hello(attrs.get("dev", ""), attrs.get("name", ""))


def parse_server(text: str) -> tuple[str, int]:
    """``HOST[:PORT]`` (``[v6]:PORT`` too) as given to ``--server``.

    Raises:
        ValueError: empty host or a bad port.
    """
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") if rest else ""
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    if not host or (port and not (port.isdigit() and 0 < int(port) < 65536)):
        raise ValueError(f"{text!r} is not HOST or HOST:PORT")
    return host, int(port) if port else DEFAULT_PORT


def bare(jid: str) -> str:
    """The account part of a JID, lower-cased where XMPP compares case-blind (B.52)."""
    account = jid.split("/", 1)[0]
    node, at, domain = account.rpartition("@")
    return f"{node.lower()}{at}{domain.lower()}"


def resource_of(jid: str) -> str:
    return jid.split("/", 1)[1] if "/" in jid else ""


def shorten(jid: str) -> str:
    """A JID for logs: first letter and length of each part (B.32)."""
    account = bare(jid)
    node, _, domain = account.rpartition("@")
    res = resource_of(jid)
    short = f"{node[:1]}{len(node)}@{domain}" if node else domain
    return f"{short}/{res}" if res.startswith(RESOURCE_PREFIX) else short
