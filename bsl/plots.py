"""Figures of a run (matplotlib, no pyplot state): each function returns a Figure.

``bsl plot RUN_DIR`` saves all of them as PNG; in a notebook, display them directly.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, StrMethodFormatter

from .report import backend_label
from .runs import Run

MICRO = 1e6


LOSS_NOTE = ("loss per sample: -sum over outputs of [t log p + (1 - t) log(1 - p)] (binary cross-entropy of "
             "the sigmoid outputs p against the one-hot target t),\nfrom each batch's training forward pass "
             "(bsl: binary stochastic inputs and hidden units); the rules step along its gradient t - p "
             "(sgd), or its sign (manhattan, bsl)")


def learning_curves(run: Run) -> Figure:
    """Test accuracy and running train accuracy per epoch; training loss (binary
    cross-entropy, running mean) per batch; resumes marked as vertical lines."""
    fig = Figure(figsize=(10, 4.4), layout="constrained")
    ax_acc, ax_loss = fig.subplots(1, 2)
    e, c = run.epochs(), run.config
    test_label = f"test ({c['inference']} inference, after the epoch)"
    ax_acc.plot(e["epoch"], e["test_accuracy"], "o-", label=test_label)
    train_words = "binary stochastic passes" if c["rule"] == "bsl" else "training passes"
    train_label = f"train (running mean over the epoch's {train_words})"
    ax_acc.plot(e["epoch"], e["train_running_accuracy"], "s--", label=train_label)
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    ax_acc.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_acc.grid(alpha=0.3)
    s = run.steps()
    window = max(1, len(s["loss"]) // 100)
    if len(s["loss"]):
        smooth = np.convolve(s["loss"], np.ones(window) / window, mode="valid")
        ax_loss.plot(s["step"][window - 1:], smooth, label="training loss")
    how = f"running mean over {window} batches" if window > 1 else "per batch"
    ax_loss.set(xlabel="batch", ylabel="loss per sample (see below)",
                title=f"training loss: binary cross-entropy\n({how})")
    ax_loss.grid(alpha=0.3)
    per_epoch = max(1, -(-int(run.attrs["dataset"]["train"]) // int(c["batch_size"])))
    resumes = [ev["step"] for ev in run.events() if ev["kind"] == "resume"]
    many = f" ({len(resumes)} resumes)" if len(resumes) > 1 else ""
    for k, step in enumerate(resumes):
        label = None if k else f"resumed from a checkpoint{many}"
        ax_acc.axvline(step / per_epoch, color="0.4", ls=":", lw=1.2, label=label)
        ax_loss.axvline(step, color="0.4", ls=":", lw=1.2, label=label)
    ax_acc.legend(loc="upper center", bbox_to_anchor=(0.5, -0.17), fontsize="small", frameon=False)
    if len(ax_loss.get_legend_handles_labels()[0]) > 1:
        ax_loss.legend(loc="upper center", bbox_to_anchor=(0.5, -0.17), fontsize="small", frameon=False)
    fig.suptitle(_title(run, fig))
    fig.text(0.5, 0.005, LOSS_NOTE, ha="center", va="bottom", fontsize="x-small", color="0.3", wrap=True)
    fig.get_layout_engine().set(rect=(0, 0.08, 1, 0.92))  # type: ignore[call-arg, union-attr]
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
    fig.suptitle(_title(run, fig))
    return fig


def weight_distributions(run: Run, bins: int = 80) -> Figure:
    """Per layer, the normalized weight ``(G+ - G-) / (g_max - g_min)`` distribution at
    the first and the last snapshot."""
    fig = Figure(figsize=(4 * run.n_layers, 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, run.n_layers, squeeze=False)[0])
    for layer, ax in enumerate(axes):
        first, last = run.weights(layer, 0), run.weights(layer, -1)
        steps = run.snapshot_steps(layer)
        edges = np.linspace(min(first.min(), last.min()), max(first.max(), last.max()) + 1e-12, bins + 1)
        ax.hist(first.ravel(), edges, alpha=0.5, label=f"first snapshot (batch {steps[0]})")
        ax.hist(last.ravel(), edges, alpha=0.5, label=f"last snapshot (batch {steps[-1]})")
        device = run.conductance_range(layer) is not None
        xlabel = "weight (G+ - G-) / (g_max - g_min)" if device else "weight (float)"
        ax.set(xlabel=xlabel, ylabel="synapses", title=f"layer {layer} ({first.size} synapses)", yscale="log")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize="small", frameon=False)
    fig.suptitle(_title(run, fig))
    return fig


def pulses_per_epoch(run: Run) -> Figure:
    """SET and RESET pulses per epoch, one panel per layer (each with its own scale)."""
    p = run.pulses(per="epoch")
    n_layers = run.n_layers
    fig = Figure(figsize=(max(5.0, 3.6 * n_layers), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, n_layers, squeeze=False)[0])
    epochs = p["epoch"] + 1
    width = 0.4
    for layer, ax in enumerate(axes):
        ax.bar(epochs - width / 2, p["set"][:, layer], width, label="SET", color="tab:blue")
        ax.bar(epochs + width / 2, p["reset"][:, layer], width, label="RESET", color="tab:orange")
        info, device = run.layers()[layer], run.conductance_range(layer) is not None
        cells = f"{info['rows']}x{info['cols']} {'pairs' if device else 'float weights'}"
        ax.set(xlabel="epoch", ylabel="pulses", title=f"layer {layer}: {cells}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
        if not p["set"][:, layer].any() and not p["reset"][:, layer].any():
            ax.set(ylim=(0, 1), yticks=[])
            ax.text(0.5, 0.5, "no pulses" + ("" if device else " (float weights)"), transform=ax.transAxes,
                    ha="center", va="center", color="0.4")
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    fig.suptitle(_title(run, fig) + "\npulses per epoch")
    note = _scheme_note(run)
    if note:
        fig.supxlabel(textwrap.fill(note, 100), fontsize="small", color="0.3")
    return fig


def _scheme_note(run: Run) -> str:
    c = run.config
    if c["rule"] == "sgd":
        return ""
    if c["scheme"] == "push_pull":
        return ("push_pull scheme: each update SETs one device of a pair and RESETs the other "
                "(G+ up and G- down, or the reverse), so SET = RESET")
    if c["scheme"] == "dep_only":
        return "dep_only scheme: updates only RESET (G- for positive counts, G+ for negative ones)"
    return "set_only scheme: updates only SET (G+ for positive counts, G- for negative ones)"


FIGURES = {
    "learning_curves": learning_curves,
    "conductance_histograms": conductance_histograms,
    "weights": weight_distributions,
    "pulses": pulses_per_epoch,
}
"""Every figure ``bsl plot`` writes, by file stem."""


def save_all(run: Run, out_dir: str | Path, dpi: int = 110) -> list[Path]:
    """Write every figure in :data:`FIGURES` (for a logic-gate run: the learning curves and
    the choice entropies) as ``out_dir/<name>.png``; return the paths."""
    from .logic.plots import choice_entropy, is_logic_run

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    figures = {"learning_curves": learning_curves, "choice_entropy": choice_entropy} if is_logic_run(run) \
        else FIGURES  # logic layers have no conductances or pulses
    for name, make in figures.items():
        path = out / f"{name}.png"
        make(run).savefig(path, dpi=dpi)
        paths.append(path)
    return paths


def _title(run: Run, fig: Figure) -> str:
    """Run, rule, data, layers and resumes; then where the weights lived; wrapped to the
    figure's width."""
    c = run.config
    resumes = run.resumes()
    resumed = f", resumed {resumes}x" if resumes else ""
    lines = [f"{run.path.name}: {c['rule']}, {c['dataset']}, layers {c['layers']}{resumed}",
             f"on {backend_label(c, run.attrs.get('device'))}"]
    width = int(fig.get_figwidth() * 10)
    return "\n".join(textwrap.fill(line, width) for line in lines)
