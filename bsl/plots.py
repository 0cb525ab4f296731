"""Figures of a run (matplotlib, no pyplot state): each function returns a Figure.

``bsl plot RUN_DIR`` saves all of them as PNG; in a notebook, display them directly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from .runs import Run

MICRO = 1e6


def learning_curves(run: Run) -> Figure:
    """Test accuracy and running train accuracy per epoch; batch loss (running mean) per step."""
    fig = Figure(figsize=(9, 3.5), layout="constrained")
    ax_acc, ax_loss = fig.subplots(1, 2)
    e = run.epochs()
    ax_acc.plot(e["epoch"], e["test_accuracy"], "o-", label="test")
    ax_acc.plot(e["epoch"], e["train_running_accuracy"], "s--", label="train (running, binary)")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    ax_acc.grid(alpha=0.3)
    ax_acc.legend()
    s = run.steps()
    if len(s["loss"]):
        window = max(1, len(s["loss"]) // 100)
        smooth = np.convolve(s["loss"], np.ones(window) / window, mode="valid")
        ax_loss.plot(s["step"][window - 1:], smooth)
    ax_loss.set(xlabel="batch", ylabel="loss", title="batch loss (running mean)")
    ax_loss.grid(alpha=0.3)
    fig.suptitle(_title(run))
    return fig


def conductance_histograms(run: Run, bins: int = 60) -> Figure:
    """Per layer and field, the histogram of every snapshot as a column: how the
    conductance (µS) or weight distribution moves over training."""
    rows = [(layer, name) for layer in range(run.n_layers) for name in run.snapshot_fields(layer)]
    fig = Figure(figsize=(9, 2.4 * len(rows)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(rows), 1, squeeze=False)[:, 0])
    for ax, (layer, name) in zip(axes, rows, strict=True):
        counts, edges = run.histograms(layer, name, bins)
        scale = 1.0 if name == "weight" else MICRO
        steps = run.snapshot_steps(layer)
        x = np.arange(len(steps) + 1) - 0.5
        mesh = ax.pcolormesh(x, edges * scale, counts.T, norm=LogNorm(vmin=1, vmax=max(int(counts.max()), 2)),
                             cmap="viridis", shading="flat")
        fig.colorbar(mesh, ax=ax, label="devices")
        ticks = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), 8)).astype(int))
        ax.set_xticks(ticks, [str(steps[t]) for t in ticks])
        unit = "" if name == "weight" else " (µS)"
        ax.set(xlabel="snapshot at batch", ylabel=f"{name}{unit}", title=f"layer {layer}: {name}")
    fig.suptitle(_title(run))
    return fig


def weight_distributions(run: Run, bins: int = 80) -> Figure:
    """Per layer, the weight ``(G+ - G-) / (g_max - g_min)`` distribution at the first
    and the last snapshot."""
    fig = Figure(figsize=(4 * run.n_layers, 3.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, run.n_layers, squeeze=False)[0])
    for layer, ax in enumerate(axes):
        first, last = run.weights(layer, 0), run.weights(layer, -1)
        edges = np.linspace(min(first.min(), last.min()), max(first.max(), last.max()) + 1e-12, bins + 1)
        ax.hist(first.ravel(), edges, alpha=0.5, label=f"batch {run.snapshot_steps(layer)[0]}")
        ax.hist(last.ravel(), edges, alpha=0.5, label=f"batch {run.snapshot_steps(layer)[-1]}")
        ax.set(xlabel="weight", ylabel="synapses", title=f"layer {layer}", yscale="log")
        ax.legend()
    fig.suptitle(_title(run))
    return fig


def pulses_per_epoch(run: Run) -> Figure:
    """SET and RESET pulses per epoch, one bar pair per layer."""
    p = run.pulses(per="epoch")
    fig = Figure(figsize=(8, 3.5), layout="constrained")
    ax = fig.subplots()
    n_layers = run.n_layers
    width = 0.8 / (2 * n_layers)
    epochs = p["epoch"] + 1
    for layer in range(n_layers):
        offset = (2 * layer - n_layers + 0.5) * width
        ax.bar(epochs + offset, p["set"][:, layer], width, label=f"layer {layer} SET")
        ax.bar(epochs + offset + width, p["reset"][:, layer], width, label=f"layer {layer} RESET")
    ax.set(xlabel="epoch", ylabel="pulses", title="pulses per epoch")
    if len(epochs):
        ax.set_xticks(epochs)
    ax.legend(fontsize="small", ncols=2)
    fig.suptitle(_title(run))
    return fig


FIGURES = {
    "learning_curves": learning_curves,
    "conductance_histograms": conductance_histograms,
    "weights": weight_distributions,
    "pulses": pulses_per_epoch,
}
"""Every figure ``bsl plot`` writes, by file stem."""


def save_all(run: Run, out_dir: str | Path, dpi: int = 110) -> list[Path]:
    """Write every figure in :data:`FIGURES` as ``out_dir/<name>.png``; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, make in FIGURES.items():
        path = out / f"{name}.png"
        make(run).savefig(path, dpi=dpi)
        paths.append(path)
    return paths


def _title(run: Run) -> str:
    c = run.config
    device = "float weights" if c["rule"] == "sgd" else c["preset"]
    return f"{run.path.name}: {c['rule']} on {device}, {c['dataset']}, layers {c['layers']}"
