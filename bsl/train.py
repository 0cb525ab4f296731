"""The training loop: data, network, rule, progress, evaluation, run files and resume.

The loop knows rules only by ``train_step`` and devices only through
:class:`bsl.stores.WeightStore`; it never changes when a rule is added.

A run folder holds ``config.toml``, ``traces.h5`` (see :mod:`bsl.traces`), the latest
``checkpoint.pt`` (at the start, after every epoch, every ``checkpoint_every`` batches
and every ``checkpoint_every_s`` seconds) and, once finished, ``summary.json``.
:func:`resume` continues an interrupted run from its checkpoint and, on the simulator,
ends with exactly the numbers of an uninterrupted run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from . import __version__
from .backend import build_model
from .budget import check_run
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig, save_config
from .data import Dataset, load_dataset
from .evaluation import evaluate, final_test_modes
from .hil_resume import reopen_verified
from .layers import Layer
from .network import Network
from .report import epoch_line
from .rules import LearningRule, StepStats, get_rule
from .rundir import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    SUMMARY_FILE,
    TRACE_FILE,
    RunDirError,
    git_commit,
    package_versions,
    prepare_run_dir,
    write_text_atomic,
)
from .runs import count_resumes
from .seeds import Seeds
from .summary import build_summary, summary_json
from .traces import TraceWriter

__all__ = ["RunDirError", "StepCallback", "TrainResult", "evaluate", "prepare_run_dir", "resume", "train"]

StepCallback = Callable[[int, int, StepStats], None]
"""Called after every batch is recorded, as ``on_step(step, epoch, stats)`` (``step``
counts batches from 1, ``epoch`` from 0)."""


@dataclass
class TrainResult:
    """What :func:`train` returns: the summary (as written) and the trained network."""

    summary: dict[str, Any]
    network: Network
    run_dir: Path


@dataclass
class LoopState:
    """Where the loop stands; saved in every checkpoint."""

    epoch: int = 0
    """Epoch in progress (0-based); ``epochs`` once training is done."""
    position: int = 0
    """Samples of that epoch already trained."""
    step: int = 0
    """Batches trained since the start."""
    correct: int = 0
    loss_sum: float = 0.0
    seen: int = 0
    epoch_wall: float = 0.0
    train_wall: float = 0.0
    wall_s: float = 0.0
    """Elapsed time of the work kept (up to the latest checkpoint), s."""
    resumes: int = 0
    epochs: list[dict[str, Any]] = field(default_factory=list)
    perm: Tensor | None = None
    """This epoch's sample order."""
    eval_reads: dict[str, list[int]] = field(default_factory=dict)
    """Per inference mode, the forward reads of each layer's store spent on evaluations."""


def pulse_counts(net: Network) -> list[dict[str, int]]:
    """Per layer: the device operation counters (empty for float layers)."""
    return [store.counters() for store in net.stores()]


def train(config: TrainConfig, *, dataset: Dataset | None = None,
          on_step: StepCallback | None = None) -> TrainResult:
    """Run one training as configured, recording it in a new run folder."""
    session = _Session(config, dataset)
    session.run_dir = prepare_run_dir(config.out, f"{config.rule}-{config.dataset}")
    save_config(config, session.run_dir / CONFIG_FILE)
    session.checkpoint()  # first, so that a trace file always has a checkpoint beside it
    session.start_trace()
    return session.run(on_step)


def resume(run_dir: str | Path, *, dataset: Dataset | None = None, on_step: StepCallback | None = None,
           progress: bool | None = None, reprogram: bool = False) -> TrainResult:
    """Continue the run in ``run_dir`` from its latest checkpoint (same config, data
    order, device state and random streams). ``dataset`` must be given again if the
    run was started with one. Instrument arrays are verified first (:mod:`bsl.hil_resume`)."""
    run_dir = Path(run_dir)
    if not (run_dir / CHECKPOINT_FILE).exists():
        raise RunDirError(f"nothing to resume in {run_dir}: no {CHECKPOINT_FILE} there")
    state = load_checkpoint(run_dir / CHECKPOINT_FILE)
    config = TrainConfig(**state["config"])
    if progress is not None:
        config = config.replace(progress=progress)
    if (run_dir / SUMMARY_FILE).exists() and state["loop"]["epoch"] >= config.epochs:
        raise RunDirError(f"the run in {run_dir} has already finished ({SUMMARY_FILE} is there)")
    session = _Session(config, dataset)
    session.run_dir = run_dir
    session.load_state(state)
    reopen_verified(session, run_dir, reprogram=reprogram)  # the trace; on instruments, the arrays too
    return session.run(on_step)


class _Session:
    """One training run in one process: built fresh or from a checkpoint."""

    def __init__(self, config: TrainConfig, dataset: Dataset | None) -> None:
        self.config = config
        self.data = (dataset or load_dataset(
            config.dataset, data_dir=config.data_dir or None, seed=config.seed,
            train_limit=config.train_limit, test_limit=config.test_limit,
        )).to(config.torch_device)
        check_run(config, self.data)  # refuses, in one line, what cannot fit memory or disk
        self.rule: LearningRule = get_rule(config.rule)(config)
        self.net = self.rule.build_model(self.data.input_shape, self.data.n_classes) or build_model(
            config, self.rule.uses_devices, self.data.input_shape, self.data.n_classes)
        self.stores = self.net.stores()
        self.seeds = Seeds(config.seed)
        self.gen = torch.Generator(device=config.torch_device).manual_seed(self.seeds.training)
        self.order = torch.Generator().manual_seed(self.seeds.data_order)
        self.loop = LoopState()
        self.run_dir = Path(".")
        self.writer: TraceWriter | None = None
        self._mark = time.perf_counter()

    def _tick(self) -> None:
        """Add the time since the last tick to the run's elapsed time."""
        now = time.perf_counter()
        self.loop.wall_s += now - self._mark
        self._mark = now

    # -- run files ----------------------------------------------------------------
    def start_trace(self) -> None:
        c = self.config
        if not c.trace:
            return
        snaps = [store.snapshot() for store in self.stores]
        self.writer = TraceWriter.create(
            self.run_dir / TRACE_FILE,
            attrs={
                "package_version": __version__, "git_commit": git_commit(), "config": self.config.to_dict(),
                "seed": self.config.seed, "rule": self.config.rule,
                "seeds": self.seeds.record(len(self.stores), bool(c.carry_period), c.epochs),
                "dataset": self._dataset_info(), "versions": package_versions(),
                "device": [store.description() for store in self.stores],
            },
            layers=[{**self._layer_facts(layer), "store": layer.store.description()}
                    for layer in self.net.layers],
            snapshot_fields=[list(s) for s in snaps],
            shapes=[(store.rows, store.cols) for store in self.stores],
            total_steps=self.config.epochs * -(-len(self.data.y_train) // self.config.batch_size),
        )
        for i, snap in enumerate(snaps):
            self.writer.snapshot(i, 0, 0, snap)
        self.writer.set_pulse_baseline(self._pulse_totals())
        self.writer.event("start", "new run: " + "; ".join(layer.describe() for layer in self.net.layers))
        self.writer.flush()

    def reopen_trace(self) -> None:
        if not self.config.trace:
            return
        if not (self.run_dir / TRACE_FILE).exists():
            if self.loop.step == 0:  # stopped between the first checkpoint and the trace's creation
                self.start_trace()
                return
            raise RunDirError(f"{self.run_dir / TRACE_FILE} is missing: the run cannot continue its record")
        self.writer = TraceWriter.reopen(self.run_dir / TRACE_FILE, steps=self.loop.step,
                                         epochs=len(self.loop.epochs))
        self.writer.set_pulse_baseline(self._pulse_totals())

    def checkpoint(self) -> None:
        self._tick()
        loop = asdict(self.loop)
        save_checkpoint(self.run_dir / CHECKPOINT_FILE, {
            "config": self.config.to_dict(), "loop": loop,
            "rng": {"gen": self.gen.get_state(), "order": self.order.get_state()},
            "stores": [store.state_dict() for store in self.stores],
            "rule": self.rule.state_dict(),
        })

    def load_state(self, state: dict[str, Any]) -> None:
        if len(state["stores"]) != len(self.stores):
            raise RunDirError("checkpoint does not match the network built from its config")
        for store, saved in zip(self.stores, state["stores"], strict=True):
            store.load_state_dict(saved)
        self.rule.load_state_dict(state["rule"])
        self.gen.set_state(state["rng"]["gen"])
        self.order.set_state(state["rng"]["order"])
        self.loop = LoopState(**state["loop"])
        self.loop.resumes += 1
        self._mark = time.perf_counter()

    # -- the loop -----------------------------------------------------------------
    def run(self, on_step: StepCallback | None) -> TrainResult:
        try:
            while self.loop.epoch < self.config.epochs:
                self._train_epoch(on_step)
            summary = self._finish()
        except BaseException as exc:
            exc.bsl_hint = self._failure_hint()  # type: ignore[attr-defined]  # for the one-line report
            if self.writer is not None:
                self._record_device_activity()  # what was measured before the failure
                kind = "interrupted" if isinstance(exc, KeyboardInterrupt) else "error"
                self.writer.event(kind, f"{type(exc).__name__}: {exc}", step=self.loop.step)
                self.writer.flush()
            raise
        finally:
            for store in self.stores:
                store.close()
            if self.writer is not None:
                self.writer.close()
        return TrainResult(summary, self.net, self.run_dir)

    def _train_epoch(self, on_step: StepCallback | None) -> None:
        c, loop, data = self.config, self.loop, self.data
        n = len(data.y_train)
        epoch = loop.epoch
        if loop.position == 0 or loop.perm is None:
            loop.perm = torch.randperm(n, generator=self.order)
            self.rule.start_epoch(epoch)
        eye = torch.eye(data.n_classes, device=data.x_train.device)
        t0 = time.perf_counter()
        with tqdm(total=n, initial=loop.position, desc=f"epoch {epoch + 1}/{c.epochs}", unit="sample",
                  disable=not c.progress, leave=True, dynamic_ncols=True) as bar:
            for start in range(loop.position, n, c.batch_size):
                idx = loop.perm[start:start + c.batch_size]
                stats = self.rule.train_step(self.net, data.x_train[idx], eye[data.y_train[idx]], self.gen)
                loop.step += 1
                loop.position = start + len(idx)
                loop.correct += stats.correct
                loop.loss_sum += stats.loss * len(idx)
                loop.seen += len(idx)
                self._record_step(epoch, len(idx), stats)
                due = (c.checkpoint_every and loop.step % c.checkpoint_every == 0) or \
                    0 < c.checkpoint_every_s <= time.perf_counter() - self._mark  # _mark: the last checkpoint
                if due and loop.position < n:
                    loop.epoch_wall += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    self.checkpoint()
                if on_step is not None:
                    on_step(loop.step, epoch, stats)
                bar.update(len(idx))
                if bar.n == n or loop.step % 50 == 0:
                    bar.set_postfix(acc=f"{loop.correct / loop.seen:.3f}", pulses=self._total_pulses(),
                                    refresh=False)
        loop.epoch_wall += time.perf_counter() - t0
        self._end_epoch(epoch)

    def _record_step(self, epoch: int, samples: int, stats: StepStats) -> None:
        if self.writer is None:
            return
        step = self.loop.step
        self.writer.step(step, epoch, samples, stats.correct, stats.loss, self._pulse_totals())
        self._record_device_activity()
        if self.config.snapshot_every and step % self.config.snapshot_every == 0:
            self._snapshot(epoch)
        self.writer.flush()

    def _record_device_activity(self) -> None:
        """Store events and instrument operations since the last call, labelled with the
        batch count at which they were collected."""
        if self.writer is None:
            return
        step = self.loop.step
        for i, store in enumerate(self.stores):
            for kind, message in store.drain_events():
                self.writer.event(kind, f"layer {i}: {message}", step=step)
            ops = store.drain_operations()
            if ops is not None and len(ops):
                ops["step"] = step
                self.writer.operations(ops)

    def _snapshot(self, epoch: int) -> None:
        assert self.writer is not None
        for i, store in enumerate(self.stores):
            self.writer.snapshot(i, self.loop.step, epoch, store.snapshot())

    def _end_epoch(self, epoch: int) -> None:
        c, loop, data = self.config, self.loop, self.data
        test_acc = self._evaluate(data.x_test, data.y_test, c.inference, self.seeds.epoch_eval(epoch), "test")
        record = {
            "epoch": epoch + 1, "step": loop.step, "train_running_accuracy": loop.correct / loop.seen,
            "train_loss": loop.loss_sum / loop.seen, "test_accuracy": test_acc, "wall_s": loop.epoch_wall,
        }
        loop.epochs.append(record)
        loop.train_wall += loop.epoch_wall
        loop.epoch, loop.position, loop.perm = epoch + 1, 0, None
        loop.correct, loop.loss_sum, loop.seen, loop.epoch_wall = 0, 0.0, 0, 0.0
        if self.writer is not None:
            self._record_device_activity()  # the evaluation's reads
            self.writer.epoch(record)
            if not (c.snapshot_every and loop.step % c.snapshot_every == 0):  # not already taken
                self._snapshot(epoch)
            self.writer.flush()
        self.checkpoint()
        if c.progress:
            tqdm.write(epoch_line(record, c.to_dict()))

    def _finish(self) -> dict[str, Any]:
        c, data, net, loop = self.config, self.data, self.net, self.loop
        modes = final_test_modes(c.device, c.inference)  # on instruments, only the configured one
        final: dict[str, float | None] = {"deterministic": None, "stochastic": None}
        for mode in modes:
            final[mode] = self._evaluate(data.x_test, data.y_test, mode, self.seeds.final_test_eval, "test")
        train_acc = self._evaluate(data.x_train, data.y_train, c.inference, self.seeds.final_train_eval,
                                   "train")
        counters, facts = pulse_counts(net), self._layer_facts_with_reads()
        n = len(data.y_train)
        self._tick()
        summary = build_summary(
            c, loop, final=final, train_acc=train_acc, modes=modes, counters=counters, facts=facts,
            layers=[layer.describe() for layer in net.layers], dataset=self._dataset_info(), samples=n,
            resumes=max(loop.resumes, count_resumes(self.writer.file) if self.writer else 0),  # events
            traced=self.writer is not None)
        summary.update(self.rule.summary_extras(net, self.run_dir))
        write_text_atomic(self.run_dir / SUMMARY_FILE, summary_json(summary))
        if self.writer is not None:
            self._record_device_activity()
            for i, layer_facts in enumerate(facts):
                self.writer.layer_attrs(i, {"reads": layer_facts["reads"]})
            self.writer.event("finish", f"test accuracy {summary['test_accuracy']:.4f}", step=loop.step)
            self.writer.flush()
        return summary

    # -- helpers ------------------------------------------------------------------
    def _failure_hint(self) -> str:
        """What a user should know after this run failed."""
        hint = f"the run's record is in {self.run_dir}; continue with: bsl train --resume {self.run_dir}"
        if self.config.device == "visa":
            hint = "the instruments were put in their safe state as far as they answered; " + hint
        return hint

    def _pulse_totals(self) -> np.ndarray:
        """Cumulative ``(2, layers)`` SET and RESET counts."""
        return np.array([store.pulse_totals() for store in self.stores], dtype=np.int64).T

    def _total_pulses(self) -> int:
        return int(self._pulse_totals().sum())

    def _evaluate(self, x: Tensor, y: Tensor, mode: str, seed: int, what: str) -> float:
        """:func:`evaluate`, counting the stores' reads it spends under ``mode``."""
        before = [store.reads()[0] for store in self.stores]
        acc = evaluate(self.net, x, y, mode, self.config.eval_samples, seed, progress=self.config.progress,
                       what=what)
        tally = self.loop.eval_reads.setdefault(mode, [0] * len(self.stores))
        for i, (store, n) in enumerate(zip(self.stores, before, strict=True)):
            tally[i] += store.reads()[0] - n
        return acc

    @staticmethod
    def _layer_facts(layer: Layer) -> dict[str, Any]:
        """A layer's recorded facts: shape, kind, geometry, what holds its weights."""
        return {**layer.facts(), "store_kind": layer.store.kind, "arrays": layer.store.arrays}

    def _layer_facts_with_reads(self) -> list[dict[str, Any]]:
        """:meth:`_layer_facts` plus the reads of each layer's store so far, by phase: training
        ``forward`` and ``transposed`` reads, and ``evaluation`` forward reads per inference mode
        (input vectors; a conv layer reads once per output position)."""
        out = []
        for i, layer in enumerate(self.net.layers):
            forward, transposed = layer.store.reads()
            evaluation = {mode: reads[i] for mode, reads in sorted(self.loop.eval_reads.items())}
            out.append({**self._layer_facts(layer), "reads": {
                "forward": forward - sum(evaluation.values()), "transposed": transposed,
                "evaluation": evaluation}})
        return out

    def _dataset_info(self) -> dict[str, Any]:
        d = self.data
        return {"name": d.name, "train": len(d.y_train), "test": len(d.y_test),
                "input_shape": list(d.input_shape), "classes": d.n_classes}

