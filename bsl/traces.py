"""Writing a run's trace file ``RUN_DIR/traces.h5`` (layout in ``docs/trace_layout.md``).

The file uses the most compatible HDF5 superblock (no "file open for write" flag).
The per-batch rows live in preallocated contiguous segments ``/step_segments/<k>`` of
``segment_rows`` zero rows each (zero rows = not yet written), joined into one table by
the virtual dataset ``/steps``. Each batch's row is written straight to its byte range
in the file: no HDF5 metadata changes per batch, so the file is consistent at every
moment and the record costs microseconds. Only when a segment is full is the next one
created (and the file flushed) through HDF5, once per ``segment_rows`` batches, so the
table grows with the run instead of being sized for all of it. Everything else
(epochs, snapshots, events, operations) grows through HDF5 and is flushed before the
next batch. A process killed at any moment thus leaves a file that any HDF5 tool
(1.10 or later, for the virtual ``/steps``) opens, holding every batch up to the last
completed one. Layout version 1 (one contiguous ``/steps`` sized for the whole run) is
still read and continued.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from devices import OPERATION_DTYPE

LAYOUT = "memristor-bsl run trace"
LAYOUT_VERSION = 2
READ_VERSIONS = (1, 2)
"""Layout versions this package reads and continues (1: one contiguous ``/steps``)."""
SEGMENT_ROWS = 4096
"""Rows per step segment (fewer when the whole run has fewer batches)."""
SEGMENTS = "step_segments"
STRING = h5py.string_dtype()

EPOCH_DTYPE = np.dtype([
    ("epoch", "i4"), ("step", "i8"), ("train_running_accuracy", "f8"), ("train_loss", "f8"),
    ("test_accuracy", "f8"), ("wall_s", "f8"), ("time", "f8"),
])
EVENT_DTYPE = np.dtype([("time", "f8"), ("step", "i8"), ("kind", STRING), ("message", STRING)])

UNITS = {"time": "s since 1970-01-01 UTC", "wall_s": "s", "voltage": "V", "width": "s", "current": "A",
         "g_plus": "S", "g_minus": "S", "lsb_g_plus": "S", "lsb_g_minus": "S", "weight": "weight units"}


def step_dtype(n_layers: int) -> np.dtype:
    """One row of the ``steps`` table: a batch and its pulses per layer."""
    return np.dtype([
        ("step", "i8"), ("epoch", "i4"), ("samples", "i4"), ("correct", "i4"), ("loss", "f4"),
        ("time", "f8"), ("set_pulses", "i8", (n_layers,)), ("reset_pulses", "i8", (n_layers,)),
    ])


class TraceError(ValueError):
    """The trace file cannot be written or does not match this run."""


class _StepRows:
    """The ``steps`` table: contiguous segments written row by row with ``pwrite`` at the
    row's file offset (HDF5 stores a contiguous dataset as one plain byte range; each
    segment's layout is checked against the numpy row before any write). Version 1
    files have one segment, ``/steps`` itself, which does not grow."""

    def __init__(self, file: h5py.File, path: Path) -> None:
        self.file = file
        self.dtype = step_dtype(int(file.attrs["n_layers"]))
        if int(file.attrs["layout_version"]) == 1:
            segments, self.growable = [file["steps"]], False
            self.rows = int(segments[0].shape[0])
        else:
            group = file[SEGMENTS]
            self.rows, self.growable = int(group.attrs["rows"]), True
            segments = [group[str(k)] for k in range(len(group))]
        self.offsets = [self._offset(ds) for ds in segments]
        self.n = sum(int(np.count_nonzero(ds.fields("step")[:])) for ds in segments)
        self._fd = os.open(path, os.O_WRONLY)

    @property
    def capacity(self) -> int:
        """Rows allocated so far."""
        return self.rows * len(self.offsets)

    def _offset(self, ds: h5py.Dataset) -> int:
        offset = ds.id.get_offset()
        if ds.chunks is not None or offset is None or ds.shape != (self.rows,):
            raise TraceError(f"{self.file.filename}: step segment {ds.name} is not a contiguous, allocated "
                             f"dataset of {self.rows} rows")
        file_type = ds.id.get_type()
        same = file_type.get_size() == self.dtype.itemsize and all(
            file_type.get_member_offset(i) == self.dtype.fields[name][1]  # type: ignore[index]
            for i, name in enumerate(self.dtype.names or ())
        )
        if ds.dtype != self.dtype or not same:
            raise TraceError(f"{self.file.filename}: the steps table has an unexpected row layout")
        return int(offset)

    def _grow(self) -> None:
        """Allocate the next segment (zeros) and flush, before any row goes into it."""
        ds = self.file[SEGMENTS].create_dataset(str(len(self.offsets)), data=np.zeros(self.rows, self.dtype))
        self.file.flush()
        self.offsets.append(self._offset(ds))

    def write(self, index: int, row: np.ndarray) -> None:
        """Write row ``index`` (0-based; rows are written in order, a new one is ``n``)."""
        if not 0 <= index <= self.n:
            raise TraceError(f"the steps table holds {self.n} rows; row {index} would leave a gap")
        if index >= self.capacity:
            if not self.growable:
                raise TraceError(f"the steps table holds {self.capacity} batches; row {index} is outside it")
            self._grow()
        k, i = divmod(index, self.rows)
        os.pwrite(self._fd, row.tobytes(), self.offsets[k] + i * self.dtype.itemsize)
        self.n = max(self.n, index + 1)

    def clear_from(self, n: int) -> None:
        """Zero rows ``n`` and later (records made after a checkpoint), across segments."""
        size, start = self.dtype.itemsize, n
        while start < self.n:
            k, i = divmod(start, self.rows)
            stop = min(self.n, (k + 1) * self.rows)
            os.pwrite(self._fd, bytes((stop - start) * size), self.offsets[k] + i * size)
            start = stop
        self.n = min(self.n, n)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _virtual_steps(file: h5py.File, dtype: np.dtype, rows: int) -> h5py.Dataset:
    """``/steps``: a virtual dataset that maps block ``k`` of ``rows`` rows onto
    ``/step_segments/<k>`` for every segment present (HDF5's ``%b`` source names)."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    vspace = h5py.h5s.create_simple((0,), (h5py.h5s.UNLIMITED,))
    vspace.select_hyperslab((0,), (h5py.h5s.UNLIMITED,), stride=(rows,), block=(rows,))
    dcpl.set_virtual(vspace, b".", f"/{SEGMENTS}/%b".encode(), h5py.h5s.create_simple((rows,)))
    space = h5py.h5s.create_simple((0,), (h5py.h5s.UNLIMITED,))
    h5py.h5d.create(file.id, b"steps", h5py.h5t.py_create(dtype), space, dcpl=dcpl)
    return file["steps"]


class _Table:
    """A 1-row-at-a-time appender on a growing dataset (low-level calls: ~20 us a row)."""

    def __init__(self, ds: h5py.Dataset) -> None:
        self.ds = ds
        self.n = ds.shape[0]
        self._tail = ds.shape[1:]
        self._mem = h5py.h5s.create_simple((1, *self._tail))
        self._mtype = h5py.h5t.py_create(ds.dtype)  # made once: building it costs ~50 us a row

    def append(self, row: np.ndarray) -> None:
        n = self.n
        self.ds.id.set_extent((n + 1, *self._tail))
        space = self.ds.id.get_space()
        space.select_hyperslab((n, *(0,) * len(self._tail)), (1, *self._tail))
        data = np.ascontiguousarray(row).reshape(1, *self._tail)
        self.ds.id.write(self._mem, space, data, mtype=self._mtype)
        self.n = n + 1

    def truncate(self, n: int) -> None:
        if n < self.n:
            self.ds.resize(n, axis=0)
            self.n = n


def _open_h5(path: Path, create: bool) -> h5py.File:
    """Open for writing with HDF5's raw-data sieve buffer off, so HDF5 never holds (and
    never writes back) a stale copy of the bytes that :class:`_StepRows` writes."""
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_sieve_buf_size(0)
    fapl.set_fclose_degree(h5py.h5f.CLOSE_STRONG)
    name = os.fsencode(path)
    if create:
        fid = h5py.h5f.create(name, h5py.h5f.ACC_TRUNC, fapl=fapl)
    else:
        fid = h5py.h5f.open(name, h5py.h5f.ACC_RDWR, fapl=fapl)
    return h5py.File(fid)


def _growing(group: h5py.Group, name: str, dtype: Any, tail: tuple[int, ...] = (), chunk_rows: int = 256,
             **kwargs: Any) -> h5py.Dataset:
    ds = group.create_dataset(name, shape=(0, *tail), maxshape=(None, *tail), dtype=dtype,
                              chunks=(chunk_rows, *tail), **kwargs)
    if name in UNITS:
        ds.attrs["unit"] = UNITS[name]
    return ds


class TraceWriter:
    """Appends a run's records; call :meth:`flush` at the end of every batch.

    Create with :meth:`create` (a new run) or :meth:`reopen` (resume).
    """

    def __init__(self, file: h5py.File, path: Path) -> None:
        self.file = file
        self.n_layers = int(file.attrs["n_layers"])
        self._row = np.zeros(1, dtype=step_dtype(self.n_layers))
        self._steps = _StepRows(file, path)
        self._epochs = _Table(file["epochs"])
        self._last_totals = np.zeros((2, self.n_layers), dtype=np.int64)
        self._dirty = False

    # -- opening ------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, *, attrs: dict[str, Any], layers: Sequence[dict[str, Any]],
               snapshot_fields: Sequence[Sequence[str]], shapes: Sequence[tuple[int, int]],
               total_steps: int, segment_rows: int | None = None) -> TraceWriter:
        """A new trace file: root ``attrs`` (JSON-encoded when not scalar), one group per
        layer with its description, the ``steps`` table with its first segment (of
        ``segment_rows`` rows, default ``min(SEGMENT_ROWS, total_steps)``), and empty
        growing tables."""
        seg_rows = segment_rows if segment_rows is not None else min(SEGMENT_ROWS, max(int(total_steps), 1))
        if isinstance(seg_rows, bool) or not isinstance(seg_rows, int) or seg_rows < 1:
            raise TraceError(f"segment_rows = {seg_rows!r}: must be an integer >= 1")
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")  # renamed into place once complete and flushed
        try:
            f = _open_h5(tmp, create=True)
        except OSError as exc:
            raise TraceError(f"cannot create trace file {path}: {exc}") from exc
        f.attrs["layout"] = LAYOUT
        f.attrs["layout_version"] = LAYOUT_VERSION
        f.attrs["n_layers"] = len(layers)
        for key, value in attrs.items():
            f.attrs[key] = value if isinstance(value, str | int | float) else json.dumps(value)
        f.attrs["started"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        lay = f.create_group("layers")
        snaps = f.create_group("snapshots")
        for i, (info, fields, (rows, cols)) in enumerate(zip(layers, snapshot_fields, shapes, strict=True)):
            g = lay.create_group(f"layer{i}")
            for key, value in info.items():
                g.attrs[key] = value if isinstance(value, str | int | float) else json.dumps(value)
            s = snaps.create_group(f"layer{i}")
            _growing(s, "step", "i8")
            _growing(s, "epoch", "i4")
            for name in fields:
                _growing(s, name, "f4", (rows, cols), chunk_rows=1, compression="gzip", compression_opts=4,
                         shuffle=True)
        dtype = step_dtype(len(layers))
        segments = f.create_group(SEGMENTS)
        segments.attrs["rows"] = seg_rows
        segments.create_dataset("0", data=np.zeros(seg_rows, dtype=dtype))
        steps = _virtual_steps(f, dtype, seg_rows)
        steps.attrs["unit_time"] = UNITS["time"]
        steps.attrs["unwritten_rows"] = "step == 0"
        steps.attrs["segment_rows"] = seg_rows
        _growing(f, "epochs", EPOCH_DTYPE, chunk_rows=64)
        _growing(f, "events", EVENT_DTYPE, chunk_rows=64)
        _growing(f, "operations", OPERATION_DTYPE, chunk_rows=4096)
        for name in ("voltage", "width", "current", "time"):
            f["operations"].attrs[f"unit_{name}"] = UNITS[name]
        f.flush()
        os.replace(tmp, path)  # the open handle follows the file
        return cls(f, path)

    @classmethod
    def reopen(cls, path: str | Path, *, steps: int, epochs: int) -> TraceWriter:
        """Open an existing trace to continue after a checkpoint taken at ``steps`` batches
        and ``epochs`` finished epochs: records made after it are dropped (they will be
        made again); events and instrument operations are kept (they happened)."""
        try:
            f = _open_h5(Path(path), create=False)
        except OSError as exc:
            raise TraceError(f"cannot open trace file {path} to continue it: {exc}") from exc
        version = f.attrs.get("layout_version")  # read before closing: a closed file raises KeyError
        if version not in READ_VERSIONS:
            f.close()
            raise TraceError(f"{path}: trace layout version {version!r}, "
                             f"this package continues versions {READ_VERSIONS}")
        try:
            writer = cls(f, Path(path))
            dropped = max(writer._steps.n - steps, 0)
            writer._steps.clear_from(steps)
            writer._epochs.truncate(epochs)
            for i in range(writer.n_layers):
                group = f[f"snapshots/layer{i}"]
                keep = int(np.searchsorted(group["step"][:], steps, side="right"))
                for ds in group.values():
                    _Table(ds).truncate(keep)
        except Exception as exc:  # a damaged HDF5 file fails in many ways (KeyError, None, OSError, ...)
            f.close()
            raise TraceError(f"{path}: the trace file is damaged and cannot be continued "
                             f"({type(exc).__name__}: {exc})") from exc
        writer._dirty = True
        writer.event("resume", f"continued from the checkpoint at step {steps} (epoch {epochs}); "
                     f"{dropped} batch record(s) made after it were dropped", step=steps)
        writer.flush()
        return writer

    # -- records ------------------------------------------------------------------
    def set_pulse_baseline(self, totals: np.ndarray) -> None:
        """Cumulative ``(2, layers)`` SET/RESET counts from which the next step counts."""
        self._last_totals = np.array(totals, dtype=np.int64)

    def step(self, step: int, epoch: int, samples: int, correct: int, loss: float,
             totals: np.ndarray) -> None:
        """A finished batch; ``totals`` are cumulative ``(2, layers)`` SET/RESET counts."""
        delta = totals - self._last_totals
        self._last_totals = totals.copy()
        r = self._row
        r["step"], r["epoch"], r["samples"], r["correct"], r["loss"] = step, epoch, samples, correct, loss
        r["time"] = time.time()
        r["set_pulses"][0] = delta[0]
        r["reset_pulses"][0] = delta[1]
        self._steps.write(step - 1, r)

    def epoch(self, record: dict[str, Any]) -> None:
        """A finished epoch (fields of ``EPOCH_DTYPE``; ``time`` filled in)."""
        row = np.zeros(1, dtype=EPOCH_DTYPE)
        for name in EPOCH_DTYPE.names or ():
            row[name] = record.get(name, time.time() if name == "time" else np.nan)
        self._epochs.append(row)
        self._dirty = True

    def snapshot(self, layer: int, step: int, epoch: int, arrays: dict[str, np.ndarray]) -> None:
        """Conductances (S) or weights of one layer at ``step``."""
        self._dirty = True
        group = self.file[f"snapshots/layer{layer}"]
        n = group["step"].shape[0]
        for name, ds in group.items():
            ds.resize(n + 1, axis=0)
            if name == "step":
                ds[n] = step
            elif name == "epoch":
                ds[n] = epoch
            else:
                ds[n] = arrays[name]

    def layer_attrs(self, layer: int, attrs: dict[str, Any]) -> None:
        """Set attributes of ``/layers/layer<i>`` (JSON-encoded when not scalar), such as the
        read counts recorded when the run finishes."""
        self._dirty = True
        group = self.file[f"layers/layer{layer}"]
        for key, value in attrs.items():
            group.attrs[key] = value if isinstance(value, str | int | float) else json.dumps(value)

    def event(self, kind: str, message: str, step: int = -1) -> None:
        """A timestamped event (start, resume, verify_failure, error, finish, ...)."""
        self._dirty = True
        ds = self.file["events"]
        n = ds.shape[0]
        ds.resize(n + 1, axis=0)
        ds[n] = (time.time(), step, kind, message)

    def operations(self, rows: np.ndarray) -> None:
        """Append instrument operations (an array of ``OPERATION_DTYPE``)."""
        rows = np.asarray(rows, dtype=OPERATION_DTYPE)
        self._dirty = True
        ds = self.file["operations"]
        n = ds.shape[0]
        ds.resize(n + len(rows), axis=0)
        ds[n:] = rows

    def flush(self) -> None:
        """Push everything to the operating system: it survives the process from here on.
        (Step rows need nothing: each is written straight to the file.)"""
        if self._dirty:
            self.file.flush()
            self._dirty = False

    def close(self) -> None:
        self._steps.close()
        if self.file.id.valid:
            self.file.close()
