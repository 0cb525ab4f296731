"""PyVISA instrument drivers (SMUs, switch matrices). They speak SCPI/TSP only; no learning."""
