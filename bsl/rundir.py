"""The run folder: its file names, its creation, and the provenance recorded in it."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime
from importlib import metadata
from pathlib import Path

from . import __version__

CONFIG_FILE = "config.toml"
SUMMARY_FILE = "summary.json"
TRACE_FILE = "traces.h5"
CHECKPOINT_FILE = "checkpoint.pt"


class RunDirError(ValueError):
    """The run folder cannot be created or written, or holds another run."""


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader (or a kill) sees the old file or the whole
    new one, never a part (write a sibling, then rename it into place)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def prepare_run_dir(out: str, default_name: str) -> Path:
    """Create a fresh run folder (``out``, else ``runs/<default_name>-<time>``, with a
    ``-2``, ``-3``, ... suffix if another run took that name in the same second),
    checking it is writable and holds no earlier run before any work starts."""
    run_dir = Path(out) if out else _fresh_folder(Path("runs") / default_name)
    for name in (TRACE_FILE, CHECKPOINT_FILE, SUMMARY_FILE):
        if (run_dir / name).exists():
            raise RunDirError(
                f"{run_dir} already holds a run ({name}); continue it with --resume {run_dir} "
                "or choose another --out"
            )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise RunDirError(f"output folder {run_dir} is not writable ({exc.strerror or exc})") from exc
    return run_dir


def _fresh_folder(prefix: Path) -> Path:
    """Create and return ``<prefix>-<time>[-k]``, a folder no other run holds (``mkdir``
    is atomic, so two runs started at once get two folders)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for k in range(1, 1000):
        folder = prefix.with_name(f"{prefix.name}-{stamp}" + (f"-{k}" if k > 1 else ""))
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
        except OSError as exc:
            raise RunDirError(f"output folder {folder} is not writable ({exc.strerror or exc})") from exc
    raise RunDirError(f"{prefix.parent} holds 999 runs named {prefix.name}-{stamp}: choose --out")


def package_versions() -> dict[str, str]:
    """Versions of the packages a result depends on."""
    versions = {"memristor-bsl": __version__, "python": platform.python_version()}
    for name in ("torch", "numpy", "scipy", "h5py", "pyvisa"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit() -> str:
    """The source tree's git commit (with ``+dirty`` for uncommitted changes), or ``unknown``."""
    source = Path(__file__).resolve().parent.parent
    if not (source / ".git").exists():
        return "unknown"
    try:
        head = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")
