"""Learning rules: the shared ternary pulse update, the registry, and each rule's step."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from bsl.config import TrainConfig
from bsl.layers import Conv2d, Dense
from bsl.network import Network, build_network, parse_layers
from bsl.rules import RULES, LearningRule, get_rule, register
from bsl.rules.base import pulse_update, step_stats
from bsl.rules.bsl import BinaryStochasticLearning
from bsl.rules.manhattan import Manhattan
from bsl.rules.sgd import SoftwareSGD
from bsl.stores import CrossbarStore, FloatStore
from devices import SimulatedCrossbar

pytestmark = pytest.mark.usefixtures("single_thread")  # small tensors: threads only wait


class RecordingStore(FloatStore):
    """Float weights for reads; pulses are recorded (never applied), summed into ``total``."""

    def __init__(self, w: Tensor) -> None:
        super().__init__(w)
        self.calls: list[tuple[Tensor, Tensor | None, Tensor | None]] = []
        self.total = torch.zeros(self.rows, self.cols, dtype=torch.int64)

    def pulse(self, counts: Tensor, rows: Tensor | None = None, cols: Tensor | None = None) -> None:
        assert counts.dtype == torch.int64
        self.calls.append((counts.clone(), rows, cols))
        r = torch.arange(self.rows) if rows is None else rows
        c = torch.arange(self.cols) if cols is None else cols
        assert counts.shape == (len(r), len(c))
        self.total[r[:, None], c[None, :]] += counts


def zeros_store(rows: int, cols: int) -> RecordingStore:
    return RecordingStore(torch.zeros(rows, cols))


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# Hand-checked ternary update: x binary (n=3, rows=4), d ternary (n=3, cols=2).
X = torch.tensor([[1.0, 0, 1, 1], [0, 1, 1, 0], [1, 1, 0, 0]])
D = torch.tensor([[1.0, -1], [1, 0], [-1, -1]])
# Row i of X.T @ D sums the d of the samples whose input i fired.
SUM = torch.tensor([[0, -2], [0, -1], [2, -1], [1, -1]])
SIGN = torch.tensor([[0, -1], [0, -1], [1, -1], [1, -1]])


# -- pulse_update -------------------------------------------------------------------


def test_hand_case_is_x_transpose_d() -> None:
    assert torch.equal((X.T @ D).to(torch.int64), SUM)


@pytest.mark.parametrize(("reduce", "expected"), [("sum", SUM), ("sign", SIGN)])
def test_pulse_update_counts_hand_case(reduce: str, expected: Tensor) -> None:
    store = zeros_store(4, 2)
    pulse_update(store, X, D, probability=1.0, reduce=reduce, gen=seeded())
    assert len(store.calls) == 1
    assert torch.equal(store.total, expected)


def _sparse_case() -> tuple[Tensor, Tensor]:
    """A batch on a 12x5 array whose inputs fire on rows {1, 4, 7} and errors on cols {0, 3}."""
    x = torch.zeros(4, 12)
    x[:, [1, 4, 7]] = torch.tensor([[1.0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 1, 1]])
    d = torch.zeros(4, 5)
    d[:, [0, 3]] = torch.tensor([[1.0, -1], [1, 1], [-1, -1], [1, 0]])
    return x, d


def _dense_case() -> tuple[Tensor, Tensor]:
    """A batch on the same 12x5 array with activity on (almost) every row and column."""
    g = seeded(11)
    x = (torch.rand(6, 12, generator=g) < 0.7).float()
    x[0] = 1.0
    d = torch.randint(-1, 2, (6, 5), generator=g).float()
    d[0] = torch.tensor([1.0, -1, 1, -1, 1])
    return x, d


@pytest.mark.parametrize("reduce", ["sum", "sign"])
def test_block_and_full_paths_give_x_transpose_d(reduce: str) -> None:
    for case, block in ((_sparse_case, True), (_dense_case, False)):
        x, d = case()
        store = zeros_store(12, 5)
        pulse_update(store, x, d, probability=1.0, reduce=reduce, gen=seeded())
        expected = x.T @ d
        if reduce == "sign":
            expected = torch.sign(expected)
        assert torch.equal(store.total, expected.to(torch.int64)), case.__name__
        (counts, rows, cols), = store.calls
        if block:  # only the active block is sent
            assert rows is not None and cols is not None
            assert rows.tolist() == [1, 4, 7] and cols.tolist() == [0, 3]
            assert counts.shape == (3, 2)
        else:
            assert rows is None and cols is None
            assert counts.shape == (12, 5)


def test_block_path_on_a_crossbar_equals_full_pulses() -> None:
    x, d = _sparse_case()
    a = SimulatedCrossbar(12, 5, "ideal", seed=3, init="mid", init_spread=0.5)
    b = SimulatedCrossbar(12, 5, "ideal", seed=3, init="mid", init_spread=0.5)
    assert torch.equal(a.conductances(), b.conductances())
    pulse_update(CrossbarStore(a), x, d, probability=1.0, reduce="sum", gen=seeded())
    b.apply_pulses((x.T @ d).to(torch.int64))
    # Same state up to float32 rounding (untouched devices may be re-normalized).
    torch.testing.assert_close(a.conductances(), b.conductances(), rtol=1e-6, atol=1e-12)
    fresh = SimulatedCrossbar(12, 5, "ideal", seed=3, init="mid", init_spread=0.5)
    assert not torch.allclose(a.conductances(), fresh.conductances()), "the pulses moved devices"
    assert a.counters.set_pulses == b.counters.set_pulses == int((x.T @ d).abs().sum())
    assert a.counters.reset_pulses == b.counters.reset_pulses


def test_no_activity_sends_no_pulse() -> None:
    store = zeros_store(4, 2)
    pulse_update(store, torch.zeros(3, 4), D, probability=1.0, reduce="sum", gen=seeded())
    pulse_update(store, X, torch.zeros(3, 2), probability=1.0, reduce="sum", gen=seeded())
    assert store.calls == []


@pytest.mark.parametrize(("reduce", "exact"), [("sum", SUM), ("sign", SIGN)])
@pytest.mark.parametrize("p", [0.3, 0.75])
def test_pulse_probability_scales_expected_counts(reduce: str, exact: Tensor, p: float) -> None:
    store = zeros_store(4, 2)
    gen = seeded(42)
    reps = 4000
    scaled = p * exact.double()
    for _ in range(reps):
        pulse_update(store, X, D, probability=p, reduce=reduce, gen=gen)
    for counts, _, _ in store.calls:  # each count is a neighbour of p * count
        assert bool(((counts == scaled.floor()) | (counts == scaled.ceil())).all())
    mean = store.total.double() / reps
    frac = scaled - scaled.floor()
    tol = 5 * (frac * (1 - frac) / reps).sqrt() + 1e-12
    assert bool(((mean - scaled).abs() <= tol).all()), (mean, scaled)
    # The draws really are random: some cell got both of its neighbours.
    assert any(not torch.equal(store.calls[0][0], c) for c, _, _ in store.calls)


@pytest.mark.parametrize(("scheme", "per_pulse"), [("push_pull", 2.0), ("set_only", 1.0)])
def test_weight_change_on_ideal_crossbar(scheme: str, per_pulse: float) -> None:
    """Each pulse moves a weight (G+ - G-) / (g_max - g_min) by per_pulse * dw_min / range."""
    xbar = SimulatedCrossbar(4, 2, "ideal", seed=5, scheme=scheme, init="mid", init_spread=0.0)  # type: ignore[arg-type]
    store = CrossbarStore(xbar)
    g_min, g_max = xbar.g_bounds
    step = per_pulse * xbar.model.dw_min / (g_max - g_min)
    w0 = store.weights()
    assert torch.allclose(w0, torch.zeros(4, 2), atol=1e-6)  # both devices mid-range
    pulse_update(store, X, D, probability=1.0, reduce="sum", gen=seeded())
    dw = store.weights() - w0
    torch.testing.assert_close(dw, SUM.float() * step, rtol=1e-4, atol=1e-6)
    n = int(SUM.abs().sum())
    assert xbar.counters.set_pulses == n
    assert xbar.counters.reset_pulses == (n if scheme == "push_pull" else 0)


# -- registry -----------------------------------------------------------------------


def test_registry_holds_the_three_rules() -> None:
    assert {"bsl", "sgd", "manhattan"} <= set(RULES)
    assert get_rule("bsl") is BinaryStochasticLearning
    assert get_rule("sgd") is SoftwareSGD and not SoftwareSGD.uses_devices
    assert get_rule("manhattan") is Manhattan and Manhattan.uses_devices
    for name, cls in RULES.items():
        assert issubclass(cls, LearningRule) and cls.name == name


def test_unknown_rule_and_duplicate_registration_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown rule 'nope'"):
        get_rule("nope")
    before = dict(RULES)
    with pytest.raises(ValueError, match="already registered"):
        register("sgd")(SoftwareSGD)
    assert RULES == before


def test_step_stats_hand_case() -> None:
    p = torch.tensor([[0.9, 0.2], [0.6, 0.7], [0.5, 0.4]])
    t = torch.tensor([[1.0, 0], [1, 0], [0, 1]])
    stats = step_stats(p, t)
    assert stats.correct == 1
    bce = -(math.log(0.9) + math.log(0.8) + math.log(0.6) + math.log(0.3) + math.log(0.5) + math.log(0.4)) / 3
    assert stats.loss == pytest.approx(bce, rel=1e-5)


# -- rule steps -----------------------------------------------------------------------


def _recording_net(spec: str, input_shape: tuple[int, ...], classes: int, seed: int,
                   gain_scale: float = 3.0, scale: float = 1.0) -> Network:
    g = seeded(seed)

    def make(rows: int, cols: int, index: int) -> RecordingStore:
        w = torch.rand(rows, cols, generator=g) - torch.rand(rows, cols, generator=g)
        return RecordingStore(scale * w)

    return build_network(parse_layers(spec), input_shape, classes, make, gain_scale)


def _rule_config(rule: str, **kw: object) -> TrainConfig:
    base: dict[str, object] = dict(rule=rule, update_probability=1.0, dead_zone=0.2, batch_reduce="sum",
                                   output_derivative=False, lr=0.5, gain_scale=3.0)
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def _batch(n: int, features: int, classes: int, seed: int, binary: bool) -> tuple[Tensor, Tensor]:
    g = seeded(seed)
    x = torch.rand(n, features, generator=g)
    if binary:
        x = (x < 0.5).float()
    labels = torch.randint(0, classes, (n,), generator=g)
    return x, torch.eye(classes)[labels]


@pytest.mark.parametrize("reduce", ["sum", "sign"])
def test_bsl_single_layer_step_is_the_hand_formula(reduce: str) -> None:
    """With binary inputs (sampled as themselves), no hidden layer and probability 1, BSL is
    deterministic: counts = X^T sign_dz(t - p), X with its bias column."""
    net = _recording_net("", (10,), 4, seed=1)
    x, t = _batch(16, 10, 4, seed=2, binary=True)
    layer = net.layers[0]
    w = layer.store.weights()
    xb = torch.cat((x, torch.ones(16, 1)), 1)
    p = torch.sigmoid(layer.gain * xb @ w)
    err = t - p
    d = torch.sign(err) * (err.abs() > 0.2)
    expected = xb.T @ d
    if reduce == "sign":
        expected = torch.sign(expected)
    rule = BinaryStochasticLearning(_rule_config("bsl", batch_reduce=reduce, dead_zone=0.2))
    stats = rule.train_step(net, x, t, seeded(3))
    assert torch.equal(layer.store.total, expected.to(torch.int64))
    assert stats.correct == int((p.argmax(1) == t.argmax(1)).sum())
    assert stats.loss == pytest.approx(step_stats(p, t).loss, rel=1e-5)


def test_manhattan_single_layer_step_is_sign_of_gradient() -> None:
    net = _recording_net("", (10,), 4, seed=4)
    x, t = _batch(8, 10, 4, seed=5, binary=False)
    layer = net.layers[0]
    xb = torch.cat((x, torch.ones(8, 1)), 1)
    p = torch.sigmoid(layer.gain * xb @ layer.store.weights())
    expected = torch.sign(xb.T @ (t - p)).to(torch.int64)
    Manhattan(_rule_config("manhattan")).train_step(net, x, t, seeded(6))
    assert torch.equal(layer.store.total, expected)
    assert bool((expected != 0).any())


@pytest.mark.parametrize("rule_cls", [BinaryStochasticLearning, Manhattan])
@pytest.mark.parametrize("reduce", ["sum", "sign"])
def test_device_rule_pulses_on_every_layer_within_bounds(rule_cls: type[LearningRule], reduce: str) -> None:
    net = _recording_net("c3k3s1,12", (1, 6, 6), 5, seed=7)
    x, t = _batch(10, 36, 5, seed=8, binary=False)
    x = x.reshape(10, 1, 6, 6)
    rule_cls(_rule_config(rule_cls.name, batch_reduce=reduce)).train_step(net, x, t, seeded(9))
    for i, layer in enumerate(net.layers):
        store = layer.store
        assert isinstance(store, RecordingStore)
        assert bool((store.total != 0).any()), f"layer {i} got no pulse"
        # Per cell: at most one pulse per sample and read (sum) or one per batch (sign).
        reads = 10 * (math.prod(layer.out_hw) if isinstance(layer, Conv2d) else 1)
        bound = 1 if (reduce == "sign" or rule_cls is Manhattan) else reads
        assert int(store.total.abs().max()) <= bound


def test_bsl_is_reproducible_per_generator_and_random_across_seeds() -> None:
    totals = []
    for gen_seed in (10, 10, 11):
        net = _recording_net("16", (20,), 3, seed=12)
        x, t = _batch(12, 20, 3, seed=13, binary=False)
        BinaryStochasticLearning(_rule_config("bsl")).train_step(net, x, t, seeded(gen_seed))
        totals.append([layer.store.total.clone() for layer in net.layers])
    assert all(torch.equal(a, b) for a, b in zip(totals[0], totals[1], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(totals[0], totals[2], strict=True))


def test_bsl_dead_zone_silences_confident_outputs() -> None:
    """A dead zone wider than any error (|t - p| < 1 always) leaves every layer untouched."""
    net = _recording_net("16", (20,), 3, seed=14, scale=0.01)  # outputs near 0.5
    x, t = _batch(12, 20, 3, seed=15, binary=False)
    BinaryStochasticLearning(_rule_config("bsl", dead_zone=0.9)).train_step(net, x, t, seeded(16))
    assert all(layer.store.calls == [] for layer in net.layers)


# -- sgd against autograd ---------------------------------------------------------------


def _reference_forward(net: Network, x: Tensor, weights: list[Tensor]) -> Tensor:
    """The network's output probabilities with torch reference ops on ``weights``."""
    h = x
    for layer, w in zip(net.layers, weights, strict=True):
        if isinstance(layer, Dense):
            a = F.linear(h.reshape(h.shape[0], -1), w[:-1].T, w[-1])
        else:
            c, k = layer.in_shape[0], layer.kernel
            a = F.conv2d(h, w[:-1].T.reshape(layer.out_channels, c, k, k), w[-1], stride=layer.stride)
        h = torch.sigmoid(layer.gain * a)
    return h


@pytest.mark.parametrize(("spec", "input_shape"), [("7,5", (1, 3, 4)), ("c3k2s1,c2k2s2,6", (2, 5, 5))])
def test_sgd_step_equals_autograd_sgd_on_bce(spec: str, input_shape: tuple[int, ...]) -> None:
    g = seeded(20)
    lr, gain_scale, classes, n = 0.7, 2.5, 4, 6

    def make(rows: int, cols: int, index: int) -> FloatStore:
        return FloatStore(torch.rand(rows, cols, generator=g, dtype=torch.float64) * 2 - 1)

    net = build_network(parse_layers(spec), input_shape, classes, make, gain_scale)
    x = torch.rand(n, *input_shape, generator=g, dtype=torch.float64)
    t = torch.eye(classes, dtype=torch.float64)[torch.tensor([0, 1, 2, 3, 1, 2])]

    params = [layer.store.weights().requires_grad_(True) for layer in net.layers]
    p_ref = _reference_forward(net, x, params)
    loss = F.binary_cross_entropy(p_ref, t, reduction="none").sum(1).mean()
    grads = torch.autograd.grad(loss, params)
    expected = [w.detach() - lr * gw for w, gw in zip(params, grads, strict=True)]

    rule = SoftwareSGD(_rule_config("sgd", lr=lr, gain_scale=gain_scale))
    stats = rule.train_step(net, x, t, seeded(0))
    for i, (layer, w_exp) in enumerate(zip(net.layers, expected, strict=True)):
        assert not torch.allclose(w_exp, params[i].detach()), "the step must move the weights"
        torch.testing.assert_close(layer.store.weights(), w_exp, rtol=1e-9, atol=1e-12, msg=f"layer {i}")
    assert stats.loss == pytest.approx(float(loss.detach()), rel=1e-6)
    assert stats.correct == int((p_ref.argmax(1) == t.argmax(1)).sum())
