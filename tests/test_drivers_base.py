"""The instrument base: validators, parsing, retries, error queue, lock, safe state."""

from __future__ import annotations

import logging
import math
import threading
import time

import pytest
from pyvisa import constants
from pyvisa.errors import VisaIOError

from drivers import ConnectionLost, Instrument, InstrumentError, strict_choice, strict_int_range, strict_range
from drivers.base import is_read_only, parse_bool, parse_count, parse_identity, parse_scpi_error, split_reply
from drivers.testing import ScriptedResource, sim_file, sim_library, visa_timeout
from drivers.validators import format_number


class Plain(Instrument):
    """An instrument with one output switch in its safe state."""

    def _shutdown_steps(self):
        return [("output off", lambda: self.write(":OUTP OFF"))]


# -- validators -------------------------------------------------------------------------------

def test_strict_range_accepts_bounds_and_refuses_outside_without_clipping():
    v = strict_range(-210, 210, "V")
    assert v(-210, "voltage") == -210.0 and v(1e-5, "voltage") == 1e-5
    with pytest.raises(ValueError) as e:
        v(210.5, "voltage")
    text = str(e.value)
    assert "voltage" in text and "210.5" in text and " V" in text and "[-210.0, 210.0]" in text
    with pytest.raises(ValueError, match="not a finite"):
        v(math.nan, "voltage")
    with pytest.raises(ValueError, match="not a finite"):
        v(math.inf, "voltage")
    for bad in (True, "1.0", None):
        with pytest.raises(TypeError, match="voltage"):
            v(bad, "voltage")


def test_strict_int_range_and_choice():
    count = strict_int_range(1, 100_000)
    assert count(100_000, "pulse count") == 100_000
    with pytest.raises(ValueError, match=r"pulse count = 0 refused: allowed range is \[1, 100000\]"):
        count(0, "pulse count")
    for bad in (3.0, True, "3"):
        with pytest.raises(TypeError, match="pulse count"):
            count(bad, "pulse count")
    mode = strict_choice("DC", "PULS")
    assert mode("PULS", "shape") == "PULS"
    with pytest.raises(ValueError, match="shape = 'SQU' refused: allowed values are 'DC', 'PULS'"):
        mode("SQU", "shape")


def test_numbers_on_the_wire_are_python_reprs():
    assert [format_number(x) for x in (1e-5, -2, -2.0, 0.1, 3)] == ["1e-05", "-2", "-2.0", "0.1", "3"]
    with pytest.raises(TypeError):
        format_number(True)


# -- parsing ----------------------------------------------------------------------------------

def test_identity_is_parsed_into_four_fields():
    idn = parse_identity("Keithley Instruments Inc., Model 707B, 04000003, 01.02.03\n")
    assert (idn.manufacturer, idn.model, idn.serial, idn.firmware) == (
        "Keithley Instruments Inc.", "Model 707B", "04000003", "01.02.03")
    assert idn.raw == "Keithley Instruments Inc., Model 707B, 04000003, 01.02.03"
    with pytest.raises(InstrumentError, match="malformed"):
        parse_identity("just a name")


def test_error_replies_and_booleans():
    assert parse_scpi_error('+0,"No error"') == (0, "No error")
    assert parse_scpi_error('-222,"Data out of range"') == (-222, "Data out of range")
    k2450 = '-221,"Settings conflict;1;2024/06/01 12:00:00.000"'
    assert parse_scpi_error(k2450) == (-221, "Settings conflict")
    assert [parse_bool(r, "q") for r in ("1", "0", "ON", "OFF", "+1")] == [True, False, True, False, True]
    with pytest.raises(InstrumentError, match="boolean"):
        parse_bool("2", ":OUTP?")


def test_error_counts_and_joined_replies():
    replies = ("0", "+0", "+3", "0.00000e+00", "2.00000e+00", " 1\n")
    assert [parse_count(r, "q") for r in replies] == [0, 0, 3, 0, 2, 1]
    for bad in ("", "-1", "1.5", "nan", "inf", "nil", "0;0"):
        with pytest.raises(InstrumentError, match="expected a count") as e:
            parse_count(bad, ":SYST:ERR:COUN?")
        assert e.value.command == ":SYST:ERR:COUN?"
    assert split_reply("-1.234500E-05;0", "q", 2) == ["-1.234500E-05", "0"]
    assert split_reply(" 1 ; +0 \n", "q", 2) == ["1", "+0"]
    for bad in ("-1.2E-05", "1;0;0", ""):
        with pytest.raises(InstrumentError, match="expected 2 answers joined by ';'"):
            split_reply(bad, "q", 2)


@pytest.mark.parametrize("command, ok", [
    (":SOUR1:VOLT?", True), ("*IDN?", True), (":OUTP1?", True), ('print(channel.getclose("allslots"))', True),
    (":SOUR1:VOLT?;:SENS1:CURR:PROT?", True), ("print(errorqueue.count)", True),
    (":SOUR1:VOLT 1.0", False), (":SOUR1:VOLT?;:OUTP1 ON", False), ("*OPC?", False), (":INIT (@1)", False),
    (":MEAS:CURR? (@1)", False), (":SYST:ERR:NEXT?", False), ("print(errorqueue.next())", False),
    (":MEAS:CURR? (@1);:SENS1:CURR:PROT:TRIP?", False), (":SENS1:CURR:PROT:TRIP?;:SYST:ERR:COUN?", False),
    (":OUTP1 ON;:INIT (@1);*OPC?", False), (":SYST:ERR:COUN?", False),
    ('channel.close("1A01"); waitcomplete(); print(errorqueue.count)', False),
    ('channel.close("1A01")', False), ("", False),
])
def test_only_read_only_queries_count_as_retryable(command, ok):
    assert is_read_only(command) is ok


# -- I/O, retries -----------------------------------------------------------------------------

def test_open_resource_gets_newline_terminations_and_the_timeout():
    res = ScriptedResource()
    Plain(res, timeout_s=2.5)
    assert (res.read_termination, res.write_termination, res.timeout) == ("\n", "\n", 2500.0)
    with pytest.raises(ValueError, match="resource_manager"):
        Plain(res, resource_manager="@sim")
    with pytest.raises(ValueError, match="timeout"):
        Plain(ScriptedResource(), timeout_s=0)


def test_read_only_query_is_retried_after_timeouts_only():
    res = ScriptedResource({":SOUR1:VOLT?": [visa_timeout(), visa_timeout(), "+1.0E+00"]})
    inst = Plain(res)
    assert inst.query(":SOUR1:VOLT?", retry=2) == "+1.0E+00"
    assert res.commands == [":SOUR1:VOLT?"] * 3 and res.clears == 2
    res = ScriptedResource({":SOUR1:VOLT?": [visa_timeout(), "+1.0E+00"]})
    with pytest.raises(VisaIOError):
        Plain(res).query(":SOUR1:VOLT?")  # retry=0: the timeout propagates
    assert res.commands == [":SOUR1:VOLT?"]
    other = VisaIOError(constants.StatusCode.error_connection_lost)
    res = ScriptedResource({":SOUR1:VOLT?": [other, "+1.0E+00"]})
    with pytest.raises(ConnectionLost, match="VI_ERROR_CONN_LOST"):
        Plain(res).query(":SOUR1:VOLT?", retry=3)  # not a timeout: never retried
    assert res.commands == [":SOUR1:VOLT?"]


@pytest.mark.parametrize("command", ["*OPC?", ":INIT (@1)", ":MEAS:CURR? (@1)", ":SYST:ERR:NEXT?",
                                     ":SOUR1:VOLT 1.0"])
def test_retry_is_refused_for_anything_but_read_only_queries(command):
    res = ScriptedResource()
    with pytest.raises(ValueError, match="only read-only"):
        Plain(res).query(command, retry=1)
    assert res.commands == []


def test_timeout_override_applies_to_one_call_only():
    seen = []
    res = ScriptedResource({"*OPC?": lambda _: seen.append(res.timeout) or "1"})
    inst = Plain(res, timeout_s=1.0)
    inst.opc(timeout_s=30.0)
    assert seen == [30000.0] and res.timeout == 1000.0


def test_opc_must_return_1():
    with pytest.raises(InstrumentError, match="expected 1"):
        Plain(ScriptedResource({"*OPC?": "0"})).opc()


def test_retry_and_timeout_on_a_simulated_instrument_that_never_replies(tmp_path):
    """pyvisa-sim: the fault B2912A never answers :SOUR1:VOLT?; a short timeout, two retries."""
    inst = Plain("TCPIP0::b2912a-fault.sim::inst0::INSTR", resource_manager=sim_library("b2900", tmp_path))
    sent = []
    write = inst.resource.write
    inst.resource.write = lambda m: sent.append(m) or write(m)  # type: ignore[method-assign]
    t0 = time.perf_counter()
    with pytest.raises(VisaIOError) as e:
        inst.query(":SOUR1:VOLT?", retry=2, timeout_s=0.05)
    assert e.value.error_code == constants.StatusCode.error_timeout
    assert sent == [":SOUR1:VOLT?"] * 3 and time.perf_counter() - t0 < 2.0
    assert inst.resource.timeout == 5000.0
    inst.disconnect()


# -- error queue ------------------------------------------------------------------------------

def test_check_errors_raises_the_first_error_and_lists_the_rest():
    res = ScriptedResource({":SYST:ERR:NEXT?": ['-222,"Data out of range"', '-113,"Undefined header"',
                                                 '-113,"Undefined header"', '+0,"No error"']})
    inst = Plain(res)
    inst.write(":SOUR1:VOLT 500")
    with pytest.raises(InstrumentError) as e:
        inst.check_errors()
    err = e.value
    assert (err.code, err.command) == (-222, ":SOUR1:VOLT 500")
    assert err.message == "Data out of range; then -113: Undefined header (x2)"
    assert err.others == [(-113, "Undefined header")] * 2
    assert res.commands.count(":SYST:ERR:NEXT?") == 4
    inst.check_errors()  # empty now


def test_an_error_count_is_drained_and_raised_never_dropped():
    res = ScriptedResource({":SYST:ERR:NEXT?": ['-222,"Data out of range"', '+0,"No error"']})
    inst = Plain(res)
    inst.raise_counted_errors(0)
    assert res.commands == []
    inst.write(":SOUR1:VOLT 500")
    assert inst.read_error_count() == 0
    with pytest.raises(InstrumentError) as e:
        inst.raise_counted_errors(1, " (and more)")
    assert (e.value.code, e.value.message, e.value.command) == (-222, "Data out of range (and more)",
                                                                ":SOUR1:VOLT 500")
    with pytest.raises(InstrumentError, match=r"counted 2 error\(s\) but its error queue read empty") as e:
        inst.raise_counted_errors(2)
    assert e.value.code is None


def test_a_queue_that_never_empties_is_read_a_bounded_number_of_times():
    res = ScriptedResource({":SYST:ERR:NEXT?": '-330,"Self-test failed"'})
    inst = Plain(res)
    with pytest.raises(InstrumentError, match="not empty after 32 reads") as e:
        inst.check_errors()
    assert e.value.code == -330 and len(res.commands) == 32


# -- lock, safe state -------------------------------------------------------------------------

def test_one_operation_at_a_time():
    started = threading.Event()

    def slow_opc(_):
        started.set()
        time.sleep(0.1)
        return "1"

    res = ScriptedResource({"*OPC?": slow_opc})
    inst = Plain(res)

    def operation():
        with inst.lock:
            inst.write(":INIT")
            inst.opc()
            inst.write(":DONE")

    worker = threading.Thread(target=operation)
    worker.start()
    started.wait(1.0)
    inst.write(":OTHER")  # waits for the lock
    worker.join()
    assert res.commands == [":INIT", "*OPC?", ":DONE", ":OTHER"]


def test_shutdown_tries_every_step_logs_failures_and_raises_only_when_asked(caplog):
    res = ScriptedResource({":SYST:ERR:NEXT?": ['-100,"Command error"', '+0,"No error"']})
    inst = Plain(res)
    with caplog.at_level(logging.WARNING, logger="drivers.base"):
        inst.shutdown()
    assert res.commands[0] == ":OUTP OFF" and "Command error" in caplog.text
    res.replies[":SYST:ERR:NEXT?"] = ['-100,"Command error"', '+0,"No error"']
    with pytest.raises(InstrumentError, match="Command error"):
        inst.shutdown(raise_errors=True)
    inst.shutdown()  # idempotent
    assert res.commands.count(":OUTP OFF") == 3


def test_context_manager_shuts_down_and_leaves_a_borrowed_resource_open():
    res = ScriptedResource()
    with Plain(res) as inst:
        inst.write(":OUTP ON")
    assert res.commands[-2:] == [":OUTP OFF", ":SYST:ERR:NEXT?"]
    assert not inst.connected and not res.closed
    n = len(res.log)
    inst.shutdown()  # after close: nothing is sent
    assert len(res.log) == n


def test_an_instrument_opened_from_a_resource_string_closes_it(tmp_path):
    with Plain("TCPIP0::b2912a.sim::inst0::INSTR", resource_manager=sim_library("b2900", tmp_path)) as inst:
        assert inst.identity().model == "B2912A"
        resource = inst.resource
    with pytest.raises(Exception):  # noqa: B017 - any pyvisa error on a closed session
        resource.query("*IDN?")
    assert sim_file("b2900").is_file()
