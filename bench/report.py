"""What every benchmark writes: its JSON report with a description of the machine."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    """Versions, platform, cores, torch threads and the load average when measured."""
    import numpy as np
    import torch

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1_5_15min": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def write_report(path: str | Path, report: dict[str, Any]) -> Path:
    """Write the command line, ``report`` and ``machine`` as indented JSON to ``path``
    (making its folder); return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = " ".join([Path(sys.executable).name, *sys.argv])
    out.write_text(json.dumps({"command": command, **report, "machine": machine()}, indent=2) + "\n",
                   encoding="utf-8")
    return out
