"""Kill soak: ``bsl train`` and ``bsl sweep`` processes SIGKILLed at random moments
(a seeded schedule), then resumed or rerun until they finish.

* Training: tiny runs (digits, ``--layers 16``, few epochs, ``--train-limit``) with
  ``--checkpoint-every 1``, so that checkpoints are written after every batch and many
  kills land inside :func:`bsl.checkpoint.save_checkpoint` (counted by the temporary file
  ``checkpoint.pt.tmp`` such a kill leaves behind). After every kill the run folder's
  files must open (``checkpoint.pt`` loads, ``traces.h5`` holds every batch up to the
  checkpoint's, ``summary.json`` parses); the run continues with ``bsl train --resume``;
  once finished it must equal an uninterrupted run of the same config (summary
  accuracies, pulse totals and counters, the steps table, every snapshot).
* Sweeps: the whole ``bsl sweep`` process (scheduler, nannies; its worker processes are
  children) is killed; ``results.nc`` must stay readable, every point folder's files must
  open, and a rerun must complete the remaining points, each equal to the same point run
  alone.

Full soak (20 kills, a few minutes)::

    python tests/soak/soak_kill.py          # -> bench/results/soak_kill.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for _p in (HERE, HERE.parent):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from run_checks import SUMMARY_KEYS, assert_same_run, check_trace  # noqa: E402

RESULTS = HERE.parent.parent / "bench" / "results"
TINY = ["--dataset", "digits", "--layers", "16", "--test-limit", "60", "--eval-samples", "2",
        "--progress", "false"]
TRAIN_CONFIGS: dict[str, list[str]] = {  # every one checkpoints after every batch
    "bsl-batch4": [*TINY, "--epochs", "2", "--train-limit", "400", "--batch-size", "4",
                   "--checkpoint-every", "1", "--snapshot-every", "9", "--seed", "1"],
    "manhattan-batch1": [*TINY, "--rule", "manhattan", "--epochs", "2", "--train-limit", "150",
                         "--batch-size", "1", "--checkpoint-every", "1", "--snapshot-every", "25",
                         "--seed", "2"],
    "bsl-carry": [*TINY, "--epochs", "3", "--train-limit", "320", "--batch-size", "8",
                  "--checkpoint-every", "1", "--carry-period", "5", "--carry-significance", "4",
                  "--seed", "3"],
}
SWEEP = """
[base]
dataset = "digits"
train_limit = 600
test_limit = 40
layers = "16"
epochs = 3
eval_samples = 2
checkpoint_every = 2
progress = false

[grid]
rule = ["bsl", "manhattan"]
seed = [0, 1, 2, 3, 4]
"""
CHECKPOINT_TMP = "checkpoint.pt.tmp"
SWEEP_START_S = 6.0
"""About how long ``bsl sweep`` takes to start its LocalCluster here, s (kill schedule only)."""


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def bsl(args: list[str], cwd: Path, **kw: Any) -> subprocess.Popen[str]:
    """``python -m bsl ARGS`` in its own process group, output captured."""
    return subprocess.Popen([sys.executable, "-m", "bsl", *args], cwd=cwd, env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, **kw)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


@dataclass
class Kill:
    target: str
    session: int
    schedule: str
    delay_s: float
    landed: str = ""
    files_ok: bool = True
    problem: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _wait_progress(proc: subprocess.Popen[str], path: Path, before: tuple[int, int] | None,
                   timeout_s: float = 120.0) -> bool:
    """Wait until ``path`` changes (a new checkpoint: the process is training) or the
    process ends; True if it changed while the process runs."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        now = _stamp(path)
        if now is not None and now != before:
            return True
        time.sleep(0.01)
    return False


def check_run_folder(run: Path) -> dict[str, Any]:
    """Every file a killed run left opens; returns what was found (AssertionError if not)."""
    from bsl.checkpoint import load_checkpoint

    found: dict[str, Any] = {}
    step = 0
    if (run / "checkpoint.pt").exists():
        state = load_checkpoint(run / "checkpoint.pt")
        step = int(state["loop"]["step"])
        found["checkpoint_step"] = step
    if (run / "traces.h5").exists():
        assert (run / "checkpoint.pt").exists(), "a trace file without a checkpoint"
        found["trace_steps"] = check_trace(run / "traces.h5", step)
    if (run / "summary.json").exists():
        found["summary"] = bool(json.loads((run / "summary.json").read_text()))
    return found


def train_soak(work: Path, name: str, flags: list[str], kills: int, rng: random.Random,
               log: Any = print) -> dict[str, Any]:
    """One config: an uninterrupted reference, then a run killed ``kills`` times and resumed."""
    ref, run = work / f"{name}-whole", work / f"{name}-killed"
    t0 = time.perf_counter()
    done = bsl(["train", *flags, "--out", str(ref)], work)
    while not (ref / "checkpoint.pt").exists() and done.poll() is None:
        time.sleep(0.01)
    startup_s = time.perf_counter() - t0
    out, err = done.communicate(timeout=900)
    assert done.returncode == 0, err[-2000:]
    reference_s = time.perf_counter() - t0
    train_s = float(json.loads((ref / "summary.json").read_text())["wall_s"])
    records: list[Kill] = []
    sessions = resumes = 0
    finished, failure = False, ""
    while not finished:
        resume = (run / "checkpoint.pt").exists()
        args = ["train", "--resume", str(run), "--progress", "false"] if resume else \
            ["train", *flags, "--out", str(run)]
        tmp_before = _stamp(run / CHECKPOINT_TMP)
        ckpt_before = _stamp(run / "checkpoint.pt")
        sessions += 1
        resumes += resume
        proc = bsl(args, work)
        killed = None
        if len(records) < kills:
            # spread so that every kill lands before the run ends: each session trains
            # for about train_s / (kills + 1) on average
            spread = 2 * train_s / (kills + 1)
            if rng.random() < 0.15:  # any moment from launch: imports, data, building, training
                schedule, delay = "from launch", rng.uniform(0.0, startup_s + spread)
                time.sleep(delay)
            else:  # once it trains: its checkpoint changed
                schedule, delay = "while training", rng.uniform(0.0, spread)
                if _wait_progress(proc, run / "checkpoint.pt", ckpt_before):
                    time.sleep(delay)
            if proc.poll() is None:
                ckpt_at_kill = _stamp(run / "checkpoint.pt")
                os.kill(proc.pid, signal.SIGKILL)
                killed = Kill("train " + name, sessions, schedule, round(delay, 3))
                proc.communicate(timeout=60)
                tmp_after = _stamp(run / CHECKPOINT_TMP)
                if tmp_after is not None and tmp_after != tmp_before:
                    killed.landed = "inside a checkpoint write"
                elif ckpt_at_kill == ckpt_before:
                    killed.landed = "before any new checkpoint (start-up or first batch)"
                else:
                    killed.landed = "between checkpoints (batch, trace record, evaluation)"
        if killed is None:
            out, err = proc.communicate(timeout=900)
            if proc.returncode == 0:
                finished = True
            elif "already finished" in err:  # killed after its summary, before exiting
                finished = True
            else:  # recorded, not raised: the report says what failed
                failure = f"session {sessions} failed (exit {proc.returncode}): {err[-1500:]}"
                break
            continue
        try:
            killed.extra = check_run_folder(run)
        except Exception as exc:  # noqa: BLE001 - recorded: the soak reports every failure
            killed.files_ok, killed.problem = False, f"{type(exc).__name__}: {exc}"
        records.append(killed)
        log(f"  kill {len(records)}/{kills} ({name}, {killed.schedule} +{killed.delay_s:.2f} s): "
            f"{killed.landed}; files {'ok' if killed.files_ok else 'BROKEN: ' + killed.problem} "
            f"{killed.extra}")
        if not killed.files_ok:
            break
    identical, problem = False, failure
    if finished:
        try:
            assert_same_run(ref, run)
            identical = True
        except AssertionError as exc:
            problem = f"differs from the uninterrupted run: {exc}"
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
    return {"config": name, "flags": flags, "kills": [vars(k) for k in records], "sessions": sessions,
            "resume_sessions": resumes, "finished": finished, "identical_to_uninterrupted": identical,
            "problem": problem, "summary_resumes": summary.get("resumes"), "steps": summary.get("steps"),
            "test_accuracy": summary.get("test_accuracy"), "reference_s": round(reference_s, 1),
            "reference_train_s": round(train_s, 1), "startup_s": round(startup_s, 1)}


def _descendants(pid: int) -> list[int]:
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _survivors(pids: list[int], wait_s: float) -> list[int]:
    import psutil

    deadline = time.monotonic() + wait_s
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive
                 if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.1)
    return alive


def _point_trained_since(study: Path, t: float) -> bool:
    """Whether a point of ``study`` wrote a checkpoint after time ``t`` (s since the epoch)."""
    for ckpt in study.glob("points/*/checkpoint.pt"):
        try:
            if ckpt.stat().st_mtime > t:
                return True
        except FileNotFoundError:
            pass
    return False


def check_study(study: Path) -> dict[str, Any]:
    """After a kill: results.nc (if written) opens and is consistent; every point's files open."""
    import xarray as xr

    found: dict[str, Any] = {"results_tmp_left": (study / "results.nc.tmp").exists()}
    if (study / "results.nc").exists():
        with xr.open_dataset(study / "results.nc", engine="h5netcdf") as ds:
            acc = ds["test_accuracy"].values
            finished = int(ds.attrs["finished_points"])
            assert int((~__import__("numpy").isnan(acc)).sum()) == finished
            found["results_finished_points"] = finished
    points = {}
    for folder in sorted((study / "points").glob("*")) if (study / "points").exists() else []:
        points[folder.name] = check_run_folder(folder)
    found["point_folders"] = len(points)
    found["points_finished"] = sum("summary" in p for p in points.values())
    return found


def sweep_soak(work: Path, kills: int, rng: random.Random, *, workers: int = 2, spec_text: str = SWEEP,
               log: Any = print) -> dict[str, Any]:
    """A sweep killed ``kills`` times (the whole ``bsl sweep`` process) and rerun to the end."""
    import numpy as np
    import xarray as xr

    from sims.spec import load_sweep
    from sims.sweep import run_point

    spec_path = work / "sweep.toml"
    spec_path.write_text(spec_text)
    spec = load_sweep(spec_path)
    points = spec.expand()
    t0 = time.perf_counter()
    reference, point_s = {}, {}
    for p in points:  # each point alone, in this process: what the sweep must reproduce
        start = time.perf_counter()
        reference[p.name] = run_point(p, str(work / "sweep-alone" / p.name))
        point_s[p.name] = time.perf_counter() - start
    reference_s = time.perf_counter() - t0
    study = work / "study"
    args = ["sweep", str(spec_path), "--out", str(study), "--workers", str(workers), "--progress", "false"]
    records: list[Kill] = []
    sessions = 0
    orphans_total = 0
    early = ""
    while len(records) < kills:
        sessions += 1
        tmp_before = _stamp(study / "results.nc.tmp")
        launched = time.time()
        proc = bsl(args, work)
        # a killed point starts afresh in the rerun, and a fresh worker needs ~1 s more for its
        # first point: kill within that and two point durations of the session's first
        # checkpoint, so that about one point per worker finishes per session
        spread = 1.0 + 2 * sum(point_s.values()) / len(point_s)
        tree: list[int] = []
        if rng.random() < 0.15:  # any moment from launch: imports, cluster start, points
            schedule, delay = "from launch", rng.uniform(0.0, SWEEP_START_S + spread)
        else:
            schedule, delay = "while points train", rng.uniform(0.0, spread)
            while proc.poll() is None and not _point_trained_since(study, launched):
                tree = _descendants(proc.pid) or tree
                time.sleep(0.02)
        end = time.monotonic() + delay
        while time.monotonic() < end and proc.poll() is None:
            tree = _descendants(proc.pid) or tree
            time.sleep(0.02)
        if proc.poll() is not None:  # finished before the kill: the schedule ran past the sweep
            out, err = proc.communicate()
            early = "" if proc.returncode == 0 else f"session {sessions} failed: {err[-1500:]}"
            log(f"  sweep session {sessions} ended before its kill (+{delay:.1f} s) {early}")
            break
        tree = _descendants(proc.pid) or tree
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        orphans = _survivors(tree, wait_s=10.0)
        for pid in orphans:  # children of the killed sweep that outlived it (reported)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        orphans_total += len(orphans)
        k = Kill("sweep", sessions, schedule, round(delay, 3))
        tmp_after = _stamp(study / "results.nc.tmp")
        if tmp_after is not None and tmp_after != tmp_before:
            k.landed = "inside a results.nc write"
        elif not _point_trained_since(study, launched):
            k.landed = "before any point trained (start-up, cluster)"
        else:
            k.landed = "while points trained"
        try:
            k.extra = {**check_study(study), "processes": len(tree), "outlived_the_kill": len(orphans)}
        except Exception as exc:  # noqa: BLE001
            k.files_ok, k.problem = False, f"{type(exc).__name__}: {exc}"
        records.append(k)
        log(f"  kill {len(records)}/{kills} (sweep +{delay:.1f} s): {k.landed}; "
            f"files {'ok' if k.files_ok else 'BROKEN: ' + k.problem} {k.extra}")
        if not k.files_ok:
            break
    finished_before_rerun = check_study(study)["points_finished"] if study.exists() else 0
    sessions += 1
    proc = bsl(args, work)
    out, err = proc.communicate(timeout=1800)
    rerun_ok = proc.returncode == 0
    problem = early or ("" if rerun_ok else f"rerun failed (exit {proc.returncode}): {err[-2000:]}")
    identical = 0
    if rerun_ok:
        with xr.open_dataset(study / "results.nc", engine="h5netcdf") as ds:
            assert int(ds.attrs["finished_points"]) == len(points), "results.nc misses points"
            for p in points:
                s = json.loads((study / "points" / p.name / "summary.json").read_text())
                ref = reference[p.name]
                try:
                    for key in SUMMARY_KEYS:
                        assert s[key] == ref[key], f"{p.name}: {key}"
                    assert_same_run(work / "sweep-alone" / p.name, study / "points" / p.name)
                    at = ds["test_accuracy"].sel(rule=p.values["rule"], seed=float(p.values["seed"])).item()
                    assert at == ref["test_accuracy"] and np.isfinite(at), f"{p.name}: results.nc"
                    identical += 1
                except AssertionError as exc:
                    problem = problem or str(exc)
    return {"points": len(points), "workers": workers, "kills": [vars(k) for k in records],
            "sessions": sessions,
            "points_finished_before_final_rerun": finished_before_rerun, "final_rerun_ok": rerun_ok,
            "points_identical_to_alone": identical, "processes_outliving_a_kill": orphans_total,
            "problem": problem, "reference_s": round(reference_s, 1)}


def run_kill_soak(work: Path, train_kills: dict[str, int], sweep_kills: int, seed: int = 20261122,
                  *, sweep_spec: str = SWEEP, sweep_workers: int = 2, log: Any = print) -> dict[str, Any]:
    """The whole soak; ``train_kills``: kills per config name of :data:`TRAIN_CONFIGS`."""
    rng = random.Random(seed)
    t0 = time.perf_counter()
    train = []
    for name, n in train_kills.items():
        log(f"train {name}: {n} kill(s)")
        train.append(train_soak(work, name, TRAIN_CONFIGS[name], n, rng, log))
    sweep = None
    if sweep_kills:
        log(f"sweep: {sweep_kills} kill(s)")
        sweep = sweep_soak(work, sweep_kills, rng, workers=sweep_workers, spec_text=sweep_spec, log=log)
    kills = [k for t in train for k in t["kills"]] + (sweep["kills"] if sweep else [])
    problems = [f"{k['target']} kill {i}: {k['problem']}" for i, k in enumerate(kills) if not k["files_ok"]]
    problems += [f"train {t['config']}: {t['problem'] or 'not finished'}" for t in train
                 if not t["identical_to_uninterrupted"]]
    if sweep and (sweep["problem"] or sweep["points_identical_to_alone"] != sweep["points"]):
        problems.append(f"sweep: {sweep['problem'] or 'points differ'}")
    return {
        "kills": len(kills),
        "train_kills": sum(len(t["kills"]) for t in train),
        "sweep_kills": len(sweep["kills"]) if sweep else 0,
        "kills_inside_checkpoint_write": sum(k["landed"] == "inside a checkpoint write" for k in kills),
        "kills_inside_results_write": sum(k["landed"] == "inside a results.nc write" for k in kills),
        "kills_leaving_unreadable_files": sum(not k["files_ok"] for k in kills),
        "resumed_runs_identical": f"{sum(t['identical_to_uninterrupted'] for t in train)}/{len(train)}",
        "sweep_points_identical": (f"{sweep['points_identical_to_alone']}/{sweep['points']}"
                                   if sweep else None),
        "problems": problems, "seed": seed, "seconds": round(time.perf_counter() - t0, 1),
        "train": train, "sweep": sweep,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-kills", type=int, default=15, help="spread over the three configs")
    parser.add_argument("--sweep-kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--workers", type=int, default=2, help="sweep workers")
    parser.add_argument("--work", type=Path, default=None,
                        help="keep the run folders here (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=RESULTS / "soak_kill.json")
    args = parser.parse_args(argv)
    names = list(TRAIN_CONFIGS)
    per = {n: args.train_kills // len(names) + (i < args.train_kills % len(names))
           for i, n in enumerate(names)}
    with tempfile.TemporaryDirectory(prefix="soak-kill-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        result = run_kill_soak(work, per, args.sweep_kills, args.seed, sweep_workers=args.workers)
    sys.path.insert(0, str(HERE.parent.parent / "bench"))
    from report import write_report

    write_report(args.out, result)
    print(f"{result['kills']} kills ({result['kills_inside_checkpoint_write']} inside a checkpoint write), "
          f"{result['kills_leaving_unreadable_files']} left unreadable files; resumed runs identical "
          f"{result['resumed_runs_identical']}, sweep points {result['sweep_points_identical']}; "
          f"{len(result['problems'])} problem(s); report in {args.out}")
    return 0 if not result["problems"] else 1


if __name__ == "__main__":
    sys.exit(main())
