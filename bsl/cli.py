"""The ``bsl`` command line. Its sub-commands are plugins: every entry point of the group
``memristor_bsl.commands`` names a ``register(subparsers)`` function that adds one or more
sub-commands (the engine's in :mod:`bsl.commands`, the studies' in ``sims.commands``, the
device layer's in ``devices.commands``, and any third-party package's the same way)."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any, NoReturn

from . import __version__

COMMAND_GROUP = "memristor_bsl.commands"
"""The entry-point group that names the sub-commands' ``register(subparsers)`` functions."""


class UsageError(Exception):
    """A user error that the command line reports in one line, without a traceback."""


class _Parser(argparse.ArgumentParser):
    """Reports a bad command line as every other error: one line, ``bsl <cmd>: error: ...``
    (exit 2), without argparse's usage block (``--help`` shows it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (all sub-commands)."""
    parser = _Parser(
        prog="bsl",
        description="On-chip training of neural networks on memristor crossbars.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for commands in load_commands(parser.prog):
        _adopt(sub, commands)
    return parser


def load_commands(prog: str = "bsl") -> list[Any]:
    """The sub-commands of the plugins of :data:`COMMAND_GROUP`, one argparse sub-parsers action
    per plugin (its ``register`` called on it), sorted by entry-point name (a stable ``--help``).
    A plugin that fails to import or to register is left out with one line on stderr naming it
    and the error; so are all plugins claiming a command name that another one also claims
    (neither wins silently). The other commands still work."""
    plugins: list[tuple[str, Any]] = []
    for ep in sorted(entry_points(group=COMMAND_GROUP), key=lambda ep: (ep.name, ep.value)):
        label = _plugin_label(ep)
        commands = _Parser(prog=prog, add_help=False).add_subparsers()
        try:
            ep.load()(commands)
        except Exception as exc:
            text = " ".join(str(exc).split())
            print(f"bsl: plugin {label} not loaded: {type(exc).__name__}: {text}", file=sys.stderr)
            continue
        plugins.append((label, commands))
    claims: dict[str, list[str]] = {}
    for label, commands in plugins:
        for name in commands.choices:
            claims.setdefault(name, []).append(label)
    refused: set[str] = set()
    for name, labels in claims.items():
        if len(labels) > 1:
            print(f"bsl: command {name!r} is claimed by plugins {' and '.join(labels)}: none of them is "
                  "loaded (uninstall one)", file=sys.stderr)
            refused.update(labels)
    if not plugins:
        print(f"bsl: no commands found (entry-point group {COMMAND_GROUP}): is memristor-bsl installed? "
              "(pip install -e .)", file=sys.stderr)
    return [commands for label, commands in plugins if label not in refused]


def _adopt(sub: Any, commands: Any) -> None:
    """Move the sub-parsers (and their ``--help`` lines) a plugin added to ``commands`` into
    ``sub``: each plugin registers once, apart, so that a conflict is seen before anything is
    added (argparse has no public call for this; these two attributes date from Python 2.7)."""
    sub._name_parser_map.update(commands._name_parser_map)
    sub._choices_actions.extend(commands._choices_actions)


def _plugin_label(ep: EntryPoint) -> str:
    """``'name' (module:function, from distribution)`` for the messages about a plugin."""
    dist = getattr(ep, "dist", None)
    where = f", from {dist.name}" if dist is not None else ""
    return f"{ep.name!r} ({ep.value}{where})"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bsl`` console script; returns the exit status."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # reported by the sub-command, as its other errors (argparse names only "bsl")
        print(f"bsl {args.command}: error: unrecognized arguments: {' '.join(shlex.join(unknown).split())}",
              file=sys.stderr)
        return 2
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt as exc:
        hint = getattr(exc, "bsl_hint", None)
        print(f"bsl {args.command}: interrupted" + (f"; {hint}" if hint else ""), file=sys.stderr)
        return 130
    except (UsageError, ValueError, OSError, TypeError) + _instrument_errors() as exc:
        print(f"bsl {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2


def _instrument_errors() -> tuple[type[BaseException], ...]:
    """Failures of instruments and of their connections, as ``devices`` names them."""
    import devices

    return devices.HARDWARE_ERRORS


_VI_ERROR_TMO = -1073807339
"""pyvisa's ``StatusCode.error_timeout`` (pyvisa is not imported before an error needs it)."""


def _one_line(exc: BaseException) -> str:
    """The error, its kind when that helps, and where a run's record is, on one line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, ConnectionError):  # the drivers' ConnectionLost, or a socket error
        if "connection lost" not in text and "connection refused" not in text:
            text = f"instrument connection lost ({type(exc).__name__}): {text}"
    elif getattr(exc, "error_code", None) == _VI_ERROR_TMO:  # pyvisa: silent, the connection up
        text = f"instrument timeout ({type(exc).__name__}): {text}"
    elif not isinstance(exc, UsageError | ValueError | OSError | TypeError) or isinstance(exc, UnicodeError):
        text = f"instrument failure ({type(exc).__name__}): {text}"
    hint = getattr(exc, "bsl_hint", None)
    return f"{text}; {hint}" if hint else text


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
