"""Which added file goes to the annex, and under which backend: the sources.

Spec: repository-format.md 3.3 (the clean filter), 11 (annex.largefiles
precedence).  ``annexsync add`` and the clean filter both ask this module, so
the two decide alike and alike with git-annex.

Precedence, as git-annex 10.20261026 applies it (Annex/FileMatcher.hs
``largeFilesMatcher``, Backend.hs ``chooseBackend``; both checked live):

* annex.largefiles: git config, then the file's ``annex.largefiles``
  gitattribute, then config.log (``git annex config``); none of them: nothing
  configured (``git annex add`` annexes, ``git add`` keeps files in git).
  With ``git config annex.largefiles anything``, a ``*.md
  annex.largefiles=nothing`` file is annexed; without it, it goes to git.
* annex.backend: the file's ``annex.backend`` gitattribute when it names a
  backend git-annex knows, then git config, then SHA256E.  With ``git config
  annex.backend SHA1``, a ``*.bin annex.backend=MD5E`` file gets an MD5E key.

Attributes are read with ``git check-attr`` (``core.gitops.check_attr``), as
git-annex reads them, so macros, ``info/attributes`` and nested
``.gitattributes`` files count exactly as git counts them.  Paths are the
repository-relative names as ``str`` holding undecodable bytes as surrogates
(``os.fsdecode``); they go to git as the file system's bytes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core import gitops
from core.repo.key import (
    DEFAULT_BACKEND,
    UNCOMPUTABLE_BACKENDS,
    UNHASHED_BACKENDS,
    WRITABLE_BACKENDS,
)

if TYPE_CHECKING:
    from core.repo.repository import AnnexRepo

logger = logging.getLogger(__name__)

ATTRIBUTES = ("annex.largefiles", "annex.backend")
KNOWN_BACKENDS = WRITABLE_BACKENDS | UNHASHED_BACKENDS | UNCOMPUTABLE_BACKENDS


@dataclass(frozen=True)
class PathRule:
    """What decides for one file: its largefiles expression (None: not configured), its backend."""

    largefiles: str | None
    backend: str


def choose_largefiles(git_config: str | None, attribute: str | None, config_log: str | None) -> str | None:
    """git config, then gitattributes, then config.log (spec 11)."""
    return git_config or attribute or config_log or None


def choose_backend(attribute: str | None, git_config: str | None) -> str:
    """The gitattribute when it names a known backend, then git config, then SHA256E."""
    if attribute in KNOWN_BACKENDS:
        return attribute
    if attribute:
        logger.warning("annex.backend=%s in gitattributes: unknown backend, ignored", attribute)
    return git_config or DEFAULT_BACKEND


@dataclass(frozen=True)
class AddRules:
    """The repository-wide sources; ``for_paths`` adds each file's attributes."""

    top: Path
    git_largefiles: str | None
    log_largefiles: str | None
    git_backend: str | None

    @classmethod
    def of(cls, repo: AnnexRepo, log_config: Mapping[str, str]) -> AddRules:
        cfg = repo.config
        return cls(repo.path, cfg.largefiles, log_config.get("annex.largefiles"), cfg.backend)

    def rule(self, attributes: Mapping[str, str]) -> PathRule:
        return PathRule(
            choose_largefiles(
                self.git_largefiles, attributes.get("annex.largefiles"), self.log_largefiles
            ),
            choose_backend(attributes.get("annex.backend"), self.git_backend),
        )

    def for_paths(self, rels: Iterable[str]) -> dict[str, PathRule]:
        """One ``git check-attr`` for all of ``rels``.

        Raises:
            GitCommandError: git could not read the attributes.
        """
        names = {rel: os.fsencode(rel) for rel in rels}
        found = gitops.check_attr(self.top, list(names.values()), ATTRIBUTES)
        return {rel: self.rule(found.get(raw, {})) for rel, raw in names.items()}
