"""Keithley 707B/708B driver (TSP): against the pyvisa-sim model, and byte for byte."""

from __future__ import annotations

import pytest
from pyvisa.errors import VisaIOError

from drivers import InstrumentError, Keithley707B
from drivers.testing import ScriptedResource, sim_library, visa_timeout

K707B = "TCPIP0::k707b.sim::inst0::INSTR"
K708B = "TCPIP0::k708b.sim::inst0::INSTR"
FAULT = "TCPIP0::k707b-fault.sim::inst0::INSTR"
IDN = "Keithley Instruments Inc., Model 707B, 04000003, 01.02.03"
TAIL = "; waitcomplete(); print(errorqueue.count)"
OPEN_ALL = 'channel.open("allslots")' + TAIL


@pytest.fixture
def lib(tmp_path) -> str:
    return sim_library("k707b", tmp_path)


@pytest.fixture
def matrix(lib):
    with Keithley707B(K707B, resource_manager=lib) as m:
        yield m


def spy(inst) -> list[str]:
    sent: list[str] = []
    write = inst.resource.write
    inst.resource.write = lambda m: sent.append(m) or write(m)
    return sent


def test_identity_and_slots(matrix, lib):
    idn = matrix.identity()
    assert (idn.manufacturer, idn.model, idn.serial, idn.firmware) == (
        "Keithley Instruments Inc.", "Model 707B", "04000003", "01.02.03")
    assert (matrix.model, matrix.slots) == ("707B", 6)
    with Keithley707B(K708B, resource_manager=lib) as small:
        assert (small.model, small.slots) == ("708B", 1)
        small.close(["1H12"])
        with pytest.raises(ValueError, match="the 708B has 1 slot"):
            small.close(["2A01"])


def test_smus_are_not_matrices(tmp_path):
    with pytest.raises(InstrumentError, match="unsupported model"):
        Keithley707B("TCPIP0::k2450.sim::inst0::INSTR", resource_manager=sim_library("k2450", tmp_path))


def test_closed_crosspoints_round_trip(matrix):
    assert matrix.closed() == []
    matrix.close(["1A01", "6H12", "1A01"])  # duplicates dropped
    assert matrix.closed() == ["1A01", "6H12"]
    matrix.close("3C07")  # a string is one channel
    assert matrix.closed() == ["3C07"]  # (the sim keeps the last list only)
    sent = spy(matrix)
    matrix.switch(["3C07"], ["1A02", "1B05"])
    matrix.open_all()
    matrix.reset()
    assert sent == ['channel.open("3C07"); channel.close("1A02,1B05")' + TAIL, OPEN_ALL, "reset()" + TAIL]


@pytest.mark.parametrize("bad", ["1a01", "1A13", "1A00", "7A01", "0A01", "1I01", "1A1", " 1A01", "1A01,1B01",
                                 "allslots", "", 101])
def test_bad_channel_names_are_refused_before_anything_is_sent(matrix, bad):
    matrix.close(["2B02"])
    sent = spy(matrix)
    for action in (matrix.close, matrix.open, lambda c: matrix.switch(c, ["1C01"]),
                   lambda c: matrix.switch(["1C01"], c)):
        with pytest.raises(ValueError, match="refused: expected slot 1-6, row A-H, column 01-12"):
            action(["1A01", bad])
    assert sent == [] and matrix.closed() == ["2B02"]


def test_empty_lists_send_nothing(matrix):
    sent = spy(matrix)
    matrix.close([])
    matrix.open([])
    matrix.switch()
    matrix.switch([], ())
    assert sent == [] and matrix.connected


def test_a_channel_both_opened_and_closed_is_refused(matrix):
    sent = spy(matrix)
    with pytest.raises(ValueError, match="1A02 refused: both opened and closed"):
        matrix.switch(["1A01", "1A02"], ["1A02"])
    assert sent == []


def test_unknown_commands_surface_through_the_tsp_error_queue(matrix):
    matrix.write("channel.close(1A01)")  # unquoted: not understood
    matrix.write("channel.exclusiveclose()")
    with pytest.raises(InstrumentError) as e:
        matrix.check_errors()
    assert (e.value.code, e.value.message) == (-285, "Program syntax error; then -285: Program syntax error")
    assert e.value.command == "channel.exclusiveclose()"
    matrix.check_errors()


def test_fault_device(lib):
    m = Keithley707B(FAULT, resource_manager=lib, timeout_s=0.05)
    with pytest.raises(InstrumentError) as e:
        m.close(["1A01"])
    assert (e.value.code, e.value.command) == (1115, 'channel.close("1A01")' + TAIL)
    assert e.value.message.startswith("Card interlock error")
    sent = spy(m)
    with pytest.raises(VisaIOError):
        m.closed()  # read-only: retried once
    assert sent == ['print(channel.getclose("allslots"))'] * 2
    m.shutdown()
    with pytest.raises(InstrumentError, match="Card interlock"):
        m.shutdown(raise_errors=True)
    m.close()  # no argument: the VISA connection
    assert not m.connected


# -- exact commands ---------------------------------------------------------------------------

@pytest.fixture
def scripted():
    res = ScriptedResource({"*IDN?": IDN, 'print(channel.getclose("allslots"))': "1A01;1B03"})
    m = Keithley707B(res)
    res.log.clear()
    return m, res


def test_switching_byte_for_byte(scripted):
    m, res = scripted
    m.close(["1A01", "1B03"])
    m.open(["1B03"])
    m.switch(open_channels=["1A01", "1B03"], close_channels=["1A02", "2B04"])
    m.switch(close_channels="1C01")
    m.open_all()
    assert m.closed() == ["1A01", "1B03"]
    m.reset()
    assert res.log == [
        ('channel.close("1A01,1B03")' + TAIL, "0"),
        ('channel.open("1B03")' + TAIL, "0"),
        ('channel.open("1A01,1B03"); channel.close("1A02,2B04")' + TAIL, "0"),
        ('channel.close("1C01")' + TAIL, "0"),
        (OPEN_ALL, "0"),
        ('print(channel.getclose("allslots"))', "1A01;1B03"),
        ("reset()" + TAIL, "0"),
    ]
    assert res.writes == []  # every switching operation is exactly one round trip


def test_nil_means_nothing_closed(scripted):
    m, res = scripted
    res.replies['print(channel.getclose("allslots"))'] = "nil"
    assert m.closed() == []


@pytest.mark.parametrize("count", ["0", "0.00000e+00", "+0"])
def test_error_count_formats(scripted, count):
    m, res = scripted
    res.replies['channel.close("1A01")' + TAIL] = count
    m.close("1A01")
    assert res.commands == ['channel.close("1A01")' + TAIL]


@pytest.mark.parametrize("count", ["", "nil", "-1", "1.5", "0\t0"])
def test_a_malformed_error_count_is_an_error(scripted, count):
    m, res = scripted
    res.replies['channel.close("1A01")' + TAIL] = count
    with pytest.raises(InstrumentError, match="expected a count"):
        m.close("1A01")


def test_a_switch_error_drains_the_queue_and_raises(scripted):
    m, res = scripted
    message = 'channel.open("1A01"); channel.close("1B01")' + TAIL
    res.replies[message] = "2.00000e+00"
    res.replies["print(errorqueue.count)"] = ["2.00000e+00", "0.00000e+00"]
    res.replies["print(errorqueue.next())"] = ["1115\tCard interlock error\t2\t0",
                                               "-286\tTSP Runtime error at line 1\t20\t1"]
    with pytest.raises(InstrumentError) as e:
        m.switch(["1A01"], ["1B01"])
    err = e.value
    assert (err.code, err.message) == (1115, "Card interlock error; then -286: TSP Runtime error at line 1")
    assert err.command == message and err.others == [(-286, "TSP Runtime error at line 1")]
    assert res.commands == [message, "print(errorqueue.count)", "print(errorqueue.next())",
                            "print(errorqueue.next())", "print(errorqueue.count)"]
    assert res.commands.count(message) == 1  # never retried


def test_an_error_count_with_an_empty_queue_still_raises(scripted):
    m, res = scripted
    res.replies[OPEN_ALL] = "1"
    with pytest.raises(InstrumentError, match=r"counted 1 error\(s\) but its error queue read empty"):
        m.open_all()


def test_a_switch_that_times_out_reads_the_error_queue(scripted):
    # on the instrument a runtime error aborts the chunk: the count is never printed
    m, res = scripted
    message = 'channel.close("1A01")' + TAIL
    res.replies[message] = visa_timeout()
    res.replies["print(errorqueue.count)"] = ["1", "0"]
    res.replies["print(errorqueue.next())"] = ["-286\tTSP Runtime error at line 1: bad channel\t20\t1"]
    with pytest.raises(InstrumentError, match="TSP Runtime error") as e:
        m.close("1A01")
    assert isinstance(e.value.__cause__, VisaIOError) and e.value.command == message
    assert res.clears == 1 and res.commands.count(message) == 1  # device clear, never retried


def test_a_switch_timeout_with_an_empty_queue_is_raised_as_is(scripted):
    m, res = scripted
    res.replies[OPEN_ALL] = visa_timeout()
    with pytest.raises(VisaIOError):
        m.open_all()
    assert res.commands == [OPEN_ALL, "print(errorqueue.count)"]
    res.replies["print(errorqueue.count)"] = visa_timeout()  # a dead link: the first timeout is raised
    with pytest.raises(VisaIOError):
        m.open_all()


def test_shutdown_opens_everything_and_is_idempotent(scripted):
    m, res = scripted
    m.shutdown()
    m.shutdown()
    assert res.commands == [OPEN_ALL, "print(errorqueue.count)"] * 2
    with m:
        pass
    assert not m.connected and not res.closed  # a borrowed resource stays open


# -- a real instrument (only with --k707b RESOURCE) -------------------------------------------

@pytest.fixture
def real_matrix(request):
    resource = request.config.getoption("--k707b")
    if not resource:
        pytest.skip("needs --k707b <VISA resource>")
    with Keithley707B(resource, resource_manager=request.config.getoption("--visa-library")) as m:
        yield m


def test_real_707b_identity_and_open_all(real_matrix):
    assert real_matrix.model in ("707B", "708B")
    real_matrix.open_all()
    assert real_matrix.closed() == []
    real_matrix.shutdown(raise_errors=True)
