"""Learning a git remote's annex UUID from the remote itself, as git-annex does.

git-annex reads the config of a git remote whose UUID it does not know yet,
once, and caches what it learned in git config (Remote/Git.hs,
``configRead``/``tryGitConfigRead``; the notes p2p-protocol.md 10.1 and
p2phttp.md 2.1-2.2).  A remote with ``remote.NAME.annex-ignore`` set is not
asked.  Per kind of URL:

- **ssh** (``ssh://``, ``host:path``): run ``git-annex-shell 'configlist'
  DIR`` through ssh (``remote.NAME.annex-shell`` names another program, e.g.
  ``annexsync``; ssh is what ``transport.ssh_command`` builds, honouring
  ``GIT_SSH``/``GIT_SSH_COMMAND`` only with ``GIT_ANNEX_USE_GIT_SSH=1``).
  The ``annex.uuid=`` line becomes ``remote.NAME.annex-uuid``.  Exit 255 is
  ssh failing to connect: a warning, asked again next time.  Any other
  failure means the server has no git-annex: ``annex-ignore`` is set, with
  the words git-annex uses.
- **http(s)**: download ``<url>/config``; ``annex.uuid`` is cached, and an
  ``annex.url`` that is an ``annex+http`` URL becomes
  ``remote.NAME.annexurl``.  A server that answers but serves no config is
  not usable: ``annex-ignore``.  (git-annex also sets it when the server
  cannot be reached; we only warn, so a laptop offline for a day does not
  lose its remote for good.)

What is learned goes to the repository's git config with ``git config``
(git takes ``config.lock``, as for git-annex).
"""

from __future__ import annotations

import logging
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from core.errors import CoreError, RemoteUnavailable

logger = logging.getLogger(__name__)

CONFIGLIST_TIMEOUT = 60.0
HTTP_TIMEOUT = 30.0
SSH_CONNECT_FAILED = 255
MAX_CONFIG = 1 << 20


@dataclass(frozen=True)
class Learned:
    """What a remote told about itself; ``ignore`` when it has no git-annex."""

    uuid: str | None = None
    annex_url: str | None = None
    ignore: str | None = None  # the reason, in git-annex's words


def is_ssh_url(url: str) -> bool:
    """An ssh URL or scp-like ``[user@]host:path``, as git reads remote URLs
    (``transport::address`` goes to a remote helper, not ssh)."""
    if url.startswith(("ssh://", "git+ssh://", "ssh+git://")):
        return True
    if "::" in url or "://" in url:
        return False
    host, sep, _ = url.partition(":")
    return bool(sep) and "/" not in host and len(host) > 1


def is_http_url(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def parse_configlist(text: str) -> dict[str, str]:
    """``name=value`` lines, as ``git-annex-shell configlist`` prints them."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            out[name.strip()] = value.strip()
    return out


def ask_ssh(url: str, shell: str | None) -> Learned:
    """``configlist`` over ssh (see the module docstring).

    Raises:
        RemoteUnavailable: ssh could not connect, or timed out.
    """
    from core.p2p.remote import parse_ssh_url, shell_words
    from core.p2p.transport import ssh_command

    host, port, path = parse_ssh_url(url)
    command = shell_words(shell or "git-annex-shell", "configlist", path)
    try:
        proc = subprocess.run(ssh_command(host, command, port=port), stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=CONFIGLIST_TIMEOUT)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RemoteUnavailable(f"{url}: cannot ask for its annex.uuid: {e}") from e
    if proc.returncode == SSH_CONNECT_FAILED:
        raise RemoteUnavailable(f"Unable to connect to repository {url} to get its annex.uuid "
                                f"configuration: {_last_line(proc.stderr)}")  # fmt: skip
    if proc.returncode != 0:
        logger.info("%s: configlist: %s", url, _last_line(proc.stderr))
        return Learned(ignore="does not have git-annex installed")
    return Learned(uuid=parse_configlist(proc.stdout.decode("utf-8", "replace")).get("annex.uuid")
                   or None)  # fmt: skip


def ask_http(url: str, cafile: str | None = None) -> Learned:
    """``<url>/config`` over HTTP (p2phttp.md 2.1).

    Raises:
        RemoteUnavailable: the server could not be reached.
    """
    from core.p2phttp.remote import client_ssl_context

    config_url = url.rstrip("/") + "/config"
    ctx = client_ssl_context(cafile) if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(config_url, timeout=HTTP_TIMEOUT, context=ctx) as resp:
            raw = resp.read(MAX_CONFIG)
    except urllib.error.HTTPError as e:
        logger.info("%s: %s", config_url, e)
        return Learned(ignore="not usable by git-annex")
    except (urllib.error.URLError, OSError) as e:
        raise RemoteUnavailable(f"{config_url}: {e}") from e
    annex = _annex_section(raw)
    if annex is None:
        return Learned(ignore="not usable by git-annex")
    annex_url = annex.get("url")
    return Learned(uuid=annex.get("uuid") or None,
                   annex_url=annex_url if (annex_url or "").startswith("annex+http") else None)  # fmt: skip


def _annex_section(raw: bytes) -> dict[str, str] | None:
    """The ``[annex]`` values of a git config file, or None if it is not one."""
    import io

    from dulwich.config import ConfigFile

    try:
        cfg = ConfigFile.from_file(io.BytesIO(raw))
    except Exception:  # noqa: BLE001 - dulwich raises several kinds on garbage
        return None
    out: dict[str, str] = {}
    for name in (b"uuid", b"url"):
        try:
            out[name.decode()] = cfg.get(b"annex", name).decode("utf-8", "replace")
        except KeyError:
            pass
    return out


def learn(top: Path, name: str, url: str, shell: str | None, cafile: str | None) -> Learned:
    """Ask remote ``name`` about itself and cache the answer in git config.

    Returns an empty ``Learned`` for URLs that cannot be asked (and when the
    remote cannot be reached, after a warning).
    """
    try:
        if is_http_url(url):
            found = ask_http(url, cafile)
        elif is_ssh_url(url):
            found = ask_ssh(url, shell)
        else:
            return Learned()
    except RemoteUnavailable as e:
        logger.warning("%s", e)
        return Learned()
    _remember(top, name, found)
    return found


def _remember(top: Path, name: str, found: Learned) -> None:
    from core.gitops import run_git

    settings: list[tuple[str, str]] = []
    if found.ignore:
        logger.warning("Remote %s %s; setting annex-ignore", name, found.ignore)
        settings.append(("annex-ignore", "true"))
    if found.uuid:
        settings.append(("annex-uuid", found.uuid))
    if found.annex_url:
        settings.append(("annexurl", found.annex_url))
    for item, value in settings:
        try:
            run_git(top, ["config", f"remote.{name}.{item}", value])
        except CoreError as e:  # read-only config: used this time, asked again next time
            logger.warning("could not record remote.%s.%s: %s", name, item, e)


def _last_line(data: bytes) -> str:
    lines = data.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else "no message"


__all__ = ["Learned", "ask_http", "ask_ssh", "is_http_url", "is_ssh_url", "learn",
           "parse_configlist"]  # fmt: skip
