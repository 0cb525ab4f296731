"""Keysight B2900 SMU (B2901A/B2902A/B2911A/B2912A and B versions): voltage source,
current measurement, hardware pulse trains. Commands: ``docs/hil_protocol.md``.

Round trips: a measurement is one query (current and compliance flag); a pulse train is
one settings write and three queries (error count before the trigger; output on, trigger
and ``*OPC?``; output off, DC shape, compliance flag and error count). Pulse settings that
did not change since the last train are not sent again (see :meth:`KeysightB2900.forget_pulse_settings`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, NamedTuple

from .base import (
    ComplianceError,
    Control,
    Instrument,
    InstrumentError,
    log,
    parse_bool,
    parse_count,
    parse_float,
    split_reply,
)
from .connection import safe_steps
from .validators import Validator, strict_int_range, strict_range


class B2900Model(NamedTuple):
    """Channel count and the limits the driver enforces for one model."""

    channels: int
    limits: Mapping[str, Validator]


def _limits(v_max: float, i_max: float, width: tuple[float, float], nplc: tuple[float, float],
            max_count: int = 100_000) -> Mapping[str, Validator]:
    return {
        "voltage": strict_range(-v_max, v_max, "V"),
        "compliance": strict_range(1e-9, i_max, "A"),
        "pulse_width": strict_range(*width, "s"),
        "pulse_count": strict_int_range(1, max_count),
        "nplc": strict_range(*nplc, "PLC"),
    }


# Source: Keysight B2900A/B2900B Series Precision Source/Measure Unit data sheets (max output
# 210 V; DC current 1.5 A on all models at low voltage; pulse width from 50 us; NPLC from
# 4e-4). The B2911/B2912 allow more (3 A DC, 10 us pulses): the driver keeps the common,
# conservative envelope for every model, one row per model so a model can be widened alone.
#               channels  V max  I max (DC)  pulse width (s)  NPLC
B2900_MODELS: dict[str, B2900Model] = {
    "B2901A": B2900Model(1, _limits(210.0, 1.5, (50e-6, 2.0), (4e-4, 100.0))),
    "B2902A": B2900Model(2, _limits(210.0, 1.5, (50e-6, 2.0), (4e-4, 100.0))),
    "B2911A": B2900Model(1, _limits(210.0, 1.5, (50e-6, 2.0), (4e-4, 100.0))),
    "B2912A": B2900Model(2, _limits(210.0, 1.5, (50e-6, 2.0), (4e-4, 100.0))),
    "B2901B": B2900Model(1, _limits(210.0, 1.5, (50e-6, 2.0), (4e-4, 100.0))),
    "B2902B": B2900Model(2, _limits(210.0, 1.5, (50e-6, 2.0), (4e-4, 100.0))),
    "B2911B": B2900Model(1, _limits(210.0, 1.5, (50e-6, 2.0), (4e-4, 100.0))),
    "B2912B": B2900Model(2, _limits(210.0, 1.5, (50e-6, 2.0), (4e-4, 100.0))),
}

PULSE_TIMEOUT_MARGIN_S = 2.0
"""Added to twice the train duration for the ``*OPC?`` that waits for a pulse train (s)."""

PULSE_SETTINGS = ("base", "level", "width", "delay", "count")
"""The cached pulse settings, in the order they are sent."""

# Parts of a message (split at ";") that leave the cached pulse settings alone, and the
# parts that set one of them (channel, key). Any other part (*RST, a mode change, a long
# form, a relative header...) forgets every cached setting of every channel.
_KEEPS_PULSE_SETTINGS = re.compile(
    r"^(\*(CLS|OPC|WAI)|:OUTP[12] (ON|OFF)|:SOUR[12]:FUNC:SHAP (DC|PULS)|:INIT \(@[12](,[12])?\))$")
_SETS_PULSE_SETTING = re.compile(
    r"^:(SOUR(?P<s>[12]):(?P<what>VOLT|VOLT:TRIG|PULS:WIDT|PULS:DEL)|TRIG(?P<t>[12]):COUN) \S+$")
_SETTING_KEYS = {"VOLT": "base", "VOLT:TRIG": "level", "PULS:WIDT": "width", "PULS:DEL": "delay"}


def _pulse_settings_touched(message: str) -> list[tuple[int, str]] | None:
    """The (channel, key) pulse settings a message may change; None if it may change any."""
    touched: list[tuple[int, str]] = []
    for part in (p.strip() for p in message.split(";")):
        header = part.split(" ", 1)[0]
        query = header.endswith("?") and header.upper() != "*TST?"
        if not part or query or _KEEPS_PULSE_SETTINGS.match(part):
            continue
        m = _SETS_PULSE_SETTING.match(part)
        if m is None:
            return None
        if m.group("t"):
            touched.append((int(m.group("t")), "count"))
        else:
            touched.append((int(m.group("s")), _SETTING_KEYS[m.group("what")]))
    return touched


class B2900Channel:
    """One SMU channel ``c`` (1 or 2): V source with current compliance, spot current
    measurement, hardware pulse trains. Every operation holds the instrument's lock."""

    voltage = Control("voltage", "V", get=":SOUR{c}:VOLT?", set=":SOUR{c}:VOLT {value}")
    compliance = Control("current compliance", "A", get=":SENS{c}:CURR:PROT?",
                         set=":SENS{c}:CURR:PROT {value}")
    nplc = Control("integration time", "PLC", get=":SENS{c}:CURR:NPLC?", set=":SENS{c}:CURR:NPLC {value}")
    pulse_width = Control("pulse width", "s", get=":SOUR{c}:PULS:WIDT?", set=":SOUR{c}:PULS:WIDT {value}")
    pulse_level = Control("pulse level", "V", set=":SOUR{c}:VOLT:TRIG {value}", key="voltage")
    pulse_base = Control("pulse base level", "V", set=":SOUR{c}:VOLT {value}", key="voltage")
    pulse_count = Control("pulse count", "", set=":TRIG{c}:COUN {value}")

    def __init__(self, instrument: KeysightB2900, number: int) -> None:
        self.instrument = instrument
        self.number = number
        self.cmd_fields = {"c": number}
        self.limits = instrument.limits

    def __repr__(self) -> str:
        return f"B2900Channel({self.instrument.name!r}, {self.number})"

    def _write(self, template: str) -> None:
        self.instrument.write(template.format(c=self.number))

    def configure(self, compliance_a: float, nplc: float | None = None) -> None:
        """Voltage source, DC shape, current compliance ``compliance_a`` (A), and the
        integration time ``nplc`` (power-line cycles) if given."""
        inst = self.instrument
        with inst.lock:
            a = type(self).compliance.validate(self, compliance_a)
            n = None if nplc is None else type(self).nplc.validate(self, nplc)
            self._write(":SOUR{c}:FUNC:MODE VOLT")
            self._write(":SOUR{c}:FUNC:SHAP DC")
            self.compliance = a
            if n is not None:
                self.nplc = n
            inst.check_errors()

    def set_voltage(self, v: float) -> None:
        """DC source level ``v`` (V)."""
        with self.instrument.lock:
            self.voltage = v
            self.instrument.check_errors()

    def output(self, on: bool) -> None:
        """Output relay on or off."""
        if not isinstance(on, bool):
            raise TypeError(f"output(on) takes a bool, got {on!r}")
        with self.instrument.lock:
            self._write(":OUTP{c} ON" if on else ":OUTP{c} OFF")
            self.instrument.check_errors()

    def is_on(self) -> bool:
        """Whether the output relay is on."""
        cmd = f":OUTP{self.number}?"
        return parse_bool(self.instrument.query(cmd, retry=self.instrument.read_retry), cmd)

    def tripped(self) -> bool:
        """Whether the current compliance was reached in the last source/measure action."""
        cmd = f":SENS{self.number}:CURR:PROT:TRIP?"
        return parse_bool(self.instrument.query(cmd, retry=self.instrument.read_retry), cmd)

    def _compliance(self, what: str, command: str) -> ComplianceError:
        self.instrument.forget_pulse_settings(self.number)
        return ComplianceError(None, f"channel {self.number}: current compliance reached during {what}",
                               command, instrument=self.instrument.name)

    def measure_current(self) -> float:
        """Spot current measurement (A) and the compliance flag in ONE query,
        ``:MEAS:CURR? (@c);:SENS{c}:CURR:PROT:TRIP?`` (reply ``<a>;<0|1>``; never retried);
        ComplianceError (command: that message) if the compliance was reached."""
        c = self.number
        cmd = f":MEAS:CURR? (@{c});:SENS{c}:CURR:PROT:TRIP?"
        with self.instrument.lock:
            current, trip = split_reply(self.instrument.query(cmd), cmd, 2)
            i = parse_float(current, cmd)
            if parse_bool(trip, cmd):
                raise self._compliance(f"the measurement ({i!r} A)", cmd)
            return i

    def pulse(self, v: float, width_s: float, count: int = 1, base_v: float = 0.0) -> None:
        """``count`` hardware-timed pulses of ``v`` (V) and ``width_s`` (s) from ``base_v`` (V).

        Every value is validated before anything is sent. Then, channel ``c``:

        1. write ``:SOUR{c}:FUNC:SHAP PULS`` joined with the settings that differ from the
           last train's (base ``:SOUR{c}:VOLT``, level ``:SOUR{c}:VOLT:TRIG``, width,
           ``:SOUR{c}:PULS:DEL 0.0``, ``:TRIG{c}:COUN``; all of them the first time);
        2. query ``:SYST:ERR:COUN?``: errors are raised before anything fires;
        3. query ``:OUTP{c} ON;:INIT (@c);*OPC?`` (timeout sized from ``count * width_s``);
        4. query ``:OUTP{c} OFF;:SOUR{c}:FUNC:SHAP DC;:SENS{c}:CURR:PROT:TRIP?;:SYST:ERR:COUN?``
           (output off first: after an unparsable header the rest of a message is dropped).

        The channel ends in DC shape at ``base_v`` with the output OFF. InstrumentError if
        errors were queued (they take precedence), else ComplianceError if the compliance
        was reached. Never retried; on any failure the output is switched off, the shape
        set back to DC and the cached settings forgotten."""
        cls, inst, c = type(self), self.instrument, self.number
        with inst.lock:
            v = cls.pulse_level.validate(self, v)
            base = cls.pulse_base.validate(self, base_v)
            width = cls.pulse_width.validate(self, width_s)
            n = cls.pulse_count.validate(self, count)
            wanted = dict(zip(PULSE_SETTINGS, (
                cls.pulse_base.command(self, base), cls.pulse_level.command(self, v),
                cls.pulse_width.command(self, width), f":SOUR{c}:PULS:DEL 0.0",
                cls.pulse_count.command(self, n)), strict=True))
            known = inst.cached_pulse_settings(c)
            settings = ";".join([f":SOUR{c}:FUNC:SHAP PULS",
                                 *(cmd for key, cmd in wanted.items() if known.get(key) != cmd)])
            fire = f":OUTP{c} ON;:INIT (@{c});*OPC?"
            end = f":OUTP{c} OFF;:SOUR{c}:FUNC:SHAP DC;:SENS{c}:CURR:PROT:TRIP?;{inst.error_count_query}"
            try:
                inst.write(settings)
                inst.raise_counted_errors(inst.read_error_count())
                inst.remember_pulse_settings(c, wanted)
                reply = inst.query(fire, timeout_s=PULSE_TIMEOUT_MARGIN_S + 2.0 * n * (width + 1e-3))
                inst.check_opc_reply(reply, fire)
                trip, errors = split_reply(inst.query(end), end, 2)
                tripped, queued = parse_bool(trip, end), parse_count(errors, end)
            except BaseException:
                inst.forget_pulse_settings(c)
                self._recover()
                raise
            what = f"a train of {n} pulse(s) of {v!r} V"
            if queued:
                inst.raise_counted_errors(queued, f" (and the current compliance was reached during {what})"
                                          if tripped else "")
            if tripped:
                raise self._compliance(what, fire)

    def _recover(self) -> None:
        """After a failed pulse: output off, DC shape (one message each), errors ignored."""
        for cmd in (":OUTP{c} OFF", ":SOUR{c}:FUNC:SHAP DC"):
            try:
                self._write(cmd)
            except Exception:  # noqa: BLE001 - the original error matters more
                pass

    def shutdown_steps(self) -> list[tuple[str, Callable[[], None]]]:
        """Output off, DC shape, 0 V (each step on its own, for :meth:`KeysightB2900.shutdown`)."""
        steps = (("output off", ":OUTP{c} OFF"), ("DC shape", ":SOUR{c}:FUNC:SHAP DC"),
                 ("0 V", ":SOUR{c}:VOLT 0.0"))
        return [(f"{what} ch{self.number}", partial(self._write, cmd)) for what, cmd in steps]

    def shutdown(self) -> None:
        """Output off, 0 V (idempotent; failures logged in one line, not raised)."""
        inst = self.instrument
        with inst.lock:
            inst.forget_pulse_settings(self.number)
            safe_steps(f"{type(inst).__name__} {inst.name} channel {self.number}", self.shutdown_steps(), log)


class KeysightB2900(Instrument):
    """A Keysight B2900 SMU. The model (``*IDN?``) sets the channel count and limits
    (:data:`B2900_MODELS`); other models are refused."""

    model: str
    channels: int
    cache_pulse_settings = True
    """Skip pulse settings that did not change since the last train (False: send all)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._pulse_settings: dict[int, dict[str, str]] = {}
        super().__init__(*args, **kwargs)

    def _connect(self) -> None:
        idn = self.identity()
        model = re.sub(r"\s+", "", idn.model).upper()
        spec = B2900_MODELS.get(model)
        if spec is None:
            raise InstrumentError(None, f"unsupported model {idn.model!r} ({idn.raw!r}); this driver "
                                  f"knows {', '.join(B2900_MODELS)}", "*IDN?", instrument=self.name)
        self.model, self.channels, self.limits = model, spec.channels, spec.limits
        self._channels: dict[int, B2900Channel] = {}

    def channel(self, n: int) -> B2900Channel:
        """Channel ``n`` (1, or 1-2 on two-channel models)."""
        if isinstance(n, bool) or n not in range(1, self.channels + 1):
            raise ValueError(f"channel = {n!r} refused: the {self.model} has {self.channels} channel(s), "
                             f"allowed {list(range(1, self.channels + 1))}")
        if n not in self._channels:
            self._channels[n] = B2900Channel(self, n)
        return self._channels[n]

    # -- cached pulse settings ------------------------------------------------------------
    def cached_pulse_settings(self, channel: int) -> dict[str, str]:
        """The pulse settings of ``channel`` known to be in the instrument (key -> the
        command that set it; keys from :data:`PULSE_SETTINGS`); empty when unknown."""
        return dict(self._pulse_settings.get(channel, {}))

    def remember_pulse_settings(self, channel: int, commands: Mapping[str, str]) -> None:
        """Record settings the instrument accepted (no-op unless :attr:`cache_pulse_settings`)."""
        if self.cache_pulse_settings:
            self._pulse_settings[channel] = dict(commands)

    def forget_pulse_settings(self, channel: int | None = None) -> None:
        """Forget the cached pulse settings of ``channel`` (None: every channel), so the
        next pulse sends all of them. Done on reset, shutdown, any error or timeout, and
        for any message that may change them (only the driver's messages are seen:
        commands sent on ``resource`` directly or from the front panel are not)."""
        if channel is None:
            self._pulse_settings.clear()
        else:
            self._pulse_settings.pop(channel, None)

    def _note_message(self, message: str) -> None:
        touched = _pulse_settings_touched(message)
        if touched is None:
            self.forget_pulse_settings()
            return
        for channel, key in touched:
            self._pulse_settings.get(channel, {}).pop(key, None)

    def write(self, command: str, *, timeout_s: float | None = None) -> None:
        with self.lock:
            self._note_message(command)
            try:
                super().write(command, timeout_s=timeout_s)
            except BaseException:
                self.forget_pulse_settings()
                raise

    def _query(self, command: str, retry: int = 0, timeout_s: float | None = None) -> str:
        with self.lock:
            self._note_message(command)
            try:
                return super()._query(command, retry, timeout_s)
            except BaseException:
                self.forget_pulse_settings()
                raise

    def check_errors(self) -> None:
        try:
            super().check_errors()
        except BaseException:
            self.forget_pulse_settings()
            raise

    def raise_counted_errors(self, count: int, note: str = "") -> None:
        if count > 0:
            self.forget_pulse_settings()
        super().raise_counted_errors(count, note)

    def reset(self) -> None:
        """``*RST``, ``*CLS``, wait for completion; the cached pulse settings are forgotten."""
        self.forget_pulse_settings()
        super().reset()

    def shutdown(self, *, raise_errors: bool = False) -> None:
        self.forget_pulse_settings()
        super().shutdown(raise_errors=raise_errors)

    def _shutdown_steps(self) -> list[tuple[str, Callable[[], None]]]:
        steps: list[tuple[str, Callable[[], None]]] = []
        for n in range(1, self.channels + 1):
            steps += self.channel(n).shutdown_steps()
        return steps
