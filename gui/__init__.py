"""The annexsync tray app (PySide6 on a qasync loop).

Layers: ``app`` builds everything (the composition root); ``bridge`` turns the
core's status snapshots into Qt signals (the only module that subscribes to the
core); ``actions`` runs the core's async commands for the views; ``tray``,
``windows/``, ``widgets/`` and ``models/`` only read status values and call
actions.  Nothing here is imported by ``core``.
"""
