"""A logic layer's interconnect on memristor crossbars: bsl.logic.routing and ``bsl route-logic``."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from bsl.cli import main
from bsl.logic.discrete import NET_FILE, DiscreteLayer, DiscreteNet, Encoder
from bsl.logic.gates import hard_gate
from bsl.logic.routing import RoutedLayer, evaluate_routed, routing_targets, selected_rows, tile_edges
from devices import get_preset

SAMPLES = 300


def random_net(features: int = 30, sizes: tuple[int, ...] = (40, 20), classes: int = 4,
               seed: int = 0) -> DiscreteNet:
    rng = np.random.default_rng(seed)
    layers, width = [], features
    for n in sizes:
        a, b = rng.integers(0, width, n), rng.integers(0, width, n)
        layers.append(DiscreteLayer(a, b, rng.integers(0, 16, n)))
        width = n
    return DiscreteNet(Encoder("fixed", (0.5,), features), tuple(layers), classes)


@pytest.fixture(scope="module")
def data() -> tuple[DiscreteNet, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return random_net(), rng.random((SAMPLES, 30)), rng.integers(0, 4, SAMPLES)


def test_targets_are_one_hot_per_column() -> None:
    layer = DiscreteLayer(np.array([2, 0]), np.array([1, 2]), np.array([1, 6]))
    sel = selected_rows(layer)
    assert sel.tolist() == [2, 1, 0, 2]
    t = routing_targets(sel, (0, 3), (0, 4), (1e-6, 9e-6))
    assert t.shape == (2, 3, 4)
    assert (t[1] == 1e-6).all()
    assert (t[0].argmax(0).numpy() == sel).all() and int((t[0] == 9e-6).sum()) == 4
    part = routing_targets(sel, (2, 3), (1, 4), (1e-6, 9e-6))  # a tile: rows 2.., columns 1..3
    assert part[0].tolist() == [[1e-6, 1e-6, 9e-6]]
    assert tile_edges(10, 4) == [(0, 4), (4, 8), (8, 10)]


@pytest.mark.parametrize("tiles", [(1024, 1024), (16, 24)])
@pytest.mark.parametrize("layer", [0, 1])
def test_ideal_routing_is_exact(data, layer: int, tiles: tuple[int, int]) -> None:
    net, x, y = data
    r = evaluate_routed(net, x, y, layer, "ideal", seed=3, tile_rows=tiles[0], tile_cols=tiles[1])
    assert r["bit_error_rate"] == 0 and r["bit_errors"] == 0 and r["gate_error_rate"] == 0
    assert r["accuracy"] == r["exact_accuracy"] and r["agreement"] == 1
    exact = float((net.predict(x) == y).mean())
    assert r["exact_accuracy"] == exact
    assert r["failed_devices"] == 0 and r["programming_pulses"] > 0


def test_routed_layer_reproduces_the_gates_and_counts_reads(data) -> None:
    net, x, _ = data
    bits = net.encoder.encode(x)
    layer = net.layers[0]
    routed = RoutedLayer.program(layer, 30, "ideal", seed=0, tile_rows=16, tile_cols=24, batch=128)
    a, b = routed.route(bits)
    assert (a == bits[:, layer.a]).all() and (b == bits[:, layer.b]).all()
    assert (routed.evaluate(bits) == hard_gate(layer.gate, bits[:, layer.a], bits[:, layer.b])).all()
    # 30 x 80 cells: row tiles 16 + 14, column tiles 24, 24, 24, 8.
    assert routed.shape == (30, 80) and routed.n_tiles == 2 * 4
    assert [t.rows for t in (row[0] for row in routed.tiles)] == [16, 14]
    assert [t.cols for t in routed.tiles[0]] == [24, 24, 24, 8]
    assert routed.devices == 2 * 30 * 80
    # route + evaluate: two passes of SAMPLES samples, each one read per tile.
    assert routed.reads == 2 * SAMPLES * 8
    assert routed.threshold == pytest.approx(0.5 * 0.2 * 100e-6)


def test_cost_counts(data) -> None:
    net, x, y = data
    r = evaluate_routed(net, x, y, 1, "ideal", tile_rows=16, tile_cols=24)
    # layer 1: 20 gates reading 40 bits -> 40 x 40 cells, 3 row tiles x 2 column tiles.
    assert (r["rows"], r["cols"], r["tiles"]) == (40, 40, 6)
    assert r["devices"] == 40 * 40 * 2
    assert r["reads"] == SAMPLES * 3 * 2
    r = evaluate_routed(net, x, y, 0, "ideal")
    assert (r["devices"], r["reads"], r["tiles"]) == (30 * 80 * 2, SAMPLES, 1)


@pytest.mark.parametrize("field", ["stuck_off_fraction", "stuck_on_fraction"])
def test_stuck_devices_cause_routing_errors(data, field: str) -> None:
    net, x, y = data
    model = get_preset("rram").replace(**{field: 0.2})
    r = evaluate_routed(net, x, y, 0, model, seed=5)
    # 20% of the 4800 devices stuck. Stuck off: only the 80 selected G+ (LRS) miss their
    # target (about 16); stuck on: nearly all of about 960 (HRS targets) do.
    if field == "stuck_off_fraction":
        assert r["failed_selected"] > 5
    else:
        assert r["failed_devices"] > 500
    assert r["bit_error_rate"] > 0.02
    clean = evaluate_routed(net, x, y, 0, get_preset("rram").replace(stuck_off_fraction=0.0,
                                                                     stuck_on_fraction=0.0), seed=5)
    assert clean["bit_error_rate"] < r["bit_error_rate"] / 4


def test_compensation_cancels_stuck_on_leakage(data) -> None:
    net, x, y = data
    model = get_preset("rram").replace(stuck_off_fraction=0.0, stuck_on_fraction=0.02)
    plain = evaluate_routed(net, x, y, 0, model, seed=2)
    fixed = evaluate_routed(net, x, y, 0, model, seed=2, compensate=True)
    assert plain["bit_error_rate"] > 0.02
    assert fixed["bit_error_rate"] < plain["bit_error_rate"] / 3
    assert fixed["programming_pulses"] > plain["programming_pulses"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"layer_index": 2}, "layer_index = 2: the net has layers 0..1"),
    ({"layer_index": -1}, "layer_index = -1"),
    ({"tile_rows": 0}, "tile_rows = 0: must be a positive integer"),
    ({"tile_cols": -3}, "tile_cols = -3"),
    ({"threshold_fraction": 1.0}, "threshold_fraction = 1.0: must lie strictly between 0 and 1"),
    ({"threshold_fraction": 0}, "threshold_fraction = 0"),
    ({"batch": 0}, "batch = 0"),
    ({"tolerance": -1e-6}, "tolerance = -1e-06 S: must be > 0"),
])
def test_bad_settings_are_refused(data, kwargs: dict, message: str) -> None:
    net, x, y = data
    args = {"layer_index": 0, **kwargs}
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(".", r"\.")):
        evaluate_routed(net, x, y, model="ideal", **args)


def test_routed_layer_refuses_bad_inputs(data) -> None:
    net, x, _ = data
    with pytest.raises(ValueError, match="n_inputs = 10 is too small"):
        RoutedLayer.program(net.layers[0], 10, "ideal")
    routed = RoutedLayer.program(net.layers[0], 30, "ideal")
    with pytest.raises(ValueError, match=r"bits: expected shape \(batch, 30\)"):
        routed.route(np.zeros((4, 29), dtype=bool))


# -- the study and its command ------------------------------------------------------------------

SWEEP = """
[base]
preset = "rram"
samples = 120
tile_rows = 32

[grid]
"device.stuck_on_fraction" = [0.0, 0.05]
"device.g_min" = [10e-6, 30e-6]
"""


def make_run(folder: Path) -> Path:
    folder.mkdir()
    random_net(features=64, sizes=(48, 20), classes=10, seed=4).save(folder / NET_FILE)
    (folder / "config.toml").write_text('[train]\ndataset = "digits"\nseed = 0\nrule = "difflogic"\n')
    return folder


def test_route_logic_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path / "run")
    spec = tmp_path / "sweep.toml"
    spec.write_text(SWEEP)
    out = tmp_path / "study"
    rc = main(["route-logic", str(run), "--sweep", str(spec), "--out", str(out), "--workers", "2",
               "--progress", "false"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "8 points" in captured.out and "results.csv" in captured.out
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * 2  # two layers swept by default
    assert {r["layer"] for r in rows} == {"0", "1"}
    assert {r["on_off_ratio"] for r in rows} == {"10.0", str(100 / 30)}
    layer0 = [r for r in rows if r["layer"] == "0"]
    assert all(int(r["devices"]) == 64 * 96 * 2 and int(r["reads"]) == 120 * 2 for r in layer0)
    clean = [float(r["bit_error_rate"]) for r in rows if r["device.stuck_on_fraction"] == "0.0"]
    stuck = [float(r["bit_error_rate"]) for r in rows if r["device.stuck_on_fraction"] == "0.05"]
    assert max(clean) < min(stuck)
    saved = json.loads((out / "results.json").read_text())
    assert saved["dataset"] == "digits" and saved["points"] == 8 and len(saved["rows"]) == 8
    assert all(not math.isnan(r["accuracy"]) for r in saved["rows"])
    assert (out / "routing.png").stat().st_size > 1000 and (out / "sweep.toml").is_file()


@pytest.mark.parametrize(("setup", "message"), [
    ("missing", "does not exist"),
    ("no_net", f"holds no {NET_FILE}"),
    ("bad_key", "'device.stuck_fraction' is not a routing setting"),
    ("bad_layer", "layer = 5: the net has layers 0..1"),
])
def test_route_logic_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: str,
                            message: str) -> None:
    run = tmp_path / "run"
    spec = tmp_path / "sweep.toml"
    spec.write_text(SWEEP)
    if setup == "no_net":
        run.mkdir()
    elif setup == "bad_key":
        make_run(run)
        spec.write_text('[grid]\n"device.stuck_fraction" = [0.1]\n')
    elif setup == "bad_layer":
        make_run(run)
        spec.write_text("[grid]\nlayer = [0, 5]\n")
    rc = main(["route-logic", str(run), "--sweep", str(spec), "--out", str(tmp_path / "o"),
               "--progress", "0"])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and len(err.strip().splitlines()) == 1 and err.startswith("bsl route-logic: error:")


def test_sensing_only_the_selected_tile_bounds_the_leakage_of_a_tall_layer() -> None:
    """On rram, each unselected pair that sees a 1 adds its g_min mismatch: summed over 400
    rows the error is large; read only the 50-row tile that holds the selected device, far
    smaller (seeded; the margin is wide: about 0.13 against well under 0.02)."""
    net = random_net(features=400, sizes=(200, 20), classes=4, seed=5)
    rng = np.random.default_rng(6)
    x, y = rng.random((200, 400)), rng.integers(0, 4, 200)
    device = get_preset("rram").replace(stuck_off_fraction=0.0, stuck_on_fraction=0.0)
    total = evaluate_routed(net, x, y, 0, device, seed=1, tile_rows=50, sense="total")
    selected = evaluate_routed(net, x, y, 0, device, seed=1, tile_rows=50, sense="selected")
    assert total["bit_error_rate"] > 0.05
    assert selected["bit_error_rate"] < 0.3 * total["bit_error_rate"]
    with pytest.raises(ValueError, match="sense = 'both'"):
        evaluate_routed(net, x, y, 0, device, sense="both")


def test_route_logic_with_one_layer_in_the_base_table(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    spec = tmp_path / "sweep.toml"
    spec.write_text(SWEEP.replace("[base]\n", "[base]\nlayer = 1\n"))
    out = tmp_path / "study"
    assert main(["route-logic", str(run), "--sweep", str(spec), "--out", str(out), "--workers", "1",
                 "--progress", "false"]) == 0
    with open(out / "results.csv") as f:
        assert {r["layer"] for r in csv.DictReader(f)} == {"1"}
    assert (out / "routing.png").stat().st_size > 1000
