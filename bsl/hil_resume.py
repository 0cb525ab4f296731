"""Resuming on instruments: the arrays must still hold what the run last recorded.

A checkpoint restores the learning state, not a physical array. Before an instrument run
(``device = "visa"``) continues, every crossbar layer is read back and compared with the
layer's last conductance snapshot in ``traces.h5`` (the last one at or before the
checkpoint), allowing for the pulses the operation journal recorded for each device
since that snapshot, or since the last re-programming to it (rule and sample:
:mod:`devices.hil.resume_check`). The outcome is a ``resume_verify`` event of the trace.

Beyond tolerance the resume is refused (:class:`ResumeVerifyError`, one line) unless
``reprogram`` is set: then every layer is programmed back to its snapshot by
program-and-verify (journaled, a ``reprogram`` event each) and checked again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from devices import ArrayCheck, CheckRule, Crossbar, check_array, reprogram_array

from .rundir import TRACE_FILE, RunDirError
from .runs import Run

log = logging.getLogger(__name__)
RULE = CheckRule()
CHUNK_ROWS = 1 << 20
"""Journal rows read at a time."""


class ResumeVerifyError(RunDirError):
    """The arrays are not in the state the run left them in (the resume was refused)."""


@dataclass
class _Reference:
    """One layer's reference: snapshot conductances (S), its batch, SET and RESET pulses
    journaled per device since."""

    layer: int
    step: int
    g: torch.Tensor
    sets: torch.Tensor
    resets: torch.Tensor


def _crossbars(stores: list[Any]) -> dict[int, Crossbar]:
    return {i: s.crossbar for i, s in enumerate(stores) if isinstance(getattr(s, "crossbar", None), Crossbar)}


def _references(run_dir: Path, layers: dict[int, Crossbar], checkpoint_step: int) -> list[_Reference]:
    """Read each layer's reference from the trace (before it is reopened for writing)."""
    out = []
    with Run(run_dir) as run:
        steps = run.steps()
        row_time = dict(zip(steps["step"].tolist(), steps["time"].tolist(), strict=True))
        reprogrammed = [e["time"] for e in run.events() if e["kind"] == "reprogram"]
        ops = run.file["operations"]
        times = ops.fields("time")[:]
        for i, xbar in layers.items():
            snap_steps = run.snapshot_steps(i)
            index = int(np.searchsorted(snap_steps, checkpoint_step, side="right")) - 1
            if index < 0:
                raise ResumeVerifyError(
                    f"{run_dir / TRACE_FILE} holds no conductance snapshot of layer {i} at or before the "
                    f"checkpoint (batch {checkpoint_step}): the array cannot be verified; start a new run")
            step = int(snap_steps[index])
            snap = run.snapshot(i, index)
            g = torch.from_numpy(np.stack([snap["g_plus"], snap["g_minus"]]).astype(np.float64))
            since = max([row_time.get(step, -np.inf) if step > 0 else -np.inf, *reprogrammed])
            sets, resets = (np.zeros((2, xbar.rows, xbar.cols), dtype=np.int64) for _ in range(2))
            later = np.flatnonzero(times > since)
            for lo in range(int(later[0]) if len(later) else len(times), len(times), CHUNK_ROWS):
                rows = ops[lo:lo + CHUNK_ROWS]
                rows = rows[(rows["op"] == b"pulse") & (rows["layer"] == i) & (rows["time"] > since)
                            & (rows["device"] >= 0) & (rows["row"] >= 0) & (rows["col"] >= 0)]
                for counts, kind in ((sets, rows["voltage"] > 0), (resets, rows["voltage"] < 0)):
                    part = rows[kind]  # a SET drives the word line positive, a RESET negative
                    np.add.at(counts, (part["device"].astype(np.int64), part["row"], part["col"]),
                              part["count"])
            out.append(_Reference(i, step, g, torch.from_numpy(sets), torch.from_numpy(resets)))
    return out


def _record_operations(session: Any) -> None:
    """Journal rows of the verification reads / re-programming, labelled with the checkpoint's batch."""
    for store in session.stores:
        ops = store.drain_operations()
        if ops is not None and len(ops) and session.writer is not None:
            ops["step"] = session.loop.step
            session.writer.operations(ops)


def _event(session: Any, kind: str, message: str) -> None:
    if session.writer is not None:
        _record_operations(session)
        session.writer.event(kind, message, step=session.loop.step)
        session.writer.flush()


def _summary(refs: list[_Reference], checks: dict[int, ArrayCheck]) -> str:
    return "; ".join(f"layer {r.layer}: {checks[r.layer].describe()} vs the snapshot at batch {r.step}"
                     for r in refs)


def _refusal(run_dir: Path, refs: list[_Reference], checks: dict[int, ArrayCheck], after: str = "") -> str:
    bad = [r for r in refs if not checks[r.layer].passed]
    what = "; ".join(f"layer {r.layer}: {checks[r.layer].beyond} of {checks[r.layer].checked} devices differ "
                     f"from the snapshot at batch {r.step} beyond tolerance (median "
                     f"{1e6 * checks[r.layer].median_beyond_s:.3g} uS)" for r in bad)
    how = "" if after else f"re-program it from the snapshot: bsl train --resume {run_dir} --reprogram, or "
    how += "start a new run"
    return f"resume refused: {what}{after}: the array is not in the state this run left it in; {how}"


def reopen_verified(session: Any, run_dir: str | Path, *, reprogram: bool = False) -> None:
    """Reopen ``session``'s trace; on instruments, verify its crossbars against their last
    snapshots first (see the module doc), re-programming them if ``reprogram``. On refusal or
    failure the instruments are released and the trace closed."""
    run_dir, reprogram_arrays = Path(run_dir), reprogram
    if session.config.device != "visa":
        if reprogram:
            raise RunDirError("--reprogram is for runs on instruments (device = 'visa'): a simulated run "
                              "resumes its exact device state from the checkpoint")
        session.reopen_trace()  # the checkpoint holds the exact device state: nothing to verify
        return
    layers = _crossbars(session.stores)
    if not layers:
        session.reopen_trace()
        return
    if not session.config.trace or not (run_dir / TRACE_FILE).is_file():
        if session.loop.step > 0:
            log.warning("resume: %s keeps no trace, so there is no snapshot to verify the arrays against; "
                        "continuing with the arrays as they are", run_dir)
        session.reopen_trace()
        return
    refs = _references(run_dir, layers, session.loop.step)
    session.reopen_trace()
    try:
        checks = {r.layer: check_array(layers[r.layer], r.g, r.sets, r.resets, RULE, seed=r.layer)
                  for r in refs}
        ok = all(c.passed for c in checks.values())
        _event(session, "resume_verify",
               f"{'passed' if ok else 'failed'} ({RULE.text()}): {_summary(refs, checks)}")
        if ok:
            return
        if not reprogram_arrays:
            raise ResumeVerifyError(_refusal(run_dir, refs, checks))
        for r in refs:  # every layer: one failing array means the bench lost its state
            result = reprogram_array(layers[r.layer], r.g, RULE)
            _event(session, "reprogram", f"layer {r.layer}: programmed to the snapshot at batch {r.step} by "
                   f"program-and-verify: {result.iterations} iterations, {int(result.pulses.sum())} pulses, "
                   f"{result.n_failed} devices outside its tolerance")
            none = torch.zeros_like(r.sets)
            checks[r.layer] = check_array(layers[r.layer], r.g, none, none, RULE, seed=r.layer)
        ok = all(c.passed for c in checks.values())
        _event(session, "resume_verify", f"{'passed' if ok else 'failed'} after re-programming: "
               f"{_summary(refs, checks)}")
        if not ok:
            raise ResumeVerifyError(_refusal(run_dir, refs, checks, " even after re-programming"))
    except BaseException as exc:
        if isinstance(exc, ResumeVerifyError):
            _event(session, "resume_refused", str(exc))  # this continuation did not happen
        else:
            exc.bsl_hint = session._failure_hint()  # type: ignore[attr-defined]
            _event(session, "error", f"{type(exc).__name__}: {exc}")
        for store in session.stores:
            store.close()
        if session.writer is not None:
            session.writer.close()
        raise
