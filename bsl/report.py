"""The words a run prints and labels its figures with: per-epoch and final lines, and
where the weights lived (simulated crossbars, instruments, or float tensors).

Every number is explained where it is printed: which inference mode, over which
samples, and why two evaluations of the same weights may differ (read noise, new
binary samples).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from devices import get_preset


def train_accuracy_words(rule: str) -> str:
    """What the running train accuracy of an epoch averages over."""
    passes = "binary stochastic passes" if rule == "bsl" else "training passes"
    return f"running mean over the epoch's {passes}"


def epoch_line(record: dict[str, Any], config: dict[str, Any]) -> str:
    """The line printed after each epoch (``record`` as in ``summary.json["epochs"]``)."""
    return (f"epoch {record['epoch']}/{config['epochs']}: test {record['test_accuracy']:.4f} "
            f"({config['inference']} inference), train {record['train_running_accuracy']:.4f} "
            f"({train_accuracy_words(config['rule'])})")


def evaluation_noise(config: dict[str, Any]) -> str:
    """Why repeated evaluations of unchanged weights differ, or ``""`` when they cannot."""
    causes = []
    if config["rule"] != "sgd":
        if config["device"] == "visa":
            causes.append("each evaluation measures the devices anew")
        else:
            try:
                noise = get_preset(config["preset"]).read_noise_std
            except (OSError, ValueError):  # a preset file gone since the run: say it generally
                noise = float("nan")
            if math.isnan(noise):
                causes.append("each evaluation reads the arrays anew (read noise)")
            elif noise > 0:
                causes.append(f"each evaluation reads the arrays anew, with {100 * noise:g} % read noise")
    if config["inference"] == "stochastic":
        causes.append("stochastic inference draws new binary samples")
    return "; ".join(causes)


def final_lines(summary: dict[str, Any], run_dir: str | Path) -> list[str]:
    """The lines ``bsl train`` prints at the end of a run."""
    c, headline = summary["config"], summary["inference"]
    k = summary["eval_samples"]
    parts = []
    for mode in [headline] + [m for m in ("deterministic", "stochastic") if m != headline]:
        value = summary[f"test_accuracy_{mode}"]
        if value is None:
            parts.append(f"{mode} not evaluated on instruments (analog inputs are read level by level)")
            continue
        notes = ["headline, --inference"] * (mode == headline)
        logic = "logic" in summary
        notes += [f"K={k} binary passes"] * (mode == "stochastic" and not logic)
        notes += ["the discretised Boolean circuit"] * (mode == "deterministic" and logic)
        notes += ["the relaxed network"] * (mode == "stochastic" and logic)
        parts.append(f"{value:.4f} {mode}" + (f" ({'; '.join(notes)})" if notes else ""))
    lines = [f"final test accuracy: {', '.join(parts)}"]
    n_train = summary["dataset"]["train"]
    lines.append(f"final train accuracy: {summary['train_accuracy']:.4f} ({headline} inference over the "
                 f"{n_train} training samples, after training)")
    epochs = summary.get("epochs") or []
    last = epochs[-1]["test_accuracy"] if epochs else None
    why = evaluation_noise(c)
    if last is not None and last != summary["test_accuracy"] and why:
        lines.append(f"  (the last epoch's test {last:.4f} is another evaluation of the same weights: {why})")
    resumed = f", resumed {summary['resumes']} time(s)" if summary.get("resumes") else ""
    lines.append(f"training {summary['samples_per_s']:.0f} samples/s over {summary['train_wall_s']:.1f} s, "
                 f"wall {summary['wall_s']:.1f} s{resumed}; run folder {run_dir}")
    return lines


def backend_label(config: dict[str, Any], devices: list[dict[str, Any]] | None = None) -> str:
    """Where the weights lived, e.g. ``simulated crossbars (preset rram, push_pull)`` or
    ``instruments (smu B2912A EMU0000001, ...), nominal preset rram, push_pull``;
    ``devices`` are the store descriptions of the trace's root ``device`` attribute."""
    if config["rule"] == "sgd":
        return "float weights (no devices)"
    if devices and all(store.get("kind") == "logic" for store in devices):
        return "logic gates in software (no crossbar)"
    scheme = config["scheme"]
    if config["device"] != "visa":
        carry = f", periodic carry every {config['carry_period']}" if config.get("carry_period") else ""
        return f"simulated crossbars (preset {config['preset']}, {scheme}{carry})"
    ids: dict[str, str] = {}
    for store in devices or []:
        crossbar = store.get("crossbar") or store.get("msb") or {}
        ids.update(crossbar.get("instruments") or {})
    names = ", ".join(f"{role} {_short_identity(raw)}" for role, raw in ids.items())
    return f"instruments ({names or 'identities not recorded'}), nominal preset {config['preset']}, {scheme}"


def _short_identity(raw: str) -> str:
    """``"Keysight Technologies,B2912A,MY123,3.4"`` -> ``"B2912A MY123"``."""
    parts = [p.strip() for p in raw.split(",")]
    return " ".join(parts[1:3]) if len(parts) >= 3 else raw.strip()
