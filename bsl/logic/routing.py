"""A gate layer's interconnect on a memristor crossbar: one-hot routing of its input bits.

A layer of ``n`` gates reading ``m`` bits (the encoder's bits for layer 0, the layer
below's outputs otherwise) is wired by an ``m x 2n`` array: column ``2j`` carries input
``a`` of gate ``j``, column ``2j + 1`` its input ``b``. Each cell is the crossbar's
differential pair. In every column, ``G+`` of the one selected row (``a[j]`` or ``b[j]``)
is programmed to the low-resistance state ``g_max``; every other ``G+`` and every ``G-``
to the high-resistance state ``g_min``. Applying the input bits as read pulses (``v_read``
for a 1, 0 V for a 0) gives the differential column current

    I = v_read * (x_sel (g+_sel - g-_sel) + sum_{i != sel} x_i (g+_i - g-_i)),

where the pair's ``G-`` is the reference that cancels the HRS leakage of the unselected
rows (up to device-to-device spread, programming error and read noise). A comparator
per column thresholds ``I`` at ``threshold_fraction * v_read * (g_max - g_min)``
(nominal bounds of the array) to recover the routed bit; the gates then run in logic
(:func:`bsl.logic.gates.hard_gate`).

Tiles: the array is split into row tiles of at most ``tile_rows`` rows and column tiles
of at most ``tile_cols`` columns, each its own crossbar. ``sense`` says what a column's
comparator sees: ``total``, the sum of the partial currents of all its row tiles (the
tiles' column wires joined onto one comparator); ``selected`` (default), only the row
tile that holds the column's selected device (the column's other tiles hold nothing but
HRS devices: they are not read). Every unselected pair that sees a 1 adds its
device-to-device mismatch to the current, so the error grows with the rows summed:
``selected`` with small row tiles bounds it (``total`` sums all ``m`` rows).

A device stuck in (or left in) a high state on an unselected row leaks ``v_read (g - g_min)``
into its column whenever that row's bit is 1, which can flip the column's bit; so one such
device anywhere in a column of ``m`` cells corrupts it. With ``compensate=True`` the pair is
balanced instead: verification reads which unselected devices stayed high, and their
partner is programmed to the same conductance (a second program-and-verify pass), so the
pair's difference cancels again. Selected cells cannot be repaired this way (a stuck-off
``G+`` or stuck-on ``G-`` there loses the signal).

Cost per routed layer: ``4 m n`` devices (``m x 2n`` cells, 2 devices each) in
``ceil(m / tile_rows) * ceil(2n / tile_cols)`` arrays; each sample costs one forward
read per tile (with ``sense='selected'``: per tile that holds a selected device), so at
most ``samples * row_tiles * col_tiles`` vector reads in all.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from devices import Crossbar, DeviceModel, SimulatedCrossbar, VerifyResult, get_preset

from .discrete import DiscreteLayer, DiscreteNet
from .gates import hard_gate

DEFAULT_TILE = 1024
"""Default most columns of one array."""
DEFAULT_TILE_ROWS = 64
"""Default most rows of one array: with ``sense='selected'`` the rows whose mismatch adds
up in a column (see the module doc; 64 keeps rram's bit error rate near 1e-3)."""
DEFAULT_BATCH = 1000
"""Samples applied per read call (bounds the memory of one read)."""
TOLERANCE_FRACTION = 0.1
"""Default program-and-verify tolerance, as a fraction of the nominal ``g_max - g_min``: a
binary state needs only to clear the comparator by a margin, and a tighter window mostly
flags LRS devices whose own ``g_max`` (device-to-device spread) lies just below nominal."""
SENSES = ("selected", "total")
"""What a column's comparator adds up: its selected device's row tile, or all row tiles."""
INIT = "min"
"""Default initial state of a simulated array: fully RESET (HRS), as after a block reset."""

CrossbarFactory = Callable[[int, int, int], Crossbar]
"""``(rows, cols, seed) -> Crossbar``: makes one tile (default: a SimulatedCrossbar)."""


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} = {value!r}: must be a positive integer")
    return int(value)


def check_routing_settings(tile_rows: int, tile_cols: int, threshold_fraction: float,
                           batch: int = DEFAULT_BATCH, seed: int = 0, sense: str = "selected") -> None:
    """Refuse bad tile sizes, threshold fraction, batch, seed or sense (one-line ValueErrors)."""
    if sense not in SENSES:
        raise ValueError(f"sense = {sense!r}: choose one of {SENSES}")
    _positive_int("tile_rows", tile_rows)
    _positive_int("tile_cols", tile_cols)
    _positive_int("batch", batch)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed = {seed!r}: must be a non-negative integer")
    if isinstance(threshold_fraction, bool) or not isinstance(threshold_fraction, float | int) \
            or not 0 < threshold_fraction < 1:
        raise ValueError(f"threshold_fraction = {threshold_fraction!r}: must lie strictly between 0 and 1")


def tile_edges(size: int, tile: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each tile of at most ``tile`` along an axis of ``size``."""
    return [(start, min(start + tile, size)) for start in range(0, size, tile)]


def selected_rows(layer: DiscreteLayer) -> np.ndarray:
    """``(2n,)`` the row each column selects: ``a[j]`` at ``2j``, ``b[j]`` at ``2j + 1``."""
    return np.stack((layer.a, layer.b), axis=1).reshape(-1).astype(np.int64)


def routing_targets(selected: np.ndarray, rows: tuple[int, int], cols: tuple[int, int],
                    g_bounds: tuple[float, float]) -> torch.Tensor:
    """Target conductances ``(2, rows, cols)`` of one tile: ``G+`` of the selected row of a
    column at ``g_max``, every other device at ``g_min``."""
    (r0, r1), (c0, c1) = rows, cols
    g_off, g_on = g_bounds
    targets = torch.full((2, r1 - r0, c1 - c0), float(g_off), dtype=torch.float64)
    sel = selected[c0:c1]
    inside = (sel >= r0) & (sel < r1)
    targets[0, torch.from_numpy(sel[inside] - r0), torch.from_numpy(np.nonzero(inside)[0])] = float(g_on)
    return targets


def _balanced_targets(targets: torch.Tensor, result: VerifyResult, g_on: float) -> torch.Tensor | None:
    """Targets where the partner of each unselected device left above its target is set to
    that device's read conductance (capped at ``g_on``); None when no pair needs it."""
    read = targets + result.error.detach().to("cpu", torch.float64)
    high = result.failed.cpu() & (read > targets)
    unselected = targets[0] <= targets[1]
    plus, minus = high[0] & unselected & ~high[1], high[1] & unselected & ~high[0]
    if not bool(plus.any() or minus.any()):
        return None
    out = targets.clone()
    out[1][plus] = read[0][plus].clamp(max=g_on)
    out[0][minus] = read[1][minus].clamp(max=g_on)
    return out


def tile_seed(seed: int, row_tile: int, col_tile: int) -> int:
    """An independent seed for each tile of one array."""
    return int(np.random.SeedSequence([int(seed), row_tile, col_tile]).generate_state(1)[0])


@dataclass(frozen=True)
class ProgrammingStats:
    """What program-and-verify of all tiles spent and missed."""

    failed_devices: int
    """Devices outside tolerance when verification stopped (stuck devices end up here)."""
    failed_selected: int
    """Of those, the selected (LRS) ``G+`` devices: the ones that carry the routed signal."""
    pulses: int
    """Programming pulses (SET plus RESET) over all devices."""
    iterations: int
    """The most read-then-pulse iterations any tile needed."""


class RoutedLayer:
    """One gate layer whose interconnect is programmed into crossbar tiles (see module doc).

    Build it with :meth:`program`; ``tiles[r][c]`` is the array of row tile ``r`` and
    column tile ``c``. Operation counters of the tiles are reset after programming, so
    they count routing only."""

    def __init__(self, layer: DiscreteLayer, n_inputs: int, tiles: list[list[Crossbar]],
                 row_edges: list[tuple[int, int]], col_edges: list[tuple[int, int]],
                 threshold_fraction: float, stats: ProgrammingStats, batch: int = DEFAULT_BATCH,
                 sense: str = "selected") -> None:
        self.layer, self.n_inputs = layer, int(n_inputs)
        self.tiles, self.row_edges, self.col_edges = tiles, row_edges, col_edges
        self.threshold_fraction, self.stats, self.batch = float(threshold_fraction), stats, int(batch)
        self.sense = sense
        starts = np.array([r0 for r0, _ in row_edges])
        self.tile_of_column = np.searchsorted(starts, selected_rows(layer), side="right") - 1
        """Row tile holding each column's selected device."""
        g_off, g_on = tiles[0][0].g_bounds
        self.v_read = float(tiles[0][0].v_read)
        self.threshold = self.threshold_fraction * self.v_read * (g_on - g_off)
        """Comparator threshold on a column's total current, A."""

    @classmethod
    def program(cls, layer: DiscreteLayer, n_inputs: int, model: DeviceModel | str | Path | None = "rram",
                *, seed: int = 0, tile_rows: int = DEFAULT_TILE_ROWS, tile_cols: int = DEFAULT_TILE,
                threshold_fraction: float = 0.5, tolerance: float | None = None,
                max_pulses: int | None = None, init: str = INIT, batch: int = DEFAULT_BATCH,
                compensate: bool = False, factory: CrossbarFactory | None = None,
                sense: str = "selected") -> RoutedLayer:
        """Allocate the tiles (simulated arrays of ``model``, or ``factory``'s) and program
        them by program-and-verify. ``tolerance`` (S) defaults to
        ``TOLERANCE_FRACTION * (g_max - g_min)``; ``max_pulses`` per device to twice the
        nominal pulses across the full range plus 16 (``max_iterations`` follows from it).
        ``compensate``: balance unselected pairs with a device left high (module doc)."""
        check_routing_settings(tile_rows, tile_cols, threshold_fraction, batch, seed, sense)
        n_inputs = _positive_int("n_inputs", n_inputs)
        if layer.size and max(int(layer.a.max()), int(layer.b.max())) >= n_inputs:
            raise ValueError(f"the layer reads input indices up to {max(layer.a.max(), layer.b.max())}: "
                             f"n_inputs = {n_inputs} is too small")
        if tolerance is not None and not tolerance > 0:
            raise ValueError(f"tolerance = {tolerance!r} S: must be > 0")
        if max_pulses is not None:
            _positive_int("max_pulses", max_pulses)
        if factory is None:
            resolved = get_preset(model) if isinstance(model, str | Path) else model
            if not isinstance(resolved, DeviceModel):
                raise ValueError("give a device model (a DeviceModel or a preset name) or a factory")

            def factory(rows: int, cols: int, tile_seed_: int) -> Crossbar:
                return SimulatedCrossbar(rows, cols, resolved, seed=tile_seed_, init=init)

        selected = selected_rows(layer)
        row_edges, col_edges = tile_edges(n_inputs, tile_rows), tile_edges(selected.size, tile_cols)
        tiles: list[list[Crossbar]] = []
        failed = failed_sel = pulses = iterations = 0
        for r, rows in enumerate(row_edges):
            tiles.append([])
            for c, cols in enumerate(col_edges):
                xbar = factory(rows[1] - rows[0], cols[1] - cols[0], tile_seed(seed, r, c))
                g_off, g_on = xbar.g_bounds
                tol = TOLERANCE_FRACTION * (g_on - g_off) if tolerance is None else float(tolerance)
                budget = max_pulses
                if budget is None:
                    step = min(xbar.nominal_steps)
                    budget = 2 * math.ceil((g_on - g_off) / step) + 16
                per_iteration = min(16, xbar.max_pulses_per_update or 16, budget)
                targets = routing_targets(selected, rows, cols, (g_off, g_on))
                lrs = targets[0] > g_off
                settings: dict[str, Any] = {
                    "tolerance": tol, "max_pulses": budget, "max_pulses_per_iteration": per_iteration,
                    "max_iterations": max(100, 2 * math.ceil(budget / per_iteration))}
                result = xbar.program_and_verify(targets, **settings)
                pulses += int(result.pulses.sum())
                iterations = max(iterations, int(result.iterations))
                if compensate:
                    balanced = _balanced_targets(targets, result, g_on)
                    if balanced is not None:
                        targets, result = balanced, xbar.program_and_verify(balanced, **settings)
                        pulses += int(result.pulses.sum())
                        iterations = max(iterations, int(result.iterations))
                bad = result.failed.cpu()
                failed += int(bad.sum())
                failed_sel += int((bad[0] & lrs).sum())
                xbar.reset_counters()
                tiles[r].append(xbar)
        return cls(layer, n_inputs, tiles, row_edges, col_edges, threshold_fraction,
                   ProgrammingStats(failed, failed_sel, pulses, iterations), batch, sense)

    # -- sizes and costs --------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """``(m, 2n)``: rows (input bits) and columns (gate inputs) of the whole array."""
        return (self.n_inputs, 2 * self.layer.size)

    @property
    def devices(self) -> int:
        """Devices used: two per cell, ``2 m 2n``."""
        return 2 * self.shape[0] * self.shape[1]

    @property
    def n_tiles(self) -> int:
        return len(self.row_edges) * len(self.col_edges)

    @property
    def reads(self) -> int:
        """Vector reads applied since programming (summed over tiles)."""
        return sum(t.counters.vector_reads for row in self.tiles for t in row)

    # -- operation --------------------------------------------------------------
    def currents(self, bits: np.ndarray) -> np.ndarray:
        """Total column currents ``(batch, 2n)``, A, for Boolean input bits ``(batch, m)``."""
        bits = np.asarray(bits, dtype=bool)
        if bits.ndim != 2 or bits.shape[1] != self.n_inputs:
            raise ValueError(f"bits: expected shape (batch, {self.n_inputs}), got {bits.shape}")
        out = np.empty((bits.shape[0], self.shape[1]), dtype=np.float64)
        for s in range(0, bits.shape[0], self.batch):
            v = torch.from_numpy(bits[s:s + self.batch].astype(np.float32)) * self.v_read
            for c, (c0, c1) in enumerate(self.col_edges):
                total = torch.zeros((v.shape[0], c1 - c0), dtype=torch.float64)
                for r, (r0, r1) in enumerate(self.row_edges):
                    mine = torch.from_numpy(self.tile_of_column[c0:c1] == r)
                    if self.sense == "selected" and not bool(mine.any()):
                        continue  # no selected device of these columns in this tile: not read
                    part = self.tiles[r][c].read_forward(v[:, r0:r1]).detach().to("cpu", torch.float64)
                    total += part if self.sense == "total" else part * mine
                out[s:s + self.batch, c0:c1] = total.numpy()
        return out

    def route(self, bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The gates' input bits ``(a_bits, b_bits)``, each Boolean ``(batch, n)``, as the
        comparators read them."""
        routed = self.currents(bits) > self.threshold
        return routed[:, 0::2], routed[:, 1::2]

    def evaluate(self, bits: np.ndarray) -> np.ndarray:
        """The layer's Boolean outputs ``(batch, n)`` with the routing done on the crossbar."""
        a, b = self.route(bits)
        return hard_gate(self.layer.gate, a, b)

    def close(self) -> None:
        for row in self.tiles:
            for tile in row:
                tile.close()


def _forward(net: DiscreteNet, h: np.ndarray, layers: range) -> np.ndarray:
    for k in layers:
        layer = net.layers[k]
        h = hard_gate(layer.gate, h[:, layer.a], h[:, layer.b])
    return h


def evaluate_routed(net: DiscreteNet, x: np.ndarray, y: np.ndarray, layer_index: int,
                    model: DeviceModel | str | Path | None = "rram", *, seed: int = 0,
                    tile_rows: int = DEFAULT_TILE_ROWS, tile_cols: int = DEFAULT_TILE,
                    threshold_fraction: float = 0.5, tolerance: float | None = None,
                    max_pulses: int | None = None, init: str = INIT, batch: int = DEFAULT_BATCH,
                    compensate: bool = False, factory: CrossbarFactory | None = None,
                    sense: str = "selected") -> dict[str, Any]:
    """Accuracy of ``net`` on features ``x`` and labels ``y`` with layer ``layer_index``'s
    routing on a crossbar (the other layers in exact logic), next to the exact accuracy;
    the routing bit error rate, gate output error rate, and the costs (devices, reads,
    programming pulses, failed devices). Settings as :meth:`RoutedLayer.program`."""
    n_layers = len(net.layers)
    if isinstance(layer_index, bool) or not isinstance(layer_index, int | np.integer) \
            or not 0 <= layer_index < n_layers:
        raise ValueError(f"layer_index = {layer_index!r}: the net has layers 0..{n_layers - 1}")
    check_routing_settings(tile_rows, tile_cols, threshold_fraction, batch, seed, sense)
    y = np.asarray(y).reshape(-1)
    if len(y) != len(x):
        raise ValueError(f"{len(x)} samples but {len(y)} labels")
    if len(y) == 0:
        raise ValueError("no samples to evaluate")
    k = int(layer_index)
    h = _forward(net, net.encoder.encode(np.asarray(x)), range(k))
    layer = net.layers[k]
    routed = RoutedLayer.program(layer, h.shape[1], model, seed=seed, tile_rows=tile_rows,
                                 tile_cols=tile_cols, threshold_fraction=threshold_fraction,
                                 tolerance=tolerance, max_pulses=max_pulses, init=init, batch=batch,
                                 compensate=compensate, factory=factory, sense=sense)
    try:
        a, b = routed.route(h)
        reads = routed.reads
    finally:
        routed.close()
    exact_a, exact_b = h[:, layer.a], h[:, layer.b]
    bit_errors = int((a != exact_a).sum() + (b != exact_b).sum())
    out_routed, out_exact = hard_gate(layer.gate, a, b), hard_gate(layer.gate, exact_a, exact_b)
    rest = range(k + 1, n_layers)
    pred_routed = net.scores(_forward(net, out_routed, rest)).argmax(1)
    pred_exact = net.scores(_forward(net, out_exact, rest)).argmax(1)
    rows, cols = routed.shape
    return {
        "layer": k, "samples": len(y),
        "accuracy": float((pred_routed == y).mean()), "exact_accuracy": float((pred_exact == y).mean()),
        "agreement": float((pred_routed == pred_exact).mean()),
        "bit_error_rate": bit_errors / (2 * a.size), "bit_errors": bit_errors,
        "gate_error_rate": float((out_routed != out_exact).mean()),
        "rows": rows, "cols": cols, "tiles": routed.n_tiles, "devices": routed.devices, "reads": reads,
        "programming_pulses": routed.stats.pulses, "failed_devices": routed.stats.failed_devices,
        "failed_selected": routed.stats.failed_selected, "verify_iterations": routed.stats.iterations,
    }


__all__ = ["RoutedLayer", "ProgrammingStats", "evaluate_routed", "check_routing_settings", "tile_edges",
           "selected_rows", "routing_targets", "CrossbarFactory", "DEFAULT_TILE", "DEFAULT_TILE_ROWS",
           "DEFAULT_BATCH", "TOLERANCE_FRACTION"]
