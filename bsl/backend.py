"""How a run's layers get their weights: the engine describes the backend, and
:func:`devices.open_crossbars` builds the crossbars (or float tensors, for float rules).

The layer shapes are found first (:func:`bsl.budget.layer_sizes`, without building), so
the device layer checks the whole request, e.g. every shape against the wiring file,
before it opens an instrument or allocates an array.
"""

from __future__ import annotations

import torch

from devices import Backend, open_crossbars

from .budget import layer_sizes
from .config import TrainConfig
from .network import Network, build_network, parse_layers
from .seeds import Seeds
from .stores import CarryStore, CrossbarStore, FloatStore, WeightStore, random_float_weights

__all__ = ["backend_for", "build_model", "layer_shapes", "make_stores"]


def backend_for(config: TrainConfig, n_layers: int) -> Backend:
    """The backend a config describes (seeds for ``n_layers`` simulated arrays, from :mod:`bsl.seeds`)."""
    if config.device == "visa":
        return Backend("instruments", config.preset, config.scheme, wiring=config.wiring,
                       limits=config.limits, resource=config.resource, visa_library=config.visa_library)
    seeds = Seeds(config.seed)
    return Backend("simulator", config.preset, config.scheme,
                   seeds=tuple(seeds.devices(i) for i in range(n_layers)), init_spread=config.init_spread,
                   torch_device=config.torch_device)


def layer_shapes(config: TrainConfig, input_shape: tuple[int, ...], n_classes: int) -> list[tuple[int, int]]:
    """``(rows, cols)`` of each layer's weights (bias row included), as the network will ask."""
    return [(size.rows, size.cols) for size in layer_sizes(config.layers, input_shape, n_classes)]


def make_stores(config: TrainConfig, uses_devices: bool, shapes: list[tuple[int, int]]) -> list[WeightStore]:
    """One weight store per shape: crossbars from the device layer, or float tensors."""
    if not uses_devices:
        gen = torch.Generator().manual_seed(Seeds(config.seed).weights_init)
        return [FloatStore(
            (config.init_spread * random_float_weights(rows, cols, gen)).to(config.torch_device))
                for rows, cols in shapes]
    backend = backend_for(config, len(shapes))
    main = open_crossbars(backend, shapes)
    if config.carry_period == 0:
        return [CrossbarStore(xbar) for xbar in main]
    seeds = Seeds(config.seed)
    low_seeds = tuple(seeds.carry_lsb(i) for i in range(len(shapes)))
    lsb = open_crossbars(backend.with_seeds(low_seeds, 0.0), shapes)  # programmed to mid-range, no spread
    return [CarryStore(m, low, config.carry_significance, config.carry_period)
            for m, low in zip(main, lsb, strict=True)]


def build_model(config: TrainConfig, uses_devices: bool, input_shape: tuple[int, ...],
                n_classes: int) -> Network:
    """The run's network, its weights on the configured backend."""
    stores = make_stores(config, uses_devices, layer_shapes(config, input_shape, n_classes))
    return build_network(parse_layers(config.layers), input_shape, n_classes,
                         lambda rows, cols, index: stores[index], config.gain_scale)
