"""Figures of a logic-gate run's trace: how decided each layer's choices become.

The trace snapshots of a logic layer hold, per parameter row, the entropy (bits) of
each choice it learns (``gate_entropy``; ``wire_entropy_a/b`` for learned interconnect,
``slot_entropy`` for CompactLogic's slots), one snapshot per epoch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from ..runs import Run


def is_logic_run(run: Run) -> bool:
    """True when the run's layers are logic-gate layers."""
    return any(info.get("store_kind") == "logic" for info in run.layers())


def choice_entropy(run: Run) -> Figure:
    """Per layer, the mean (line) and the 10-90 % band (shaded) of each choice entropy
    over the snapshots: near 0 bits, the argmax network equals the relaxed one."""
    fig = Figure(figsize=(4.2 * run.n_layers, 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, run.n_layers, squeeze=False)[0])
    for layer, ax in enumerate(axes):
        steps = run.snapshot_steps(layer)
        for name in run.snapshot_fields(layer):
            values = np.stack([run.snapshot(layer, i)[name].ravel() for i in range(len(steps))])
            low, high = np.percentile(values, [10, 90], axis=1)
            line, = ax.plot(steps, values.mean(1), marker="o", ms=3, label=name.replace("_", " "))
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.15)
        info = run.layers()[layer]
        ax.set(xlabel="batch", ylabel="entropy (bits)", title=f"layer {layer}: {info.get('describe', '')}",
               ylim=(0, None))
        ax.title.set_fontsize("small")
    axes[0].legend(fontsize="small", frameon=False)
    c = run.config
    fig.suptitle(f"{run.path.name}: {c['rule']}, {c['dataset']}, layers {c['layers']}\n"
                 "choice entropy per layer (0 bits: decided)")
    return fig
