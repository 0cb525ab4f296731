"""The engine's sub-commands of ``bsl`` (``train``, ``inspect``, ``plot``). Each module has
``register(subparsers)`` that adds its parser and sets ``run`` (a function of the parsed
arguments returning an exit status).

``bsl.cli`` does not import this package's modules by name: every package (this one,
``sims``, ``devices``, or a third-party plugin) names its ``register`` functions as entry
points of the group ``memristor_bsl.commands`` (see ``pyproject.toml`` and the README's
"Plugins"), and the command line loads them from there.
"""
