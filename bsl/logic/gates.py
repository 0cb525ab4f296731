"""The 16 two-input Boolean functions and their real-valued relaxation (difflogic).

Gate order (difflogic's, Petersen et al. 2022): 0 FALSE, 1 AND, 2 A AND NOT B, 3 A,
4 NOT A AND B, 5 B, 6 XOR, 7 OR, 8 NOR, 9 XNOR, 10 NOT B, 11 A OR NOT B, 12 NOT A,
13 NOT A OR B, 14 NAND, 15 TRUE. On inputs ``a, b`` in [0, 1] (probabilities of being
true) each gate is the expectation of its output for independent inputs, a polynomial
``c0 + c1 a + c2 b + c3 ab``; a softmax mixture of the 16 is therefore one such
polynomial with coefficients ``softmax(w) @ COEFFICIENTS`` (4 products instead of 16).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

GATE_NAMES: tuple[str, ...] = (
    "FALSE", "AND", "A_AND_NOT_B", "A", "NOT_A_AND_B", "B", "XOR", "OR",
    "NOR", "XNOR", "NOT_B", "A_OR_NOT_B", "NOT_A", "NOT_A_OR_B", "NAND", "TRUE",
)
N_GATES = 16

COEFFICIENTS = np.array([
    [0, 0, 0, 0], [0, 0, 0, 1], [0, 1, 0, -1], [0, 1, 0, 0],
    [0, 0, 1, -1], [0, 0, 1, 0], [0, 1, 1, -2], [0, 1, 1, -1],
    [1, -1, -1, 1], [1, -1, -1, 2], [1, 0, -1, 0], [1, 0, -1, 1],
    [1, -1, 0, 0], [1, -1, 0, 1], [1, 0, 0, -1], [1, 0, 0, 0],
], dtype=np.float32)
"""``(16, 4)``: gate ``g`` is ``c0 + c1 a + c2 b + c3 a b`` with ``COEFFICIENTS[g]``."""

_AB = ((0, 0), (0, 1), (1, 0), (1, 1))
TRUTH_TABLE = np.array([[int(c[0] + c[1] * a + c[2] * b + c[3] * a * b) for a, b in _AB]
                        for c in COEFFICIENTS], dtype=np.uint8)
"""``(16, 4)``: gate ``g``'s output for ``(a, b)`` = (0,0), (0,1), (1,0), (1,1)."""

TRIVIAL = frozenset({0, 3, 5, 10, 12, 15})
"""Gates that need no logic operation: constants, wires (A, B) and single inverters are
counted apart (NOT A, NOT B are one inverter each; see :mod:`bsl.logic.packed`)."""
CONSTANT_OR_WIRE = frozenset({0, 3, 5, 15})


def gate_functions(a: Tensor, b: Tensor) -> Tensor:
    """All 16 relaxed gates of ``a, b`` stacked on a new last axis ``(..., 16)`` (the
    reference form; :func:`relaxed_gate` computes a mixture 4x cheaper)."""
    ab = a * b
    return torch.stack([
        torch.zeros_like(a), ab, a - ab, a, b - ab, b, a + b - 2 * ab, a + b - ab,
        1 - (a + b - ab), 1 - (a + b - 2 * ab), 1 - b, 1 - b + ab, 1 - a, 1 - a + ab, 1 - ab,
        torch.ones_like(a),
    ], dim=-1)


def mixture_coefficients(probs: Tensor) -> Tensor:
    """``(..., 16)`` gate probabilities to ``(..., 4)`` polynomial coefficients."""
    return probs @ torch.as_tensor(COEFFICIENTS, dtype=probs.dtype, device=probs.device)


def relaxed_gate(a: Tensor, b: Tensor, coefficients: Tensor) -> Tensor:
    """``c0 + c1 a + c2 b + c3 a b`` for inputs ``(m, batch)`` (gates first, the layout of
    :mod:`bsl.logic.layers`) and coefficients ``(m, 4)``."""
    c = coefficients[..., None]
    return c[:, 0] + c[:, 1] * a + c[:, 2] * b + c[:, 3] * (a * b)


def hard_gate(gate: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Boolean outputs of gates ``gate`` (ints 0..15) on Boolean inputs ``a, b`` (broadcast
    along the first axis: ``gate`` of shape ``(m,)``, ``a, b`` of shape ``(n, m)``)."""
    index = (a.astype(np.uint8) << 1) | b.astype(np.uint8)
    return TRUTH_TABLE[gate[None, :], index].astype(bool)
