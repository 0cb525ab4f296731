"""The run's ``summary.json``: what :func:`bsl.train.train` returns and writes once a run finishes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np

from .config import TrainConfig
from .rundir import TRACE_FILE, package_versions

__all__ = ["build_summary", "summary_json"]


def build_summary(c: TrainConfig, loop: Any, *, final: dict[str, float | None], train_acc: float,
                  modes: Sequence[str], counters: list[dict[str, int]], facts: list[dict[str, Any]],
                  layers: list[str], dataset: dict[str, Any], samples: int, resumes: int,
                  traced: bool) -> dict[str, Any]:
    """The summary of a finished run; ``loop`` is the training loop's state
    (:class:`bsl.train.LoopState`), ``samples`` the training set's size."""
    return {
        "test_accuracy": final[c.inference],
        "test_accuracy_deterministic": final["deterministic"],
        "test_accuracy_stochastic": final["stochastic"],
        "train_accuracy": train_acc,
        "inference": c.inference,
        "eval_samples": c.eval_samples,
        "epochs": loop.epochs,
        "test_accuracy_per_epoch": [e["test_accuracy"] for e in loop.epochs],
        "samples_per_s": samples * c.epochs / loop.train_wall if loop.train_wall > 0 else float("nan"),
        "wall_s": loop.wall_s,
        "train_wall_s": loop.train_wall,
        "steps": loop.step,
        "resumes": resumes,
        "layers": layers,
        "layer_facts": facts,
        "evaluations": {"per_epoch_test": c.inference, "final_test": list(modes),
                        "final_train": c.inference},
        "device_counters": counters,
        "pulses": [{"set": k.get("set_pulses", 0), "reset": k.get("reset_pulses", 0)} for k in counters],
        "dataset": dataset,
        "config": c.to_dict(),
        "seed": c.seed,
        "versions": package_versions(),
        "trace_file": TRACE_FILE if traced else None,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def summary_json(summary: dict[str, Any]) -> str:
    """``summary`` as written into ``summary.json``."""
    return json.dumps(summary, indent=2, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot serialize {type(value).__name__}")
