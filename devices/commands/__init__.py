"""The device layer's sub-commands of ``bsl`` (``emulator``, ``device-response``, ``fit``).

Each module has ``register(subparsers)`` and is named by an entry point of the group
``memristor_bsl.commands`` in ``pyproject.toml``; ``bsl.cli`` finds them there. They import
nothing from ``bsl`` (the device layer stands on its own) and import device internals only
inside their functions.
"""
