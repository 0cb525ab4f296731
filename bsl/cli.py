"""The ``bsl`` command line: one sub-command per module in :mod:`bsl.commands`."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from typing import NoReturn

from . import __version__
from .commands import COMMANDS


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
    for register in COMMANDS:
        register(sub)
    return parser


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
    """Failures of instruments and of their connections (PyVISA's and the drivers')."""
    from pyvisa.errors import Error as VisaError

    from drivers import InstrumentError

    return (VisaError, InstrumentError)


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
