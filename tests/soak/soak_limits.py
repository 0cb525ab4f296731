"""Limits soak: random reads, pulses and program-and-verify requests against the emulated
bench, about a third of them beyond the limits file (voltages above ``max_voltage_v``,
pulse counts above ``max_pulses_per_cell``, widths above ``max_pulse_width_s``, NaN and
infinities), some made to fail midway by a reply that never comes.

Checked after every operation, from the emulator's log of the commands its instruments
actually received (not from what the host side believes it sent):

* no request beyond the limits reaches an instrument: no programmed or applied voltage,
  pulse width or pulse count beyond the limits, in the commands or in the bench state;
* every request beyond the limits is refused with a one-line ``ValueError`` before any
  command of it is sent;
* the bench ends in its safe state (both outputs off, every crosspoint open), refused or
  not, including operations that failed midway.

Runs in-process (``inprocess_bench.py``: the real drivers, no TCP). Full soak::

    python tests/soak/soak_limits.py            # 10,000 operations -> bench/results/soak_limits.json
"""

from __future__ import annotations

import argparse
import math
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for _p in (HERE, HERE.parent):  # run as a script: the test helpers next to this file
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import torch  # noqa: E402
from inprocess_bench import InProcessBench, open_inprocess_bench, small_bench_wiring  # noqa: E402

from devices.hil.settings import HilSettings, Limits, Operation  # noqa: E402

RESULTS = HERE.parent.parent / "bench" / "results"

LIMITS = Limits(max_voltage_v=2.0, compliance_a=2e-3, max_pulse_width_s=1e-3, max_pulses_per_cell=16)
OPERATION = Operation(read_voltage_v=0.2, set_voltage_v=1.2, set_width_s=1e-4, reset_voltage_v=1.2,
                      reset_width_s=1e-4)

_NUMBER = r"([-+]?(?:nan|inf|[0-9.]+(?:[eE][-+]?[0-9]+)?))"
_VOLT = re.compile(r":SOUR\d:VOLT(?::TRIG)?\s+" + _NUMBER, re.I)
_WIDTH = re.compile(r":SOUR\d:PULS:WIDT\s+" + _NUMBER, re.I)
_COUNT = re.compile(r":TRIG\d:COUN\s+" + _NUMBER, re.I)


@dataclass
class Op:
    kind: str
    beyond: bool
    """The request exceeds the limits file: it must be refused before anything is sent."""
    run: Callable[[], Any]
    midway: str = ""
    """Why the operation may fail after it started (a reply that never comes, a
    program-and-verify loop allowed more pulses per iteration than the limit)."""
    primitive: bool = False
    """A bench primitive: ``run`` itself checks that its refused part sent nothing."""


@dataclass
class Tally:
    operations: int = 0
    beyond_limits: int = 0
    refused: int = 0
    refused_one_line: int = 0
    refused_before_sending: int = 0
    midway_failures: int = 0
    midway_by_reason: Counter[str] = field(default_factory=Counter)
    completed: int = 0
    violations_reaching_instruments: int = 0
    unsafe_end_states: int = 0
    unexpected: list[str] = field(default_factory=list)
    by_kind: Counter[str] = field(default_factory=Counter)
    commands: int = 0
    effective_pulses: int = 0
    dc_stress: list[float] = field(default_factory=list)

    def problems(self) -> list[str]:
        out = list(self.unexpected)
        if self.violations_reaching_instruments:
            out.append(f"{self.violations_reaching_instruments} request(s) beyond the limits "
                       "reached an instrument")
        if self.unsafe_end_states:
            out.append(f"{self.unsafe_end_states} operation(s) left the bench unsafe")
        if self.refused_one_line != self.refused or self.refused_before_sending != self.refused:
            out.append("a refusal was not one line, or came after commands were sent")
        return out


class RefusedAfterSending(AssertionError):
    """A primitive refused a request after commands of it reached an instrument."""


def _violations(records: list[dict[str, Any]], lim: Limits) -> list[str]:
    """What in these emulator log records exceeds the limits (commands and bench state)."""
    bad = []
    for r in records:
        cmd = r.get("command", "")
        for pattern, top, what in ((_VOLT, lim.max_voltage_v, "V"), (_WIDTH, lim.max_pulse_width_s, "s"),
                                   (_COUNT, lim.max_pulses_per_cell, "pulses")):
            for text in pattern.findall(cmd):
                value = float(text)
                if not abs(value) <= top:
                    bad.append(f"command {cmd!r}: {value} {what}")
        for term, on in r.get("outputs", {}).items():
            if on and not abs(r["levels_v"][term]) <= lim.max_voltage_v:
                bad.append(f"{term} output on at {r['levels_v'][term]} V")
        for p in r.get("pulses", ()):
            # A "dc" pulse is a read above the devices' threshold: its width is the read's
            # duration, which no limit bounds (see dc_stress in the report), not a pulse request.
            width_ok = p["source"] == "dc" or p["width_s"] <= lim.max_pulse_width_s
            count_ok = p["count"] <= lim.max_pulses_per_cell
            if not (abs(p["peak_v"]) <= lim.max_voltage_v and width_ok and count_ok):
                bad.append(f"pulse {p}")
    return bad


def _since(log: Any, start: int) -> list[dict[str, Any]]:
    """The log records numbered ``start`` and later (read from the end: the log is long)."""
    out = []
    for r in reversed(log.records):
        if r["n"] < start:
            break
        out.append(r)
    return out[::-1]


def _dc_stress(records: list[dict[str, Any]]) -> list[float]:
    """Durations (s) of DC conditions above the devices' threshold (reads that program)."""
    return [p["width_s"] for r in records for p in r.get("pulses", ())
            if p["source"] == "dc" and p["kind"] != "none"]


def _safe(b: InProcessBench) -> bool:
    """Outputs off and every crosspoint open, in the emulator itself and in its log."""
    bench = b.emulator.bench
    return (b.emulator.log.final_state_safe() and not bench.closed
            and not any(t.output for t in bench.terminals.values()))


class Generator:
    """Seeded random operations on the bench: a fraction ``beyond`` of those that can exceed
    a limit do (0.38 of 7 in 8 kinds: a third of all), ``faults`` of the others lose a reply."""

    def __init__(self, b: InProcessBench, seed: int, beyond: float = 0.38, faults: float = 0.05) -> None:
        self.b, self.rng = b, random.Random(seed)
        self.gen = torch.Generator().manual_seed(seed)
        self.beyond, self.faults = beyond, faults
        self.lim = b.bench.settings.limits

    # -- values ---------------------------------------------------------------------
    def _bad_voltage(self, tight: bool = False) -> float:
        """A voltage beyond the limit (``tight``: also the next float above it)."""
        r = self.rng.random()
        if r < 0.15:
            return math.nan
        if r < 0.25:
            return self.rng.choice([math.inf, -math.inf])
        # beyond the limit also in float32, the arrays' dtype (2 + 1e-9 V would be read as 2.0 V)
        v = self.lim.max_voltage_v * self.rng.choice([1.001, self.rng.uniform(1.001, 100.0)])
        return v if not tight else self.rng.choice([v, math.nextafter(self.lim.max_voltage_v, math.inf)])

    def _voltages(self, batch: int, width: int, bad: bool) -> torch.Tensor:
        level = self.rng.choice([self.b.arrays[0].v_read, self.rng.uniform(0.01, self.lim.max_voltage_v)])
        v = torch.randint(-1, 2, (batch, width), generator=self.gen).double() * level
        if self.rng.random() < 0.3:  # analog levels too (superposition reads)
            v = v * torch.rand(batch, width, generator=self.gen, dtype=torch.float64)
        if bad:
            i, j = self.rng.randrange(batch), self.rng.randrange(width)
            v[i, j] = math.copysign(1, self.rng.random() - 0.5) * self._bad_voltage()
        return v

    def _counts(self, shape: tuple[int, ...], bad: bool) -> torch.Tensor:
        top = self.lim.max_pulses_per_cell
        c = torch.randint(-top, top + 1, shape, generator=self.gen)
        c[torch.rand(shape, generator=self.gen) < 0.6] = 0
        if bad:
            index = tuple(self.rng.randrange(n) for n in shape)
            c[index] = self.rng.choice([-1, 1]) * self.rng.choice(
                [top + 1, self.rng.randint(top + 1, 50 * top), 2**31 - 1])
        return c

    # -- operations -----------------------------------------------------------------
    def next(self) -> Op:
        bad = self.rng.random() < self.beyond
        x = self.rng.choice(self.b.arrays)
        kind = self.rng.choice(["forward", "backward", "conductances", "apply_pulses", "pulse_devices",
                                "program_and_verify", "bench_pulse", "bench_measure"])
        if kind == "conductances":
            bad = False  # nothing to exceed: fixed read voltage
        batch = self.rng.randint(1, 2)
        if kind == "forward":
            v = self._voltages(batch, x.rows, bad)
            op = Op(kind, bad, lambda: x.read_forward(v))
        elif kind == "backward":
            v = self._voltages(batch, x.cols, bad)
            op = Op(kind, bad, lambda: x.read_backward(v))
        elif kind == "conductances":
            op = Op(kind, False, x.read_conductances)
        elif kind == "apply_pulses":
            c = self._counts((x.rows, x.cols), bad)
            op = Op(kind, bad, lambda: x.apply_pulses(c))
        elif kind == "pulse_devices":
            c = self._counts((2, x.rows, x.cols), bad)
            op = Op(kind, bad, lambda: x.pulse_devices(c))
        elif kind == "program_and_verify":
            op = self._program(x, bad)
        elif kind == "bench_pulse":
            op = self._bench_pulse(x, bad)
        else:
            op = self._bench_measure(x, bad)
        if not op.beyond and not op.midway and self.rng.random() < self.faults:
            self._arm_fault()
            op.midway = "a reply never came"
        return op

    def _program(self, x: Any, bad: bool) -> Op:
        g_min, g_max = x.g_bounds
        targets = g_min + (g_max - g_min) * torch.rand(2, x.rows, x.cols, generator=self.gen)
        tolerance = 2 * max(x.nominal_steps)
        per_iteration = self.rng.randint(1, self.lim.max_pulses_per_cell)
        midway = ""
        if bad:
            what = self.rng.choice(["nan", "negative", "tolerance", "per_iteration"])
            if what == "nan":
                targets[0, 0, 0] = math.nan
            elif what == "negative":
                targets[1, -1, -1] = -1e-6
            elif what == "tolerance":
                tolerance = self.rng.choice([0.0, -1e-6, math.nan])
            else:  # allowed to ask for more pulses than the limit: refused when it does, midway
                top = self.lim.max_pulses_per_cell
                per_iteration = self.rng.randint(top + 1, 10 * top)
                midway, bad = "per-iteration pulses above the limit", False
        return Op("program_and_verify", bad, lambda: x.program_and_verify(
            targets, tolerance=tolerance, max_pulses=64, max_iterations=3,
            max_pulses_per_iteration=per_iteration), midway=midway)

    def _pins(self, x: Any) -> tuple[list[int], list[int]]:
        a = x.array
        bits = [*a.plus_pins, *a.minus_pins]
        word = [self.rng.choice(a.word_line_pins)]
        return word, self.rng.sample(bits, self.rng.randint(1, len(bits)))

    def _bench_pulse(self, x: Any, bad: bool) -> Op:
        """The bench's pulse primitive with any voltage, width and count."""
        lim = self.lim
        v = self.rng.choice([1, -1]) * self.rng.uniform(0.0, lim.max_voltage_v)
        width = self.rng.uniform(1e-4, lim.max_pulse_width_s)
        count = self.rng.randint(1, lim.max_pulses_per_cell)
        if bad:
            what = self.rng.choice(["voltage", "width", "count"])
            if what == "voltage":
                v = self.rng.choice([1, -1]) * self._bad_voltage(tight=True)
            elif what == "width":
                width = self.rng.choice([math.nan, math.inf, 0.0, -1e-4,
                                         math.nextafter(lim.max_pulse_width_s, 1),
                                         lim.max_pulse_width_s * self.rng.uniform(1.0001, 1e4)])
            else:
                count = self.rng.choice([0, -3, lim.max_pulses_per_cell + 1, 10**9])
        drive, sense = self._pins(x)
        return Op("bench_pulse", bad, primitive=True,
                  run=lambda: self._primitive(drive, sense, lambda: self.b.bench.pulse(v, width, count)))

    def _bench_measure(self, x: Any, bad: bool) -> Op:
        v = self._bad_voltage(tight=True) * self.rng.choice([1, -1]) if bad else \
            self.rng.uniform(-self.lim.max_voltage_v, self.lim.max_voltage_v)
        drive, sense = self._pins(x)
        return Op("bench_measure", bad, primitive=True,
                  run=lambda: self._primitive(drive, sense, lambda: self.b.bench.measure(v)))

    def _primitive(self, drive: list[int], sense: list[int], action: Callable[[], Any]) -> Any:
        """Switch the pins, then run ``action`` inside one bench operation; a ValueError of
        ``action`` must leave the log as it was just before it."""
        bench, log = self.b.bench, self.b.emulator.log
        with bench.operation():
            bench.connect(drive, sense)
            before = len(log)
            try:
                out = action()
            except ValueError:
                if len(log) != before:
                    sent = len(log) - before
                    raise RefusedAfterSending(f"{sent} command(s) sent before the refusal") from None
                raise
            bench.idle()
        return out

    def _arm_fault(self) -> None:
        res = self.b.resources[self.rng.choice(sorted(self.b.resources))]
        res.fail_query_after(self.rng.randint(1, 12))


def run_limits_soak(operations: int, seed: int = 20261122, *, beyond: float = 0.38,
                    faults: float = 0.05, tmp: Path | None = None) -> dict[str, Any]:
    """Run ``operations`` random operations; return the tally as a dict (see module doc)."""
    with tempfile.TemporaryDirectory() as t:
        wiring = small_bench_wiring(Path(tmp or t))
    b = open_inprocess_bench(wiring, HilSettings(LIMITS, OPERATION), preset="rram", seed=seed)
    lim = LIMITS
    gen = Generator(b, seed, beyond, faults)
    tally = Tally()
    log = b.emulator.log
    t0 = time.perf_counter()
    try:
        for k in range(operations):
            op = gen.next()
            tally.operations += 1
            tally.beyond_limits += op.beyond
            tally.by_kind[op.kind + (" (beyond)" if op.beyond else "")] += 1
            start = len(log)
            error: BaseException | None = None
            try:
                op.run()
            except Exception as exc:  # noqa: BLE001 - every outcome is classified below
                error = exc
            finally:
                for res in b.resources.values():
                    res.fail_query_after(0)
            new = _since(log, start)
            bad = _violations(new, lim)
            tally.dc_stress += _dc_stress(new)
            if bad:
                tally.violations_reaching_instruments += 1
                tally.unexpected.append(f"op {k} {op.kind}: {bad[0]}")
            if not _safe(b):
                tally.unsafe_end_states += 1
                tally.unexpected.append(f"op {k} {op.kind}: bench not safe afterwards ({log.records[-1]})")
            if op.beyond:
                if isinstance(error, ValueError) and not isinstance(error, RefusedAfterSending):
                    tally.refused += 1
                    tally.refused_one_line += "\n" not in str(error) and bool(str(error))
                    tally.refused_before_sending += op.primitive or len(log) == start
                else:
                    tally.unexpected.append(f"op {k} {op.kind} beyond the limits was not refused: {error!r}")
            elif error is not None:
                if op.midway:
                    tally.midway_failures += 1
                    tally.midway_by_reason[f"{op.midway}: {type(error).__name__}"] += 1
                else:
                    tally.unexpected.append(f"op {k} {op.kind} within the limits failed: {error!r}")
            else:
                tally.completed += 1
    finally:
        b.close()
    tally.commands = len(log)
    tally.effective_pulses = log.total_pulses()
    return {
        "operations": tally.operations, "beyond_limits": tally.beyond_limits,
        "beyond_fraction": tally.beyond_limits / max(1, tally.operations),
        "refused": tally.refused, "refused_one_line": tally.refused_one_line,
        "refused_before_anything_sent": tally.refused_before_sending,
        "midway_failures": tally.midway_failures, "midway_by_reason": dict(tally.midway_by_reason),
        "completed": tally.completed,
        "violations_reaching_instruments": tally.violations_reaching_instruments,
        "unsafe_end_states": tally.unsafe_end_states,
        "max_abs_voltage_v": log.max_abs_voltage(), "max_pulse_width_s": log.max_pulse_width(),
        "instrument_commands": tally.commands, "effective_pulses": tally.effective_pulses,
        "dc_stress": {"reads_above_device_threshold": len(tally.dc_stress),
                      "longest_s": max(tally.dc_stress, default=0.0),
                      "note": "DC reads above the devices' SET/RESET threshold (allowed: below "
                              "max_voltage_v) program them for as long as the read lasts; "
                              "max_pulse_width_s bounds pulses only"},
        "by_kind": dict(sorted(tally.by_kind.items())), "limits": vars(lim),
        "problems": tally.problems()[:20], "seed": seed, "seconds": time.perf_counter() - t0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operations", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--out", type=Path, default=RESULTS / "soak_limits.json")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE.parent.parent / "bench"))
    from report import write_report

    result = run_limits_soak(args.operations, args.seed)
    write_report(args.out, result)
    print(f"{result['operations']} operations, {result['beyond_limits']} beyond the limits "
          f"({result['beyond_fraction']:.1%}), {result['violations_reaching_instruments']} reached an "
          "instrument, "
          f"{result['unsafe_end_states']} unsafe end states, {len(result['problems'])} problem(s); "
          f"report in {args.out}")
    return 0 if not result["problems"] else 1


if __name__ == "__main__":
    sys.exit(main())
