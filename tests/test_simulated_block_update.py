"""Block (row/column subset) updates keep the simulator's read cache consistent."""

import torch

from devices import Crossbar, SimulatedCrossbar
from devices.sim.presets import PRESETS

# The default RRAM device without cycle-to-cycle or read noise: block and full updates
# must then give identical arrays and identical reads.
QUIET = PRESETS["rram"].replace(dw_min_std=0.0, read_noise_std=0.0)


def test_reads_after_a_block_update_match_a_fresh_array() -> None:
    gen = torch.Generator().manual_seed(0)
    a = SimulatedCrossbar(40, 30, QUIET, seed=5)
    b = SimulatedCrossbar(40, 30, QUIET, seed=5)
    v = (torch.rand(8, 40, generator=gen) < 0.5).float() * a.v_read
    e = (torch.rand(8, 30, generator=gen) < 0.5).float() * a.v_read
    a.read_forward(v)  # fill the read cache before the block update
    rows, cols = torch.tensor([0, 3, 17, 39]), torch.tensor([2, 5, 29])
    block = torch.randint(-4, 5, (4, 3), generator=gen)
    # Reads agree to float32 rounding of the sums (1e-10 A); one pulse moves a current ~1e-7 A.
    for _ in range(3):
        a.apply_pulses(block, rows=rows, cols=cols)
        Crossbar.apply_pulses(b, block, rows=rows, cols=cols)  # generic path: full per-device counts
        assert torch.allclose(a.conductances(), b.conductances(), rtol=1e-6, atol=0)  # float32 rounding
        assert torch.allclose(a.read_forward(v), b.read_forward(v), rtol=1e-5, atol=1e-10)
        assert torch.allclose(a.read_backward(e), b.read_backward(e), rtol=1e-5, atol=1e-10)
    moved = (a.conductances() - SimulatedCrossbar(40, 30, QUIET, seed=5).conductances()).abs() > 0
    assert moved[:, rows[:, None], cols[None, :]].any()
    untouched = torch.ones(40, 30, dtype=torch.bool)
    untouched[rows[:, None], cols[None, :]] = False
    assert not moved[:, untouched].any()
