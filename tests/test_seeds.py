"""``bsl.seeds.Seeds``: every generator's seed of a run, by name, with the numbers runs have
always used (changing one changes the results of every seed), and as the trace records them."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest

from bsl.config import TrainConfig
from bsl.seeds import Seeds
from bsl.train import train

# Hard-coded: the derivations of every earlier release (run seed s: arrays 1000 s + layer, carry
# arrays 1000 s + 500 + layer, data order s + 7, per-epoch tests s + 100 + epoch, final test
# s + 999, final train accuracy s + 998, data subsets s + 1; split, init and training stream s).
EXPECTED = {
    0: dict(training=0, weights_init=0, data_split=0, data_subset=1, data_order=7, devices=[0, 1, 2],
            carry_lsb=[500, 501, 502], epoch_eval=[100, 101, 102], final_test_eval=999, final_train_eval=998),
    3: dict(training=3, weights_init=3, data_split=3, data_subset=4, data_order=10,
            devices=[3000, 3001, 3002], carry_lsb=[3500, 3501, 3502], epoch_eval=[103, 104, 105],
            final_test_eval=1002, final_train_eval=1001),
}


@pytest.mark.parametrize("run", sorted(EXPECTED))
def test_seeds_keep_their_numbers(run: int) -> None:
    s, want = Seeds(run), EXPECTED[run]
    assert s.run == run
    for name in ("training", "weights_init", "data_split", "data_subset", "data_order", "final_test_eval",
                 "final_train_eval"):
        assert getattr(s, name) == want[name], name
    assert [s.devices(i) for i in range(3)] == want["devices"]
    assert [s.carry_lsb(i) for i in range(3)] == want["carry_lsb"]
    assert [s.epoch_eval(e) for e in range(3)] == want["epoch_eval"]


def test_record() -> None:
    assert Seeds(3).record(2, carry=True, epochs=2) == {
        "run": 3, "data_order": 10, "weights_init": 3, "devices": [3000, 3001],
        "carry_lsb_devices": [3500, 3501], "training": 3, "data_split": 3, "data_subset": 4,
        "epoch_eval": [103, 104], "final_test_eval": 1002, "final_train_eval": 1001}
    assert Seeds(0).record(2, carry=False)["carry_lsb_devices"] == []


@pytest.mark.usefixtures("single_thread")
@pytest.mark.parametrize("seed, carry", [(0, 0), (3, 5)])
def test_trace_records_the_seeds_the_arrays_use(tmp_path: Path, seed: int, carry: int) -> None:
    config = TrainConfig(dataset="digits4", layers="4", epochs=2, train_limit=24, test_limit=8, batch_size=8,
                         progress=False, seed=seed, carry_period=carry, out=str(tmp_path / "run"))
    run_dir = train(config).run_dir
    with h5py.File(run_dir / "traces.h5", "r") as f:
        recorded = json.loads(f.attrs["seeds"])
        device = json.loads(f.attrs["device"])
    seeds = Seeds(seed)
    assert recorded == seeds.record(2, carry=bool(carry), epochs=2)
    if carry:
        assert [d["msb"]["seed"] for d in device] == [seeds.devices(i) for i in range(2)]
        assert [d["lsb"]["seed"] for d in device] == [seeds.carry_lsb(i) for i in range(2)]
    else:
        assert [d["crossbar"]["seed"] for d in device] == [seeds.devices(i) for i in range(2)]
