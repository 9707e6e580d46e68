"""An initialised git-annex repository: identity, configuration, stores.

Spec: repository-format.md section 4 (configuration, init, auto-init) and 13.9
(what we refuse to write).

``AnnexRepo`` is the one object the operations work on.  It opens the git
repository with dulwich, reads the annex configuration once, and offers the
object store, the git-annex branch and the typed views over the branch.
Opening never writes; anything that writes first calls ``require_writable``.
"""

from __future__ import annotations

import getpass
import logging
import socket
import uuid as uuidlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dulwich.config import ConfigFile, StackedConfig
from dulwich.refs import Ref
from dulwich.repo import Repo

from core.errors import NotARepository, RepoError, UnsupportedRepository
from core.repo.branch import AnnexBranch
from core.repo.key import Key
from core.repo.objects import DEFAULT_DISK_RESERVE, ObjectStore
from core.repo.patterns import parse_size
from core.repo.state import AnnexState

if TYPE_CHECKING:  # the expression language is imported where it is evaluated
    from core.repo.preferred import Context

logger = logging.getLogger(__name__)

SUPPORTED_VERSION = "10"
READABLE_VERSIONS = frozenset({"8", "9", "10"})

# What annexsync writes into repositories it creates, for unlocked files
# (spec 3.3): its own filter, so plain git works where git-annex is absent.
FILTER_CONFIG = {
    "smudge": "annexsync smudge -- %f",
    "clean": "annexsync smudge --clean -- %f",
    "process": "annexsync filter-process",
}


@dataclass(frozen=True)
class AnnexConfig:
    """The annex.* settings we act on, read once from git config."""

    uuid: str
    version: str
    thin: bool = False
    add_unlocked: bool = False
    dotfiles: bool = False
    backend: str = "SHA256E"
    largefiles: str | None = None
    disk_reserve: int = DEFAULT_DISK_RESERVE
    max_extension_length: int = 4
    max_extensions: int = 2
    hash_lower: bool = False
    numcopies_override: int | None = None


def config_value(cfg: StackedConfig, section: bytes | tuple[bytes, bytes], name: bytes) -> str | None:
    try:
        value = cfg.get(section, name)
    except KeyError:
        return None
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


def parse_bool(text: str | None, default: bool = False) -> bool:
    """git's boolean values (a key with no value is true)."""
    if text is None:
        return default
    return text.strip().lower() in ("true", "yes", "on", "1", "")


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def read_annex_config(cfg: StackedConfig) -> AnnexConfig:
    reserve = config_value(cfg, b"annex", b"diskreserve")
    return AnnexConfig(
        uuid=config_value(cfg, b"annex", b"uuid") or "",
        version=config_value(cfg, b"annex", b"version") or "",
        thin=parse_bool(config_value(cfg, b"annex", b"thin")),
        add_unlocked=parse_bool(config_value(cfg, b"annex", b"addunlocked")),
        dotfiles=parse_bool(config_value(cfg, b"annex", b"dotfiles")),
        backend=config_value(cfg, b"annex", b"backend") or "SHA256E",
        largefiles=config_value(cfg, b"annex", b"largefiles"),
        disk_reserve=parse_size(reserve) if reserve else DEFAULT_DISK_RESERVE,
        max_extension_length=_int(config_value(cfg, b"annex", b"maxextensionlength"), 4),
        max_extensions=_int(config_value(cfg, b"annex", b"maxextensions"), 2),
        hash_lower=parse_bool(config_value(cfg, (b"annex", b"tune"), b"objecthashlower")),
    )


def annex_uuid_at(path: Path) -> str | None:
    """annex.uuid of the repository at ``path`` (non-bare or bare), read without opening it."""
    for config in (path / ".git" / "config", path / "config"):
        if config.is_file():
            try:
                value = ConfigFile.from_path(str(config)).get(b"annex", b"uuid")
            except (KeyError, OSError, ValueError):
                return None
            return value.decode() if isinstance(value, bytes) and value else None
    return None


def default_description(path: Path) -> str:
    """``user@host:path``, as git-annex describes a repository (spec 4.2)."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name is not an error here
        user = "user"
    return f"{user}@{socket.gethostname()}:{path}"


class AnnexRepo:
    def __init__(self, git: Repo) -> None:
        self.git = git
        self.bare = git.bare
        self.gitdir = Path(git.controldir())
        self.path = Path(git.path)
        self.config = read_annex_config(git.get_config_stack())
        if not self.config.uuid:
            raise NotARepository(self.path, "not a git-annex repository (annex.uuid unset)")
        self.uuid = self.config.uuid
        self.objects = ObjectStore(
            self.gitdir, self.bare, self.config.hash_lower, self.config.disk_reserve
        )
        self.branch = AnnexBranch(git, self.gitdir)
        self.state = AnnexState(self.branch)
        self._reason: tuple[tuple[int, bytes | None], str | None] | None = None

    # --- opening --------------------------------------------------------------

    @classmethod
    def open(cls, path: Path | str, auto_init: bool = True) -> AnnexRepo:
        """Open the repository containing ``path``.

        A clone that has a ``*/git-annex`` ref but was never initialised is
        initialised silently, as git-annex does (spec 4.3).

        Raises:
            NotARepository: no git repository, or not a git-annex one.
        """
        try:
            git = Repo.discover(str(path))
        except Exception as e:  # dulwich raises NotGitRepository and OSErrors
            raise NotARepository(path) from e
        cfg = read_annex_config(git.get_config_stack())
        if not cfg.uuid:
            if auto_init and any(r.endswith(b"/git-annex") for r in git.refs.allkeys()):
                return cls._initialise(git, None)
            raise NotARepository(git.path, "not a git-annex repository; run 'annexsync init'")
        return cls(git)

    @classmethod
    def init(
        cls, path: Path | str, description: str | None = None, bare: bool = False
    ) -> AnnexRepo:
        """Create (or initialise an existing) git repository as a git-annex one."""
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        try:
            git = Repo(str(p))
        except Exception:
            git = init_git(p, bare)
        cfg = read_annex_config(git.get_config_stack())
        if cfg.uuid:
            repo = cls(git)
            if description is not None:
                repo.require_writable()
                repo.state.set_description(repo.uuid, description)
                repo.branch.commit()
            return repo
        return cls._initialise(git, description)

    @classmethod
    def _initialise(cls, git: Repo, description: str | None) -> AnnexRepo:
        config = git.get_config()
        config.set(b"annex", b"uuid", str(uuidlib.uuid4()).encode())
        config.set(b"annex", b"version", SUPPORTED_VERSION.encode())
        if not git.bare:
            for name, value in FILTER_CONFIG.items():
                config.set((b"filter", b"annex"), name.encode(), value.encode())
            attributes = Path(git.controldir()) / "info" / "attributes"
            attributes.parent.mkdir(parents=True, exist_ok=True)
            if "filter=annex" not in (attributes.read_text() if attributes.exists() else ""):
                with attributes.open("a") as f:
                    f.write("\n* filter=annex\n")
        assert isinstance(config, ConfigFile)
        config.write_to_path()
        repo = cls(git)
        repo.require_writable()
        repo.branch.create()
        repo.state.set_description(repo.uuid, description or default_description(repo.path))
        repo.branch.commit()
        (repo.gitdir / "annex" / "objects").mkdir(parents=True, exist_ok=True)
        return repo

    # --- what we may do -------------------------------------------------------

    def state_stamp(self) -> tuple[int, bytes | None]:
        """Changes when git config or the git-annex branch changes (for caches)."""
        try:
            mtime = (self.gitdir / "config").stat().st_mtime_ns
        except OSError:
            mtime = 0
        return mtime, self.branch.tip()

    def unsupported_reason(self) -> str | None:
        """Why we must not write to this repository, or None (spec 13.9)."""
        stamp = self.state_stamp()
        if self._reason is None or self._reason[0] != stamp:
            self._reason = (stamp, self._find_unsupported_reason())
        return self._reason[1]

    def _find_unsupported_reason(self) -> str | None:
        version = self.config.version
        if version not in READABLE_VERSIONS:
            return f"repository version {version!r} is not supported (only 10)"
        if version != SUPPORTED_VERSION:
            return (
                f"repository version {version} must be upgraded first: "
                "run any git-annex command in it once"
            )
        cfg = self.git.get_config_stack()
        for tune in ("objecthash1", "branchhash1"):  # git keeps them as [annex "tune"]
            if parse_bool(config_value(cfg, (b"annex", b"tune"), tune.encode())):
                return f"repository is tuned with annex.tune.{tune}, which is not supported yet"
        head = self.head_ref()
        if head and head.startswith(b"refs/heads/adjusted/"):
            return "an adjusted branch is checked out, which is not supported yet"
        return self.branch.unsupported_reason()

    def require_writable(self) -> None:
        reason = self.unsupported_reason()
        if reason:
            raise UnsupportedRepository(self.path, reason)

    # --- content that arrived --------------------------------------------------

    def keep_received(self, key: Key) -> None:
        """Log ``key`` present here, or give up the content that just arrived.

        The one rule for every receiver (get, the P2P and HTTP servers): the
        location line goes to the journal at once, and when it cannot be
        written (a full disk) the content is removed again -- whoever sent
        it still has it, so no copy is lost -- rather than kept as a copy the
        location log does not know about, which nobody would count or find.

        Raises:
            RepoError: the line could not be written; the content is gone.
        """
        try:
            self.state.set_location(key, self.uuid, True, immediately=True)
        except RepoError as e:
            try:
                self.objects.remove(key)
            except RepoError as held:  # locked by a process relying on it: it stays
                logger.warning("%s: not recorded and not removed: %s", key, held)
            raise RepoError(f"{key}: received but not kept, the location log could not "
                            f"record it ({e})") from e

    def remove_content(self, key: Key) -> bool:
        """Remove the content of ``key`` here and log it gone; False if it was not here.

        The one rule for every remover (drop, the P2P and HTTP servers, path
        remotes): under the exclusive content lock the absent line goes to the
        journal first, then the content goes.  A full disk that refuses the
        line refuses the removal, so the log never claims a copy that is gone
        -- a claim other repositories would count when deciding whether they
        may drop theirs.  (A removal that fails after the line leaves a copy
        the log does not count: the safe side.)

        Raises:
            ContentLocked: another holder relies on this copy, or retention.
            RepoError: the line could not be written; the content stays.
        """
        return self.objects.remove(
            key, lambda: self.state.set_location(key, self.uuid, False, immediately=True))

    # --- preferred content -----------------------------------------------------

    def match_context(self, key: Key, path: str | None, uuid: str) -> Context:
        """What a preferred/required content expression of ``uuid`` is evaluated on."""
        from core.repo.preferred import Context

        st = self.state
        return Context(
            path=path,
            key=key,
            holders=st.locations(key),
            uuid=uuid,
            trust=trust_levels(self),
            groups=st.groups(),
            group_wanted=st.group_preferred_content(),
            numcopies=st.numcopies(),
            cluster_uuids=frozenset(st.clusters().nodes),
            metadata=_Lazy(lambda: st.metadata(key)),
            preferred_dir=st.remotes().get(uuid, {}).get("preferreddir", "public"),
            urls=_Lazy(lambda: dict.fromkeys(st.urls(key), frozenset())),
        )

    # --- git helpers ----------------------------------------------------------

    def head_ref(self) -> bytes | None:
        """The ref HEAD points to (``refs/heads/main``), None when detached."""
        try:
            chain, _ = self.git.refs.follow(Ref(b"HEAD"))
        except (KeyError, RepoError):
            return None
        return chain[-1] if len(chain) > 1 else None

    def current_branch(self) -> str | None:
        ref = self.head_ref()
        return ref.removeprefix(b"refs/heads/").decode() if ref else None

    def close(self) -> None:
        self.git.close()

    def __enter__(self) -> AnnexRepo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AnnexRepo({str(self.path)!r}, uuid={self.uuid})"


def init_git(path: Path, bare: bool = False) -> Repo:
    """A new git repository at ``path`` (a directory that exists), HEAD on init.defaultBranch."""
    git = Repo.init_bare(str(path)) if bare else Repo.init(str(path))
    _set_default_branch(git)
    return git


class _Lazy(Mapping[str, frozenset[str]]):
    """A per-key log read only when an expression asks (``metadata=``, ``url=``):
    most expressions never do, and a scan builds one context per file and remote."""

    def __init__(self, load: Callable[[], Mapping[str, frozenset[str]]]) -> None:
        self._load = load
        self._data: Mapping[str, frozenset[str]] | None = None

    def _get(self) -> Mapping[str, frozenset[str]]:
        if self._data is None:
            self._data = self._load()
        return self._data

    def __getitem__(self, name: str) -> frozenset[str]:
        return self._get()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


def _set_default_branch(git: Repo) -> None:
    """Point HEAD at init.defaultBranch (git's own default: master)."""
    name = config_value(StackedConfig.default(), b"init", b"defaultBranch") or "master"
    git.refs.set_symbolic_ref(Ref(b"HEAD"), Ref(b"refs/heads/" + name.encode()))


def trust_levels(repo: AnnexRepo) -> dict[str, str]:
    """uuid -> ``trusted``/``semitrusted``/``untrusted``/``dead`` (unlisted: semitrusted)."""
    return {u: t.name.lower() for u, t in repo.state.trust().items()}
