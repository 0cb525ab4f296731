"""Accuracy against Boolean operations of finished logic-gate runs: a table and the
Pareto front per rule.

    bsl sweep sims/logic_pareto.toml --out studies/logic_pareto
    python -m sims.logic_front studies/logic_pareto --out docs/logic

``operations`` are the discretised circuit's two-input gates (constants, wires and
inverters not counted; ``summary.json``'s ``logic`` block); accuracy is the circuit's
(``test_accuracy_deterministic``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

COLUMNS = ("rule", "layers", "gates", "operations", "live_operations", "depth", "test_accuracy",
           "relaxed_accuracy", "train_wall_s", "epochs", "seed")


def summaries(paths: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    """The finished logic runs under ``paths``: run folders, or sweep studies (``points/*``)."""
    found = []
    for path in paths:
        files = [path / "summary.json"] if (path / "summary.json").is_file() \
            else sorted(path.glob("points/*/summary.json"))
        if not files:
            raise ValueError(f"{path}: neither a finished run folder nor a sweep study with finished points")
        for file in files:
            s = json.loads(file.read_text())
            if "logic" in s:
                found.append((file.parent, s))
    if not found:
        raise ValueError("no logic-gate runs (difflogic, lilogic, compactlogic) found")
    return found


def row(s: dict[str, Any]) -> dict[str, Any]:
    """One run's line of the table."""
    c, logic = s["config"], s["logic"]
    return {"rule": c["rule"], "layers": c["layers"], "gates": logic["gates"],
            "operations": logic["operations"], "live_operations": logic["live_operations"],
            "depth": logic["depth"], "test_accuracy": s["test_accuracy_deterministic"],
            "relaxed_accuracy": s["test_accuracy_stochastic"], "train_wall_s": round(s["train_wall_s"], 1),
            "epochs": c["epochs"], "seed": c["seed"]}


def pareto(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows no other row of the same rule beats on both fewer operations and higher accuracy."""
    front = []
    for r in rows:
        same = [o for o in rows if o["rule"] == r["rule"] and o is not r]
        if not any(o["operations"] <= r["operations"] and o["test_accuracy"] >= r["test_accuracy"]
                   and (o["operations"], o["test_accuracy"]) != (r["operations"], r["test_accuracy"])
                   for o in same):
            front.append(r)
    return sorted(front, key=lambda r: (r["rule"], r["operations"]))


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table, sorted by rule and operations."""
    head = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"
    body = ""
    for r in sorted(rows, key=lambda r: (r["rule"], r["operations"])):
        cells = [f"{100 * r[k]:.2f} %" if k.endswith("accuracy") else str(r[k]) for k in COLUMNS]
        body += "| " + " | ".join(cells) + " |\n"
    return head + body


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    """Accuracy against operations, one colour per rule, each rule's front joined."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    front = pareto(rows)
    for rule in sorted({r["rule"] for r in rows}):
        mine = [r for r in rows if r["rule"] == rule]
        pts = ax.scatter([r["operations"] for r in mine], [100 * r["test_accuracy"] for r in mine],
                         label=rule)
        edge = [r for r in front if r["rule"] == rule]
        ax.plot([r["operations"] for r in edge], [100 * r["test_accuracy"] for r in edge],
                color=pts.get_facecolor()[0], alpha=0.7)
    ax.set(xscale="log", xlabel="two-input Boolean operations per inference",
           ylabel="test accuracy, discretised circuit (%)",
           title="logic-gate networks: accuracy vs operations")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    fig.savefig(path, dpi=110)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sims.logic_front", description=__doc__.split("\n\n")[0])
    p.add_argument("paths", type=Path, nargs="+", metavar="RUN_OR_STUDY")
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    args = p.parse_args(argv)
    try:
        rows = [row(s) for _, s in summaries(args.paths)]
    except (ValueError, OSError, KeyError) as exc:
        print(f"logic_front: error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "logic_front.md").write_text(markdown(rows))
    (args.out / "logic_front.json").write_text(json.dumps(rows, indent=2))
    plot(rows, args.out / "logic_front.png")
    print(markdown(rows), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
