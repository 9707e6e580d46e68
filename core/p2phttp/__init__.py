"""The git-annex P2P HTTP API (spec: the reference notes p2phttp.md).

Modules: ``models`` (pure: routes, parameter encodings, JSON bodies; spec 4,
5, 7), ``auth`` (pure: users and the access decision; spec 6), ``server``
(aiohttp app factory and handlers over ``core.p2p.serving.ServedRepo``),
``client`` (async aiohttp client with version fallback and credentials),
``remote`` (the synchronous ``core.remotes.Remote`` for ``annex+http``
remotes) and ``cli`` (``annexsync p2phttp``).
"""
