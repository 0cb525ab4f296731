"""Crossbar layers against torch reference ops; layer specs; network building and inference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bsl.layers import Conv2d, Dense
from bsl.network import LayerSpec, Network, build_network, parse_layers
from bsl.stores import CrossbarStore, FloatStore, WeightStore, random_float_weights
from devices import SimulatedCrossbar

pytestmark = pytest.mark.usefixtures("single_thread")  # small tensors: threads only wait


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def float_store(rows: int, cols: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> FloatStore:
    g = seeded(seed)
    return FloatStore(torch.rand(rows, cols, generator=g, dtype=dtype) * 2 - 1)


# -- layer specs --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("256", [LayerSpec("dense", 256)]),
        ("", []),
        ("c8k5s2,64", [LayerSpec("conv", 8, 5, 2), LayerSpec("dense", 64)]),
        ("c8k3", [LayerSpec("conv", 8, 3, 1)]),
        (" 32 , 16 ", [LayerSpec("dense", 32), LayerSpec("dense", 16)]),
        (
            "c4k3s1,c8k3s2,16",
            [LayerSpec("conv", 4, 3, 1), LayerSpec("conv", 8, 3, 2), LayerSpec("dense", 16)],
        ),
    ],
)
def test_parse_layers_accepts(spec: str, expected: list[LayerSpec]) -> None:
    assert parse_layers(spec) == expected


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("0", "cannot read '0'"),
        ("abc", "cannot read 'abc'"),
        ("-5", "cannot read '-5'"),
        ("c0k3", "cannot read"),
        ("c8k0", "cannot read"),
        ("c8k3s0", "cannot read"),
        ("64,c8k3", "convolution after a dense layer"),
    ],
)
def test_parse_layers_rejects(spec: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_layers(spec)


# -- dense and conv against torch ------------------------------------------------------


def test_dense_forward_and_backward_match_torch() -> None:
    n_in, n_out, gain_scale = 12, 5, 3.0
    store = float_store(n_in + 1, n_out, seed=1)
    layer = Dense(n_in, n_out, store, gain_scale)
    assert layer.gain == pytest.approx(gain_scale / (n_in + 1) ** 0.5)
    g = seeded(2)
    h = torch.rand(7, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)  # flattened to 12
    fwd = layer.forward(h.detach())
    w = store.weights()
    ref = layer.gain * F.linear(h.reshape(7, -1), w[:-1].T, w[-1])
    torch.testing.assert_close(fwd.a, ref.detach())
    assert fwd.a.shape == (7, n_out)
    # The crossbar input is the flattened input with a constant 1 (bias) column.
    assert fwd.x.shape == (7, n_in + 1)
    assert bool((fwd.x[:, -1] == 1).all())
    torch.testing.assert_close(fwd.x[:, :-1], h.detach().reshape(7, -1))
    # Backward: the gradient of sum(a * delta) with respect to the input.
    delta = torch.randn(7, n_out, generator=g, dtype=torch.float64)
    (grad,) = torch.autograd.grad(ref, h, delta)
    back = layer.backward(delta, fwd)
    assert back.shape == h.shape
    torch.testing.assert_close(back, grad)
    assert torch.equal(layer.delta_matrix(delta), delta)


@pytest.mark.parametrize(
    ("in_shape", "out_channels", "kernel", "stride"),
    [((1, 8, 8), 3, 3, 1), ((2, 8, 8), 4, 3, 2), ((3, 7, 6), 2, 2, 2), ((1, 8, 8), 2, 5, 2)],
)
def test_conv_forward_and_backward_match_torch(
    in_shape: tuple[int, int, int], out_channels: int, kernel: int, stride: int
) -> None:
    c = in_shape[0]
    rows = c * kernel * kernel + 1
    store = float_store(rows, out_channels, seed=3)
    layer = Conv2d(in_shape, out_channels, kernel, stride, store, gain_scale=2.0)
    assert layer.gain == pytest.approx(2.0 / rows**0.5)
    g = seeded(4)
    n = 5
    h = torch.rand(n, *in_shape, generator=g, dtype=torch.float64, requires_grad=True)
    w = store.weights()
    weight = w[:-1].T.reshape(out_channels, c, kernel, kernel)
    ref = layer.gain * F.conv2d(h, weight, w[-1], stride=stride)
    assert layer.output_shape == tuple(ref.shape[1:])
    fwd = layer.forward(h.detach())
    torch.testing.assert_close(fwd.a, ref.detach())
    positions = ref.shape[2] * ref.shape[3]
    assert fwd.x.shape == (n * positions, rows)
    assert bool((fwd.x[:, -1] == 1).all())
    delta = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    (grad,) = torch.autograd.grad(ref, h, delta)
    back = layer.backward(delta, fwd)
    assert back.shape == h.shape
    torch.testing.assert_close(back, grad)
    # The update matrix pairs each read (sample, position) with its output error.
    dm = layer.delta_matrix(delta)
    assert dm.shape == (n * positions, out_channels)
    second = delta[1, :, 0, 1] if ref.shape[3] > 1 else delta[1, :, 1, 0]  # sample 1, position 1
    torch.testing.assert_close(dm[positions + 1], second)
    # Weight gradient of the unrolled form equals the conv weight gradient (weight sharing).
    weight_req = weight.clone().requires_grad_(True)
    bias_req = w[-1].clone().requires_grad_(True)
    ref2 = layer.gain * F.conv2d(h.detach(), weight_req, bias_req, stride=stride)
    gw, gb = torch.autograd.grad(ref2, (weight_req, bias_req), delta)
    unrolled = layer.gain * fwd.x.T @ dm
    torch.testing.assert_close(unrolled[:-1].T.reshape(weight.shape), gw)
    torch.testing.assert_close(unrolled[-1], gb)


def test_layer_shape_checks() -> None:
    with pytest.raises(ValueError, match="needs a 11x3 array"):
        Dense(10, 3, float_store(10, 3), 1.0)
    with pytest.raises(ValueError, match="larger than its 8x8 input"):
        Conv2d((1, 8, 8), 2, 9, 1, float_store(82, 2), 1.0)
    with pytest.raises(ValueError, match="conv needs a 19x4 array"):
        Conv2d((2, 8, 8), 4, 3, 1, float_store(18, 4), 1.0)


# -- stores -----------------------------------------------------------------------------


def test_crossbar_store_reads_in_weight_units() -> None:
    xbar = SimulatedCrossbar(6, 3, "ideal", seed=2, init="mid", init_spread=0.8)
    store = CrossbarStore(xbar)
    w = store.weights()
    g_min, g_max = xbar.g_bounds
    cond = xbar.conductances()
    torch.testing.assert_close(w, (cond[0] - cond[1]) / (g_max - g_min))
    assert float(w.abs().max()) > 0.05  # the spread gives nonzero weights
    g = seeded(5)
    x = torch.rand(4, 6, generator=g) * 3  # analog inputs, scaled to the read voltage
    torch.testing.assert_close(store.forward(x), x @ w, rtol=1e-4, atol=1e-6)
    d = torch.randn(4, 3, generator=g)
    torch.testing.assert_close(store.backward(d), d @ w.T, rtol=1e-4, atol=1e-6)
    reads = xbar.counters.vector_reads
    assert torch.equal(store.forward(torch.zeros(2, 6)), torch.zeros(2, 3))
    assert xbar.counters.vector_reads == reads, "an all-zero input needs no read"


def test_stores_refuse_the_other_kind_of_update() -> None:
    fs = float_store(3, 2)
    with pytest.raises(TypeError, match="cannot be pulsed"):
        fs.pulse(torch.zeros(3, 2, dtype=torch.int64))
    cs = CrossbarStore(SimulatedCrossbar(3, 2, "ideal"))
    with pytest.raises(TypeError, match="only takes pulses"):
        cs.add(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="expected a matrix"):
        FloatStore(torch.zeros(3))
    before = fs.weights()
    fs.add(torch.ones(3, 2))
    torch.testing.assert_close(fs.weights(), before + 1)


def test_random_float_weights_law() -> None:
    w = random_float_weights(200, 300, seeded(6))
    assert w.shape == (200, 300)
    assert float(w.min()) >= -1 and float(w.max()) <= 1
    # Difference of two U(0, 1): mean 0, variance 1/6.
    assert abs(float(w.mean())) < 0.01
    assert float(w.var()) == pytest.approx(1 / 6, rel=0.03)


# -- networks -----------------------------------------------------------------------------


class StoreLog:
    """A store factory that remembers what it was asked for."""

    def __init__(self, dtype: torch.dtype = torch.float32) -> None:
        self.requests: list[tuple[int, int, int]] = []
        self.gen = seeded(7)
        self.dtype = dtype

    def __call__(self, rows: int, cols: int, index: int) -> WeightStore:
        self.requests.append((rows, cols, index))
        return FloatStore(random_float_weights(rows, cols, self.gen).to(self.dtype))


def test_build_mlp_shapes() -> None:
    log = StoreLog()
    net = build_network(parse_layers("32,16"), (1, 8, 8), 10, log, gain_scale=4.0)
    assert [type(layer) for layer in net.layers] == [Dense, Dense, Dense]
    assert log.requests == [(65, 32, 0), (33, 16, 1), (17, 10, 2)]
    assert [layer.output_shape for layer in net.layers] == [(32,), (16,), (10,)]
    assert [s.rows for s in net.stores()] == [65, 33, 17]
    assert net.describe().splitlines() == ["dense 64->32", "dense 32->16", "dense 16->10"]
    assert net.predict(torch.rand(3, 1, 8, 8), "deterministic", 1, seeded()).shape == (3, 10)


def test_build_cnn_shapes() -> None:
    log = StoreLog()
    net = build_network(parse_layers("c4k3s1,c8k3s2,16"), (1, 8, 8), 10, log, gain_scale=4.0)
    assert [type(layer) for layer in net.layers] == [Conv2d, Conv2d, Dense, Dense]
    assert log.requests == [(10, 4, 0), (37, 8, 1), (33, 16, 2), (17, 10, 3)]
    assert [layer.output_shape for layer in net.layers] == [(4, 6, 6), (8, 2, 2), (16,), (10,)]
    assert net.layers[0].describe() == "conv 1x8x8 k3 s1 -> 4x6x6"
    assert net.predict(torch.rand(5, 1, 8, 8), "deterministic", 1, seeded()).shape == (5, 10)


def test_build_refuses_conv_on_flat_input_and_too_large_kernels() -> None:
    with pytest.raises(ValueError, match="needs image input"):
        build_network(parse_layers("c4k3"), (64,), 10, StoreLog(), 4.0)
    with pytest.raises(ValueError, match="kernel 9 is larger"):
        build_network(parse_layers("c4k9"), (1, 8, 8), 10, StoreLog(), 4.0)
    with pytest.raises(ValueError, match="kernel 5 is larger than its 3x3"):
        build_network(parse_layers("c4k3s2,c4k5"), (1, 8, 8), 10, StoreLog(), 4.0)


def _net(spec: str = "12", seed: int = 0) -> Network:
    log = StoreLog(torch.float64)
    log.gen = seeded(seed)
    return build_network(parse_layers(spec), (1, 4, 4), 5, log, gain_scale=4.0)


def test_predict_deterministic_is_the_sigmoid_pass() -> None:
    net = _net()
    x = torch.rand(9, 1, 4, 4, generator=seeded(8), dtype=torch.float64)
    p = net.predict(x, "deterministic", 10, seeded(1))
    assert p.shape == (9, 5)
    assert bool(((p >= 0) & (p <= 1)).all())
    assert torch.equal(p, net.predict(x, "deterministic", 10, seeded(2)))
    h = x
    for layer in net.layers:
        h = torch.sigmoid(layer.forward(h).a)
    torch.testing.assert_close(p, h)


def test_predict_stochastic_is_random_bounded_and_seeded() -> None:
    net = _net()
    x = torch.rand(9, 1, 4, 4, generator=seeded(9), dtype=torch.float64)
    a = net.predict(x, "stochastic", 5, seeded(1))
    b = net.predict(x, "stochastic", 5, seeded(1))
    c = net.predict(x, "stochastic", 5, seeded(2))
    assert a.shape == (9, 5)
    assert bool(((a >= 0) & (a <= 1)).all())
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.allclose(a, net.predict(x, "deterministic", 5, seeded(1)))


def test_predict_stochastic_without_hidden_layers_on_binary_input_is_exact() -> None:
    """Binary inputs sample to themselves and no hidden layer is sampled: no randomness left."""
    net = _net("")
    x = (torch.rand(9, 1, 4, 4, generator=seeded(10)) < 0.5).double()
    stochastic = net.predict(x, "stochastic", 3, seeded(3))
    torch.testing.assert_close(stochastic, net.predict(x, "deterministic", 1, seeded(3)))


def test_predict_refuses_bad_mode_and_samples() -> None:
    net = _net()
    x = torch.rand(2, 1, 4, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="inference mode 'bogus'"):
        net.predict(x, "bogus", 1, seeded())
    with pytest.raises(ValueError, match="samples = 0"):
        net.predict(x, "stochastic", 0, seeded())


def test_dense_layer_on_ideal_crossbar_matches_float_layer() -> None:
    """The same weights on a noise-free crossbar and in a float store give the same layer."""
    xbar = SimulatedCrossbar(17, 4, "ideal", seed=11, init="mid", init_spread=0.6)
    cstore = CrossbarStore(xbar)
    fstore = FloatStore(cstore.weights())
    h = torch.rand(6, 16, generator=seeded(12))
    a_dev = Dense(16, 4, cstore, 4.0).forward(h)
    a_flt = Dense(16, 4, fstore, 4.0).forward(h)
    torch.testing.assert_close(a_dev.a, a_flt.a, rtol=1e-4, atol=1e-6)
    delta = torch.randn(6, 4, generator=seeded(13))
    torch.testing.assert_close(
        Dense(16, 4, cstore, 4.0).backward(delta, a_dev), Dense(16, 4, fstore, 4.0).backward(delta, a_flt),
        rtol=1e-4, atol=1e-6,
    )
