"""The emulated arrays on disk: a restarted emulator continues the same physical devices.

A state file (``.npz``, numpy's zip of arrays, no pickles) holds per array of the wiring
everything that makes its devices these devices (:meth:`SimulatedCrossbar.state_dict`):
conductances ``g`` (S) and programming times ``t_prog`` (s), the per-device variation
(``g_lo``/``g_hi`` in S, step sizes, nonlinearity, drift exponents), the stuck cells, the
simulated clock, the read-noise generator and the operation counters; plus a JSON
``meta`` entry (format, version, preset, array shapes and pins, device model, save time).

:class:`StateKeeper` writes it atomically (a temporary file in the same folder, then
``os.replace``): once when the emulator starts, from a background thread at most
``interval_s`` after a pulse moved a device, and once more when the emulator stops. A
``SIGKILL`` therefore loses at most the pulses of the last interval (the file on disk is
always a complete earlier state). No ``fsync``: a killed process loses nothing the kernel
holds; only a power failure of the host could.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from devices.hil.wiring import Wiring
from devices.sim.simulated import SimulatedCrossbar

FORMAT = "memristor-bsl emulator state"
VERSION = 1
SAVE_INTERVAL_S = 0.1
"""Default longest time between a pulse and the save that records it, s."""
_SCALARS = ("rows", "cols", "seed", "scheme", "time", "counters", "model")


def default_state_path(wiring_file: str | Path) -> Path:
    """``<wiring folder>/<wiring stem>.state.npz``: the state of the arrays that file describes."""
    p = Path(wiring_file)
    return p.with_name(p.stem + ".state.npz")


def layout(wiring: Wiring) -> list[dict[str, Any]]:
    """What a state file must match: per array its shape and pins."""
    return [{"rows": a.rows, "cols": a.cols, "word": list(a.word_line_pins), "plus": list(a.plus_pins),
             "minus": list(a.minus_pins)} for a in wiring.arrays]


def _shapes(arrays: list[dict[str, Any]]) -> str:
    return ", ".join(f"{a['rows']}x{a['cols']}" for a in arrays) or "no arrays"


def save_state(path: str | Path, wiring: Wiring, arrays: list[SimulatedCrossbar], preset: str,
               lock: Any = None) -> None:
    """Write the arrays' state to ``path`` atomically (``lock``, if given, is held while the
    state is copied, not while it is written)."""
    path = Path(path)
    if lock is not None:
        with lock:
            states = [a.state_dict() for a in arrays]
    else:
        states = [a.state_dict() for a in arrays]
    data: dict[str, np.ndarray] = {}
    described = layout(wiring)
    for k, (state, entry) in enumerate(zip(states, described, strict=True)):
        entry.update({name: state[name] for name in _SCALARS})
        data[f"a{k}.noise_rng"] = state["noise_rng"].numpy()
        for name, value in state.items():
            if isinstance(value, torch.Tensor) and name != "noise_rng":
                data[f"a{k}.{name}"] = value.detach().cpu().numpy()
    meta = {"format": FORMAT, "version": VERSION, "preset": preset, "saved": time.time(), "arrays": described}
    data["meta"] = np.array(json.dumps(meta))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **data)  # type: ignore[arg-type]  # (numpy stubs: allow_pickle among **kwds)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_state(path: str | Path, wiring: Wiring, arrays: list[SimulatedCrossbar], preset: str) -> str:
    """Put the devices saved in ``path`` into ``arrays`` (built from ``wiring``); return a
    one-line note. ValueError (nothing changed) for a file of another wiring or model."""
    path = Path(path)
    hint = "give another --state file, or --fresh to discard it and start from seeded devices"
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {name: npz[name] for name in npz.files}
        meta = json.loads(str(data["meta"]))
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"state file {path} cannot be read ({type(exc).__name__}: {exc}); {hint}") from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(f"state file {path} is not a version-{VERSION} {FORMAT} file; {hint}")
    saved, wanted = meta["arrays"], layout(wiring)
    keys = ("rows", "cols", "word", "plus", "minus")
    if [{k: a[k] for k in keys} for a in saved] != wanted:
        what = "arrays" if _shapes(saved) != _shapes(wanted) else "arrays of the same shapes on other pins"
        raise ValueError(f"state file {path} holds {_shapes(saved)}, written for another wiring: this wiring "
                         f"has {what} ({_shapes(wanted)}); {hint}")
    states = []
    for k, entry in enumerate(saved):
        state: dict[str, Any] = {name: entry[name] for name in _SCALARS}
        prefix = f"a{k}."
        for name, value in data.items():
            if name.startswith(prefix):
                state[name[len(prefix):]] = torch.from_numpy(np.array(value))
        states.append(state)
    backup = [a.state_dict() for a in arrays]
    try:
        for array, state in zip(arrays, states, strict=True):
            array.load_state_dict(state)
    except (ValueError, KeyError) as exc:
        for array, state in zip(arrays, backup, strict=True):
            array.load_state_dict(state)
        raise ValueError(f"state file {path} (written with preset {meta.get('preset')!r}) does not fit "
                         f"these devices (--preset {preset}): {exc}; {hint}") from None
    pulses = sum(s["counters"]["set_pulses"] + s["counters"]["reset_pulses"] for s in states)
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(meta["saved"]))
    return (f"state: reloaded {path} ({_shapes(saved)}, preset {meta.get('preset')!r}, {pulses} device "
            f"pulses so far, saved {when}): the devices continue where they were")


class StateKeeper:
    """Saves a bench's arrays to ``path`` after pulses (at most every ``interval_s``, s) and
    on :meth:`stop`. ``timings`` holds the duration of every save, s."""

    def __init__(self, bench: Any, path: str | Path, preset: str,
                 interval_s: float = SAVE_INTERVAL_S) -> None:
        if not interval_s > 0:
            raise ValueError(f"state save interval {interval_s!r} s: must be > 0")
        self.bench, self.path, self.preset, self.interval_s = bench, Path(path), preset, float(interval_s)
        self.timings: list[float] = []
        self.error: BaseException | None = None
        self._saved = -1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="emulator-state", daemon=True)

    def save(self) -> None:
        """Save now if a device moved since the last save (raises what writing raised)."""
        version = self.bench.version
        if version == self._saved:
            return
        t0 = time.perf_counter()
        save_state(self.path, self.bench.wiring, self.bench.arrays, self.preset, self.bench.lock)
        self.timings.append(time.perf_counter() - t0)
        self._saved = version

    def start(self) -> None:
        """First save (an unwritable file is refused at once, OSError), then the thread."""
        try:
            self.save()
        except OSError as exc:
            raise OSError(f"state file {self.path} cannot be written ({exc.strerror or exc}): choose "
                          "another with --state FILE, or keep none with --no-state") from exc
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, then save what is left. Idempotent."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.save()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.save()
            except Exception as exc:  # noqa: BLE001 - keep serving; reported by the emulator
                self.error = exc

    def summary(self) -> str:
        """``state saved to F (n saves, median x ms)``."""
        t = sorted(self.timings)
        median = f", median {1e3 * t[len(t) // 2]:.2f} ms" if t else ""
        return f"state saved to {self.path} ({len(t)} saves{median})"
