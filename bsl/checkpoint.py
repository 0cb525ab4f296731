"""Checkpoints: everything needed to continue a run exactly, written atomically.

A checkpoint is one ``torch.save`` file (tensors and plain Python values only, so it
loads with ``weights_only=True``). It is written to a temporary file in the same
folder, synced, then renamed over the previous one: a crash while writing leaves the
previous checkpoint intact.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or from another format version."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (write, fsync, rename, fsync the folder)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        torch.save({"checkpoint_version": CHECKPOINT_VERSION, **state}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, weights_only=True)
    except Exception as exc:  # torch raises many kinds for a damaged file
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or state.get("checkpoint_version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} is not a version-{CHECKPOINT_VERSION} memristor-bsl checkpoint"
        )
    return state
