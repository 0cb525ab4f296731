"""Keysight B2900 driver: against the stateful pyvisa-sim model, and byte for byte."""

from __future__ import annotations

import pytest
from pyvisa.errors import VisaIOError

from drivers import B2900Channel, ComplianceError, InstrumentError, Keithley2450, KeysightB2900
from drivers.keysight_b2900 import B2900_MODELS, PULSE_SETTINGS
from drivers.testing import ScriptedResource, sim_library, visa_timeout

B2912A = "TCPIP0::b2912a.sim::inst0::INSTR"
B2901A = "TCPIP0::b2901a.sim::inst0::INSTR"
FAULT = "TCPIP0::b2912a-fault.sim::inst0::INSTR"
IDN = "Keysight Technologies,B2912A,MY00000001,3.4.2011.5100"
MEAS1 = ":MEAS:CURR? (@1);:SENS1:CURR:PROT:TRIP?"
FIRE1 = ":OUTP1 ON;:INIT (@1);*OPC?"
END1 = ":OUTP1 OFF;:SOUR1:FUNC:SHAP DC;:SENS1:CURR:PROT:TRIP?;:SYST:ERR:COUN?"


@pytest.fixture
def lib(tmp_path) -> str:
    """A fresh simulated library (instrument state) per test."""
    return sim_library("b2900", tmp_path)


@pytest.fixture
def smu(lib):
    with KeysightB2900(B2912A, resource_manager=lib) as smu:
        yield smu


def spy(inst) -> list[str]:
    """Record every message sent to a pyvisa(-sim) resource from now on (queries too:
    pyvisa's ``query`` writes through the same method)."""
    sent: list[str] = []
    write = inst.resource.write
    inst.resource.write = lambda m: sent.append(m) or write(m)
    return sent


def sim_state(smu: KeysightB2900, c: int = 1) -> dict[str, str]:
    """The simulated channel's settings, read with raw queries (not the driver's methods)."""
    q = smu.resource.query
    return {k: q(cmd.format(c=c)).strip() for k, cmd in {
        "mode": ":SOUR{c}:FUNC:MODE?", "shape": ":SOUR{c}:FUNC:SHAP?", "volt": ":SOUR{c}:VOLT?",
        "trig": ":SOUR{c}:VOLT:TRIG?", "width": ":SOUR{c}:PULS:WIDT?", "delay": ":SOUR{c}:PULS:DEL?",
        "prot": ":SENS{c}:CURR:PROT?", "nplc": ":SENS{c}:CURR:NPLC?", "count": ":TRIG{c}:COUN?",
        "outp": ":OUTP{c}?"}.items()}


# -- identity, channels -----------------------------------------------------------------------

def test_identity_model_and_channel_count(smu, lib):
    idn = smu.identity()
    assert (idn.manufacturer, idn.model, idn.serial, idn.firmware) == (
        "Keysight Technologies", "B2912A", "MY00000001", "3.4.2011.5100")
    assert (smu.model, smu.channels) == ("B2912A", 2)
    assert isinstance(smu.channel(2), B2900Channel) and smu.channel(1) is smu.channel(1)
    with KeysightB2900(B2901A, resource_manager=lib) as one:
        assert (one.model, one.channels) == ("B2901A", 1)
        one.channel(1)
        with pytest.raises(ValueError, match=r"channel = 2 refused: the B2901A has 1 channel"):
            one.channel(2)
    for bad in (0, 3, True):
        with pytest.raises(ValueError, match="channel"):
            smu.channel(bad)


def test_other_models_are_refused(tmp_path):
    with pytest.raises(InstrumentError, match="unsupported model 'MODEL 2450'"):
        KeysightB2900("TCPIP0::k2450.sim::inst0::INSTR", resource_manager=sim_library("k2450", tmp_path))
    res = ScriptedResource({"*IDN?": "Keysight Technologies,B2985A,MY1,1.0"})
    with pytest.raises(InstrumentError, match="B2985A"):
        KeysightB2900(res)
    assert res.commands == ["*IDN?"]


def test_every_model_has_a_limit_table():
    for model, spec in B2900_MODELS.items():
        assert spec.channels == (1 if model[4] == "1" else 2)
        assert set(spec.limits) == {"voltage", "compliance", "pulse_width", "pulse_count", "nplc"}


# -- round trips through the stateful simulation ----------------------------------------------

def test_settings_round_trip(smu):
    ch = smu.channel(2)
    ch.configure(2.5e-4, nplc=0.5)
    assert (ch.compliance, ch.nplc) == (2.5e-4, 0.5)
    for v in (-2.0, 1e-05, 0.125, -210.0, 210.0, 0.0):
        ch.set_voltage(v)
        assert ch.voltage == v
    ch.output(True)
    assert ch.is_on() and not smu.channel(1).is_on()
    assert ch.measure_current() == 2e-06 and not ch.tripped()
    ch.output(False)
    assert not ch.is_on()
    state = sim_state(smu, 2)
    assert (state["mode"], state["shape"], state["outp"]) == ("VOLT", "DC", "OFF")
    assert sim_state(smu, 1)["prot"] == "+1.000000E-04"  # the other channel untouched


def test_pulse_through_the_simulation_sends_one_write_and_three_queries(smu):
    ch = smu.channel(1)
    ch.configure(1e-3)
    before = sim_state(smu, 1)
    sent = spy(smu)
    ch.pulse(-1.5, 2e-4, count=7, base_v=0.25)
    assert sent == [":SOUR1:FUNC:SHAP PULS;:SOUR1:VOLT 0.25;:SOUR1:VOLT:TRIG -1.5;:SOUR1:PULS:WIDT 0.0002;"
                    ":SOUR1:PULS:DEL 0.0;:TRIG1:COUN 7", ":SYST:ERR:COUN?", FIRE1, END1]
    sent.clear()
    ch.pulse(-1.5, 2e-4, count=7, base_v=0.25)  # same settings: only the shape is sent again
    assert sent == [":SOUR1:FUNC:SHAP PULS", ":SYST:ERR:COUN?", FIRE1, END1]
    # joined messages are answered, not modelled, by pyvisa-sim (docs in the YAML file);
    # the end state is checked on the emulator (tests/test_drivers_emulator.py)
    assert sim_state(smu, 1) == before and smu.channel(1).measure_current() == 1e-06
    smu.check_errors()


@pytest.mark.parametrize("call, parameter", [
    (lambda ch: ch.set_voltage(210.001), "voltage"),
    (lambda ch: ch.set_voltage(-250), "voltage"),
    (lambda ch: ch.configure(2.0), "current compliance"),  # the sim would take 2 A: the driver refuses
    (lambda ch: ch.configure(0.0), "current compliance"),
    (lambda ch: ch.configure(1e-3, nplc=1e-4), "integration time"),
    (lambda ch: ch.configure(1e-3, nplc=101), "integration time"),
    (lambda ch: ch.pulse(300.0, 1e-3), "pulse level"),
    (lambda ch: ch.pulse(1.0, 1e-3, base_v=-211), "pulse base level"),
    (lambda ch: ch.pulse(1.0, 10e-6), "pulse width"),
    (lambda ch: ch.pulse(1.0, 2.5), "pulse width"),
    (lambda ch: ch.pulse(1.0, 1e-3, count=0), "pulse count"),
    (lambda ch: ch.pulse(1.0, 1e-3, count=100_001), "pulse count"),
    (lambda ch: ch.pulse(float("nan"), 1e-3), "pulse level"),
])
def test_out_of_range_is_refused_before_anything_is_sent(smu, call, parameter):
    ch = smu.channel(1)
    before = sim_state(smu, 1)
    sent = spy(smu)
    with pytest.raises(ValueError, match=parameter) as e:
        call(ch)
    assert "refused" in str(e.value)
    assert sent == [] and sim_state(smu, 1) == before


def test_wrong_types_are_refused(smu):
    ch = smu.channel(1)
    with pytest.raises(TypeError):
        ch.output(1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ch.pulse(1.0, 1e-3, count=2.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ch.set_voltage("1.0")  # type: ignore[arg-type]


def test_the_simulated_instrument_reports_its_own_range_errors(smu):
    smu.write(":SOUR1:VOLT 500.0")  # bypasses the driver's validators
    with pytest.raises(InstrumentError) as e:
        smu.check_errors()
    err = e.value
    assert (err.code, err.message, err.command) == (-222, "Data out of range", ":SOUR1:VOLT 500.0")
    assert not isinstance(e.value, ComplianceError)
    smu.check_errors()


# -- the fault device -------------------------------------------------------------------------

def test_fault_device_errors_surface_with_code_and_message(lib):
    smu = KeysightB2900(FAULT, resource_manager=lib)
    ch = smu.channel(2)
    with pytest.raises(InstrumentError) as e:
        ch.set_voltage(1.0)
    assert (e.value.code, e.value.command) == (-330, ":SOUR2:VOLT 1.0")
    assert e.value.message.startswith("Self-test failed")
    sent = spy(smu)
    with pytest.raises(InstrumentError, match="Self-test failed") as e:
        ch.pulse(2.0, 1e-3, count=3)
    assert e.value.command.startswith(":SOUR2:FUNC:SHAP PULS;")  # the settings before the error
    assert sent[:2] == [e.value.command, ":SYST:ERR:COUN?"]
    assert not any("INIT" in m or "OUTP2 ON" in m for m in sent)  # nothing fires after an error
    assert sent[-2:] == [":OUTP2 OFF", ":SOUR2:FUNC:SHAP DC"]
    assert smu.cached_pulse_settings(2) == {}
    smu.shutdown()  # logs, does not raise
    with pytest.raises(InstrumentError, match="Self-test failed"):
        smu.shutdown(raise_errors=True)
    smu.disconnect()


def test_compliance_is_read_back_after_a_measurement(lib):
    with KeysightB2900(FAULT, resource_manager=lib) as smu:
        with pytest.raises(ComplianceError, match="channel 2: current compliance reached") as e:
            smu.channel(2).measure_current()
        assert isinstance(e.value, InstrumentError)
        assert e.value.command == ":MEAS:CURR? (@2);:SENS2:CURR:PROT:TRIP?"
        assert "(0.105 A)" in str(e.value)


def test_settings_reads_are_retried_measurements_are_not(lib):
    smu = KeysightB2900(FAULT, resource_manager=lib, timeout_s=0.05)
    sent = spy(smu)
    with pytest.raises(VisaIOError):
        smu.channel(1).voltage  # noqa: B018 - a read-only query: read_retry = 1
    assert sent == [":SOUR1:VOLT?"] * 2
    sent.clear()
    with pytest.raises(VisaIOError):
        smu.channel(1).measure_current()
    assert sent == [MEAS1]
    smu.disconnect()


# -- safe state -------------------------------------------------------------------------------

def test_shutdown_switches_every_output_off_and_is_idempotent(smu):
    for c in (1, 2):
        smu.channel(c).configure(1e-3)
        smu.channel(c).set_voltage(1.5)
        smu.channel(c).output(True)
    smu.write(":SOUR1:FUNC:SHAP DC")
    smu.shutdown()
    smu.shutdown()
    for c in (1, 2):
        s = sim_state(smu, c)
        assert (s["outp"], s["shape"], float(s["volt"])) == ("OFF", "DC", 0.0)
        assert not smu.channel(c).is_on()
    smu.channel(1).shutdown()
    assert sim_state(smu, 1)["outp"] == "OFF"


# -- exact commands ---------------------------------------------------------------------------

@pytest.fixture
def scripted():
    res = ScriptedResource({"*IDN?": IDN, MEAS1: "+1.234500E-05;0", ":OUTP1?": "1"})
    smu = KeysightB2900(res)
    res.log.clear()
    return smu, res


def test_channel_commands_byte_for_byte(scripted):
    smu, res = scripted
    ch = smu.channel(1)
    ch.configure(1e-4, nplc=1)
    ch.set_voltage(-2)
    ch.output(True)
    assert ch.is_on()
    assert ch.measure_current() == 1.2345e-05
    ch.output(False)
    assert res.log == [
        (":SOUR1:FUNC:MODE VOLT", None), (":SOUR1:FUNC:SHAP DC", None), (":SENS1:CURR:PROT 0.0001", None),
        (":SENS1:CURR:NPLC 1.0", None), (":SYST:ERR:NEXT?", '+0,"No error"'),
        (":SOUR1:VOLT -2.0", None), (":SYST:ERR:NEXT?", '+0,"No error"'),
        (":OUTP1 ON", None), (":SYST:ERR:NEXT?", '+0,"No error"'),
        (":OUTP1?", "1"),
        (MEAS1, "+1.234500E-05;0"),
        (":OUTP1 OFF", None), (":SYST:ERR:NEXT?", '+0,"No error"'),
    ]


def test_a_measurement_is_one_query(scripted):
    smu, res = scripted
    res.replies[":MEAS:CURR? (@2);:SENS2:CURR:PROT:TRIP?"] = "-1.234500E-05;0"
    assert smu.channel(2).measure_current() == -1.2345e-05
    assert res.log == [(":MEAS:CURR? (@2);:SENS2:CURR:PROT:TRIP?", "-1.234500E-05;0")]


def test_compliance_is_read_from_the_joined_reply(scripted):
    smu, res = scripted
    res.replies[MEAS1] = "+1.000000E-04;1"
    with pytest.raises(ComplianceError, match=r"channel 1: current compliance reached during the "
                                              r"measurement \(0.0001 A\)") as e:
        smu.channel(1).measure_current()
    assert (e.value.command, e.value.code) == (MEAS1, None)
    assert res.commands == [MEAS1]  # one round trip, never retried


@pytest.mark.parametrize("reply", ["+1.0E-06", "+1.0E-06;0;0", "+1.0E-06,+2.0E-06;0", "abc;0", "+1.0E-06;2",
                                   ""])
def test_a_malformed_measurement_reply_is_an_error(scripted, reply):
    smu, res = scripted
    res.replies[MEAS1] = reply
    with pytest.raises(InstrumentError) as e:
        smu.channel(1).measure_current()
    assert e.value.command == MEAS1 and not isinstance(e.value, ComplianceError)


def test_pulse_train_byte_for_byte(scripted):
    smu, res = scripted
    timeouts = []
    res.replies[FIRE1] = lambda _: timeouts.append(res.timeout) or "1"
    smu.channel(1).pulse(1.5, 1e-05 * 10, count=1000)
    assert res.log == [
        (":SOUR1:FUNC:SHAP PULS;:SOUR1:VOLT 0.0;:SOUR1:VOLT:TRIG 1.5;:SOUR1:PULS:WIDT 0.0001;"
         ":SOUR1:PULS:DEL 0.0;:TRIG1:COUN 1000", None),
        (":SYST:ERR:COUN?", "+0"),  # before the trigger: nothing fires after a rejected setting
        (FIRE1, "1"),
        (END1, "0;+0"),
    ]
    assert len(res.queries) == 3  # round trips (the settings write does not wait)
    assert timeouts == [pytest.approx((2.0 + 2 * 1000 * (1e-4 + 1e-3)) * 1000)]  # sized from count*width
    assert res.timeout == 5000.0


def test_unchanged_pulse_settings_are_not_sent_again(scripted):
    smu, res = scripted
    ch = smu.channel(1)
    ch.pulse(1.5, 1e-4, count=3)
    assert set(smu.cached_pulse_settings(1)) == set(PULSE_SETTINGS)
    res.log.clear()
    ch.pulse(1.5, 1e-4, count=3)
    assert res.commands == [":SOUR1:FUNC:SHAP PULS", ":SYST:ERR:COUN?", FIRE1, END1]
    res.log.clear()
    ch.pulse(-1.2, 1e-4, count=5)  # only what changed
    assert res.commands[0] == ":SOUR1:FUNC:SHAP PULS;:SOUR1:VOLT:TRIG -1.2;:TRIG1:COUN 5"
    res.log.clear()
    ch.pulse(-1.2, 2e-4, count=5, base_v=0.1)
    assert res.commands[0] == ":SOUR1:FUNC:SHAP PULS;:SOUR1:VOLT 0.1;:SOUR1:PULS:WIDT 0.0002"
    res.log.clear()
    smu.channel(2).pulse(-1.2, 2e-4, count=5, base_v=0.1)  # the other channel has its own settings
    assert res.commands[0] == (":SOUR2:FUNC:SHAP PULS;:SOUR2:VOLT 0.1;:SOUR2:VOLT:TRIG -1.2;"
                               ":SOUR2:PULS:WIDT 0.0002;:SOUR2:PULS:DEL 0.0;:TRIG2:COUN 5")
    assert smu.cached_pulse_settings(1)["width"] == ":SOUR1:PULS:WIDT 0.0002"


FULL_SETTINGS = (":SOUR1:FUNC:SHAP PULS;:SOUR1:VOLT 0.0;:SOUR1:VOLT:TRIG 1.5;:SOUR1:PULS:WIDT 0.0001;"
                 ":SOUR1:PULS:DEL 0.0;:TRIG1:COUN 3")


@pytest.mark.parametrize("between", [
    lambda smu: smu.reset(),
    lambda smu: smu.shutdown(),
    lambda smu: smu.channel(1).shutdown(),
    lambda smu: smu.channel(1).configure(1e-3),
    lambda smu: smu.write("*RST"),
    lambda smu: smu.write(":SOURce1:VOLTage:TRIGgered 2.0"),  # a long form: not recognized, all forgotten
    lambda smu: smu.write(":SOUR2:VOLT 1.0;VOLT:TRIG 2.0"),  # a relative header: all forgotten
    lambda smu: smu.forget_pulse_settings(),
    lambda smu: smu.forget_pulse_settings(1),
], ids=["reset", "shutdown", "channel-shutdown", "configure", "raw-rst", "long-form", "relative",
        "forget-all", "forget-1"])
def test_the_cache_is_forgotten_by_anything_that_may_change_the_settings(scripted, between):
    smu, res = scripted
    smu.channel(1).pulse(1.5, 1e-4, count=3)
    between(smu)
    res.log.clear()
    smu.channel(1).pulse(1.5, 1e-4, count=3)
    assert res.commands[0] == FULL_SETTINGS


def test_setting_one_pulse_setting_forgets_only_that_one(scripted):
    smu, res = scripted
    res.replies[":SENS1:CURR:PROT:TRIP?"] = "0"
    ch = smu.channel(1)
    ch.pulse(1.5, 1e-4, count=3)
    ch.set_voltage(0.2)  # the DC level is the pulse base
    ch.output(True)  # outputs, measurements, queries and error checks keep the rest
    assert ch.measure_current() == 1.2345e-05 and ch.is_on() and not ch.tripped()
    ch.output(False)
    res.log.clear()
    ch.pulse(1.5, 1e-4, count=3)
    assert res.commands[0] == ":SOUR1:FUNC:SHAP PULS;:SOUR1:VOLT 0.0"
    ch.pulse_count = 4  # a Control set goes through the same bookkeeping
    res.log.clear()
    ch.pulse(1.5, 1e-4, count=3)
    assert res.commands[0] == ":SOUR1:FUNC:SHAP PULS;:TRIG1:COUN 3"


@pytest.mark.parametrize("failure", ["rejected", "timeout", "queued-after", "tripped", "check-errors"])
def test_the_cache_is_forgotten_after_any_error(scripted, failure):
    smu, res = scripted
    ch = smu.channel(1)
    ch.pulse(1.5, 1e-4, count=3)
    if failure == "rejected":
        res.replies[":SYST:ERR:COUN?"] = ["+1", "+0"]
        res.replies[":SYST:ERR:NEXT?"] = ['-221,"Settings conflict"', '+0,"No error"']
    elif failure == "timeout":
        res.replies[FIRE1] = [visa_timeout(), "1"]
    elif failure == "queued-after":
        res.replies[END1] = ["0;+1", "0;+0"]
        res.replies[":SYST:ERR:NEXT?"] = ['-221,"Settings conflict"', '+0,"No error"']
    elif failure == "tripped":
        res.replies[END1] = ["1;+0", "0;+0"]
    if failure == "check-errors":
        res.replies[":SYST:ERR:NEXT?"] = ['-100,"Command error"', '+0,"No error"']
        with pytest.raises(InstrumentError):
            ch.output(True)  # any error, in any operation
    else:
        with pytest.raises((InstrumentError, VisaIOError)):
            ch.pulse(1.5, 1e-4, count=3)
    assert smu.cached_pulse_settings(1) == {}
    res.log.clear()
    ch.pulse(1.5, 1e-4, count=3)
    assert res.commands[0] == FULL_SETTINGS


def test_the_cache_can_be_switched_off(scripted):
    smu, res = scripted
    smu.cache_pulse_settings = False
    smu.channel(1).pulse(1.5, 1e-4, count=3)
    res.log.clear()
    smu.channel(1).pulse(1.5, 1e-4, count=3)
    assert res.commands[0] == FULL_SETTINGS and smu.cached_pulse_settings(1) == {}


def test_a_rejected_setting_fires_nothing(scripted):
    smu, res = scripted
    res.replies[":SYST:ERR:COUN?"] = "+2"
    res.replies[":SYST:ERR:NEXT?"] = ['-222,"Data out of range"', '-221,"Settings conflict"', '+0,"No error"']
    with pytest.raises(InstrumentError) as e:
        smu.channel(1).pulse(1.5, 1e-4, count=3)
    assert (e.value.code, e.value.message) == (-222, "Data out of range; then -221: Settings conflict")
    assert e.value.command == FULL_SETTINGS and not isinstance(e.value, ComplianceError)
    assert res.commands == [FULL_SETTINGS, ":SYST:ERR:COUN?", ":SYST:ERR:NEXT?", ":SYST:ERR:NEXT?",
                            ":SYST:ERR:NEXT?", ":OUTP1 OFF", ":SOUR1:FUNC:SHAP DC"]


def test_an_error_count_with_an_empty_queue_still_raises(scripted):
    smu, res = scripted
    res.replies[":SYST:ERR:COUN?"] = "+1"
    with pytest.raises(InstrumentError, match=r"counted 1 error\(s\) but its error queue read empty"):
        smu.channel(1).pulse(1.5, 1e-4)
    assert not any("INIT" in c for c in res.commands)


def test_a_tripped_pulse_raises_compliance_error(scripted):
    smu, res = scripted
    res.replies[END1] = "1;+0"
    with pytest.raises(ComplianceError, match="current compliance reached during a train of 2 pulse") as e:
        smu.channel(1).pulse(3.0, 1e-3, count=2)
    assert e.value.command == FIRE1 and e.value.code is None
    assert res.commands[-1] == END1 and len(res.queries) == 3


def test_errors_after_a_pulse_take_precedence_over_compliance(scripted):
    smu, res = scripted
    res.replies[END1] = "1;+1"
    res.replies[":SYST:ERR:NEXT?"] = ['-230,"Data corrupt or stale"', '+0,"No error"']
    with pytest.raises(InstrumentError) as e:
        smu.channel(1).pulse(3.0, 1e-3, count=2)
    assert not isinstance(e.value, ComplianceError) and e.value.code == -230
    assert "and the current compliance was reached during a train of 2 pulse(s)" in e.value.message
    assert e.value.command == END1


@pytest.mark.parametrize("reply", ["0", "0;+0;1", "x;+0", "0;-1", "0;abc"])
def test_a_malformed_end_of_pulse_reply_is_an_error_and_recovers(scripted, reply):
    smu, res = scripted
    res.replies[END1] = reply
    with pytest.raises(InstrumentError):
        smu.channel(1).pulse(3.0, 1e-3)
    assert res.commands[-2:] == [":OUTP1 OFF", ":SOUR1:FUNC:SHAP DC"]


def test_a_pulse_that_times_out_is_not_retried_and_leaves_dc_output_off(scripted):
    smu, res = scripted
    res.replies[FIRE1] = visa_timeout()
    with pytest.raises(VisaIOError):
        smu.channel(1).pulse(3.0, 1e-3, count=2)
    assert res.commands.count(FIRE1) == 1 and res.clears == 0
    assert res.commands[-2:] == [":OUTP1 OFF", ":SOUR1:FUNC:SHAP DC"]


def test_opc_must_answer_1(scripted):
    smu, res = scripted
    res.replies[FIRE1] = "0"
    with pytest.raises(InstrumentError, match=r"\*OPC\? replied '0', expected 1") as e:
        smu.channel(1).pulse(3.0, 1e-3)
    assert e.value.command == FIRE1
    assert res.commands[-2:] == [":OUTP1 OFF", ":SOUR1:FUNC:SHAP DC"]


def test_shutdown_byte_for_byte(scripted):
    smu, res = scripted
    smu.shutdown()
    assert res.commands == [":OUTP1 OFF", ":SOUR1:FUNC:SHAP DC", ":SOUR1:VOLT 0.0",
                            ":OUTP2 OFF", ":SOUR2:FUNC:SHAP DC", ":SOUR2:VOLT 0.0", ":SYST:ERR:NEXT?"]


# -- a real instrument (only with --b2900 RESOURCE) -------------------------------------------

@pytest.fixture
def real_smu(request):
    resource = request.config.getoption("--b2900")
    if not resource:
        pytest.skip("needs --b2900 <VISA resource>")
    with KeysightB2900(resource, resource_manager=request.config.getoption("--visa-library")) as smu:
        yield smu


def test_real_b2900_identity_settings_and_outputs_off(real_smu):
    assert real_smu.identity().model in B2900_MODELS
    for c in range(1, real_smu.channels + 1):
        ch = real_smu.channel(c)
        assert -210 <= ch.voltage <= 210 and ch.compliance > 0 and ch.pulse_width > 0
        ch.output(False)
        assert not ch.is_on()
    real_smu.shutdown(raise_errors=True)


def test_keithley_driver_is_not_a_b2900(tmp_path):
    with pytest.raises(InstrumentError, match="unsupported model"):
        Keithley2450(B2912A, resource_manager=sim_library("b2900", tmp_path))
