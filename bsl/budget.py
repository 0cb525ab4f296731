"""What a training run will need in memory and on disk, estimated before anything is
allocated, and the one-line refusal when this machine cannot hold it.

The figures are per device or per weight, counted from the arrays' tensors and checked
against the peak resident memory of real runs (784-1000-10 to 784-3000-10 and
784-2000-2000-10, batch 32; the estimate came within 0 to +20 % of the measured peak):

* a simulated crossbar holds 74 B per device (17 float32 tensors and 2 bool masks of
  ``(2, rows, cols)`` in :class:`devices.SimulatedCrossbar`, plus its read cache); the
  update of the largest array needs 120 B per device more at its peak (the rule's pulse
  counts and the step law's temporaries), a checkpoint copies 38 B per device of every
  array at once;
* periodic carry adds a second array per layer and 4 B per device, and its transfer
  (read-out, moves, program-and-verify) needs 220 B per device of the largest layer;
* float weights (``sgd``) take 4 B each and 28 B each of the largest layer while updated;
* instrument arrays keep nothing per device on the host but a 16 B read-out;
* activations: 4 B per value, ``3 rows + 8 cols`` values per read kept for the backward
  pass of a batch, ``3 rows + 6 cols`` per read for an evaluation chunk;
* every finished epoch keeps a record (about 700 B in memory, 420 B on disk).

On disk: the trace (steps segments, snapshots counted uncompressed, an upper bound since
they are gzip'd, and its metadata), two checkpoints (the new one is written before the
old one is replaced) and the summary. The operation journal of instrument runs is not
counted (it depends on the bench).
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from devices import available_memory, size_text

from .config import TrainConfig
from .data import Dataset
from .evaluation import EVAL_CHUNK
from .network import parse_layers
from .rules import get_rule
from .traces import SEGMENT_ROWS, step_dtype

SIM_RESIDENT, SIM_WORKSPACE, SIM_CHECKPOINT = 75, 120, 38
"""Simulated crossbar, B per device: held, update peak (largest array), checkpoint copy."""
CARRY_RESIDENT, CARRY_WORKSPACE = 4, 220
"""Periodic carry, B per device: the mid-range target, transfer peak (largest layer)."""
FLOAT_RESIDENT, FLOAT_WORKSPACE = 4, 28
"""Float weights, B per weight: held, update peak (largest layer)."""
VISA_WORKSPACE = 16
"""Instrument arrays, B per device: one float64 read-out on the host."""
EPOCH_MEMORY, EPOCH_DISK = 700, 420
"""Per finished epoch, B: its records in memory, and in checkpoints, summary and trace."""
TRACE_METADATA = 256_000
"""The trace file's groups, attributes (config, device models) and table headers, B."""
INT32_MAX, INT64_MAX = 2**31 - 1, 2**63 - 1


class BudgetError(ValueError):
    """The run cannot fit this machine's memory or disk, or its counts overflow the trace."""


@dataclass(frozen=True)
class LayerSize:
    """One layer's crossbar: ``rows x cols`` (bias row included), read ``positions``
    times per sample (1 for dense layers)."""

    describe: str
    rows: int
    cols: int
    positions: int


@dataclass(frozen=True)
class Budget:
    """A run's estimated needs, B; ``memory`` and ``disk`` itemize them."""

    layers: tuple[LayerSize, ...]
    devices: int
    """Devices (simulated or on instruments) of all arrays; weights for float layers."""
    total_steps: int
    snapshots: int
    memory: dict[str, int] = field(default_factory=dict)
    """Parts: weights held, and the peaks of an update, a batch's activations, an evaluation
    chunk and the per-epoch records."""
    disk: dict[str, int] = field(default_factory=dict)

    @property
    def memory_bytes(self) -> int:
        """The peak: what is held, plus the largest of an update with its batch's activations,
        an evaluation chunk and a checkpoint's copy (all inside ``update workspace``)."""
        m = self.memory
        held = m.get("crossbars", 0) + m.get("weights", 0) + m["per-epoch records"]
        return held + max(m["update workspace"] + m["batch activations"], m["evaluation"])

    @property
    def disk_bytes(self) -> int:
        return sum(self.disk.values())


def layer_sizes(layers: str, input_shape: tuple[int, ...], n_classes: int) -> list[LayerSize]:
    """The crossbars that :func:`bsl.network.build_network` would make, without making them."""
    out: list[LayerSize] = []
    shape = tuple(input_shape)
    for spec in [*parse_layers(layers), None]:
        if spec is not None and spec.kind == "conv":
            if len(shape) != 3:
                raise ValueError(f"layers: a convolution needs image input (channels, height, width), "
                                 f"got {shape}")
            c, h, w = shape
            if spec.kernel > h or spec.kernel > w:
                raise ValueError(f"conv kernel {spec.kernel} is larger than its {h}x{w} input")
            oh, ow = (h - spec.kernel) // spec.stride + 1, (w - spec.kernel) // spec.stride + 1
            out.append(LayerSize(f"conv {c}x{h}x{w} k{spec.kernel} s{spec.stride} -> {spec.size}x{oh}x{ow}",
                                 c * spec.kernel * spec.kernel + 1, spec.size, oh * ow))
            shape = (spec.size, oh, ow)
        else:
            n_in, n_out = math.prod(shape), (n_classes if spec is None else spec.size)
            out.append(LayerSize(f"dense {n_in}->{n_out}", n_in + 1, n_out, 1))
            shape = (n_out,)
    return out


def estimate(config: TrainConfig, input_shape: tuple[int, ...], n_classes: int, n_train: int,
             n_test: int) -> Budget:
    """What ``config`` on a data set of this shape needs (no allocation; see the module doc)."""
    sizes = layer_sizes(config.layers, input_shape, n_classes)
    cells = [s.rows * s.cols for s in sizes]
    floats = not get_rule(config.rule).uses_devices
    arrays = 2 if config.carry_period and not floats else 1
    per_cell = 1 if floats else 2 * arrays  # values per crossbar cell: weights, or devices of all arrays
    memory: dict[str, int] = {}
    if floats:
        memory["weights"] = FLOAT_RESIDENT * sum(cells)
        workspace, checkpoint_per_cell, fields = FLOAT_WORKSPACE * max(cells), FLOAT_RESIDENT, 1
    elif config.device == "visa":
        memory["crossbars"] = 0
        workspace, checkpoint_per_cell, fields = VISA_WORKSPACE * 2 * max(cells), 0, 2
    else:
        memory["crossbars"] = (SIM_RESIDENT * per_cell + CARRY_RESIDENT * 2 * (arrays - 1)) * sum(cells)
        update = (CARRY_WORKSPACE if arrays == 2 else SIM_WORKSPACE) * 2 * max(cells)
        workspace, checkpoint_per_cell, fields = update, SIM_CHECKPOINT * per_cell, 2 * arrays
    memory["update workspace"] = max(workspace, checkpoint_per_cell * sum(cells))
    batch = min(config.batch_size, n_train)
    chunk = min(EVAL_CHUNK, max(n_train, n_test))
    memory["batch activations"] = 4 * batch * sum(s.positions * (3 * s.rows + 8 * s.cols) for s in sizes)
    memory["evaluation"] = 4 * chunk * max(s.positions * (3 * s.rows + 6 * s.cols) for s in sizes)
    memory["per-epoch records"] = EPOCH_MEMORY * config.epochs
    per_epoch = -(-n_train // config.batch_size)
    total_steps = config.epochs * per_epoch
    snapshots = 1 + config.epochs  # start, epochs, every snapshot_every batches (once when both fall)
    if config.snapshot_every:
        both = config.epochs // (config.snapshot_every // math.gcd(per_epoch, config.snapshot_every))
        snapshots += total_steps // config.snapshot_every - both
    disk: dict[str, int] = {}
    if config.trace:
        seg = min(SEGMENT_ROWS, max(total_steps, 1))
        disk["steps"] = -(-total_steps // seg) * seg * step_dtype(len(sizes)).itemsize
        disk["snapshots"] = snapshots * (4 * fields * sum(cells) + 64 * fields * len(sizes))
        disk["trace metadata"] = TRACE_METADATA
    checkpoint = checkpoint_per_cell * sum(cells) + 8 * n_train + 65_536
    disk["checkpoints"] = 2 * checkpoint
    disk["per-epoch records"] = EPOCH_DISK * config.epochs
    return Budget(tuple(sizes), per_cell * sum(cells), total_steps, snapshots, memory, disk)




def _count(n: int) -> str:
    for scale, suffix in ((1e12, " T"), (1e9, " G"), (1e6, " M"), (1e3, " k")):
        if n >= scale:
            return f"{n / scale:.3g}{suffix}"
    return str(n)


def refusal(budget: Budget, config: TrainConfig, available_memory: int | None, free_disk: int | None,
            folder: str | Path = ".") -> str | None:
    """Why the run cannot go ahead (one line), or None; ``available_memory`` and ``free_disk``
    (B, None = unknown) are this machine's, ``folder`` where the run's files go."""
    if config.epochs > INT32_MAX:
        return (f"--epochs {config.epochs} is more than the trace's int32 epoch numbers hold ({INT32_MAX}); "
                "use fewer --epochs")
    if budget.total_steps > INT64_MAX:
        return (f"this run has {budget.total_steps:.3g} batches, more than int64 batch numbers hold; "
                "use fewer --epochs or a larger --batch-size")
    mem = budget.memory
    if available_memory is not None and budget.memory_bytes > available_memory:
        total = budget.memory_bytes
        shown = ", ".join(f"{name} {size_text(n)}" for name, n in mem.items() if n >= total / 100)
        top = max(mem, key=lambda k: mem[k])
        what = "weights" if "weights" in mem else "devices"
        advice = {"batch activations": "use a smaller --batch-size or smaller --layers",
                  "per-epoch records": "use fewer --epochs"}.get(top, "use smaller --layers")
        return (f"this run needs about {size_text(budget.memory_bytes)} of memory ({shown}; layers "
                f"'{config.layers}' on {_count(budget.devices)} {what}) "
                f"but {size_text(available_memory)} are available; {advice}")
    disk = budget.disk
    if free_disk is not None and budget.disk_bytes > free_disk:
        parts: list[str] = []
        if "steps" in disk:
            parts.append(f"{budget.total_steps:,} batch rows {size_text(disk['steps'])}")
        if "snapshots" in disk:
            parts.append(f"{budget.snapshots:,} snapshots {size_text(disk['snapshots'])}, uncompressed")
        parts += [f"{name} {size_text(disk[name])}" for name in ("checkpoints", "per-epoch records")
                  if disk[name] >= budget.disk_bytes / 100]
        top = max(disk, key=lambda k: disk[k])
        advice = {"steps": "use fewer --epochs, a larger --batch-size or --trace false",
                  "snapshots": "use fewer --epochs, a larger --snapshot-every (or 0) or --trace false",
                  "checkpoints": "use smaller --layers"}.get(top, "use fewer --epochs")
        return (f"this run's files need up to {size_text(budget.disk_bytes)} on disk ({'; '.join(parts)}) "
                f"but {size_text(free_disk)} are free in {folder}; {advice}")
    return None




def free_disk(folder: str | Path) -> tuple[int | None, Path]:
    """Free space, B, of the file system that ``folder`` (or its nearest existing parent) is on."""
    path = Path(folder).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free, path
    except OSError:
        return None, path


def check_run(config: TrainConfig, data: Dataset) -> Budget:
    """Refuse (:class:`BudgetError`, one line) a run that cannot fit this machine; call it
    before anything is allocated. A folder that already holds the run (resume) counts its
    files as space already taken."""
    budget = estimate(config, data.input_shape, data.n_classes, len(data.y_train), len(data.y_test))
    folder = Path(config.out or "runs")
    free, where = free_disk(folder)
    if free is not None and folder.is_dir():
        free += sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    why = refusal(budget, config, available_memory(), free, where)
    if why:
        raise BudgetError(why)
    return budget


__all__ = ["Budget", "BudgetError", "LayerSize", "available_memory", "check_run", "estimate", "free_disk",
           "layer_sizes", "refusal", "size_text"]
