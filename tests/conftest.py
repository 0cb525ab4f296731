"""Shared fixtures of the device-layer test suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import pyvisa
import torch
from crossbar_factories import FACTORIES, CrossbarFactory


@pytest.fixture(params=FACTORIES, ids=[f.name for f in FACTORIES])
def factory(request: pytest.FixtureRequest) -> CrossbarFactory:
    """Each crossbar implementation in turn (see ``tests/crossbar_factories.py``)."""
    return request.param


@pytest.fixture
def gen() -> torch.Generator:
    """A seeded torch generator for test inputs (independent of any crossbar's own noise)."""
    g = torch.Generator()
    g.manual_seed(20240601)
    return g


@pytest.fixture
def single_thread():
    """Run a test on one torch thread: the arrays here are small, and on a busy machine
    OpenMP threads waiting for each other cost far more than they save."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_addoption(parser: pytest.Parser) -> None:
    """VISA resources of real instruments for the optional tests in ``tests/test_drivers_*.py``
    (skipped unless given; they only read identity and settings, switch outputs off, open all)."""
    group = parser.getgroup("instruments", "real instruments for the driver tests")
    group.addoption("--b2900", default=None, metavar="RESOURCE", help="VISA resource of a Keysight B2900 SMU")
    group.addoption("--k2450", default=None, metavar="RESOURCE", help="VISA resource of a Keithley 2450 SMU")
    group.addoption("--k707b", default=None, metavar="RESOURCE", help="VISA resource of a Keithley 707B/708B")
    group.addoption("--visa-library", default="", metavar="BACKEND",
                    help="pyvisa backend for those instruments, e.g. @py (default: the system VISA)")


@pytest.fixture(scope="module")
def rm() -> Iterator[pyvisa.ResourceManager]:
    """A pyvisa-py resource manager (for tests that talk to the emulator over TCP)."""
    manager = pyvisa.ResourceManager("@py")
    yield manager
    manager.close()
