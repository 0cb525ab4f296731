"""The emulated bench on loopback TCP: one server thread per instrument.

Example::

    with Emulator("wiring.toml", preset="ideal") as emu:
        rm = pyvisa.ResourceManager("@py")
        smu = rm.open_resource(emu.resources["smu"], read_termination="\\n", write_termination="\\n")
        ...
        assert emu.log.final_state_safe()

Messages end in ``\\n``; replies end in ``\\n``. One client at a time per instrument;
later clients wait for the connection to close.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import threading
import time
from pathlib import Path
from types import TracebackType

from devices.hil.wiring import Wiring, load_wiring

from .b2900 import B2900
from .bench import Bench
from .faults import Faults
from .k707b import K707B
from .k2450 import K2450
from .oplog import OpLog
from .scpi import Instrument
from .state import SAVE_INTERVAL_S, StateKeeper, load_state

POLL_S = 0.05
"""How often server threads check for stop(), s."""
PORT_OFFSETS = {"smu": 0, "matrix": 1, "smu_sense": 2}


def loopback_host(host: str) -> str:
    """``host`` if it is a loopback address (``localhost`` -> 127.0.0.1); ValueError otherwise."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise ValueError(f"host {host!r}: the emulator only listens on a loopback address (127.0.0.1, ::1)")


class _Server(threading.Thread):
    """Accepts clients on one port and feeds their lines to one instrument, with faults."""

    def __init__(self, instrument: Instrument, host: str, port: int, faults: Faults, seed: int) -> None:
        super().__init__(name=f"emulator-{instrument.name}", daemon=True)
        self.instrument = instrument
        self.faults = faults if faults.applies_to(instrument.name) else Faults()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.create_server((host, port), family=family)
        self.sock.settimeout(POLL_S)
        self.port: int = self.sock.getsockname()[1]
        self.count = 0
        self.stopping = threading.Event()
        self._rng = random.Random(seed)

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            with conn:
                self._serve(conn)
        self.sock.close()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(POLL_S)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        while not self.stopping.is_set():
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            _quick_ack(conn)
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                text = line.decode("latin-1").strip()
                if text and not self._message(conn, text):
                    return

    def _note(self, text: str, fault: str) -> None:
        with self.instrument.bench.lock:
            self.instrument.bench.record(self.instrument.name, text, fault=fault)

    def _message(self, conn: socket.socket, text: str) -> bool:
        """Handle one message; False closes the connection."""
        self.count += 1
        f, n = self.faults, self.count
        if f.reached(f.hang_after, n):
            self._note(text, "hang: message ignored")
            return True
        if f.reached(f.drop_after, n):
            self._note(text, "drop: connection closed")
            return False
        reply = self.instrument.handle(text)
        if reply is None:
            return True
        if f.reached(f.timeout_after, n):
            self._note(text, "timeout: reply withheld")
            return True
        if f.latency_s:
            time.sleep(f.latency_s)
        data = reply.encode("ascii", "replace")
        if f.reached(f.garble_after, n):
            self._note(text, "garble: reply garbled")
            data = bytes(self._rng.randrange(0x80, 0x100) for _ in range(max(4, len(data))))
        try:
            conn.sendall(data + b"\n")
        except OSError:
            return False
        return True


def _quick_ack(conn: socket.socket) -> None:
    """Acknowledge received data at once (Linux): a write that gets no reply would
    otherwise be ACKed ~40 ms late, and the client's Nagle algorithm holds its next
    message until then."""
    quickack = getattr(socket, "TCP_QUICKACK", None)
    if quickack is not None:
        try:
            conn.setsockopt(socket.IPPROTO_TCP, quickack, 1)
        except OSError:
            pass


class Emulator:
    """A simulated bench (B2912A or two 2450s, and a 707B) on loopback TCP.

    Args:
        wiring: a :class:`Wiring` or the path of a wiring TOML file.
        preset: device preset (name or file) of every array.
        seed: array ``k`` is seeded ``seed + k``.
        faults: faults to inject (none by default).
        log_path: JSON-lines log file (flushed per record), or None for memory only.
        host: a loopback address; anything else is refused.
        set_threshold_v / reset_threshold_v: pulse thresholds across a device, V.
        init_spread: initial spread of the devices around mid-range (see :class:`Bench`).
        max_records: records kept in memory by the log (None: all).
        state: state file of the arrays (see :mod:`devices.hil.emulator.state`): reloaded if it
            exists (a file of another wiring or device model is refused), written on
            :meth:`start`, after pulses (at most ``save_interval_s`` later, s) and on
            :meth:`stop`. None: nothing is kept (the devices start seeded every time).
        fresh: ignore an existing ``state`` file (seeded devices; the file is overwritten).
    """

    def __init__(self, wiring: Wiring | str | Path, preset: str = "rram", seed: int = 0,
                 faults: Faults | None = None, log_path: str | Path | None = None, host: str = "127.0.0.1",
                 *, set_threshold_v: float = 0.8, reset_threshold_v: float = 0.8, init_spread: float = 0.0,
                 max_records: int | None = None, state: str | Path | None = None, fresh: bool = False,
                 save_interval_s: float = SAVE_INTERVAL_S) -> None:
        self.host = loopback_host(host)
        if not isinstance(wiring, Wiring):
            wiring = load_wiring(wiring)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed = {seed!r}: must be an integer >= 0")
        self.faults = faults if faults is not None else Faults()
        self.wiring = wiring
        self.bench = Bench(wiring, preset, seed, set_threshold_v=set_threshold_v,
                           reset_threshold_v=reset_threshold_v, init_spread=init_spread)
        self.state_keeper: StateKeeper | None = None
        self.state_note = ""
        """One line: what became of the state file (reloaded, new, discarded)."""
        if state is not None:
            self.state_keeper = StateKeeper(self.bench, state, preset, save_interval_s)
            if fresh or not Path(state).exists():
                self.state_note = f"state: new file {state}: seeded devices" if not Path(state).exists() \
                    else f"state: {state} discarded (--fresh): seeded devices"
            else:
                self.state_note = load_state(state, wiring, self.bench.arrays, preset)
        self.instruments: dict[str, Instrument] = {}
        if wiring.smu_model == "b2900":
            chans = {wiring.drive_channel: "drive", wiring.sense_channel: "sense"}
            self.instruments["smu"] = B2900("smu", self.bench, chans)
        else:
            self.instruments["smu"] = K2450("smu", self.bench, "drive", "EMU0000001")
        self.instruments["matrix"] = K707B("matrix", self.bench)
        if wiring.smu_model == "2450":
            self.instruments["smu_sense"] = K2450("smu_sense", self.bench, "sense", "EMU0000002")
        self.bench.log = self.log = OpLog(log_path, max_records)
        self._servers: dict[str, _Server] = {}
        self._state = "new"

    @property
    def resources(self) -> dict[str, str]:
        """VISA resource string of each running instrument (smu, matrix[, smu_sense])."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return {k: f"TCPIP::{host}::{s.port}::SOCKET" for k, s in self._servers.items()}

    def start(self, port: int = 0) -> dict[str, str]:
        """Listen: SMU on ``port``, matrix on ``port + 1``, second 2450 on ``port + 2``
        (``port = 0``: free ports). Returns :attr:`resources`."""
        if self._state != "new":
            raise RuntimeError("an Emulator can be started once")
        top = 65535 - max(PORT_OFFSETS[k] for k in self.instruments)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= top:
            raise ValueError(f"port = {port!r}: must be 0 (free ports) or 1..{top}")
        try:
            for k, (name, inst) in enumerate(self.instruments.items()):
                p = port + PORT_OFFSETS[name] if port else 0
                self._servers[name] = _Server(inst, self.host, p, self.faults, seed=k)
        except OSError:
            for s in self._servers.values():
                s.sock.close()
            self._servers.clear()
            raise
        if self.state_keeper is not None:
            try:
                self.state_keeper.start()
            except BaseException:
                for s in self._servers.values():
                    s.sock.close()
                self._servers.clear()
                raise
        for s in self._servers.values():
            s.start()
        self._state = "running"
        return self.resources

    def stop(self) -> None:
        """Stop every server thread, save the state file (if any), close the log file
        (records stay in memory)."""
        for s in self._servers.values():
            s.stopping.set()
        for s in self._servers.values():
            s.join(timeout=5)
        try:
            if self.state_keeper is not None and self._state == "running":
                self.state_keeper.stop()
        finally:
            self._state = "stopped"
            self.log.close()

    def __enter__(self) -> Emulator:
        if self._state == "new":
            self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
