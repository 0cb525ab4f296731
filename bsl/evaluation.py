"""Accuracy of a network in an inference mode, with an optional progress bar.

Every evaluation reads the weights anew: on a crossbar each read carries the devices'
read noise (drawn from the array's own noise stream, not from ``seed``), so two
evaluations of the same unchanged network may differ by a few samples even in
``deterministic`` inference. ``seed`` only drives the binary samples of
``stochastic`` inference.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .network import INFERENCE_MODES, Network

EVAL_CHUNK = 2000
"""Samples per forward pass (fixed: the random draws of a run depend on it)."""


def final_test_modes(device: str, inference: str) -> tuple[str, ...]:
    """The inference modes of a run's final test evaluation: both on the simulator; on
    instruments only the configured one, since deterministic inference feeds analog inputs,
    which a bench reads level by level (see ``devices.hil.crossbar``)."""
    return ("deterministic", "stochastic") if device == "sim" else (inference,)


def evaluate(net: Network, x: Tensor, y: Tensor, mode: str, samples: int, seed: int, *,
             progress: bool = False, what: str = "") -> float:
    """Accuracy of ``net`` on ``(x, y)`` in an inference mode (see :mod:`bsl.network`),
    in [0, 1]. With ``progress``, a transient bar ``evaluating <what> (<mode>)`` counts
    sample passes (``samples`` per sample in ``stochastic`` mode)."""
    gen = torch.Generator(device=x.device).manual_seed(seed)
    passes = samples if mode == "stochastic" else 1
    label = f"{mode}, K={samples}" if mode == "stochastic" else mode
    desc = " ".join(filter(None, ["evaluating", what, f"({label})"]))
    correct = 0
    with tqdm(total=len(y) * passes, desc=desc, unit="sample", disable=not progress, leave=False,
              dynamic_ncols=True) as bar:
        for start in range(0, len(y), EVAL_CHUNK):
            chunk = x[start:start + EVAL_CHUNK]

            def done(n: int = len(chunk)) -> None:
                bar.update(n)

            p = net.predict(chunk, mode, samples, gen, on_pass=done)
            correct += int((p.argmax(1) == y[start:start + EVAL_CHUNK]).sum())
    return correct / max(len(y), 1)


@torch.no_grad()
def deterministic_probabilities(module: torch.nn.Module, scores: Callable[[Tensor], Tensor], x: Tensor,
                                mode: str, on_pass: Callable[[], None] | None = None) -> Tensor:
    """``softmax(scores(x))`` with ``module`` in eval mode (restored after), for networks with no
    randomness of their own (BOLD, BoolNet: both inference modes give it); ``on_pass`` is
    called once."""
    if mode not in INFERENCE_MODES:
        raise ValueError(f"inference mode {mode!r}: choose one of {INFERENCE_MODES}")
    was = module.training
    module.eval()
    try:
        out = torch.softmax(scores(x), -1)
    finally:
        module.train(was)
    if on_pass is not None:
        on_pass()
    return out

