"""One place that turns a backend description into crossbars.

A :class:`Backend` says what holds the weights: the simulator (preset, scheme, one seed
per layer, initial spread) or a bench (wiring file, limits file, SMU resource override,
VISA library, nominal preset, scheme). :func:`open_crossbars` checks the whole request
(shapes against the wiring's arrays, the files' contents) before it opens an instrument or
allocates an array, then gives one crossbar per ``(rows, cols)``.

The bench's files are parsed by :func:`check_bench_files`, which keeps the parsed result
per (path, modification time, size, resource): a config check at start-up and the
factory later in the same run share one parse of each file.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .interface import Crossbar

if TYPE_CHECKING:
    from .hil.settings import HilSettings
    from .hil.wiring import Wiring

__all__ = ["Backend", "BenchFiles", "check_bench_files", "check_shapes", "open_crossbars"]


@dataclass(frozen=True)
class BenchFiles:
    """A bench's parsed wiring and limits."""

    wiring: Wiring
    settings: HilSettings


_CACHE: dict[tuple[Any, ...], BenchFiles] = {}


def _stamp(path: str | Path) -> tuple[str, int, int]:
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return str(p), -1, -1  # let the loader report the missing file
    return str(p.resolve()), st.st_mtime_ns, st.st_size


def check_bench_files(wiring: str | Path, limits: str | Path, resource: str | None = None) -> BenchFiles:
    """Parse and check a bench's wiring and limits files (their one-line errors), once per
    file version: an unchanged file is not read again."""
    from .hil.settings import load_hil_settings
    from .hil.wiring import load_wiring

    key = (_stamp(wiring), _stamp(limits), resource or None)
    if key not in _CACHE:
        _CACHE[key] = BenchFiles(load_wiring(wiring, resource or None), load_hil_settings(limits))
    return _CACHE[key]


@dataclass(frozen=True)
class Backend:
    """What holds the weights, as :func:`open_crossbars` builds it."""

    kind: Literal["simulator", "instruments"]
    preset: str
    """Preset name or file (on instruments: the nominal model)."""
    scheme: str = "push_pull"
    seeds: tuple[int, ...] = ()
    """Simulator: the seed of layer ``k``'s array."""
    init_spread: float = 0.0
    """Simulator: the spread of the initial mid-range state."""
    wiring: str = ""
    limits: str = ""
    resource: str = ""
    """Instruments: SMU resource overriding the wiring file's ('' keeps it)."""
    visa_library: str = ""
    torch_device: str = "cpu"
    """Simulator: the torch device of the arrays' state (``cpu``, ``cuda``, ``cuda:N``)."""

    def with_seeds(self, seeds: tuple[int, ...], init_spread: float) -> Backend:
        """The same backend with other seeds and spread (e.g. periodic carry's low-significance arrays)."""
        return replace(self, seeds=tuple(seeds), init_spread=init_spread)


def check_shapes(backend: Backend, shapes: list[tuple[int, int]]) -> BenchFiles | None:
    """Refuse, in one line, a request that cannot be met; on instruments, return the parsed files."""
    if backend.kind == "simulator":
        if len(backend.seeds) < len(shapes):
            raise ValueError(f"the simulator backend has {len(backend.seeds)} seeds for {len(shapes)} arrays")
        return None
    if backend.kind != "instruments":
        raise ValueError(f"unknown backend kind {backend.kind!r}")
    files = check_bench_files(backend.wiring, backend.limits, backend.resource or None)
    arrays = files.wiring.arrays
    for index, (rows, cols) in enumerate(shapes):
        if index >= len(arrays) or files.wiring.shape(index) != (rows, cols):
            have = files.wiring.shape(index) if index < len(arrays) else "no array"
            raise ValueError(f"layer {index} needs a {rows}x{cols} crossbar (bias row included); "
                             f"the wiring file {backend.wiring} has {have} there")
    return files


def open_crossbars(backend: Backend, shapes: list[tuple[int, int]]) -> list[Crossbar]:
    """One crossbar per ``(rows, cols)``, array ``k`` for layer ``k``; everything is checked
    before an instrument is opened or an array allocated."""
    files = check_shapes(backend, shapes)
    if files is None:
        from .sim.simulated import SimulatedCrossbar

        return [SimulatedCrossbar(rows, cols, backend.preset, seed=backend.seeds[k],
                                  scheme=backend.scheme,  # type: ignore[arg-type]
                                  init="mid", init_spread=backend.init_spread, device=backend.torch_device)
                for k, (rows, cols) in enumerate(shapes)]
    from .hil.bench import HilBench
    from .hil.crossbar import InstrumentCrossbar
    from .sim.presets import get_preset

    model = get_preset(backend.preset)
    if not shapes:
        return []
    bench = HilBench.open(files.wiring, files.settings, backend.visa_library)
    return [InstrumentCrossbar(bench, k, model, scheme=backend.scheme)  # type: ignore[arg-type]
            for k in range(len(shapes))]
