"""The simulation studies' sub-commands of ``bsl`` (``sweep``, ``sweep-plot``, ``energy``).

Each module has ``register(subparsers)`` and is named by an entry point of the group
``memristor_bsl.commands`` in ``pyproject.toml``; ``bsl.cli`` finds them there.
"""
