"""``bsl inspect RUN_DIR``: print what a run folder holds, finished or interrupted."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``inspect`` sub-command."""
    p = subparsers.add_parser("inspect", help="summarize a run folder",
                              description="Print a run's configuration, per-epoch metrics, pulses per "
                              "layer, snapshots and events (from traces.h5 and summary.json).")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--events", type=int, default=10, metavar="N", help="show the last N events (default 10)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from bsl.runs import Run

    with Run(args.run_dir) as r:
        try:
            text = describe(r, args.events)
        except KeyError as exc:  # a summary.json or trace that parses but lacks an entry
            raise ValueError(f"{args.run_dir}: incomplete run record (no {exc} entry)") from None
    print(text)
    return 0


def describe(r: Any, n_events: int = 10) -> str:
    """The text ``bsl inspect`` prints."""
    from bsl.report import backend_label

    a, c = r.attrs, r.config
    lines = [f"run {r.path}"]
    if r.finished:
        s = r.summary
        status = (f"finished: test accuracy {s['test_accuracy']:.4f} ({s['inference']}), "
                  f"train accuracy {s['train_accuracy']:.4f}, {s['wall_s']:.1f} s, {r.resumes()} resume(s)")
    else:
        steps = r.steps()["step"]
        how = f"continue with: bsl train --resume {r.path}" if r.resumable else "no checkpoint to resume from"
        status = f"unfinished at batch {int(steps[-1]) if len(steps) else 0}, {r.resumes()} resume(s); {how}"
    lines.append(f"  status    {status}")
    lines.append(f"  rule      {c['rule']} on {backend_label(c, a.get('device'))}")
    d = a["dataset"]
    lines.append(f"  data      {d['name']}: {d['train']} train / {d['test']} test, input {d['input_shape']}")
    lines.append(f"  started   {a['started']}  package {a['package_version']}  commit {a['git_commit']}")
    lines.append(f"  seed      {c['seed']}  epochs {c['epochs']}  batch {c['batch_size']}")
    lines.append("  layers")
    totals = r.pulses(per="step")
    snaps = [r.snapshot_steps(i) for i in range(r.n_layers)]
    for info, sets, resets, steps in zip(r.layers(), totals["set"].sum(0), totals["reset"].sum(0), snaps,
                                         strict=True):
        if "rows" not in info:  # a logic-gate layer: no array, no pulses
            lines.append(f"    {info['index']}: {info['describe']:<36} snapshots {len(steps)}")
            continue
        lines.append(f"    {info['index']}: {info['describe']:<36} {info['rows']}x{info['cols']}  "
                     f"SET {int(sets):,}  RESET {int(resets):,}  snapshots {len(steps)}")
    e = r.epochs()
    if len(e["epoch"]):
        lines.append("  epoch  test acc  train acc (running)  loss     wall s")
        for k in range(len(e["epoch"])):
            lines.append(f"  {e['epoch'][k]:>5}  {e['test_accuracy'][k]:.4f}    "
                         f"{e['train_running_accuracy'][k]:.4f}               {e['train_loss'][k]:<8.4f} "
                         f"{e['wall_s'][k]:.1f}")
    events = r.events()
    lines.append(f"  events    {len(events)} (last {min(n_events, len(events))})")
    for ev in events[-n_events:] if n_events else []:
        when = datetime.fromtimestamp(ev["time"], timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"    {when}  batch {ev['step']:>7}  {ev['kind']:<15} {ev['message']}")
    files = ", ".join(f"{name} {size / 1e6:.2f} MB" for name, size in r.files.items())
    lines.append(f"  files     {files}")
    return "\n".join(lines)
