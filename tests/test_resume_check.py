"""The array check of a resume (``devices.hil.resume_check``): the tolerance rule, the seeded
word-line sample, partial reads through the instruments, and re-programming."""

from __future__ import annotations

from pathlib import Path

import pytest
import pyvisa
import torch

pytest.importorskip("pyvisa_py")
from small_bench import write_wiring  # noqa: E402

from devices import CheckRule, HilBench, InstrumentCrossbar, SimulatedCrossbar, check_array, reprogram_array  # noqa: E402  # noqa: E402
from devices.hil.emulator import Emulator  # noqa: E402
from devices.hil.resume_check import sample_rows  # noqa: E402
from devices.hil.settings import load_hil_settings  # noqa: E402
from devices.hil.wiring import load_wiring  # noqa: E402
from devices.sim.presets import get_preset  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "hil"


def _counts(x: SimulatedCrossbar, gen: torch.Generator) -> torch.Tensor:
    c = torch.randint(-6, 7, (2, x.rows, x.cols), generator=gen)
    c[torch.rand(c.shape, generator=gen) < 0.5] = 0
    return c


def test_journaled_pulses_pass_and_unrecorded_changes_fail(gen: torch.Generator) -> None:
    x = SimulatedCrossbar(17, 8, "rram", seed=2, init_spread=0.3)
    ref = x.read_conductances()
    counts = _counts(x, gen)
    x.pulse_devices(counts)
    sets, resets = counts.clamp(min=0), (-counts).clamp(min=0)
    check = check_array(x, ref, sets, resets)
    assert check.passed and check.checked == 272 and check.lines == 17, check.describe()
    nothing = torch.zeros_like(counts)
    x.pulse_devices(torch.where(counts != 0, 12 * counts.sign(), 0))  # pulses the journal does not know
    check = check_array(x, ref, sets, resets)
    assert not check.passed and check.beyond > check.allowed, check.describe()
    assert "beyond tolerance (median |dG|" in check.describe()
    with pytest.raises(ValueError, match="reference must have shape"):
        check_array(x, ref[:, :3], nothing, nothing)


def test_reprogram_brings_an_array_back(gen: torch.Generator) -> None:
    x = SimulatedCrossbar(9, 4, "rram", seed=5, init_spread=0.3)
    ref = x.read_conductances()
    x.pulse_devices(_counts(x, gen) * 3)
    nothing = torch.zeros((2, 9, 4), dtype=torch.int64)
    assert not check_array(x, ref, nothing, nothing).passed
    result = reprogram_array(x, ref)
    assert result.iterations >= 1
    assert check_array(x, ref, nothing, nothing).passed


def test_large_arrays_are_checked_on_a_seeded_sample_of_word_lines() -> None:
    rows = sample_rows(300, 10, 4096, seed=1)
    assert len(rows) == 4096 // 20 and rows == sorted(set(rows)) and rows == sample_rows(300, 10, 4096, 1)
    assert rows != sample_rows(300, 10, 4096, 2)
    assert sample_rows(17, 8, 4096, 0) == list(range(17))
    x = SimulatedCrossbar(40, 6, "ideal", seed=1)
    nothing = torch.zeros((2, 40, 6), dtype=torch.int64)
    check = check_array(x, x.conductances(), nothing, nothing, CheckRule(max_devices=48), seed=0)
    assert (check.checked, check.lines, check.rows) == (48, 4, 40) and check.passed
    assert "a sample: 4 of 40 word lines" in check.describe()


def test_instruments_read_only_the_sampled_word_lines(rm: pyvisa.ResourceManager, tmp_path: Path) -> None:
    with Emulator(write_wiring(tmp_path), preset="ideal", seed=3, init_spread=0.3) as emu:
        wiring = load_wiring(write_wiring(tmp_path), smu=emu.resources["smu"])
        wiring = type(wiring)(**{**wiring.__dict__, "matrix": emu.resources["matrix"]})
        bench = HilBench.open(wiring, load_hil_settings(EXAMPLES / "limits.toml"), "@py")
        x = InstrumentCrossbar(bench, 0, get_preset("ideal"))
        try:
            g = x.read_conductances([2, 0])
            assert x.counters.cell_reads == 2 * 2 * 2
            truth = emu.bench.arrays[0].conductances().double()
            assert torch.isnan(g[:, 1]).all()
            assert torch.allclose(g[:, [0, 2]].double(), truth[:, [0, 2]], rtol=1e-5)
            with pytest.raises(ValueError, match="word lines of this array are 0..2"):
                x.read_conductances([3])
        finally:
            x.close()
        assert emu.log.final_state_safe()
