"""``annexsync initcluster | extendcluster | updatecluster | updateproxy``.

Thin command-line glue over ``core.ops.clustersetup``; arguments and output
as git-annex's commands of the same names (clusters.md 3.1, pitfall 12).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from core.repo.repository import AnnexRepo

Action = Callable[[AnnexRepo, argparse.Namespace], list[str]]


def _runner(action: Action) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from core.cli import _repo

        repo = _repo(args)
        try:
            for line in action(repo, args):
                print(line)
        finally:
            repo.close()
        return 0

    return run


def _init(repo: AnnexRepo, args: argparse.Namespace) -> list[str]:
    from core.ops.clustersetup import initcluster

    return initcluster(repo, args.name, args.description)


def _extend(repo: AnnexRepo, args: argparse.Namespace) -> list[str]:
    from core.ops.clustersetup import extendcluster

    return extendcluster(repo, args.gateway, args.name)


def _update(repo: AnnexRepo, args: argparse.Namespace) -> list[str]:
    from core.ops.clustersetup import updatecluster

    return updatecluster(repo)


def _proxy(repo: AnnexRepo, args: argparse.Namespace) -> list[str]:
    from core.ops.clustersetup import updateproxy

    return updateproxy(repo)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sp = sub.add_parser("initcluster", help="make this repository the gateway of a new cluster")
    sp.add_argument("name")
    sp.add_argument("description", nargs="?")
    sp.set_defaults(func=_runner(_init))
    sp = sub.add_parser("extendcluster",
                        help="become another gateway of the cluster a remote gateway serves")
    sp.add_argument("gateway")
    sp.add_argument("name")
    sp.set_defaults(func=_runner(_extend))
    sp = sub.add_parser("updatecluster", help="record the configured nodes of this gateway's "
                        "clusters, then what it proxies")  # fmt: skip
    sp.set_defaults(func=_runner(_update))
    sp = sub.add_parser("updateproxy", help="record what this repository proxies")
    sp.set_defaults(func=_runner(_proxy))
