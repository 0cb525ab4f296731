"""Simulation studies: sweeps over device non-idealities and learning rules."""
