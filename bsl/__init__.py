"""Binary stochastic learning (BSL) on memristor crossbars: the learning engine and command line."""

__version__ = "0.1.0"
