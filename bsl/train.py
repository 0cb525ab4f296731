"""The training loop: data, network, rule, progress, evaluation and ``summary.json``.

The loop knows rules only by ``train_step`` and devices only through
:class:`bsl.stores.WeightStore`; it never changes when a rule is added.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from devices import SimulatedCrossbar

from . import __version__
from .config import TrainConfig, save_config
from .data import Dataset, load_dataset
from .network import Network, StoreFactory, build_network, parse_layers
from .rules import get_rule
from .stores import CarryStore, CrossbarStore, FloatStore, WeightStore, random_float_weights

EVAL_CHUNK = 2000


class RunDirError(ValueError):
    """The run folder cannot be created or written."""


@dataclass
class TrainResult:
    """What :func:`train` returns: the summary (as written) and the trained network."""

    summary: dict[str, Any]
    network: Network
    run_dir: Path


def store_factory(config: TrainConfig, uses_devices: bool) -> StoreFactory:
    """How layers get their weights: a crossbar per layer, or float tensors."""
    init_gen = torch.Generator().manual_seed(config.seed)

    def make(rows: int, cols: int, index: int) -> WeightStore:
        if not uses_devices:
            return FloatStore(config.init_spread * random_float_weights(rows, cols, init_gen))

        def array(seed: int, spread: float) -> SimulatedCrossbar:
            return SimulatedCrossbar(
                rows, cols, config.preset, seed=seed, scheme=config.scheme,  # type: ignore[arg-type]
                init="mid", init_spread=spread,
            )

        msb = array(config.seed * 1000 + index, config.init_spread)
        if config.carry_period == 0:
            return CrossbarStore(msb)
        lsb = array(config.seed * 1000 + 500 + index, 0.0)
        return CarryStore(msb, lsb, config.carry_significance, config.carry_period)

    return make


def prepare_run_dir(config: TrainConfig) -> Path:
    """Create the run folder (checking it is writable before any work starts)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(config.out or f"runs/{config.rule}-{config.dataset}-{stamp}")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise RunDirError(f"output folder {run_dir} is not writable ({exc.strerror or exc})") from exc
    return run_dir


def evaluate(net: Network, x: Tensor, y: Tensor, mode: str, samples: int, seed: int) -> float:
    """Accuracy of ``net`` on ``(x, y)`` in an inference mode (see :mod:`bsl.network`)."""
    gen = torch.Generator().manual_seed(seed)
    correct = 0
    for start in range(0, len(y), EVAL_CHUNK):
        p = net.predict(x[start:start + EVAL_CHUNK], mode, samples, gen)
        correct += int((p.argmax(1) == y[start:start + EVAL_CHUNK]).sum())
    return correct / max(len(y), 1)


def pulse_counts(net: Network) -> list[dict[str, int]]:
    """Per layer: the device operation counters (empty for float layers)."""
    return [store.counters() for store in net.stores()]


def package_versions() -> dict[str, str]:
    """Versions of the packages a result depends on."""
    versions = {"memristor-bsl": __version__, "python": platform.python_version()}
    for name in ("torch", "numpy", "scipy", "h5py", "pyvisa"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def train(config: TrainConfig, *, dataset: Dataset | None = None) -> TrainResult:
    """Run one training as configured; write ``config.toml`` and ``summary.json``."""
    data = dataset or load_dataset(
        config.dataset, data_dir=config.data_dir or None, seed=config.seed,
        train_limit=config.train_limit, test_limit=config.test_limit,
    )
    rule = get_rule(config.rule)(config)
    net = build_network(
        parse_layers(config.layers), data.input_shape, data.n_classes,
        store_factory(config, rule.uses_devices), config.gain_scale,
    )
    run_dir = prepare_run_dir(config)
    save_config(config, run_dir / "config.toml")
    gen = torch.Generator().manual_seed(config.seed)
    order = torch.Generator().manual_seed(config.seed + 7)
    eye = torch.eye(data.n_classes)
    n = len(data.y_train)
    epochs: list[dict[str, Any]] = []
    train_wall = 0.0
    started = time.perf_counter()
    for epoch in range(config.epochs):
        perm = torch.randperm(n, generator=order)
        rule.start_epoch(epoch)
        correct = 0
        loss_sum = 0.0
        seen = 0
        t0 = time.perf_counter()
        with tqdm(total=n, desc=f"epoch {epoch + 1}/{config.epochs}", unit="sample",
                  disable=not config.progress, leave=True, dynamic_ncols=True) as bar:
            for start in range(0, n, config.batch_size):
                idx = perm[start:start + config.batch_size]
                stats = rule.train_step(net, data.x_train[idx], eye[data.y_train[idx]], gen)
                correct += stats.correct
                loss_sum += stats.loss * len(idx)
                seen += len(idx)
                bar.update(len(idx))
                if bar.n == n or (start // config.batch_size) % 50 == 0:
                    bar.set_postfix(acc=f"{correct / seen:.3f}", pulses=_total_pulses(net), refresh=False)
        epoch_wall = time.perf_counter() - t0
        train_wall += epoch_wall
        test_acc = evaluate(net, data.x_test, data.y_test, config.inference, config.eval_samples,
                            config.seed + 100 + epoch)
        epochs.append({
            "epoch": epoch + 1, "train_running_accuracy": correct / seen, "train_loss": loss_sum / seen,
            "test_accuracy": test_acc, "wall_s": epoch_wall,
        })
        if config.progress:
            tqdm.write(f"epoch {epoch + 1}: running train accuracy {correct / seen:.4f}, "
                       f"test accuracy {test_acc:.4f}")
    final = {
        mode: evaluate(net, data.x_test, data.y_test, mode, config.eval_samples, config.seed + 999)
        for mode in ("deterministic", "stochastic")
    }
    train_acc = evaluate(net, data.x_train, data.y_train, config.inference, config.eval_samples,
                         config.seed + 998)
    summary = {
        "test_accuracy": final[config.inference],
        "test_accuracy_deterministic": final["deterministic"],
        "test_accuracy_stochastic": final["stochastic"],
        "train_accuracy": train_acc,
        "inference": config.inference,
        "eval_samples": config.eval_samples,
        "epochs": epochs,
        "test_accuracy_per_epoch": [e["test_accuracy"] for e in epochs],
        "samples_per_s": n * config.epochs / train_wall if train_wall > 0 else float("nan"),
        "wall_s": time.perf_counter() - started,
        "train_wall_s": train_wall,
        "layers": [layer.describe() for layer in net.layers],
        "device_counters": pulse_counts(net),
        "pulses": [
            {"set": c.get("set_pulses", 0), "reset": c.get("reset_pulses", 0)} for c in pulse_counts(net)
        ],
        "dataset": {"name": data.name, "train": n, "test": len(data.y_test),
                    "input_shape": list(data.input_shape), "classes": data.n_classes},
        "config": config.to_dict(),
        "seed": config.seed,
        "versions": package_versions(),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default))
    return TrainResult(summary, net, run_dir)


def _total_pulses(net: Network) -> int:
    return sum(c.get("set_pulses", 0) + c.get("reset_pulses", 0) for c in pulse_counts(net))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot serialize {type(value).__name__}")
