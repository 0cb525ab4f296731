"""This machine's free memory, and byte counts as text: for the one-line refusals of runs
and traces too large to hold (``bsl.budget``, ``bsl device-response``)."""

from __future__ import annotations

from pathlib import Path


def size_text(n: float) -> str:
    """Bytes as ``1.23 GB`` (SI units)."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1000
    raise AssertionError  # pragma: no cover


def available_memory() -> int | None:
    """Memory this process can still allocate, B: Linux's ``MemAvailable`` (within a
    cgroup v2 limit when there is one), else psutil's figure, else None."""
    try:
        with open("/proc/meminfo") as fh:
            info = {line.split(":")[0]: line.split()[1] for line in fh}
        free = int(info["MemAvailable"]) * 1024
    except (OSError, KeyError, IndexError, ValueError):
        try:
            import psutil
        except ImportError:
            return None
        return int(psutil.virtual_memory().available)
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            free = min(free, int(limit) - used)
    except (OSError, ValueError):
        pass
    return free
