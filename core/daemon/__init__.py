"""The sync assistant's daemon: repository workers, jobs, alerts, transfers and the
``daemon``/``status`` commands (``cli``).

A regular package, not a namespace one: the bundle's build collects ``core``'s
submodules by walking packages, and the lazily loaded ``core.daemon.cli`` is
found only that way (``core.cli.ELSEWHERE``).
"""
