"""Every random generator's seed of a run, derived by name from the run seed (``--seed``).

One place for the arithmetic, so that the training loop, the data loader, the record in
the trace file and the tests that reproduce a run (e.g. seeding the bench emulator's arrays
as ``bsl train`` seeds its simulated ones) cannot drift apart::

    seeds = Seeds(3)
    seeds.devices(0), seeds.carry_lsb(1), seeds.epoch_eval(0), seeds.final_test_eval

The numbers are part of what makes a run reproducible: changing any of them changes the
results of every seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Seeds"]

_DEVICES = 1000
"""Device array seeds are ``run * 1000 + layer`` ..."""
_CARRY_LSB = 500
"""... and ``run * 1000 + 500 + layer`` for the low-significance arrays of periodic carry."""


@dataclass(frozen=True)
class Seeds:
    """The seeds of one run, all derived from ``run``."""

    run: int

    @property
    def training(self) -> int:
        """The run's training stream (binarizations, pulse draws of the rule)."""
        return self.run

    @property
    def weights_init(self) -> int:
        """Initial float weights (float stores; one stream for all layers, in layer order)."""
        return self.run

    @property
    def data_split(self) -> int:
        """The train/test split of data sets that are split here (``digits``, ``digits4``)."""
        return self.run

    @property
    def data_subset(self) -> int:
        """The random subsets of ``train_limit`` / ``test_limit`` (one stream, train first)."""
        return self.run + 1

    @property
    def data_order(self) -> int:
        """The per-epoch sample order."""
        return self.run + 7

    def devices(self, layer: int) -> int:
        """The simulated array of layer ``layer`` (its high-significance array with carry)."""
        return self.run * _DEVICES + layer

    def carry_lsb(self, layer: int) -> int:
        """The low-significance array of layer ``layer`` (periodic carry)."""
        return self.run * _DEVICES + _CARRY_LSB + layer

    def epoch_eval(self, epoch: int) -> int:
        """The test evaluation after epoch ``epoch`` (0-based)."""
        return self.run + 100 + epoch

    @property
    def final_test_eval(self) -> int:
        """The final test evaluations (every inference mode evaluated)."""
        return self.run + 999

    @property
    def final_train_eval(self) -> int:
        """The final training-set evaluation."""
        return self.run + 998

    def record(self, n_layers: int, carry: bool, epochs: int = 0) -> dict[str, Any]:
        """The seeds as written into the trace file's ``seeds`` attribute; ``carry``: the run
        uses periodic carry (low-significance arrays); ``epochs``: how many per-epoch
        evaluation seeds to list."""
        return {
            "run": self.run, "data_order": self.data_order, "weights_init": self.weights_init,
            "devices": [self.devices(i) for i in range(n_layers)],
            "carry_lsb_devices": [self.carry_lsb(i) for i in range(n_layers)] if carry else [],
            "training": self.training, "data_split": self.data_split, "data_subset": self.data_subset,
            "epoch_eval": [self.epoch_eval(e) for e in range(epochs)],
            "final_test_eval": self.final_test_eval, "final_train_eval": self.final_train_eval,
        }
