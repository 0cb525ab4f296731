"""Reading run folders: metrics, pulse counts, conductance snapshots and events.

Everything comes back as numpy arrays and plain dicts. Snapshots are read one at a
time (or one synapse across all of them), so a long run's file is never loaded whole::

    from bsl.runs import Run

    with Run("runs/mnist-bsl") as run:
        curves = run.epochs()                      # columns: epoch, test_accuracy, ...
        pulses = run.pulses(per="epoch")           # {"set": (epochs, layers), "reset": ...}
        g = run.snapshot(0, -1)                    # last snapshot of layer 0: g_plus, g_minus (S)
        trace = run.synapse(0, row=3, col=7)       # that cell over all snapshots
"""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from .rundir import CHECKPOINT_FILE, SUMMARY_FILE, TRACE_FILE
from .traces import READ_VERSIONS

FIELD_ORDER = ("g_plus", "g_minus", "lsb_g_plus", "lsb_g_minus", "weight")


class RunError(ValueError):
    """The folder is not a run, or its trace file cannot be read."""


def _decode(value: Any) -> Any:
    """An HDF5 attribute as Python: JSON strings parsed, bytes decoded, numpy scalars unwrapped."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        if value[:1] in "[{":
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                return value
        return value
    if isinstance(value, np.generic):
        return value.item()
    return value


class Run:
    """A run folder written by ``bsl train`` (finished or interrupted), opened read-only.

    The trace file is opened without HDF5 file locking, so a run that is still being
    written can be read too (it shows everything up to its last flushed batch).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        trace = self.path / TRACE_FILE
        if not self.path.is_dir():
            raise RunError(f"{self.path} is not a folder")
        if not trace.is_file():
            raise RunError(f"{self.path} holds no {TRACE_FILE}: not a run folder, or traces were off")
        try:
            self.file = h5py.File(trace, "r", locking=False)
        except OSError as exc:
            raise RunError(f"cannot open {trace}: {exc}") from exc
        version = self.file.attrs.get("layout_version")
        if version not in READ_VERSIONS:
            self.file.close()
            raise RunError(f"{trace}: layout version {version!r}, this package reads {READ_VERSIONS}")

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self.file.id.valid:
            self.file.close()

    # -- what the run is ------------------------------------------------------------
    @property
    def attrs(self) -> dict[str, Any]:
        """Root attributes (layout, versions, git commit, config, seeds, device, start time)."""
        return {key: _decode(value) for key, value in self.file.attrs.items()}

    @property
    def config(self) -> dict[str, Any]:
        """The effective run configuration."""
        return dict(self.attrs["config"])

    @property
    def summary(self) -> dict[str, Any] | None:
        """``summary.json`` of a finished run, else None."""
        path = self.path / SUMMARY_FILE
        return json.loads(path.read_text()) if path.is_file() else None

    @property
    def finished(self) -> bool:
        return (self.path / SUMMARY_FILE).is_file()

    @property
    def resumable(self) -> bool:
        """An unfinished run with a checkpoint to continue from."""
        return not self.finished and (self.path / CHECKPOINT_FILE).is_file()

    @property
    def files(self) -> dict[str, int]:
        """The run folder's files and their sizes, bytes."""
        return {p.name: p.stat().st_size for p in sorted(self.path.iterdir()) if p.is_file()}

    @property
    def n_layers(self) -> int:
        return int(self.file.attrs["n_layers"])

    def layers(self) -> list[dict[str, Any]]:
        """Per layer: its description, shape and weight store (device description)."""
        out = []
        for i in range(self.n_layers):
            g = self.file[f"layers/layer{i}"]
            out.append({"index": i, **{key: _decode(value) for key, value in g.attrs.items()}})
        return out

    def conductance_range(self, layer: int) -> tuple[float, float] | None:
        """Nominal ``(g_min, g_max)`` of a device layer, S (None for float layers)."""
        store = self.layers()[layer]["store"]
        crossbar = store.get("crossbar") or store.get("msb")
        if crossbar is None:
            return None
        return float(crossbar["g_min_S"]), float(crossbar["g_max_S"])

    # -- tables ------------------------------------------------------------------
    def epochs(self) -> dict[str, np.ndarray]:
        """Per-epoch metrics as columns: epoch, step, train_running_accuracy, train_loss,
        test_accuracy, wall_s (s), time (s since 1970 UTC)."""
        return _columns(self.file["epochs"][:])

    def steps(self) -> dict[str, np.ndarray]:
        """Per-batch records as columns: step, epoch (0-based), samples, correct, loss,
        time, set_pulses and reset_pulses ``(steps, layers)`` (written rows only)."""
        return _columns(self.file["steps"][: self._written_steps()])

    def _written_steps(self) -> int:
        """Rows with ``step == 0`` are allocated but not written yet, and written rows come
        first (``/steps`` is the virtual join of its segments; in layout version 1 it is one
        contiguous table sized for the whole run)."""
        return int(np.count_nonzero(self.file["steps"].fields("step")[:]))

    def pulses(self, per: str = "step") -> dict[str, np.ndarray]:
        """SET and RESET pulse counts ``(n, layers)`` per ``step`` or summed per ``epoch``
        (with ``epoch``, the 0-based epoch of each row)."""
        steps, n = self.file["steps"], self._written_steps()
        sets, resets = steps.fields("set_pulses")[:n], steps.fields("reset_pulses")[:n]
        epoch = steps.fields("epoch")[:n]
        if per == "step":
            return {"step": steps.fields("step")[:n], "set": sets, "reset": resets}
        if per != "epoch":
            raise ValueError(f"per = {per!r}: choose 'step' or 'epoch'")
        epochs = np.unique(epoch)
        index = np.searchsorted(epochs, epoch)
        out_set = np.zeros((len(epochs), self.n_layers), dtype=np.int64)
        out_reset = np.zeros_like(out_set)
        np.add.at(out_set, index, sets)
        np.add.at(out_reset, index, resets)
        return {"epoch": epochs, "set": out_set, "reset": out_reset}

    def events(self) -> list[dict[str, Any]]:
        """Events (start, resume, verify_failure, error, finish, ...) with time and step."""
        rows = self.file["events"][:]
        return [{"time": float(r["time"]), "step": int(r["step"]), "kind": _text(r["kind"]),
                 "message": _text(r["message"])} for r in rows]

    def resumes(self) -> int:
        """How many times the run was continued (its ``resume`` events)."""
        return count_resumes(self.file)

    def operations(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows ``start:stop`` of the instrument operation journal (structured array)."""
        return self.file["operations"][start:stop]

    # -- snapshots ----------------------------------------------------------------
    def snapshot_fields(self, layer: int) -> list[str]:
        """Arrays stored per snapshot: ``g_plus``, ``g_minus`` (S) [, ``lsb_g_plus``,
        ``lsb_g_minus``] for device layers, ``weight`` for float layers."""
        names = [name for name in self._snapshots(layer) if name not in ("step", "epoch")]
        return sorted(names, key=lambda n: FIELD_ORDER.index(n) if n in FIELD_ORDER else len(FIELD_ORDER))

    def snapshot_steps(self, layer: int = 0) -> np.ndarray:
        """The batch index of every snapshot of ``layer`` (0 = before training)."""
        return self._snapshots(layer)["step"][:]

    def snapshot(self, layer: int, index: int = -1) -> dict[str, np.ndarray]:
        """One snapshot (default: the latest) of a layer: each field ``(rows, cols)``."""
        group = self._snapshots(layer)
        n = group["step"].shape[0]
        if not -n <= index < n:
            raise IndexError(f"layer {layer} has {n} snapshots; index {index} is out of range")
        return {name: group[name][index] for name in self.snapshot_fields(layer)}

    def weights(self, layer: int, index: int = -1) -> np.ndarray:
        """Normalized weights ``(G+ - G-) / (g_max - g_min)`` of one snapshot (float
        layers: the weights themselves)."""
        snap = self.snapshot(layer, index)
        if "weight" in snap:
            return snap["weight"].astype(np.float64)
        g_min, g_max = self.conductance_range(layer) or (0.0, 1.0)
        return (snap["g_plus"].astype(np.float64) - snap["g_minus"]) / (g_max - g_min)

    def synapse(self, layer: int, row: int, col: int) -> dict[str, np.ndarray]:
        """One cell across all snapshots: ``step`` and each field ``(snapshots,)``."""
        group = self._snapshots(layer)
        rows, cols = group[self.snapshot_fields(layer)[0]].shape[1:]
        if not (0 <= row < rows and 0 <= col < cols):
            raise IndexError(f"layer {layer} is {rows}x{cols}; cell ({row}, {col}) is outside it")
        out = {"step": group["step"][:]}
        for name in self.snapshot_fields(layer):
            out[name] = group[name][:, row, col]
        return out

    def histograms(
        self, layer: int, field: str, bins: int | np.ndarray = 50
    ) -> tuple[np.ndarray, np.ndarray]:
        """Histogram of ``field`` in every snapshot of a layer, read one snapshot at a time:
        ``(counts (snapshots, bins), edges (bins + 1,))``; shared edges span all snapshots."""
        group = self._snapshots(layer)
        if field not in group or field in ("step", "epoch"):
            raise KeyError(f"layer {layer} has no snapshot field {field!r}: {self.snapshot_fields(layer)}")
        ds = group[field]
        if np.ndim(bins) == 0:
            lo, hi = np.inf, -np.inf
            for k in range(ds.shape[0]):
                a = ds[k]
                lo, hi = min(lo, float(a.min())), max(hi, float(a.max()))
            if not lo < hi:
                lo, hi = lo - 0.5, hi + 0.5
            edges = np.linspace(lo, hi, int(bins) + 1)
        else:
            edges = np.asarray(bins, dtype=np.float64)
        counts = np.stack([np.histogram(ds[k], edges)[0] for k in range(ds.shape[0])]) if ds.shape[0] else \
            np.zeros((0, len(edges) - 1), dtype=np.int64)
        return counts, edges

    def _snapshots(self, layer: int) -> h5py.Group:
        if not 0 <= layer < self.n_layers:
            raise IndexError(f"the run has {self.n_layers} layers; layer {layer} does not exist")
        return self.file[f"snapshots/layer{layer}"]


def count_resumes(file: h5py.File) -> int:
    """The ``resume`` events in an open trace file, less the ``resume_refused`` ones: every
    continuation, including one stopped before its first checkpoint (which the checkpoint's
    own count misses), but not one refused by the instrument check (:mod:`bsl.hil_resume`)."""
    kinds = [_text(kind) for kind in file["events"].fields("kind")[:]]
    return kinds.count("resume") - kinds.count("resume_refused")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _columns(table: np.ndarray) -> dict[str, np.ndarray]:
    return {name: table[name] for name in table.dtype.names or ()}


def open_run(path: str | Path) -> Run:
    """Open a run folder (same as ``Run(path)``)."""
    return Run(path)


__all__ = ["Run", "RunError", "count_resumes", "open_run"]
