"""The run folder: its file names, its creation, and the provenance recorded in it."""

from __future__ import annotations

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


def prepare_run_dir(out: str, default_name: str) -> Path:
    """Create a fresh run folder (``out``, else ``runs/<default_name>-<time>``), checking
    it is writable and holds no earlier run before any work starts."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(out or f"runs/{default_name}-{stamp}")
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
