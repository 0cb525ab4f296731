"""Keithley 2450 driver: against the stateful pyvisa-sim model, and byte for byte."""

from __future__ import annotations

import time

import pytest
from pyvisa.errors import VisaIOError

from drivers import ComplianceError, InstrumentError, Keithley2450
from drivers.testing import ScriptedResource, sim_library, visa_timeout

K2450 = "TCPIP0::k2450.sim::inst0::INSTR"
FAULT = "TCPIP0::k2450-fault.sim::inst0::INSTR"
IDN = "KEITHLEY INSTRUMENTS,MODEL 2450,04000001,1.7.12b"
MEAS = ":MEAS:CURR?;:SOUR:VOLT:ILIM:TRIP?"
END = ":SOUR:VOLT:ILIM:TRIP?;:SYST:ERR:COUN?"


@pytest.fixture
def lib(tmp_path) -> str:
    return sim_library("k2450", tmp_path)


@pytest.fixture
def smu(lib):
    with Keithley2450(K2450, resource_manager=lib) as smu:
        yield smu


def spy(inst) -> list[str]:
    sent: list[str] = []
    write = inst.resource.write
    inst.resource.write = lambda m: sent.append(m) or write(m)
    return sent


def sim_state(smu: Keithley2450) -> dict[str, str]:
    q = smu.resource.query
    return {k: q(cmd).strip() for k, cmd in {
        "source": ":SOUR:FUNC?", "sense": ":SENS:FUNC?", "volt": ":SOUR:VOLT?", "ilim": ":SOUR:VOLT:ILIM?",
        "nplc": ":SENS:CURR:NPLC?", "outp": ":OUTP?"}.items()}


def test_identity_and_the_one_channel(smu):
    idn = smu.identity()
    assert (idn.manufacturer, idn.model, idn.serial, idn.firmware) == (
        "KEITHLEY INSTRUMENTS", "MODEL 2450", "04000001", "1.7.12b")
    assert smu.channel(1) is smu and smu.channel() is smu
    with pytest.raises(ValueError, match="channel = 2 refused: the 2450 has 1 channel"):
        smu.channel(2)


def test_other_models_are_refused(tmp_path):
    with pytest.raises(InstrumentError, match="unsupported model 'Model 707B'"):
        Keithley2450("TCPIP0::k707b.sim::inst0::INSTR", resource_manager=sim_library("k707b", tmp_path))


def test_settings_round_trip(smu):
    smu.configure(1.05, nplc=0.01)
    assert (smu.compliance, smu.nplc) == (1.05, 0.01)
    smu.configure(2e-5)
    assert (smu.compliance, smu.nplc) == (2e-5, 0.01)
    for v in (-2.0, 1e-05, 210.0, 0.0):
        smu.set_voltage(v)
        assert smu.voltage == v
    smu.output(True)
    assert smu.is_on() and smu.measure_current() == 1e-06 and not smu.tripped()
    smu.output(False)
    s = sim_state(smu)
    assert (s["source"], s["sense"], s["outp"]) == ("VOLT", '"CURR"', "OFF")


def test_software_pulse_train_timing_and_messages(smu):
    smu.configure(1e-3)
    sent = spy(smu)
    t0 = time.perf_counter()
    smu.pulse(2.0, 2e-3, count=3, base_v=0.5)
    elapsed = time.perf_counter() - t0
    assert elapsed >= 5 * 2e-3  # three widths and two gaps, host-timed
    assert sent == [":SOUR:VOLT 2.0;:OUTP ON", ":SOUR:VOLT 0.5", ":SOUR:VOLT 2.0", ":SOUR:VOLT 0.5",
                    ":SOUR:VOLT 2.0", f":OUTP OFF;:SOUR:VOLT 0.5;{END}"]
    # joined messages are answered, not modelled, by pyvisa-sim (docs in the YAML file);
    # the end state is checked on the emulator (tests/test_drivers_emulator.py)
    assert sim_state(smu)["outp"] == "OFF"
    smu.check_errors()


@pytest.mark.parametrize("call, parameter", [
    (lambda k: k.set_voltage(210.5), "voltage"),
    (lambda k: k.configure(1.06), "current limit"),
    (lambda k: k.configure(1e-10), "current limit"),
    (lambda k: k.configure(1e-3, nplc=0.005), "integration time"),
    (lambda k: k.configure(1e-3, nplc=11), "integration time"),
    (lambda k: k.pulse(2.0, 0.5e-3), "pulse width"),  # host timing cannot do < 1 ms
    (lambda k: k.pulse(-250.0, 1e-3), "pulse level"),
    (lambda k: k.pulse(1.0, 1e-3, count=0), "pulse count"),
])
def test_out_of_range_is_refused_before_anything_is_sent(smu, call, parameter):
    before = sim_state(smu)
    sent = spy(smu)
    with pytest.raises(ValueError, match=parameter):
        call(smu)
    assert sent == [] and sim_state(smu) == before


def test_the_simulated_instrument_reports_its_own_range_errors(smu):
    smu.write(":SOUR:VOLT:ILIM 2.0")
    with pytest.raises(InstrumentError) as e:
        smu.check_errors()
    assert (e.value.code, e.value.message, e.value.command) == (
        -222, "Parameter data out of range", ":SOUR:VOLT:ILIM 2.0")


def test_fault_device(lib):
    smu = Keithley2450(FAULT, resource_manager=lib, timeout_s=0.05)
    with pytest.raises(InstrumentError) as e:
        smu.output(True)
    assert (e.value.code, e.value.command) == (-221, ":OUTP ON")
    assert e.value.message.startswith("Settings conflict")
    sent = spy(smu)
    with pytest.raises(VisaIOError):
        smu.voltage  # noqa: B018 - read-only: retried once
    assert sent == [":SOUR:VOLT?"] * 2
    sent.clear()
    with pytest.raises(VisaIOError):
        smu.measure_current()
    assert sent == [MEAS]  # a measurement is never retried
    sent.clear()
    with pytest.raises(InstrumentError, match="Settings conflict") as e:
        smu.pulse(1.0, 1e-3)
    assert "and the current limit was reached during 1 pulse(s) of 1.0 V" in e.value.message
    assert not isinstance(e.value, ComplianceError)  # errors take precedence
    assert sent[:2] == [":SOUR:VOLT 1.0;:OUTP ON", f":OUTP OFF;:SOUR:VOLT 0.0;{END}"]
    smu.shutdown()
    smu.disconnect()


def test_shutdown_output_off_and_zero_volts_idempotent(smu):
    smu.configure(1e-3)
    smu.set_voltage(3.0)
    smu.output(True)
    smu.shutdown()
    smu.shutdown()
    s = sim_state(smu)
    assert (s["outp"], float(s["volt"])) == ("OFF", 0.0)


# -- exact commands ---------------------------------------------------------------------------

@pytest.fixture
def scripted():
    res = ScriptedResource({"*IDN?": IDN, ":SYST:ERR:NEXT?": '0,"No error;0;0 0"', MEAS: "-3.5E-07;0",
                            ":SOUR:VOLT:ILIM:TRIP?": "0"})
    smu = Keithley2450(res)
    res.log.clear()
    return smu, res


def test_commands_byte_for_byte(scripted):
    smu, res = scripted
    smu.configure(1e-4, nplc=2)
    smu.set_voltage(-1e-05)
    smu.output(True)
    assert smu.measure_current() == -3.5e-07
    smu.pulse(1.0, 1e-3)
    assert res.commands == [
        ":SOUR:FUNC VOLT", ':SENS:FUNC "CURR"', ":SOUR:VOLT:ILIM 0.0001", ":SENS:CURR:NPLC 2.0",
        ":SYST:ERR:NEXT?",
        ":SOUR:VOLT -1e-05", ":SYST:ERR:NEXT?", ":OUTP ON", ":SYST:ERR:NEXT?",
        MEAS,
        ":SOUR:VOLT 1.0;:OUTP ON", f":OUTP OFF;:SOUR:VOLT 0.0;{END}",
    ]
    res.log.clear()
    smu.shutdown()
    assert res.commands == [":OUTP OFF", ":SOUR:VOLT 0.0", ":SYST:ERR:NEXT?"]


def test_a_measurement_and_a_pulse_are_one_round_trip_each(scripted):
    smu, res = scripted
    assert smu.measure_current() == -3.5e-07
    assert res.log == [(MEAS, "-3.5E-07;0")]
    res.log.clear()
    smu.pulse(-2.0, 1e-3, count=2, base_v=0.1)
    assert res.log == [(":SOUR:VOLT -2.0;:OUTP ON", None), (":SOUR:VOLT 0.1", None),
                       (":SOUR:VOLT -2.0", None), (f":OUTP OFF;:SOUR:VOLT 0.1;{END}", "0;+0")]


def test_compliance_after_measurement_and_pulse(scripted):
    smu, res = scripted
    res.replies[MEAS] = "+1.05E-04;1"
    with pytest.raises(ComplianceError, match=r"limit reached during the measurement \(0.000105 A\)") as e:
        smu.measure_current()
    assert e.value.command == MEAS
    res.replies[f":OUTP OFF;:SOUR:VOLT 0.0;{END}"] = "1;+0"
    with pytest.raises(ComplianceError, match="1 pulse") as e:
        smu.pulse(4.0, 1e-3)
    assert e.value.command == ":SOUR:VOLT 4.0"


def test_errors_queued_during_a_pulse_are_raised(scripted):
    smu, res = scripted
    res.replies[f":OUTP OFF;:SOUR:VOLT 0.0;{END}"] = "0;+1"
    res.replies[":SYST:ERR:NEXT?"] = ['-222,"Parameter data out of range;1;0 0"', '0,"No error;0;0 0"']
    with pytest.raises(InstrumentError) as e:
        smu.pulse(4.0, 1e-3)
    assert (e.value.code, e.value.message) == (-222, "Parameter data out of range")
    assert not isinstance(e.value, ComplianceError)


@pytest.mark.parametrize("reply", ["-3.5E-07", "-3.5E-07;0;1", "x;0", "-3.5E-07;yes"])
def test_a_malformed_measurement_reply_is_an_error(scripted, reply):
    smu, res = scripted
    res.replies[MEAS] = reply
    with pytest.raises(InstrumentError) as e:
        smu.measure_current()
    assert e.value.command == MEAS and res.commands == [MEAS]


def test_a_failing_pulse_ends_with_output_off_at_base(scripted):
    smu, res = scripted

    def flaky_write(message: str) -> int:
        if ":OUTP ON" in message:
            raise visa_timeout()
        return ScriptedResource.write(res, message)

    res.write = flaky_write  # type: ignore[method-assign]
    with pytest.raises(VisaIOError):
        smu.pulse(4.0, 1e-3)
    assert res.commands == [":OUTP OFF", ":SOUR:VOLT 0.0"]


def test_a_pulse_whose_end_times_out_is_not_retried(scripted):
    smu, res = scripted
    res.replies[f":OUTP OFF;:SOUR:VOLT 0.5;{END}"] = visa_timeout()
    with pytest.raises(VisaIOError):
        smu.pulse(4.0, 1e-3, base_v=0.5)
    assert res.commands == [":SOUR:VOLT 4.0;:OUTP ON", f":OUTP OFF;:SOUR:VOLT 0.5;{END}", ":OUTP OFF",
                            ":SOUR:VOLT 0.5"]


# -- a real instrument (only with --k2450 RESOURCE) -------------------------------------------

@pytest.fixture
def real_smu(request):
    resource = request.config.getoption("--k2450")
    if not resource:
        pytest.skip("needs --k2450 <VISA resource>")
    with Keithley2450(resource, resource_manager=request.config.getoption("--visa-library")) as smu:
        yield smu


def test_real_2450_identity_settings_and_output_off(real_smu):
    assert "2450" in real_smu.identity().model
    assert -210 <= real_smu.voltage <= 210 and real_smu.compliance > 0
    real_smu.output(False)
    assert not real_smu.is_on()
    real_smu.shutdown(raise_errors=True)
