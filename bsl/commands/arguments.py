"""Argument types shared by the sub-commands."""

from __future__ import annotations

import argparse


def boolean(text: str) -> bool:
    """A true/false flag value (``1/0``, ``true/false``, ``yes/no``, ``on/off``)."""
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")
