"""The one crossbar factory (devices.open_crossbars): bench files parsed once per run,
the whole request checked before an instrument is opened or an array allocated."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

import devices.hil.crossbar as crossbar_module
import devices.hil.settings as settings_module
import devices.hil.wiring as wiring_module
from bsl.backend import backend_for, build_model, layer_shapes, make_stores
from bsl.config import TrainConfig
from bsl.seeds import Seeds
from devices import Backend, HilBench, SimulatedCrossbar, check_bench_files, open_crossbars

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "hil"


@pytest.fixture
def bench_files(tmp_path: Path) -> tuple[Path, Path]:
    """Fresh copies of the example wiring and limits (paths no earlier parse has seen)."""
    for name in ("wiring.toml", "limits.toml"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    return tmp_path / "wiring.toml", tmp_path / "limits.toml"


def _visa(wiring: Path, limits: Path, **kw: Any) -> TrainConfig:
    return TrainConfig(dataset="digits4", layers=kw.pop("layers", "8"), device="visa", wiring=str(wiring),
                       limits=str(limits), preset="rram", inference="stochastic", **kw)


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    calls = {"wiring": 0, "limits": 0}
    load_wiring, load_settings = wiring_module.load_wiring, settings_module.load_hil_settings

    def wiring(*a: Any, **k: Any) -> Any:
        calls["wiring"] += 1
        return load_wiring(*a, **k)

    def limits(*a: Any, **k: Any) -> Any:
        calls["limits"] += 1
        return load_settings(*a, **k)

    monkeypatch.setattr(wiring_module, "load_wiring", wiring)
    monkeypatch.setattr(settings_module, "load_hil_settings", limits)
    return calls


def _no_bench(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*a: Any, **k: Any) -> Any:
        raise AssertionError("the bench was opened")

    monkeypatch.setattr(HilBench, "open", staticmethod(refuse))


def test_bench_files_parsed_once_per_run(bench_files: tuple[Path, Path],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_reads(monkeypatch)
    config = _visa(*bench_files)  # the config check parses both files
    assert calls == {"wiring": 1, "limits": 1}
    opened: list[tuple[Any, ...]] = []

    def fake_open(*a: Any) -> str:
        opened.append(a)
        return "bench"

    monkeypatch.setattr(HilBench, "open", staticmethod(fake_open))
    monkeypatch.setattr(crossbar_module, "InstrumentCrossbar", lambda bench, k, model, scheme: (bench, k))
    shapes = layer_shapes(config, (16,), 4)
    assert shapes == [(17, 8), (9, 4)]
    xbars = open_crossbars(backend_for(config, len(shapes)), shapes)  # the factory reuses the parse
    assert calls == {"wiring": 1, "limits": 1} and len(opened) == 1
    assert xbars == [("bench", 0), ("bench", 1)]  # type: ignore[comparison-overlap]
    bench_files[0].write_text(bench_files[0].read_text() + "\n# edited\n")  # a changed file is read again
    check_bench_files(*bench_files)
    assert calls["wiring"] == 2


def test_wiring_error_at_config_time(bench_files: tuple[Path, Path]) -> None:
    wiring, limits = bench_files
    wiring.write_text(wiring.read_text() + "\nbroken = [\n")
    with pytest.raises(ValueError, match="wiring"):
        _visa(wiring, limits)


def test_shapes_refused_before_the_bench_opens(bench_files: tuple[Path, Path],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _no_bench(monkeypatch)
    config = _visa(*bench_files, layers="6")  # the wiring has 17x8 then 9x4
    with pytest.raises(ValueError, match="layer 0 needs a 17x6 crossbar.*has \\(17, 8\\)"):
        build_model(config, True, (16,), 4)
    backend = Backend("instruments", "rram", wiring=str(bench_files[0]), limits=str(bench_files[1]))
    with pytest.raises(ValueError, match="layer 2 needs a 3x3 crossbar.*no array"):
        open_crossbars(backend, [(17, 8), (9, 4), (3, 3)])


def test_simulator_backend_matches_the_seed_rule() -> None:
    config = TrainConfig(dataset="digits4", layers="8", carry_period=5, carry_significance=4.0)
    stores = make_stores(config, True, layer_shapes(config, (16,), 4))
    seeds = Seeds(config.seed)
    for i, store in enumerate(stores):
        rows, cols = store.rows, store.cols
        msb = SimulatedCrossbar(rows, cols, config.preset, seed=seeds.devices(i), scheme=config.scheme,
                                init="mid", init_spread=config.init_spread)
        lsb = SimulatedCrossbar(rows, cols, config.preset, seed=seeds.carry_lsb(i), scheme=config.scheme,
                                init="mid", init_spread=0.0)
        assert torch.equal(store.msb.crossbar.conductances(), msb.conductances())  # type: ignore[attr-defined]
        assert torch.equal(store.lsb.crossbar.conductances(), lsb.conductances())  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="1 seeds for 2 arrays"):
        open_crossbars(Backend("simulator", "rram", seeds=(1,)), [(3, 2), (3, 2)])
