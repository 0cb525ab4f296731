"""Characterization and fitting: the pulse-response experiment and trace files, and the step-model fit."""

from .fit import DeviceFit, FitResult, branch_law, fit_trace

__all__ = ["DeviceFit", "FitResult", "branch_law", "fit_trace"]
